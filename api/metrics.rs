//! Prometheus metrics, rendered at `GET /metrics` (`http::scrape`) for the
//! operator only.
//!
//! Counters and histograms are recorded where things happen (the `record_*`
//! functions below); gauges that describe the database (seats per event,
//! reconciler backlog) are read with one query when scraped, at most every
//! few seconds per instance. Labels are route templates, provider names,
//! reasons and outcomes, event names: never ids, paths or secrets.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds: from a fast query to a slow provider call.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Requests in one group commit of holds.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// The database gauges are read at most this often per instance.
pub const DATABASE_GAUGES_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed once (every instance in a process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("nts_hold_batch_size".into()), &BATCH_BUCKETS))
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness): this one
        // still renders what is recorded through it, which is then nothing.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("nts_http_requests_total", "HTTP requests answered, by method, route template and status");
    describe_histogram!("nts_http_request_duration_seconds", Unit::Seconds, "Time to answer, by route template");
    describe_counter!("nts_holds_granted_total", "Holds granted");
    describe_counter!("nts_holds_refused_total", "Hold requests refused, by reason");
    describe_counter!("nts_hold_seats_granted_total", "Seats held by granted holds");
    describe_histogram!("nts_hold_batch_size", "Hold requests in one group commit");
    describe_histogram!("nts_hold_flush_duration_seconds", Unit::Seconds, "Time one group commit of holds takes");
    describe_gauge!("nts_event_seats_held", "Seats held (not yet sold), per event on sale");
    describe_gauge!("nts_event_seats_sold", "Seats sold, per event on sale");
    describe_gauge!("nts_event_seats_capacity", "Seats for sale, per event on sale");
    describe_counter!("nts_payment_attempts_total", "Payment confirmations at the provider, by outcome");
    describe_histogram!("nts_provider_call_duration_seconds", Unit::Seconds, "Calls to the payment provider");
    describe_counter!("nts_provider_call_errors_total", "Provider calls that failed, by kind");
    describe_histogram!("nts_reconciler_pass_duration_seconds", Unit::Seconds, "One reconciler pass");
    describe_counter!("nts_reconciler_passes_total", "Reconciler passes, by result");
    describe_counter!("nts_reconciler_work_total", "What reconciler passes did, by kind");
    describe_gauge!("nts_reconciler_last_pass_timestamp_seconds", "When this instance's reconciler last finished");
    describe_gauge!("nts_reconciler_backlog", "Work past its deadline the reconciler has not done yet, by kind");
    describe_gauge!("nts_reconciler_lag_seconds", "How long the oldest overdue hold or order has waited");
    describe_gauge!("nts_mail_outbox", "E-mails to buyers not sent yet, by status (pending, sending, failed)");
    describe_gauge!("nts_mail_outbox_oldest_unsent_seconds", "How long the oldest unsent e-mail has waited");
    describe_counter!("nts_webhook_events_total", "Provider webhook deliveries, by event type and result");
    describe_counter!("nts_idempotency_replays_total", "Answers replayed for a repeated Idempotency-Key");
    describe_counter!("nts_idempotency_conflicts_total", "Idempotency-Key refusals, by reason");
    describe_gauge!("nts_db_pool_connections", "Database connections of this instance, by state");
    describe_gauge!("nts_db_pool_max_connections", "Most database connections this instance opens");
    describe_counter!("nts_db_pool_acquire_timeouts_total", "Requests that waited for a database connection in vain");
}

/// The token that opens `/metrics`; `Debug` never prints it.
#[derive(Clone)]
pub struct MetricsToken(pub String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(***)")
    }
}

/// When the database gauges were last read, so that scrapes from several
/// Prometheus servers cost one query per interval.
#[derive(Default)]
pub struct ScrapeCache {
    database_read_at: Mutex<Option<Instant>>,
}

impl ScrapeCache {
    /// Whether the database gauges are due (at most every [`DATABASE_GAUGES_EVERY`]); due now counts as read.
    pub fn database_due(&self) -> bool {
        let mut last = self.database_read_at.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= DATABASE_GAUGES_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

/// One answered request; `route` is the matched template (`/api/v1/holds/{hold_id}`).
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let (method, route, status) = (method.to_owned(), route.to_owned(), status.to_string());
    counter!("nts_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    histogram!("nts_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

pub fn record_hold_granted(seats: i32) {
    counter!("nts_holds_granted_total").increment(1);
    counter!("nts_hold_seats_granted_total").increment(seats.max(0) as u64);
}

/// `reason` is the answer's error code (`sold_out`, `sales_closed`, …).
pub fn record_hold_refused(reason: &str) {
    counter!("nts_holds_refused_total", "reason" => reason.to_owned()).increment(1);
}

pub fn record_hold_flush(requests: usize, elapsed: Duration) {
    histogram!("nts_hold_batch_size").record(requests as f64);
    histogram!("nts_hold_flush_duration_seconds").record(elapsed.as_secs_f64());
}

pub fn record_provider_call(
    provider: &'static str,
    operation: &'static str,
    error: Option<&'static str>,
    elapsed: Duration,
) {
    let outcome = if error.is_some() { "error" } else { "ok" };
    histogram!("nts_provider_call_duration_seconds", "provider" => provider, "operation" => operation, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    if let Some(kind) = error {
        counter!("nts_provider_call_errors_total", "provider" => provider, "operation" => operation, "kind" => kind)
            .increment(1);
    }
}

pub fn record_payment_attempt(provider: &'static str, outcome: &'static str) {
    counter!("nts_payment_attempts_total", "provider" => provider, "outcome" => outcome).increment(1);
}

pub fn record_reconciler_pass(result: &'static str, elapsed: Duration, work: &[(&'static str, u64)]) {
    histogram!("nts_reconciler_pass_duration_seconds").record(elapsed.as_secs_f64());
    counter!("nts_reconciler_passes_total", "result" => result).increment(1);
    for &(kind, n) in work {
        counter!("nts_reconciler_work_total", "kind" => kind).increment(n);
    }
    let now = time::OffsetDateTime::now_utc();
    gauge!("nts_reconciler_last_pass_timestamp_seconds").set(now.unix_timestamp_nanos() as f64 / 1e9);
}

/// `kind` is the provider's event type when it is one nts knows, else `other`.
pub fn record_webhook(kind: &'static str, result: &'static str) {
    counter!("nts_webhook_events_total", "type" => kind, "result" => result).increment(1);
}

pub fn record_idempotency_replay() {
    counter!("nts_idempotency_replays_total").increment(1);
}

pub fn record_idempotency_conflict(reason: &'static str) {
    counter!("nts_idempotency_conflicts_total", "reason" => reason).increment(1);
}

pub fn record_pool_timeout() {
    counter!("nts_db_pool_acquire_timeouts_total").increment(1);
}

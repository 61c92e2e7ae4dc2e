//! `GET /metrics` for the operator only: 404 unless `NTS_METRICS_TOKEN` is
//! set, and then only to that bearer token. Gauges that describe the database
//! (seats per event, reconciler backlog, outbox) are read here, at most every
//! few seconds per instance.

use actix_web::{get, http::header, web, HttpRequest, HttpResponse};
use metrics::gauge;
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::domain::status::{HoldStatus, OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult};
use crate::mail::outbox::MailStatus;
use crate::state::AppState;

#[get("/metrics")]
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let Some(expected) = &state.config.metrics_token else { return Err(ApiError::NotFound("no such resource")) };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        None => return Err(ApiError::Unauthorized),
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.0.as_bytes())) => {}
        Some(_) => return Err(ApiError::Forbidden),
    }
    record_pool(&state.pool);
    if state.scrape_cache.database_due() {
        if let Err(e) = read_database_gauges(&state.pool).await {
            // The counters are still worth having when the database is down.
            tracing::warn!(error = %e, "metrics: reading the database gauges failed");
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::handle().render()))
}

fn record_pool(pool: &PgPool) {
    let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
    gauge!("nts_db_pool_connections", "state" => "idle").set(idle);
    gauge!("nts_db_pool_connections", "state" => "in_use").set(size - idle);
    gauge!("nts_db_pool_max_connections").set(pool.options().get_max_connections() as f64);
}

async fn read_database_gauges(pool: &PgPool) -> Result<(), sqlx::Error> {
    // Events not yet started, the ones on sale: a bounded set of label values.
    let seats = sqlx::query!(
        r#"SELECT e.name, COALESCE(sum(t.held), 0)::int8 AS "held!", COALESCE(sum(t.sold), 0)::int8 AS "sold!",
                  COALESCE(sum(t.capacity), 0)::int8 AS "capacity!"
           FROM events e JOIN ticket_types t ON t.event_id = e.id
           WHERE e.starts_at > now()
           GROUP BY e.id, e.name"#
    )
    .fetch_all(pool)
    .await?;
    for row in seats {
        gauge!("nts_event_seats_held", "event" => row.name.clone()).set(row.held as f64);
        gauge!("nts_event_seats_sold", "event" => row.name.clone()).set(row.sold as f64);
        gauge!("nts_event_seats_capacity", "event" => row.name).set(row.capacity as f64);
    }
    let backlog = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM holds WHERE status = $1 AND expires_at <= now()) AS "expired_holds!",
             (SELECT count(*) FROM orders WHERE status = $2 AND expires_at <= now())
                 AS "overdue_orders!",
             (SELECT count(*) FROM payments WHERE status = $3 AND next_check_at <= now())
                 AS "refunds_due!",
             EXTRACT(EPOCH FROM now() - LEAST(
                 (SELECT min(expires_at) FROM holds WHERE status = $1 AND expires_at <= now()),
                 (SELECT min(expires_at) FROM orders WHERE status = $2 AND expires_at <= now())
             ))::float8 AS lag"#,
        HoldStatus::Active as HoldStatus,
        OrderStatus::AwaitingPayment as OrderStatus,
        PaymentStatus::RefundPending as PaymentStatus,
    )
    .fetch_one(pool)
    .await?;
    gauge!("nts_reconciler_backlog", "kind" => "expired_holds").set(backlog.expired_holds as f64);
    gauge!("nts_reconciler_backlog", "kind" => "overdue_orders").set(backlog.overdue_orders as f64);
    gauge!("nts_reconciler_backlog", "kind" => "refunds_due").set(backlog.refunds_due as f64);
    gauge!("nts_reconciler_lag_seconds").set(backlog.lag.unwrap_or(0.0).max(0.0));
    // Through the outbox's partial index of unsent rows: sent e-mails pile up, these do not.
    let outbox = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE status = $1) AS "pending!",
                  count(*) FILTER (WHERE status = $2) AS "sending!",
                  count(*) FILTER (WHERE status = $3) AS "failed!",
                  EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status IN ($1, $2)))::float8
                      AS oldest
           FROM mail_outbox WHERE status <> $4"#,
        MailStatus::Pending as MailStatus,
        MailStatus::Sending as MailStatus,
        MailStatus::Failed as MailStatus,
        MailStatus::Sent as MailStatus,
    )
    .fetch_one(pool)
    .await?;
    gauge!("nts_mail_outbox", "status" => "pending").set(outbox.pending as f64);
    gauge!("nts_mail_outbox", "status" => "sending").set(outbox.sending as f64);
    gauge!("nts_mail_outbox", "status" => "failed").set(outbox.failed as f64);
    gauge!("nts_mail_outbox_oldest_unsent_seconds").set(outbox.oldest.unwrap_or(0.0).max(0.0));
    Ok(())
}

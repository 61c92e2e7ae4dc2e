//! The one table a run ends with.

use std::time::Duration;

use crate::audit::Audit;
use crate::settings::Settings;
use crate::stats::Stats;

pub struct Run<'a> {
    pub settings: &'a Settings,
    pub stats: &'a Stats,
    pub audit: &'a Audit,
    pub load: Duration,
    pub settled: Option<Duration>,
    pub log_problems: (usize, usize),
    pub logs: String,
}

fn list(pairs: &[(String, i64)]) -> String {
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn total(pairs: &[(String, i64)]) -> i64 {
    pairs.iter().map(|(_, v)| v).sum()
}

fn get(pairs: &[(String, i64)], key: &str) -> i64 {
    pairs.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

pub fn print(r: &Run) {
    let (s, st, a) = (r.settings, r.stats, r.audit);
    let f = &s.faults;
    let row = |name: &str, value: String, note: String| println!("| {name:<34} | {value:>9} | {note}");
    println!();
    println!(
        "nts torture · profile {} · seed {} · {} instances · {} buyers · {} s{}",
        s.profile,
        s.seed,
        s.instances,
        s.buyers,
        s.duration.as_secs(),
        if s.break_inventory_guard { " · INVENTORY GUARD DELIBERATELY BROKEN" } else { "" }
    );
    println!(
        "faults: declines {:.0}%, lost responses {:.0}%, slow {:.0}% ({} ms, client timeout {} ms), kills {}, PostgreSQL restart {}",
        f.decline_rate * 100.0,
        f.lost_rate * 100.0,
        f.slow_rate * 100.0,
        f.slow_ms,
        s.client_timeout.as_millis(),
        s.kill_every.map_or("off".into(), |k| format!("every ~{} s", k.as_secs_f64())),
        if s.pg_restart { "on" } else { "off" },
    );
    if let Some(stripe) = &s.stripe {
        println!(
            "gateway: Stripe (localstripe behind the strict proxy): stored 500s {:.0}% (half after Stripe acted), \
             429s {:.0}% (lock_timeout {:.0}%), storms {}, account limit {}, lost answers and slow answers as above, \
             webhooks {}",
            stripe.stored_error_rate * 100.0,
            stripe.rate_limit_rate * 100.0,
            stripe.lock_timeout_rate * 100.0,
            stripe.storm_every.map_or("off".into(), |e| format!("every ~{} s", e.as_secs_f64())),
            match stripe.account_rate_limit {
                0 => "off".to_owned(),
                n => format!("{n}/s"),
            },
            match stripe.webhooks {
                crate::settings::Webhooks::On => "twice and out of order",
                crate::settings::Webhooks::Off => "off",
                crate::settings::Webhooks::Late => "twice, each 60-180 s late",
            },
        );
    }
    println!("| {:<34} | {:>9} | details", "what", "value");
    println!("|:{}|{}:|:--", "-".repeat(35), "-".repeat(10));
    row("buyers", s.buyers.to_string(), format!("load {:.0} s", r.load.as_secs_f64()));
    row(
        "requests",
        st.requests.get().to_string(),
        format!(
            "timeouts {}, connection errors {}, same-key retries {}, replayed answers {}, key-in-use 409s {}, gave up {}",
            st.timeouts.get(),
            st.connection_errors.get(),
            st.same_key_retries.get(),
            st.replays.get(),
            st.key_in_use.get(),
            st.gave_up.get()
        ),
    );
    let retried: Vec<(String, i64)> =
        st.retried_503.lock().unwrap().iter().map(|(k, v)| (k.clone(), *v as i64)).collect();
    row("retried 503s (Retry-After)", st.retried_503_total().to_string(), list(&retried));
    let slowest = st.slowest.lock().unwrap().clone();
    row("slowest call (retries included)", format!("{:.1} s", slowest.0.as_secs_f64()), slowest.1);
    row("instance kills (SIGKILL)", st.kills.get().to_string(), format!("restarts {}", st.restarts.get()));
    row("PostgreSQL restarts", st.pg_restarts.get().to_string(), String::new());
    if s.stripe.is_some() {
        row("429 storms", st.storms.get().to_string(), String::new());
    }
    row(
        "buyers' outcomes",
        String::new(),
        format!(
            "holds {} (of several types {}, old body {}), sold out {} (of several types {}), over max {}, \
             abandoned holds {}, released {}, checkout refused {}, orders {}, abandoned orders {}, declines {}, \
             new attempts {}, pending {}, saw paid {}, saw unpaid {}, stopped polling {}",
            st.holds.get(),
            st.holds_several_types.get(),
            st.holds_old_body.get(),
            st.sold_out.get(),
            st.sold_out_several_types.get(),
            st.too_many.get(),
            st.abandoned_holds.get(),
            st.released.get(),
            st.checkout_refused.get(),
            st.orders.get(),
            st.abandoned_orders.get(),
            st.declined.get(),
            st.new_attempts.get(),
            st.pending.get(),
            st.paid.get(),
            st.unpaid.get(),
            st.poll_timeouts.get()
        ),
    );
    row("holds", total(&a.holds).to_string(), list(&a.holds));
    row(
        "  holds no buyer was answered with",
        (total(&a.holds) - st.holds.get() as i64).to_string(),
        "a hold request whose answer was lost to a crash ran again on retry; the extra hold expires".into(),
    );
    row("orders", total(&a.orders).to_string(), list(&a.orders));
    for status in ["paid", "expired", "canceled", "refunded"] {
        row(&format!("  orders {status}"), get(&a.orders, status).to_string(), String::new());
    }
    row("payment attempts", total(&a.payments).to_string(), list(&a.payments));
    row("provider intents", total(&a.intents).to_string(), list(&a.intents));
    if let Some(n) = a.given_up {
        row(
            "attempts Stripe never made",
            n.to_string(),
            format!(
                "refused before Stripe acted, or not found for {} s; none at Stripe may carry their nts_payment_id (checked below)",
                crate::stripe::LOOK_FOR_SECS
            ),
        );
    }
    for t in &a.types {
        row(
            &format!("seats sold: {}", t.name),
            format!("{}/{}", t.sold, t.capacity),
            format!("tickets {}, paid-order seats {}, held {}", t.tickets, t.sold_rows, t.held),
        );
    }
    row("settled after load", r.settled.map_or("no".into(), |d| format!("{:.1} s", d.as_secs_f64())), String::new());
    row("server log errors / panics", format!("{} / {}", r.log_problems.0, r.log_problems.1), r.logs.clone());
    row("**checks (each must be 0)**", String::new(), String::new());
    for c in &a.checks {
        let verdict = if c.value == 0 { "ok" } else { "FAIL" };
        row(
            &c.name,
            c.value.to_string(),
            if c.detail.is_empty() { verdict.into() } else { format!("{verdict} ({})", c.detail) },
        );
    }
    let samples = st.samples.lock().unwrap();
    if !samples.is_empty() {
        println!();
        println!("first problems seen by the buyers:");
        for line in samples.iter() {
            println!("  {line}");
        }
    }
    println!();
    if a.passed() {
        println!("RESULT: PASS (seed {})", s.seed);
    } else {
        println!("RESULT: FAIL (seed {}; repeat with --seed {} --keep-db to inspect)", s.seed, s.seed);
    }
}

//! What the buyers and the chaos saw, counted as it happens. The verdict does
//! not rest on these counters alone: the audit re-derives everything from the
//! database rows and the provider's records.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

const MAX_SAMPLES: usize = 25;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn raise_to(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Stats {
    // HTTP, as the clients saw it.
    pub requests: Counter,
    pub timeouts: Counter,
    pub connection_errors: Counter,
    pub same_key_retries: Counter,
    pub replays: Counter,
    pub key_in_use: Counter,
    pub gave_up: Counter,
    /// 503 + Retry-After answers that were retried, by error code.
    pub retried_503: Mutex<BTreeMap<String, u64>>,
    /// Every 5xx that is not a retried 503, plus 503s still failing after the retry budget.
    pub bad_5xx: Counter,
    /// Answers the API contract does not allow at that step.
    pub unexpected: Counter,
    pub samples: Mutex<Vec<String>>,
    /// The longest a call took to get its answer, retries included, and which.
    pub slowest: Mutex<(Duration, String)>,

    // Buyers.
    pub buyers_done: Counter,
    pub holds: Counter,
    /// Holds of several ticket types at once, and of one with the pre-carts body.
    pub holds_several_types: Counter,
    pub holds_old_body: Counter,
    pub sold_out: Counter,
    /// `sold_out` answers to requests for several types.
    pub sold_out_several_types: Counter,
    pub too_many: Counter,
    pub abandoned_holds: Counter,
    pub released: Counter,
    pub checkout_refused: Counter,
    pub orders: Counter,
    pub abandoned_orders: Counter,
    pub declined: Counter,
    pub new_attempts: Counter,
    pub pending: Counter,
    pub paid: Counter,
    pub unpaid: Counter,
    pub poll_timeouts: Counter,
    /// Orders a buyer was told are paid (a 200 confirmation or a paid order view).
    pub seen_paid: Mutex<Vec<Uuid>>,

    // The inventory watched while the sale runs.
    pub inventory_samples: Counter,
    pub peak_oversold: Counter,
    pub peak_drift: Counter,

    // Chaos.
    pub kills: Counter,
    pub restarts: Counter,
    pub pg_restarts: Counter,
    /// 429 storms at the Stripe proxy (`--storm-every`).
    pub storms: Counter,
}

impl Stats {
    pub fn sample(&self, what: String) {
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < MAX_SAMPLES {
            samples.push(what);
        }
    }

    pub fn took(&self, took: Duration, what: impl FnOnce() -> String) {
        let mut slowest = self.slowest.lock().unwrap();
        if took > slowest.0 {
            *slowest = (took, what());
        }
    }

    pub fn retried_503(&self, code: &str) {
        *self.retried_503.lock().unwrap().entry(code.to_owned()).or_default() += 1;
    }

    pub fn retried_503_total(&self) -> u64 {
        self.retried_503.lock().unwrap().values().sum()
    }

    pub fn seen_paid(&self, order_id: Uuid) {
        self.seen_paid.lock().unwrap().push(order_id);
    }
}

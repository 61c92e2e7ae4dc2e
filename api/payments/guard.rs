//! How often this instance may call the payment provider. A merchant's rate
//! limit is shared by every instance and every buyer: one instance that
//! hammers a failing provider turns every buyer's payment into a 503. So each
//! instance has budgets of calls (token buckets), and a circuit breaker
//! that stops calling for a while after consecutive 429 or 5xx answers, for
//! longer each time (capped exponential backoff). Calls that move money
//! (creations, cancels, refunds) and reads (retrievals, each page of a
//! listing) have budgets apart, so no amount of reading can hold back a payment.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Calls per second this instance may make of each kind, and how many may
/// come at once. Stripe allows 100 per second per account in live mode (25
/// in test mode); a few instances at these rates stay inside it.
const MOVES_PER_SECOND: f64 = 20.0;
const MOVES_BURST: f64 = 40.0;
const READS_PER_SECOND: f64 = 10.0;
const READS_BURST: f64 = 20.0;

/// What a call does, and so which budget it is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Creations, cancels, refunds: calls that move money or stop it moving.
    Moves,
    /// Retrievals and listings (each page one call).
    Reads,
}

/// Consecutive 429 / 5xx answers that open the circuit.
const TRIP_AFTER: u32 = 5;

/// Exponential backoff with a cap: 250 ms, 500 ms, 1 s, ... up to 30 s.
pub fn backoff(failures: u32) -> Duration {
    const BASE_MS: u64 = 250;
    const CAP_MS: u64 = 30_000;
    Duration::from_millis(BASE_MS.saturating_mul(1u64 << failures.min(16)).min(CAP_MS))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The provider answered (a success or a refusal of the request itself).
    Answered,
    /// 429 or 5xx: the provider is in trouble or we call too much.
    Overloaded,
    /// No answer at all: says nothing about the provider's load.
    Silent,
}

pub struct CallGuard {
    state: Mutex<State>,
}

struct State {
    moves: Bucket,
    reads: Bucket,
    overloaded_in_a_row: u32,
    open_until: Option<Instant>,
}

impl Default for CallGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl CallGuard {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                moves: Bucket::full(MOVES_PER_SECOND, MOVES_BURST),
                reads: Bucket::full(READS_PER_SECOND, READS_BURST),
                overloaded_in_a_row: 0,
                open_until: None,
            }),
        }
    }

    /// May a call of this kind go out now? `Err` says why not (nothing was sent).
    pub fn admit(&self, calls: Calls) -> Result<(), String> {
        self.admit_at(calls, Instant::now())
    }

    fn admit_at(&self, calls: Calls, now: Instant) -> Result<(), String> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = s.open_until.filter(|until| *until > now) {
            return Err(format!(
                "circuit open after {} overloaded answers in a row; calls resume in {} ms",
                s.overloaded_in_a_row,
                (until - now).as_millis()
            ));
        }
        let bucket = match calls {
            Calls::Moves => &mut s.moves,
            Calls::Reads => &mut s.reads,
        };
        if !bucket.take(now) {
            return Err(format!(
                "this instance's budget of {} provider {calls:?} per second is spent",
                bucket.per_second
            ));
        }
        Ok(())
    }

    pub fn record(&self, answer: Answer) {
        self.record_at(answer, Instant::now())
    }

    fn record_at(&self, answer: Answer, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Answer::Answered => {
                s.overloaded_in_a_row = 0;
                s.open_until = None;
            }
            Answer::Overloaded => {
                s.overloaded_in_a_row += 1;
                if s.overloaded_in_a_row >= TRIP_AFTER {
                    let wait = backoff(s.overloaded_in_a_row - TRIP_AFTER + 2);
                    s.open_until = Some(now + wait);
                    tracing::warn!(wait_ms = wait.as_millis() as u64, "payment provider overloaded; circuit open");
                }
            }
            Answer::Silent => {}
        }
    }
}

/// A token bucket.
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn full(per_second: f64, burst: f64) -> Self {
        Bucket { per_second, burst, tokens: burst, refilled: Instant::now() }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(10), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_steady_rate() {
        let guard = CallGuard::new();
        let t0 = Instant::now();
        for _ in 0..MOVES_BURST as usize {
            guard.admit_at(Calls::Moves, t0).unwrap();
        }
        assert!(guard.admit_at(Calls::Moves, t0).is_err(), "the burst is spent");
        assert!(guard.admit_at(Calls::Moves, t0 + Duration::from_millis(60)).is_ok(), "refilled at the steady rate");
    }

    #[test]
    fn reads_never_spend_the_budget_of_calls_that_move_money() {
        let guard = CallGuard::new();
        let t0 = Instant::now();
        while guard.admit_at(Calls::Reads, t0).is_ok() {}
        assert!(guard.admit_at(Calls::Reads, t0).is_err(), "the reads' budget is spent");
        for _ in 0..MOVES_BURST as usize {
            guard.admit_at(Calls::Moves, t0).expect("payments still go out");
        }
        assert!(guard.admit_at(Calls::Moves, t0).is_err());
        assert!(guard.admit_at(Calls::Reads, t0 + Duration::from_millis(110)).is_ok(), "reads refill on their own");
    }

    #[test]
    fn consecutive_overloads_open_the_circuit_for_longer_each_time() {
        let guard = CallGuard::new();
        let t0 = Instant::now();
        for _ in 0..TRIP_AFTER - 1 {
            guard.record_at(Answer::Overloaded, t0);
        }
        assert!(guard.admit_at(Calls::Moves, t0).is_ok(), "not yet tripped");
        guard.record_at(Answer::Overloaded, t0);
        assert!(guard.admit_at(Calls::Moves, t0).is_err(), "tripped");
        assert!(guard.admit_at(Calls::Moves, t0 + Duration::from_millis(999)).is_err());
        assert!(guard.admit_at(Calls::Moves, t0 + Duration::from_millis(1001)).is_ok(), "half open after 1 s");
        let t1 = t0 + Duration::from_millis(1001);
        guard.record_at(Answer::Overloaded, t1);
        assert!(guard.admit_at(Calls::Moves, t1 + Duration::from_millis(1500)).is_err(), "open for 2 s this time");
        guard.record_at(Answer::Answered, t1);
        assert!(guard.admit_at(Calls::Moves, t1).is_ok(), "an answer closes it");
        guard.record_at(Answer::Silent, t1);
        assert!(guard.admit_at(Calls::Moves, t1).is_ok());
    }
}

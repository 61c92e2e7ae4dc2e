//! Group commit of holds. Every hold of a ticket type updates the same counter
//! row, so one transaction per hold is capped by that row's lock and by one
//! WAL flush per commit. Instead, concurrent requests for one ticket type join
//! a queue in this instance (requests for several types of one event share
//! one queue of their own); one task flushes the queue as ONE transaction,
//! answers every request, and flushes again as soon as that commit is done. A
//! request that finds no flush running starts one at once, so a lone request
//! waits no longer than before; under load a batch collects whatever arrived
//! during the previous commit.
//!
//! A flush is a few statements whatever its size: one ([`seats::lock`])
//! expires the event's holds past their deadline and locks the counters of
//! every ticket type the batch asks for, in id order, reading them as they
//! are under the lock; each request is checked against them (its event and
//! ticket types exist, each line within `max_per_order`, the order within the
//! event's `max_tickets_per_order`, sales open); one ([`seats::store`]) writes
//! the granted holds, their lines, the counters and the keyed requests'
//! answers. Its round trips are the batch's critical path (the next batch
//! waits for this one's commit), so a keyed batch makes three: the lock (with
//! the `BEGIN`), the store and the `COMMIT`.
//!
//! Nothing is given up:
//! - the row locks and the CHECK on `ticket_types` still decide, so any
//!   number of instances (each with its own queues) share the database
//!   safely, and the id order of the locks keeps holds of several types from
//!   deadlocking;
//! - a hold of several types is granted all its lines or none, in one commit;
//! - each request gets its own hold id, secret and answer; a request with an
//!   Idempotency-Key has its key and answer stored by the same transaction
//!   (atomic phases, at no extra commit), and a request whose key is stored
//!   already is left out and replays that answer;
//! - seats are granted in arrival order, first fit, after expired holds gave
//!   theirs back: a request that does not fit in what is left is answered
//!   `sold_out` (naming the lines that did not fit) and a later, smaller one
//!   that fits still gets its seats — exactly what one transaction per
//!   request, run in arrival order, would answer;
//! - a hold's deadline counts from the moment the counters' locks were had,
//!   not from the transaction's start (after a long wait for a lock, a hold
//!   still lives its whole time).
//!
//! If a flush fails because the database cannot be reached, its requests get
//! that error at once. If it fails otherwise, they are answered
//! [`Outcome::Failed`] and each caller takes its seats alone, with the same
//! hold id, so a flush that did commit after all cannot hold seats twice.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::hoarding::{over_caps, Claimant, Origin};
use super::hold_rules::refusal;
pub use super::hold_rules::Refusal;
use super::hold_rules::{first_fit, Lines};
pub use super::seats::Taken;
use super::seats::{self, Claim, Priced};
use crate::batching::{Batches, Member};
use crate::config::HoldCaps;
use crate::error::{ApiError, ErrorCode};
use crate::idempotency::{self, KeyContext, KeyRecord};

/// Most requests in one transaction; more wait for the next flush.
const MAX_BATCH: usize = 1000;

/// One hold request, as `take_seats` prepared it.
#[derive(Clone)]
pub struct Seats {
    pub event_id: Uuid,
    pub lines: Lines,
    pub id: Uuid,
    pub secret_hash: Vec<u8>,
    pub name: String,
    pub email: String,
    pub hold_seconds: f64,
    /// Where the request comes from, for the hoarding caps.
    pub origin: Option<Origin>,
    /// The request's Idempotency-Key, whose answer the flush stores with the hold.
    pub keyed: Option<Keyed>,
}

/// An Idempotency-Key and how the request's answer reads for each outcome
/// (`None`: not stored, as for a failed flush).
#[derive(Clone)]
pub struct Keyed {
    pub context: std::sync::Arc<KeyContext>,
    pub render: std::sync::Arc<Render>,
}

/// How a request's answer reads for an outcome: status and JSON body.
pub type Render = dyn Fn(&Outcome) -> Option<(actix_web::http::StatusCode, Vec<u8>)> + Send + Sync;

/// What the flush made of one request.
#[derive(Debug)]
pub enum Outcome {
    Held(Taken),
    Refused(Refusal),
    /// The database cannot be reached: the request fails at once, as it would alone.
    Unavailable {
        code: ErrorCode,
        message: String,
    },
    /// The flush failed otherwise; the request should take its seats alone.
    Failed,
    /// The request's Idempotency-Key has an answer already: it is replayed.
    KeyTaken,
}

impl Outcome {
    /// How a failed flush answers: an unreachable database is not tried again
    /// request by request (each would wait out the pool's timeout once more).
    fn failed(e: sqlx::Error) -> impl Fn() -> Outcome {
        let unavailable = match ApiError::from(e) {
            ApiError::Unavailable { code, message } => Some((code, message)),
            _ => None,
        };
        move || match &unavailable {
            Some((code, message)) => Outcome::Unavailable { code: *code, message: message.clone() },
            None => Outcome::Failed,
        }
    }
}

/// The hold queues of one instance, one per ticket type; cheap to clone.
#[derive(Clone)]
pub struct HoldBatcher {
    pool: PgPool,
    caps: HoldCaps,
    batches: Batches<Key, Seats, Outcome>,
}

/// Holds of one ticket type of one event share a queue; so do all holds of
/// several types of one event (`None`), which a flush never splits.
type Key = (Uuid, Option<Uuid>);

type Waiting = Member<Seats, Outcome>;

impl HoldBatcher {
    /// Without hoarding caps; see [`with_caps`](Self::with_caps).
    pub fn new(pool: PgPool) -> Self {
        HoldBatcher { pool, caps: HoldCaps::default(), batches: Batches::new(MAX_BATCH) }
    }

    pub fn with_caps(self, caps: HoldCaps) -> Self {
        HoldBatcher { caps, ..self }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn caps(&self) -> HoldCaps {
        self.caps
    }

    /// Queues the request and waits for the flush that answers it.
    pub async fn take(&self, seats: Seats) -> Outcome {
        let key = (seats.event_id, seats.lines.single_type());
        let (pool, caps) = (self.pool.clone(), self.caps);
        let flush_with = move |key, batch| flush(pool.clone(), caps, key, batch);
        self.batches.join(key, seats, flush_with).await.unwrap_or(Outcome::Failed)
    }

    /// One request on its own (after a flush that failed), by the same
    /// transaction a flush makes.
    pub async fn take_alone(&self, seats: &Seats) -> Result<Outcome, sqlx::Error> {
        Ok(match take_for(&self.pool, self.caps, seats.event_id, &[seats]).await? {
            Flushed::Done(mut outcomes) => {
                if let Some(k) = &seats.keyed {
                    k.context.mark_recorded();
                }
                outcomes.remove(&seats.id).unwrap_or(Outcome::Refused(Refusal::SoldOut(Vec::new())))
            }
            Flushed::KeysTaken(_) => Outcome::KeyTaken,
        })
    }
}

/// One flush: one transaction that takes seats for as many as fit, in
/// arrival order, and stores the answers of the requests that carry an
/// Idempotency-Key; then everyone is answered. A request whose key is already
/// stored (a retry, or a twin on another instance that committed first) is
/// left out, and the flush is made again without it if it had begun.
async fn flush(pool: PgPool, caps: HoldCaps, (event_id, _): Key, batch: Vec<Waiting>) {
    let (requests, started) = (batch.len(), std::time::Instant::now());
    let (pending, twins) = split_twins(batch);
    flush_pending(&pool, caps, event_id, pending).await;
    crate::metrics::record_hold_flush(requests, started.elapsed());
    // After the first of each key committed its answer, which they replay.
    answer_all(twins, || Outcome::KeyTaken);
}

async fn flush_pending(pool: &PgPool, caps: HoldCaps, event_id: Uuid, mut pending: Vec<Waiting>) {
    loop {
        let requests: Vec<&Seats> = pending.iter().map(|w| &w.item).collect();
        match take_for(pool, caps, event_id, &requests).await {
            Ok(Flushed::Done(mut outcomes)) => {
                tracing::debug!(requests = pending.len(), "hold flush");
                for w in pending {
                    let outcome = outcomes.remove(&w.item.id).unwrap_or(Outcome::Refused(Refusal::SoldOut(Vec::new())));
                    if let Some(k) = &w.item.keyed {
                        k.context.mark_recorded();
                    }
                    w.answer(outcome);
                }
                return;
            }
            Ok(Flushed::KeysTaken(taken)) => {
                let (gone, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|w| taken.contains(&w.item.id));
                answer_all(gone, || Outcome::KeyTaken);
                if rest.is_empty() {
                    return;
                }
                pending = rest;
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = pending.len(), "hold flush failed");
                return answer_all(pending, Outcome::failed(e));
            }
        }
    }
}

/// Keeps the first request of each Idempotency-Key in the batch; the rest replay its answer.
fn split_twins(batch: Vec<Waiting>) -> (Vec<Waiting>, Vec<Waiting>) {
    let mut seen = std::collections::HashSet::new();
    batch.into_iter().partition(|w| match &w.item.keyed {
        Some(k) => seen.insert(*k.context.id()),
        None => true,
    })
}

fn answer_all(waiting: Vec<Waiting>, outcome: impl Fn() -> Outcome) {
    for w in waiting {
        w.answer(outcome());
    }
}

/// Requests refused for a reason other than availability, by hold id.
type Refused = HashMap<Uuid, Refusal>;

enum Flushed {
    /// Committed: each request's outcome, by hold id.
    Done(HashMap<Uuid, Outcome>),
    /// Nothing committed: these requests' keys are stored already.
    KeysTaken(std::collections::HashSet<Uuid>),
}

/// In one transaction: takes seats for the requests that may have them and
/// fit (in arrival order, after holds past their deadline gave theirs back),
/// and stores the keyed requests' answers with them. A request whose key is
/// stored already shows only then, when its answer is not stored: nothing
/// commits, and the flush is made again without it (a retry is rare; asking
/// for every key first cost every keyed flush a statement and a round trip).
async fn take_for(pool: &PgPool, caps: HoldCaps, event_id: Uuid, requests: &[&Seats]) -> Result<Flushed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (granted, refused) = grant(&mut tx, caps, event_id, requests).await?;
    let mut outcomes: HashMap<Uuid, Outcome> = granted.holds().map(|(id, t)| (id, Outcome::Held(t.clone()))).collect();
    outcomes.extend(refused.into_iter().map(|(id, why)| (id, Outcome::Refused(why))));
    for s in requests {
        outcomes.entry(s.id).or_insert(Outcome::Refused(Refusal::SoldOut(Vec::new())));
    }
    let keyed: Vec<(&Seats, &Keyed)> = requests.iter().filter_map(|s| s.keyed.as_ref().map(|k| (*s, k))).collect();
    let records: Vec<KeyRecord> = keyed
        .iter()
        .filter_map(|(s, k)| (k.render)(&outcomes[&s.id]).map(|(st, body)| k.context.record(st, &body)))
        .collect();
    let stored = if !granted.is_empty() {
        seats::store(&mut *tx, event_id, &granted, &records).await?
    } else if !records.is_empty() {
        idempotency::insert_answered(&mut *tx, &records).await?
    } else {
        Vec::new()
    };
    if stored.len() != records.len() {
        // Stored already (a retry), or by a twin on another instance that
        // committed first: without these requests.
        return Ok(Flushed::KeysTaken(
            keyed.iter().filter(|(_, k)| !stored.contains(k.context.id())).map(|(s, _)| s.id).collect(),
        ));
    }
    tx.commit().await?;
    Ok(Flushed::Done(outcomes))
}

/// Locks the counters in `tx` and decides which requests may have seats and
/// fit; answers those holds priced (not stored yet), and what was refused
/// (for availability or another reason).
async fn grant<'a>(
    tx: &mut PgConnection,
    caps: HoldCaps,
    event_id: Uuid,
    all: &[&'a Seats],
) -> Result<(Priced<'a>, Refused), sqlx::Error> {
    let claimants: Vec<Claimant> = all.iter().map(|s| Claimant { id: s.id, origin: s.origin.as_ref() }).collect();
    let mut refused: Refused =
        over_caps(tx, caps, &claimants).await?.into_iter().map(|(id, cap)| (id, Refusal::Capped(cap))).collect();
    let nothing = |refused| Ok((Priced::none(), refused));
    let all: Vec<&Seats> = all.iter().copied().filter(|s| !refused.contains_key(&s.id)).collect();
    if all.is_empty() {
        return nothing(refused);
    }
    // Holds past their deadline give their seats back first, so that first
    // fit in arrival order sees every free seat.
    let mut types: Vec<Uuid> = all.iter().flat_map(|s| s.lines.iter().map(|l| l.ticket_type_id)).collect();
    types.sort_unstable();
    types.dedup();
    let locked = seats::lock(&mut *tx, event_id, &types).await?;
    let mut valid = Vec::new();
    for seats in all {
        match refusal(locked.facts(), &seats.lines) {
            Some(why) => {
                refused.insert(seats.id, why);
            }
            None => valid.push(seats),
        }
    }
    let Some(facts) = locked.facts() else { return nothing(refused) };
    let mut free: HashMap<Uuid, i32> = facts.types.iter().map(|(id, t)| (*id, t.free)).collect();
    let fits = first_fit(&mut free, valid.iter().map(|s| s.lines.as_slice()));
    let mut claims = Vec::new();
    for (seats, fit) in valid.into_iter().zip(fits) {
        match fit {
            Ok(()) => claims.push(Claim {
                id: seats.id,
                secret_hash: &seats.secret_hash,
                name: &seats.name,
                email: &seats.email,
                lines: seats.lines.as_slice(),
                hold_seconds: seats.hold_seconds,
                origin: seats.origin.as_ref(),
            }),
            Err(short) => {
                refused.insert(seats.id, Refusal::SoldOut(short));
            }
        }
    }
    Ok((seats::price(&locked, claims)?, refused))
}

#[cfg(test)]
mod tests;

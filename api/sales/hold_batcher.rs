//! Group commit of holds. Every hold of a ticket type updates the same counter
//! row, so one transaction per hold is capped by that row's lock and by one
//! WAL flush per commit. Instead, concurrent requests for one ticket type join
//! a queue in this instance; one task flushes the queue as ONE transaction (one
//! guarded `UPDATE … SET held = held + total`, one multi-row INSERT of the
//! holds), answers every request, and flushes again as soon as that commit is
//! done. A request that finds no flush running starts one at once, so a lone
//! request waits no longer than before; under load a batch collects whatever
//! arrived during the previous commit.
//!
//! The flush also checks each request against its event and ticket type (they
//! exist, the quantity is within `max_per_order`, sales are open), read after
//! the request arrived: usually inside the same guarded UPDATE, so a batch
//! costs one statement and a hold no statement of its own.
//!
//! Nothing is given up:
//! - the row lock, the guard in the UPDATE and the CHECK on `ticket_types`
//!   still decide, so any number of instances (each with its own queues) share
//!   the database safely;
//! - each request gets its own hold id, secret and answer; a request with an
//!   Idempotency-Key has its key and answer stored by the same transaction
//!   (atomic phases, at no extra commit), and a request whose key is stored
//!   already is left out and replays that answer;
//! - when not everyone fits, holds past their deadline are expired first
//!   (exactly once, by their guarded status change), then seats are granted
//!   in arrival order, first fit: a request that does not fit in what is left
//!   is answered `sold_out` and a later, smaller one that fits still gets its
//!   seats — exactly what one transaction per request, run in arrival order,
//!   would answer;
//! - a hold's deadline counts from the moment its row is written (after the
//!   counter's lock is had), not from the transaction's start.
//!
//! If a flush fails because the database cannot be reached, its requests get
//! that error at once. If it fails otherwise, they are answered
//! [`Outcome::Failed`] and each caller takes its seats alone, with the same
//! hold id, so a flush that did commit after all cannot hold seats twice.

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::hoarding::{over_caps, Cap, Claimant};
use super::holds::expire_stale_type;
use crate::batching::{Batches, Member};
use crate::config::HoldCaps;
use crate::error::ApiError;
use crate::idempotency::{self, KeyContext, KeyRecord};

/// Most requests in one transaction; more wait for the next flush.
const MAX_BATCH: usize = 1000;

/// One hold request, as `take_seats` prepared it.
pub struct Seats {
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub id: Uuid,
    pub secret_hash: Vec<u8>,
    pub quantity: i32,
    pub name: String,
    pub email: String,
    pub hold_seconds: f64,
    /// The client address the hoarding caps count by.
    pub address: Option<String>,
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
        code: &'static str,
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
            Some((code, message)) => Outcome::Unavailable { code, message: message.clone() },
            None => Outcome::Failed,
        }
    }
}

/// Why a request gets no seats, in the order the checks are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoSuchEvent,
    NotThisEvent,
    TooMany {
        max_per_order: i32,
    },
    SalesClosed,
    /// The buyer has as many unpaid holds and orders as a cap allows.
    Capped(Cap),
    SoldOut,
}

/// What a request is checked against: `None` if the event does not exist;
/// `max_per_order` is `None` if the ticket type is not one of the event's.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub on_sale: bool,
    pub max_per_order: Option<i32>,
}

/// Everything but availability: why `quantity` seats of this ticket type cannot be held, if they cannot.
pub fn refusal(facts: Option<Facts>, quantity: i32) -> Option<Refusal> {
    let Some(facts) = facts else { return Some(Refusal::NoSuchEvent) };
    match facts.max_per_order {
        None => Some(Refusal::NotThisEvent),
        Some(max_per_order) if quantity > max_per_order => Some(Refusal::TooMany { max_per_order }),
        Some(_) if !facts.on_sale => Some(Refusal::SalesClosed),
        Some(_) => None,
    }
}

/// The stored hold, as the database returned it.
#[derive(Debug, Clone)]
pub struct Taken {
    pub amount_minor: i64,
    pub currency: String,
    pub expires_at: OffsetDateTime,
    pub ticket_type_name: String,
    pub event_name: String,
}

/// The hold queues of one instance, one per ticket type; cheap to clone.
#[derive(Clone)]
pub struct HoldBatcher {
    pool: PgPool,
    caps: HoldCaps,
    batches: Batches<Key, Seats, Outcome>,
}

/// Holds of one ticket type of one event share a queue.
type Key = (Uuid, Uuid);

type Waiting = Member<Seats, Outcome>;

impl HoldBatcher {
    /// Without hoarding caps; see [`with_caps`](Self::with_caps).
    pub fn new(pool: PgPool) -> Self {
        HoldBatcher { pool, caps: HoldCaps { per_address: 0, per_email: 0 }, batches: Batches::new(MAX_BATCH) }
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
        let key = (seats.event_id, seats.ticket_type_id);
        let (pool, caps) = (self.pool.clone(), self.caps);
        let flush_with = move |key, batch| flush(pool.clone(), caps, key, batch);
        self.batches.join(key, seats, flush_with).await.unwrap_or(Outcome::Failed)
    }
}

/// One flush: one transaction that takes seats for as many as fit, in
/// arrival order, and stores the answers of the requests that carry an
/// Idempotency-Key; then everyone is answered. A request whose key is already
/// stored (a retry, or a twin on another instance that committed first) is
/// left out, and the flush is made again without it if it had begun.
async fn flush(pool: PgPool, caps: HoldCaps, (event_id, ticket_type_id): Key, batch: Vec<Waiting>) {
    let (requests, started) = (batch.len(), std::time::Instant::now());
    let (pending, twins) = split_twins(batch);
    flush_pending(&pool, caps, event_id, ticket_type_id, pending).await;
    crate::metrics::record_hold_flush(requests, started.elapsed());
    // After the first of each key committed its answer, which they replay.
    answer_all(twins, || Outcome::KeyTaken);
}

async fn flush_pending(pool: &PgPool, caps: HoldCaps, event_id: Uuid, ticket_type_id: Uuid, mut pending: Vec<Waiting>) {
    loop {
        match take_for(pool, caps, event_id, ticket_type_id, &pending).await {
            Ok(Flushed::Done(mut outcomes)) => {
                tracing::debug!(requests = pending.len(), "hold flush");
                for w in pending {
                    let outcome = outcomes.remove(&w.item.id).unwrap_or(Outcome::Refused(Refusal::SoldOut));
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
        Some(k) => seen.insert((k.context.scope().to_owned(), k.context.key().to_owned())),
        None => true,
    })
}

fn answer_all(waiting: Vec<Waiting>, outcome: impl Fn() -> Outcome) {
    for w in waiting {
        w.answer(outcome());
    }
}

/// Holds stored by one transaction, by hold id.
type Granted = HashMap<Uuid, Taken>;

/// Requests refused for a reason other than availability, by hold id.
type Refused = HashMap<Uuid, Refusal>;

enum Flushed {
    /// Committed: each request's outcome, by hold id.
    Done(HashMap<Uuid, Outcome>),
    /// Nothing committed: these requests' keys are stored already.
    KeysTaken(std::collections::HashSet<Uuid>),
}

/// In one transaction: leaves out requests whose key is stored already, takes
/// seats for the requests that may have them and fit (in arrival order,
/// after holds past their deadline gave theirs back), and stores the keyed
/// requests' answers.
async fn take_for(
    pool: &PgPool,
    caps: HoldCaps,
    event_id: Uuid,
    ticket_type_id: Uuid,
    waiting: &[Waiting],
) -> Result<Flushed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let keyed: Vec<(&Seats, &Keyed)> =
        waiting.iter().filter_map(|w| w.item.keyed.as_ref().map(|k| (&w.item, k))).collect();
    if !keyed.is_empty() {
        let pairs: Vec<(&str, &str)> = keyed.iter().map(|(_, k)| (k.context.scope(), k.context.key())).collect();
        let stored = idempotency::existing(&mut *tx, &pairs).await?;
        if !stored.is_empty() {
            return Ok(Flushed::KeysTaken(
                keyed
                    .iter()
                    .filter(|(_, k)| stored.iter().any(|(s, key)| s == k.context.scope() && key == k.context.key()))
                    .map(|(s, _)| s.id)
                    .collect(),
            ));
        }
    }
    let (granted, refused) = grant(&mut tx, caps, event_id, ticket_type_id, waiting).await?;
    let mut outcomes: HashMap<Uuid, Outcome> = granted.into_iter().map(|(id, t)| (id, Outcome::Held(t))).collect();
    outcomes.extend(refused.into_iter().map(|(id, why)| (id, Outcome::Refused(why))));
    for w in waiting {
        outcomes.entry(w.item.id).or_insert(Outcome::Refused(Refusal::SoldOut));
    }
    if !keyed.is_empty() {
        let records: Vec<KeyRecord> = keyed
            .iter()
            .filter_map(|(s, k)| (k.render)(&outcomes[&s.id]).map(|(st, body)| k.context.record(st, &body)))
            .collect();
        let stored = idempotency::insert_answered(&mut *tx, &records).await?;
        if stored.len() != records.len() {
            // A twin on another instance committed first: without these requests.
            return Ok(Flushed::KeysTaken(
                keyed
                    .iter()
                    .filter(|(_, k)| !stored.iter().any(|(s, key)| s == k.context.scope() && key == k.context.key()))
                    .map(|(s, _)| s.id)
                    .collect(),
            ));
        }
    }
    tx.commit().await?;
    Ok(Flushed::Done(outcomes))
}

/// Takes seats in `tx` for the requests that may have them and fit; answers
/// what was stored and what was refused for a reason other than
/// availability (the rest did not fit).
async fn grant(
    tx: &mut PgConnection,
    caps: HoldCaps,
    event_id: Uuid,
    ticket_type_id: Uuid,
    waiting: &[Waiting],
) -> Result<(Granted, Refused), sqlx::Error> {
    let all: Vec<&Seats> = waiting.iter().map(|w| &w.item).collect();
    let claimants: Vec<Claimant> =
        all.iter().map(|s| Claimant { id: s.id, address: s.address.as_deref(), email: &s.email }).collect();
    let mut refused: Refused =
        over_caps(tx, caps, &claimants).await?.into_iter().map(|(id, cap)| (id, Refusal::Capped(cap))).collect();
    let all: Vec<&Seats> = all.into_iter().filter(|s| !refused.contains_key(&s.id)).collect();
    if all.is_empty() {
        return Ok((Granted::new(), refused));
    }
    // Usually every request is valid and fits: one statement, whose guard
    // fails as a whole if one of them is not.
    let stored = insert_holds(&mut *tx, event_id, ticket_type_id, &all).await?;
    if !stored.is_empty() {
        return Ok((stored, refused));
    }
    // Otherwise: seats of holds past their deadline come back first, so that
    // first fit in arrival order sees every free seat; then lock the
    // counters, check each request, and grant first fit.
    expire_stale_type(&mut *tx, ticket_type_id).await?;
    let row = sqlx::query!(
        r#"SELECT e.starts_at > now() AS "on_sale!", t.max_per_order AS "max_per_order?", t.free AS "free?"
           FROM events e
           LEFT JOIN (SELECT max_per_order, capacity - sold - held AS free FROM ticket_types
                      WHERE id = $2 AND event_id = $1 FOR NO KEY UPDATE) t ON true
           WHERE e.id = $1"#,
        event_id,
        ticket_type_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let facts = row.as_ref().map(|r| Facts { on_sale: r.on_sale, max_per_order: r.max_per_order });
    let mut valid = Vec::new();
    for seats in all {
        match refusal(facts, seats.quantity) {
            Some(why) => {
                refused.insert(seats.id, why);
            }
            None => valid.push(seats),
        }
    }
    let free = row.and_then(|r| r.free).unwrap_or(0);
    let fits = first_fit(free, valid.iter().map(|s| s.quantity));
    let granted: Vec<&Seats> = valid.into_iter().zip(fits).filter(|(_, fit)| *fit).map(|(s, _)| s).collect();
    if granted.is_empty() {
        return Ok((Granted::new(), refused));
    }
    let stored = insert_holds(&mut *tx, event_id, ticket_type_id, &granted).await?;
    if stored.len() != granted.len() {
        // The counters are locked, so only a change to the event itself (no API
        // makes one) can get here; the requests then take their seats alone.
        return Err(sqlx::Error::Protocol(format!("granted {} holds but stored {}", granted.len(), stored.len())));
    }
    Ok((stored, refused))
}

/// Which requests, in arrival order, fit in `free` seats when each takes what it asks if it can.
fn first_fit(mut free: i32, quantities: impl Iterator<Item = i32>) -> Vec<bool> {
    quantities
        .map(|q| {
            let fits = q <= free;
            if fits {
                free -= q;
            }
            fits
        })
        .collect()
}

/// Bumps `held` by the total of `seats` and stores their holds, in one
/// statement, if they all fit and may all be held (sales open, each quantity
/// within `max_per_order`). Otherwise stores nothing and answers no rows.
async fn insert_holds(
    db: impl PgExecutor<'_>,
    event_id: Uuid,
    ticket_type_id: Uuid,
    seats: &[&Seats],
) -> Result<Granted, sqlx::Error> {
    // Requests are not checked yet: a sum past i32 cannot fit any ticket type.
    let Some(total) = seats.iter().try_fold(0i32, |sum, s| sum.checked_add(s.quantity)) else {
        return Ok(Granted::new());
    };
    let largest: i32 = seats.iter().map(|s| s.quantity).max().unwrap_or(0);
    let ids: Vec<Uuid> = seats.iter().map(|s| s.id).collect();
    let hashes: Vec<Vec<u8>> = seats.iter().map(|s| s.secret_hash.clone()).collect();
    let names: Vec<String> = seats.iter().map(|s| s.name.clone()).collect();
    let emails: Vec<String> = seats.iter().map(|s| s.email.clone()).collect();
    let quantities: Vec<i32> = seats.iter().map(|s| s.quantity).collect();
    let seconds: Vec<f64> = seats.iter().map(|s| s.hold_seconds).collect();
    let addresses: Vec<Option<String>> = seats.iter().map(|s| s.address.clone()).collect();
    let rows = sqlx::query!(
        r#"WITH taken AS (
               UPDATE ticket_types t SET held = t.held + $3
               FROM events e
               WHERE t.id = $2 AND t.event_id = $1 AND e.id = $1 AND e.starts_at > now()
                 AND t.max_per_order >= $10 AND t.capacity - t.sold - t.held >= $3
               RETURNING t.id, t.name, t.price_minor
           ), ins AS (
               INSERT INTO holds (id, secret_hash, event_id, ticket_type_id, buyer_name, buyer_email,
                                  quantity, amount_minor, currency, expires_at, client_address)
               SELECT r.id, r.secret_hash, e.id, taken.id, r.name, r.email, r.quantity,
                      taken.price_minor * r.quantity, e.currency, clock_timestamp() + make_interval(secs => r.secs), r.address
               FROM taken JOIN events e ON e.id = $1,
                    unnest($4::uuid[], $5::bytea[], $6::text[], $7::text[], $8::int4[], $9::float8[], $11::text[])
                        AS r(id, secret_hash, name, email, quantity, secs, address)
               RETURNING id, amount_minor, currency, expires_at
           )
           SELECT ins.id, ins.amount_minor, ins.currency AS "currency!", ins.expires_at,
                  taken.name AS ticket_type_name, e.name AS event_name
           FROM ins, taken, events e WHERE e.id = $1"#,
        event_id,
        ticket_type_id,
        total,
        &ids,
        &hashes,
        &names,
        &emails,
        &quantities,
        &seconds,
        largest,
        &addresses as &[Option<String>],
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let taken = Taken {
                amount_minor: r.amount_minor,
                currency: r.currency,
                expires_at: r.expires_at,
                ticket_type_name: r.ticket_type_name,
                event_name: r.event_name,
            };
            (r.id, taken)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use futures_util::future::join_all;
    use futures_util::StreamExt;
    use uuid::Uuid;

    use super::*;
    use crate::config::Config;
    use crate::domain::{BuyerName, Email};
    use crate::error::ApiError;
    use crate::payments::simulated::SimulatedGateway;
    use crate::payments::PaymentGateway;
    use crate::sales::holds::{take_seats, NewHold};
    use crate::startup::Application;
    use crate::test_db::TestDb;

    #[test]
    fn first_fit_serves_arrival_order_and_lets_later_smaller_requests_in() {
        assert_eq!(first_fit(5, [4, 3, 1].into_iter()), [true, false, true]);
        assert_eq!(first_fit(3, [1, 1, 1, 1].into_iter()), [true, true, true, false]);
        assert_eq!(first_fit(0, [1].into_iter()), [false]);
    }

    #[test]
    fn refusals_follow_the_order_of_the_checks() {
        let open = |max| Some(Facts { on_sale: true, max_per_order: max });
        let closed = |max| Some(Facts { on_sale: false, max_per_order: max });
        assert_eq!(refusal(None, 1), Some(Refusal::NoSuchEvent));
        assert_eq!(refusal(closed(None), 1), Some(Refusal::NotThisEvent));
        assert_eq!(refusal(closed(Some(4)), 5), Some(Refusal::TooMany { max_per_order: 4 }));
        assert_eq!(refusal(closed(Some(4)), 4), Some(Refusal::SalesClosed));
        assert_eq!(refusal(open(Some(4)), 4), None);
    }

    fn seats(event_id: Uuid, ticket_type_id: Uuid, quantity: i32) -> Seats {
        Seats {
            event_id,
            ticket_type_id,
            id: Uuid::new_v4(),
            secret_hash: vec![7; 32],
            quantity,
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            hold_seconds: 300.0,
            address: None,
            keyed: None,
        }
    }

    fn held(outcome: &Outcome) -> bool {
        matches!(outcome, Outcome::Held(_))
    }

    #[tokio::test]
    async fn a_lone_request_is_held_at_once() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(10, 4, 3600.0).await;
        let batcher = HoldBatcher::new(db.pool.clone());
        let request = seats(event, tt, 3);
        let id = request.id;
        let Outcome::Held(taken) = batcher.take(request).await else { panic!("not held") };
        assert_eq!(
            (taken.amount_minor, taken.currency.as_str(), taken.event_name.as_str()),
            (4500, "GBP", "Batch test")
        );
        assert_eq!(db.counters(tt).await, (3, 1));
        let stored =
            sqlx::query_scalar!("SELECT quantity FROM holds WHERE id = $1", id).fetch_one(&db.pool).await.unwrap();
        assert_eq!(stored, 3);
    }

    #[tokio::test]
    async fn one_batch_grants_first_fit_in_arrival_order() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(5, 5, 3600.0).await;
        let batcher = HoldBatcher::new(db.pool.clone());
        // On this single-threaded runtime all three are queued before the flusher first runs: one batch.
        let outcomes = join_all([4, 3, 1].map(|q| batcher.take(seats(event, tt, q)))).await;
        assert!(held(&outcomes[0]) && held(&outcomes[2]), "{outcomes:?}");
        assert!(matches!(outcomes[1], Outcome::Refused(Refusal::SoldOut)), "{outcomes:?}");
        assert_eq!(db.counters(tt).await, (5, 2));
    }

    #[tokio::test]
    async fn each_request_is_checked_on_its_own() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(100, 10, 3600.0).await;
        let (_, other_tt) = db.event(100, 10, 3600.0).await;
        let (past_event, past_tt) = db.event(100, 10, -60.0).await;
        let batcher = HoldBatcher::new(db.pool.clone());
        let outcomes = join_all(
            [
                seats(event, tt, 2),
                seats(event, tt, 11),
                seats(event, tt, 1),
                seats(event, other_tt, 1),
                seats(Uuid::new_v4(), tt, 1),
                seats(past_event, past_tt, 1),
            ]
            .map(|s| batcher.take(s)),
        )
        .await;
        assert!(held(&outcomes[0]) && held(&outcomes[2]), "{outcomes:?}");
        assert!(matches!(outcomes[1], Outcome::Refused(Refusal::TooMany { max_per_order: 10 })), "{outcomes:?}");
        assert!(matches!(outcomes[3], Outcome::Refused(Refusal::NotThisEvent)), "{outcomes:?}");
        assert!(matches!(outcomes[4], Outcome::Refused(Refusal::NoSuchEvent)), "{outcomes:?}");
        assert!(matches!(outcomes[5], Outcome::Refused(Refusal::SalesClosed)), "{outcomes:?}");
        assert_eq!(db.counters(tt).await, (3, 2));
        assert_eq!(db.counters(other_tt).await, (0, 0));
        assert_eq!(db.counters(past_tt).await, (0, 0));
    }

    #[tokio::test]
    async fn stale_holds_are_expired_once_before_anyone_is_told_sold_out() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(2, 2, 3600.0).await;
        let batcher = HoldBatcher::new(db.pool.clone());
        let mut short = seats(event, tt, 2);
        short.hold_seconds = 0.2;
        let first = short.id;
        assert!(held(&batcher.take(short).await));
        assert!(matches!(batcher.take(seats(event, tt, 1)).await, Outcome::Refused(Refusal::SoldOut)));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let outcomes = join_all([2, 1].map(|q| batcher.take(seats(event, tt, q)))).await;
        assert!(held(&outcomes[0]), "{outcomes:?}");
        assert!(matches!(outcomes[1], Outcome::Refused(Refusal::SoldOut)), "{outcomes:?}");
        assert_eq!(db.counters(tt).await, (2, 1));
        let status = sqlx::query_scalar!(r#"SELECT status::text AS "s!" FROM holds WHERE id = $1"#, first)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(status, "expired");
    }

    #[tokio::test]
    async fn expired_seats_come_back_before_first_fit_so_arrival_order_holds() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(4, 4, 3600.0).await;
        let batcher = HoldBatcher::new(db.pool.clone());
        let mut short = seats(event, tt, 2);
        short.hold_seconds = 0.2;
        assert!(held(&batcher.take(short).await));
        assert!(held(&batcher.take(seats(event, tt, 1)).await));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // One seat is free and two are in an expired hold: the earlier request
        // for 3 must get them, not the later request for 1.
        let outcomes = join_all([3, 1].map(|q| batcher.take(seats(event, tt, q)))).await;
        assert!(held(&outcomes[0]), "{outcomes:?}");
        assert!(matches!(outcomes[1], Outcome::Refused(Refusal::SoldOut)), "{outcomes:?}");
        assert_eq!(db.counters(tt).await, (4, 2));
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_the_request_at_once() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(10, 4, 3600.0).await;
        let pool = crate::db::connect(&db.url, 2).await.unwrap();
        let batcher = HoldBatcher::new(pool.clone());
        pool.close().await;
        assert!(matches!(
            batcher.take(seats(event, tt, 1)).await,
            Outcome::Unavailable { code: "database_unavailable", .. }
        ));
        let hold = NewHold {
            event_id: event,
            ticket_type_id: tt,
            quantity: 1,
            name: BuyerName::parse("Ada").unwrap(),
            email: Email::parse("ada@example.com").unwrap(),
            address: None,
            key: None,
        };
        let err = take_seats(&batcher, &hold, 300).await.err().expect("no database, no hold");
        assert!(matches!(err, ApiError::Unavailable { .. }), "{err:?}");
        assert_eq!(db.counters(tt).await, (0, 0));
    }

    #[tokio::test]
    async fn a_flush_that_fails_otherwise_stores_nothing_and_sends_everyone_alone() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(10, 4, 3600.0).await;
        let batcher = HoldBatcher::new(db.pool.clone());
        let mut poisoned = seats(event, tt, 1);
        // PostgreSQL refuses NUL in text; the HTTP layer never lets one through.
        poisoned.name = "Ada\0".into();
        let outcomes = join_all([seats(event, tt, 1), poisoned].map(|s| batcher.take(s))).await;
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Failed)), "{outcomes:?}");
        assert_eq!(db.counters(tt).await, (0, 0));
    }

    async fn start_instance(url: &str) -> String {
        let vars = [
            ("NTS_ADDRESS", "127.0.0.1:0"),
            ("DATABASE_URL", url),
            ("NTS_ADMIN_TOKEN", "batch-test-admin-token-0123456789abcdef"),
            ("NTS_PAYMENTS", "simulated"),
            ("NTS_DEMO", "false"),
            ("NTS_DB_POOL_SIZE", "8"),
            ("NTS_MAX_UNPAID_PER_ADDRESS", "0"),
        ];
        let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
        let pool = crate::db::connect(url, config.db_pool_size).await.unwrap();
        let gateway: Arc<dyn PaymentGateway> =
            Arc::new(SimulatedGateway::new(pool.clone(), config.simulated().cloned().unwrap_or_default()));
        let app = Application::build_with(config, pool, gateway).unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_sell_exactly_the_capacity() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(100, 4, 3600.0).await;
        let instances = [start_instance(&db.url).await, start_instance(&db.url).await];
        let client = reqwest::Client::new();
        let answers: Vec<(u16, serde_json::Value)> = futures_util::stream::iter(0..500)
            .map(|i| {
                let url = format!("{}/api/v1/events/{event}/holds", instances[i % 2]);
                let body = serde_json::json!({"ticket_type_id": tt, "quantity": 1, "name": format!("Buyer {i}"), "email": format!("b{i}@example.com")});
                let client = client.clone();
                async move {
                    let res = client.post(url).json(&body).send().await.expect("an answer");
                    (res.status().as_u16(), res.json().await.expect("a JSON body"))
                }
            })
            .buffer_unordered(250)
            .collect()
            .await;
        let held: HashSet<Uuid> = answers
            .iter()
            .filter(|(status, _)| *status == 201)
            .map(|(_, body)| body["id"].as_str().unwrap().parse().unwrap())
            .collect();
        let sold_out = answers.iter().filter(|(status, body)| *status == 409 && body["code"] == "sold_out").count();
        assert_eq!(
            (held.len(), sold_out),
            (100, 400),
            "other answers: {:?}",
            answers.iter().filter(|(s, _)| *s != 201 && *s != 409).collect::<Vec<_>>()
        );
        assert_eq!(db.counters(tt).await, (100, 100));
        let stored: HashSet<Uuid> = sqlx::query_scalar!("SELECT id FROM holds WHERE ticket_type_id = $1", tt)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(stored, held);
    }
}

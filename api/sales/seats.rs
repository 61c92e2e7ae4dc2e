//! The seat counters of `ticket_types` (`held`, `sold`): every change to them
//! is made here. A hold's seats are its lines (`hold_lines`, one per ticket
//! type); the order made from a hold keeps them.
//!
//! - take: [`lock`] the counters a batch of holds needs, [`price`] the holds
//!   granted under those locks, then [`store`] them;
//! - give back: `held` seats of a hold released or expired, or of an order
//!   that expired unpaid, go back on sale;
//! - sell: the `held` seats of an order that was paid become `sold`;
//! - unsell: the `sold` seats of a refunded order go back on sale.
//!
//! No deadlocks: every statement here that locks counter rows locks them in
//! the order of their ids, before it changes any, and a transaction changes
//! counters by at most one such statement after the lock of [`lock`] (which
//! covers every row it then changes). The CHECK on `ticket_types` is the last
//! line of defence against overselling.

use std::collections::HashMap;

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::hoarding::Origin;
use super::hold_rules::{Facts, Line, TypeFacts};
use super::views::LineView;
use crate::domain::status::{checked, HoldStatus};
use crate::domain::Money;
use crate::idempotency::store::{stored_ids, KeyColumns};
use crate::idempotency::{KeyId, KeyRecord};

/// The counters of an event's ticket types, locked by this transaction, as
/// they were when locked; only [`lock`] makes one, and [`price`] needs one.
pub struct Locked {
    facts: Option<Facts>,
    swept: u64,
    /// The database's clock once every lock was had: holds count from it.
    at: OffsetDateTime,
}

impl Locked {
    /// `None`: no such event.
    pub fn facts(&self) -> Option<&Facts> {
        self.facts.as_ref()
    }

    /// Holds past their deadline that the lock expired.
    pub fn swept(&self) -> u64 {
        self.swept
    }

    /// Facts read WITHOUT the locks: only the deliberately broken mode of the torture test.
    #[cfg(feature = "broken-oversell")]
    pub fn unlocked(facts: Facts) -> Self {
        Locked { facts: Some(facts), swept: 0, at: whole_microseconds(OffsetDateTime::now_utc()) }
    }
}

/// In one statement: expires the event's active holds past their deadline
/// (exactly once: their guarded status change; concurrent sweepers skip each
/// other's) and gives their seats back; locks, in id order, the counters of
/// `ticket_types` and of the expired holds; answers the event and those of
/// `ticket_types` that are its own, with the seats the expired holds gave back
/// counted free, and the clock once every lock was had (after a long wait for
/// a lock, a hold still lives its whole time).
///
/// Planned afresh at every execution, with the clock read once (an
/// `InitPlan`, not a volatile call per row): only a plan that knows the status
/// can use the partial index on the event's active holds by deadline, and
/// only a comparison with a value can bound that index scan. A cached
/// generic plan scans every hold of every event (12 ms per batch at
/// 100,000 holds, against 0.05 ms). The swept holds are found again by
/// their row address (`ctid`, stable while this statement holds their row
/// locks) and their lines by hold id, as arrays (`= ANY(ARRAY(...))`), not
/// by joins: the planner takes the sweep's LIMIT for its size and would
/// hash-join it against every hold and every line (46 ms for 300 expiries at
/// 100,000 holds, against 6 ms). By id, the holds' status guard let it pick
/// a bitmap of every active hold of the event (1–2 ms when nothing is due).
/// Checked against the schema by every test that takes a hold.
pub async fn lock(db: impl PgExecutor<'_>, event_id: Uuid, ticket_types: &[Uuid]) -> Result<Locked, sqlx::Error> {
    let (from, to) = checked(&[HoldStatus::Active], HoldStatus::Expired);
    let rows = sqlx::query_as::<_, LockRow>(
        "WITH stale AS (
             SELECT id, ctid FROM holds
             WHERE event_id = $1 AND status = ANY($3) AND expires_at <= (SELECT clock_timestamp())
             LIMIT 5000 FOR UPDATE SKIP LOCKED
         ), stale_lines AS (
             SELECT l.hold_id, l.ticket_type_id, l.quantity FROM hold_lines l
             WHERE l.hold_id = ANY(ARRAY(SELECT id FROM stale))
         ), locked AS (
             SELECT t.id, t.name, t.price_minor, t.max_per_order, t.capacity - t.sold - t.held AS free
             FROM ticket_types t
             WHERE t.event_id = $1 AND (t.id = ANY($2) OR t.id IN (SELECT ticket_type_id FROM stale_lines))
             ORDER BY t.id
             FOR NO KEY UPDATE
         ), expired AS (
             UPDATE holds h SET status = $4, finished_at = now()
             WHERE h.ctid = ANY(ARRAY(SELECT ctid FROM stale)) AND h.status = ANY($3)
             RETURNING h.id
         ), back AS (
             SELECT l.ticket_type_id, SUM(l.quantity)::int AS q
             FROM stale_lines l JOIN expired x ON x.id = l.hold_id GROUP BY l.ticket_type_id
         ), given AS (
             UPDATE ticket_types t SET held = t.held - back.q
             FROM back JOIN locked k ON k.id = back.ticket_type_id
             WHERE t.id = back.ticket_type_id
             RETURNING t.id
         )
         SELECT e.name AS event_name, e.currency::text AS currency, e.starts_at > now() AS on_sale,
                e.max_tickets_per_order, k.id AS ticket_type_id, k.name AS ticket_type_name,
                k.price_minor, k.max_per_order, (k.free + COALESCE(back.q, 0))::int AS free,
                (SELECT COUNT(*) FROM expired) AS swept,
                (SELECT clock_timestamp() FROM (SELECT COUNT(*) FROM locked) every_lock) AS locked_at
         FROM events e
         LEFT JOIN (locked k LEFT JOIN back ON back.ticket_type_id = k.id) ON k.id = ANY($2)
         WHERE e.id = $1",
    )
    .bind(event_id)
    .bind(ticket_types)
    .bind(from)
    .bind(to)
    .persistent(false)
    .fetch_all(db)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(Locked { facts: None, swept: 0, at: OffsetDateTime::now_utc() });
    };
    let mut facts = Facts {
        event_name: first.event_name.clone(),
        currency: first.currency.clone(),
        on_sale: first.on_sale,
        max_tickets_per_order: first.max_tickets_per_order,
        types: HashMap::new(),
    };
    let (swept, at) = (first.swept as u64, first.locked_at);
    for r in rows {
        if let (Some(id), Some(name), Some(price_minor), Some(max_per_order), Some(free)) =
            (r.ticket_type_id, r.ticket_type_name, r.price_minor, r.max_per_order, r.free)
        {
            facts.types.insert(id, TypeFacts { name, price_minor, max_per_order, free });
        }
    }
    Ok(Locked { facts: Some(facts), swept, at })
}

/// A row of [`lock`]'s answer: the event, and one of its locked ticket types (if any).
#[derive(sqlx::FromRow)]
struct LockRow {
    event_name: String,
    currency: String,
    on_sale: bool,
    max_tickets_per_order: Option<i32>,
    ticket_type_id: Option<Uuid>,
    ticket_type_name: Option<String>,
    price_minor: Option<i64>,
    max_per_order: Option<i32>,
    free: Option<i32>,
    swept: i64,
    locked_at: OffsetDateTime,
}

/// One hold to store: who asks, for which lines, for how long.
pub struct Claim<'a> {
    pub id: Uuid,
    pub secret_hash: &'a [u8],
    pub name: &'a str,
    pub email: &'a str,
    pub lines: &'a [Line],
    pub hold_seconds: f64,
    /// Where the request came from, which the hoarding caps count by.
    pub origin: Option<&'a Origin>,
}

/// A hold priced by the ticket types' prices, dated from the locks.
#[derive(Debug, Clone)]
pub struct Taken {
    pub amount: Money,
    pub expires_at: OffsetDateTime,
    pub event_name: String,
    pub lines: Vec<LineView>,
}

/// Claims priced and dated under the counters' locks; only [`price`] makes
/// one, and [`store`] needs one.
pub struct Priced<'a>(Vec<(Claim<'a>, Taken)>);

impl<'a> Priced<'a> {
    pub(super) fn none() -> Self {
        Priced(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each claim's hold id and its hold.
    pub fn holds(&self) -> impl Iterator<Item = (Uuid, &Taken)> {
        self.0.iter().map(|(c, t)| (c.id, t))
    }
}

/// Prices and dates `claims` by the counters `locked` holds. The caller has
/// checked that they may be held and fit: every ticket type of their lines
/// is in `locked`.
pub fn price<'a>(locked: &Locked, claims: Vec<Claim<'a>>) -> Result<Priced<'a>, sqlx::Error> {
    let facts = locked.facts.as_ref().ok_or_else(|| unpriced("no such event"))?;
    let priced = claims
        .into_iter()
        .map(|c| {
            let mut lines = Vec::with_capacity(c.lines.len());
            let mut amount = 0i64;
            for line in c.lines {
                let t = facts.types.get(&line.ticket_type_id).ok_or_else(|| unpriced("a line's type is not locked"))?;
                let quantity = line.quantity.get();
                let line_amount =
                    t.price_minor.checked_mul(quantity.into()).ok_or_else(|| unpriced("amount overflow"))?;
                amount = amount.checked_add(line_amount).ok_or_else(|| unpriced("amount overflow"))?;
                lines.push(LineView {
                    ticket_type_id: line.ticket_type_id,
                    ticket_type_name: t.name.clone(),
                    quantity,
                    unit_price_minor: t.price_minor,
                    amount_minor: line_amount,
                });
            }
            let taken = Taken {
                amount: Money::stored(amount, &facts.currency)?,
                expires_at: whole_microseconds(locked.at + time::Duration::seconds_f64(c.hold_seconds)),
                event_name: facts.event_name.clone(),
                lines,
            };
            Ok((c, taken))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Priced(priced))
}

/// Stores the claims as [`price`] made them, adds their lines to the counters
/// (whose locks the priced holds were decided under), and stores `keys`
/// (Idempotency-Keys with their answers), in one statement. Answers the keys
/// stored: a missing one was stored already, and the transaction must then
/// not commit. Keys go in in their sort order, as
/// [`crate::idempotency::insert_answered`] puts them.
pub async fn store(
    db: impl PgExecutor<'_>,
    event_id: Uuid,
    priced: &Priced<'_>,
    keys: &[KeyRecord],
) -> Result<Vec<KeyId>, sqlx::Error> {
    let (mut line_holds, mut line_types, mut line_positions, mut line_quantities, mut line_prices) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut added: HashMap<Uuid, i32> = HashMap::new();
    let held = &priced.0;
    for (c, t) in held {
        for (position, line) in t.lines.iter().enumerate() {
            *added.entry(line.ticket_type_id).or_insert(0) += line.quantity;
            line_holds.push(c.id);
            line_types.push(line.ticket_type_id);
            line_positions.push(position as i32);
            line_quantities.push(line.quantity);
            line_prices.push(line.unit_price_minor);
        }
    }
    let ids: Vec<Uuid> = held.iter().map(|(c, _)| c.id).collect();
    let hashes: Vec<&[u8]> = held.iter().map(|(c, _)| c.secret_hash).collect();
    let names: Vec<&str> = held.iter().map(|(c, _)| c.name).collect();
    let emails: Vec<&str> = held.iter().map(|(c, _)| c.email).collect();
    let totals: Vec<i32> = held.iter().map(|(_, t)| t.lines.iter().map(|l| l.quantity).sum()).collect();
    let amounts: Vec<i64> = held.iter().map(|(_, t)| t.amount.minor()).collect();
    let expiries: Vec<OffsetDateTime> = held.iter().map(|(_, t)| t.expires_at).collect();
    let addresses: Vec<Option<&str>> = held.iter().map(|(c, _)| c.origin.map(|o| o.address.as_str())).collect();
    let networks: Vec<Option<&str>> = held.iter().map(|(c, _)| c.origin.map(|o| o.network.as_str())).collect();
    let (types, adds): (Vec<Uuid>, Vec<i32>) = added.into_iter().unzip();
    let key = KeyColumns::of(keys);
    let row = sqlx::query!(
        r#"WITH ins AS (
               INSERT INTO holds (id, secret_hash, event_id, buyer_name, buyer_email, quantity, amount_minor,
                                  currency, expires_at, client_address, client_network)
               SELECT r.id, r.secret_hash, e.id, r.name, r.email, r.quantity, r.amount, e.currency, r.expires_at,
                      r.address, r.network
               FROM events e,
                    unnest($2::uuid[], $3::bytea[], $4::text[], $5::text[], $6::int4[], $7::int8[],
                           $8::timestamptz[], $9::text[], $21::text[])
                      AS r(id, secret_hash, name, email, quantity, amount, expires_at, address, network)
               WHERE e.id = $1
               RETURNING 1
           ), lines AS (
               INSERT INTO hold_lines (hold_id, ticket_type_id, position, quantity, unit_price_minor)
               SELECT * FROM unnest($10::uuid[], $11::uuid[], $12::int4[], $13::int4[], $14::int8[])
           ), counted AS (
               UPDATE ticket_types t SET held = t.held + a.n
               FROM unnest($15::uuid[], $16::int4[]) AS a(id, n)
               WHERE t.id = a.id AND t.event_id = $1
           ), keys AS (
               INSERT INTO idempotency_keys (id, request_hash, response_status, response_body)
               SELECT * FROM unnest($17::bytea[], $18::bytea[], $19::int2[], $20::bytea[])
                             AS k(id, request_hash, response_status, response_body)
               ORDER BY id
               ON CONFLICT DO NOTHING
               RETURNING id
           )
           SELECT (SELECT COUNT(*) FROM ins) AS "holds!", ARRAY(SELECT id FROM keys) AS "keys!""#,
        event_id,
        &ids,
        &hashes as &[&[u8]],
        &names as &[&str],
        &emails as &[&str],
        &totals,
        &amounts,
        &expiries,
        &addresses as &[Option<&str>],
        &line_holds,
        &line_types,
        &line_positions,
        &line_quantities,
        &line_prices,
        &types,
        &adds,
        &key.ids as &[&[u8]],
        &key.request_hashes as &[&[u8]],
        &key.statuses,
        &key.bodies as &[&[u8]],
        &networks as &[Option<&str>],
    )
    .fetch_one(db)
    .await?;
    if row.holds != held.len() as i64 {
        return Err(unpriced("a hold was not stored"));
    }
    Ok(stored_ids(row.keys))
}

/// As the database stores a time, so that an answer shows what is stored.
fn whole_microseconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

fn unpriced(why: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("cannot store the holds: {why}"))
}

/// How a hold's (or its order's) seats move between the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Held seats go back on sale (hold released or expired, order expired unpaid).
    GiveBack,
    /// Held seats become sold (order paid).
    Sell,
    /// Sold seats go back on sale (refunded order's seats released).
    Unsell,
}

/// Moves the seats of every line of hold `hold_id` (an order's: its
/// `hold_id`), locking their counters in id order first. The caller has made
/// the guarded status change that allows it once, in the same transaction.
pub async fn move_seats(db: impl PgExecutor<'_>, hold_id: Uuid, how: Move) -> Result<(), sqlx::Error> {
    move_seats_of(db, &[hold_id], how).await
}

/// [`move_seats`] for every hold of `hold_ids` at once: each counter is
/// locked and changed once, by the sum of their lines.
pub async fn move_seats_of(db: impl PgExecutor<'_>, hold_ids: &[Uuid], how: Move) -> Result<(), sqlx::Error> {
    let (held, sold) = match how {
        Move::GiveBack => (-1, 0),
        Move::Sell => (-1, 1),
        Move::Unsell => (0, -1),
    };
    // Planned afresh at every execution, as `lines::of_holds` (see there why).
    sqlx::query(
        "WITH l AS (
             SELECT ticket_type_id, SUM(quantity)::int AS quantity FROM hold_lines WHERE hold_id = ANY($1)
             GROUP BY ticket_type_id
         ), locked AS (
             SELECT t.id FROM ticket_types t WHERE t.id IN (SELECT ticket_type_id FROM l) ORDER BY t.id
             FOR NO KEY UPDATE
         )
         UPDATE ticket_types t SET held = t.held + $2 * l.quantity, sold = t.sold + $3 * l.quantity
         FROM l JOIN locked k ON k.id = l.ticket_type_id
         WHERE t.id = l.ticket_type_id",
    )
    .bind(hold_ids)
    .bind(held)
    .bind(sold)
    .persistent(false)
    .execute(db)
    .await?;
    Ok(())
}

/// The buyer gives a hold's seats back: the hold becomes `released` and its
/// seats go back on sale, once. Answers whether it did (false: not an active
/// hold with this secret).
pub async fn release(db: &sqlx::PgPool, hold_id: Uuid, secret_hash: &[u8]) -> Result<bool, sqlx::Error> {
    let (from, to) = checked(&[HoldStatus::Active], HoldStatus::Released);
    let mut tx = db.begin().await?;
    let released = sqlx::query!(
        "UPDATE holds SET status = $4, finished_at = now() WHERE id = $1 AND secret_hash = $2 AND status = ANY($3)",
        hold_id,
        secret_hash,
        from as &[HoldStatus],
        to as HoldStatus,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if released {
        move_seats(&mut *tx, hold_id, Move::GiveBack).await?;
    }
    tx.commit().await?;
    Ok(released)
}

//! The seat counters of `ticket_types` (`held`, `sold`): every change to them
//! is made here, by one statement guarded by the row lock and, for a take, by
//! `capacity - sold - held >= n` (the CHECK on `ticket_types` catches the rest).
//!
//! - take: seats become `held` by new holds (the one hold INSERT);
//! - give back: `held` seats of a hold released or expired, or of an order
//!   that expired unpaid, go back on sale;
//! - sell: the `held` seats of an order that was paid become `sold`;
//! - unsell: the `sold` seats of a refunded order go back on sale.

use std::collections::HashMap;

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::status::{checked, HoldStatus};
use crate::domain::Money;

/// One hold to store: who asks, for how many seats, for how long.
pub struct Claim<'a> {
    pub id: Uuid,
    pub secret_hash: &'a [u8],
    pub name: &'a str,
    pub email: &'a str,
    pub quantity: i32,
    pub hold_seconds: f64,
    /// The client address the hoarding caps count by.
    pub address: Option<&'a str>,
}

/// The stored hold, as the database returned it.
#[derive(Debug, Clone)]
pub struct Taken {
    pub amount: Money,
    pub expires_at: OffsetDateTime,
    pub ticket_type_name: String,
    pub event_name: String,
}

/// Whether a take checks that the seats are free. Only the deliberately broken
/// mode of the torture test skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Checked,
    #[cfg(feature = "broken-oversell")]
    Skipped,
}

/// Bumps `held` by the total of `claims` and stores their holds, in one
/// statement, if they all fit and may all be held (sales open, each quantity
/// within `max_per_order`). Otherwise stores nothing and answers no rows.
pub async fn take(
    db: impl PgExecutor<'_>,
    event_id: Uuid,
    ticket_type_id: Uuid,
    claims: &[Claim<'_>],
    guard: Guard,
) -> Result<HashMap<Uuid, Taken>, sqlx::Error> {
    // Requests are not checked yet: a sum past i32 cannot fit any ticket type.
    let Some(total) = claims.iter().try_fold(0i32, |sum, c| sum.checked_add(c.quantity)) else {
        return Ok(HashMap::new());
    };
    let largest: i32 = claims.iter().map(|c| c.quantity).max().unwrap_or(0);
    let ids: Vec<Uuid> = claims.iter().map(|c| c.id).collect();
    let hashes: Vec<Vec<u8>> = claims.iter().map(|c| c.secret_hash.to_vec()).collect();
    let names: Vec<String> = claims.iter().map(|c| c.name.to_owned()).collect();
    let emails: Vec<String> = claims.iter().map(|c| c.email.to_owned()).collect();
    let quantities: Vec<i32> = claims.iter().map(|c| c.quantity).collect();
    let seconds: Vec<f64> = claims.iter().map(|c| c.hold_seconds).collect();
    let addresses: Vec<Option<String>> = claims.iter().map(|c| c.address.map(str::to_owned)).collect();
    let rows = sqlx::query!(
        r#"WITH taken AS (
               UPDATE ticket_types t SET held = t.held + $3
               FROM events e
               WHERE t.id = $2 AND t.event_id = $1 AND e.id = $1 AND e.starts_at > now()
                 AND t.max_per_order >= $10 AND ($12 OR t.capacity - t.sold - t.held >= $3)
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
        guard != Guard::Checked,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            let taken = Taken {
                amount: Money::stored(r.amount_minor, &r.currency)?,
                expires_at: r.expires_at,
                ticket_type_name: r.ticket_type_name,
                event_name: r.event_name,
            };
            Ok((r.id, taken))
        })
        .collect()
}

/// The buyer gives a hold's seats back: the hold becomes `released` and its
/// seats go back on sale, once. Answers whether it did (false: not an active
/// hold with this secret).
pub async fn release(db: impl PgExecutor<'_>, hold_id: Uuid, secret_hash: &[u8]) -> Result<bool, sqlx::Error> {
    let (from, to) = checked(&[HoldStatus::Active], HoldStatus::Released);
    let released = sqlx::query_scalar!(
        r#"WITH released AS (
               UPDATE holds SET status = $4, finished_at = now()
               WHERE id = $1 AND secret_hash = $2 AND status = ANY($3)
               RETURNING ticket_type_id, quantity
           )
           UPDATE ticket_types t SET held = t.held - r.quantity
           FROM released r WHERE t.id = r.ticket_type_id
           RETURNING t.id"#,
        hold_id,
        secret_hash,
        from as &[HoldStatus],
        to as HoldStatus,
    )
    .fetch_optional(db)
    .await?;
    Ok(released.is_some())
}

/// Expires the active holds of one ticket type past their deadline and gives
/// their seats back, once: the status guard and the row locks make concurrent
/// sweepers (in any number of instances) skip each other's holds. One ticket
/// type per statement, so sweepers never lock two counter rows and cannot
/// deadlock.
pub async fn expire_stale(db: impl PgExecutor<'_>, ticket_type: Uuid) -> Result<u64, sqlx::Error> {
    let (from, to) = checked(&[HoldStatus::Active], HoldStatus::Expired);
    let n = sqlx::query_scalar!(
        r#"WITH stale AS (
               SELECT id FROM holds
               WHERE ticket_type_id = $1 AND status = ANY($2) AND expires_at <= clock_timestamp()
               LIMIT 5000 FOR UPDATE SKIP LOCKED
           ), expired AS (
               UPDATE holds h SET status = $3, finished_at = now()
               FROM stale WHERE h.id = stale.id AND h.status = ANY($2)
               RETURNING h.quantity
           ), total AS (SELECT COUNT(*) AS n, COALESCE(SUM(quantity), 0)::int AS q FROM expired)
           UPDATE ticket_types t SET held = t.held - total.q
           FROM total WHERE t.id = $1
           RETURNING total.n AS "n!""#,
        ticket_type,
        from as &[HoldStatus],
        to as HoldStatus,
    )
    .fetch_optional(db)
    .await?;
    Ok(n.unwrap_or(0) as u64)
}

/// The held seats of an order that expired unpaid go back on sale.
pub async fn give_back(db: impl PgExecutor<'_>, ticket_type: Uuid, quantity: i32) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE ticket_types SET held = held - $2 WHERE id = $1", ticket_type, quantity).execute(db).await?;
    Ok(())
}

/// The held seats of an order that was paid become sold.
pub async fn sell(db: impl PgExecutor<'_>, ticket_type: Uuid, quantity: i32) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE ticket_types SET held = held - $2, sold = sold + $2 WHERE id = $1", ticket_type, quantity)
        .execute(db)
        .await?;
    Ok(())
}

/// The sold seats of a refunded order go back on sale.
pub async fn unsell(db: impl PgExecutor<'_>, ticket_type: Uuid, quantity: i32) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE ticket_types SET sold = sold - $2 WHERE id = $1", ticket_type, quantity).execute(db).await?;
    Ok(())
}

//! The `idempotency_keys` table: keys stored with their answers in the
//! caller's transaction, claims tied to an instance's lease, and look-ups.

use actix_web::http::StatusCode;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{KeyContext, KeyId, KeyRecord};
use crate::instance::LEASE;

impl KeyContext {
    /// Stores the answer of a key this request claimed, in the caller's transaction.
    pub async fn answer_in(&self, db: impl PgExecutor<'_>, status: StatusCode, body: &[u8]) -> Result<(), sqlx::Error> {
        answer_all(db, &[&self.record(status, body)]).await
    }

    /// Records where this request got to, in the transaction that got it
    /// there; false if this request no longer holds the key (its instance was
    /// taken for dead), and the transaction must then not commit.
    pub async fn set_recovery_point(&self, db: impl PgExecutor<'_>, point: Uuid) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query!(
            "UPDATE idempotency_keys SET recovery_point = $2 WHERE id = $1 AND instance_id = $3",
            &self.id[..],
            point,
            self.instance
        )
        .execute(db)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}

/// Answered keys as the columns of an `unnest`, for the statements that store them.
pub struct KeyColumns<'a> {
    pub ids: Vec<&'a [u8]>,
    pub request_hashes: Vec<&'a [u8]>,
    pub statuses: Vec<i16>,
    pub bodies: Vec<&'a [u8]>,
}

impl<'a> KeyColumns<'a> {
    pub fn of(records: impl IntoIterator<Item = &'a KeyRecord>) -> Self {
        let mut columns =
            KeyColumns { ids: Vec::new(), request_hashes: Vec::new(), statuses: Vec::new(), bodies: Vec::new() };
        for r in records {
            columns.ids.push(&r.id[..]);
            columns.request_hashes.push(&r.request_hash);
            columns.statuses.push(r.status);
            columns.bodies.push(&r.body);
        }
        columns
    }
}

/// The key ids an insert's `RETURNING id` answered (every id is a digest).
pub fn stored_ids(returned: Vec<Vec<u8>>) -> Vec<KeyId> {
    returned.into_iter().filter_map(|id| id.try_into().ok()).collect()
}

/// Stores many answered keys at once (a batch's); answers the ids that were
/// stored: a missing one existed already. Keys go in in their sort order, so
/// two batches that share keys (a client's retries sent to two instances)
/// wait for each other's in one order and cannot deadlock.
pub async fn insert_answered(db: impl PgExecutor<'_>, records: &[KeyRecord]) -> Result<Vec<KeyId>, sqlx::Error> {
    let KeyColumns { ids, request_hashes, statuses, bodies } = KeyColumns::of(records);
    let rows = sqlx::query_scalar!(
        r#"INSERT INTO idempotency_keys (id, request_hash, response_status, response_body)
           SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::int2[], $4::bytea[])
                         AS r(id, request_hash, response_status, response_body)
           ORDER BY id
           ON CONFLICT DO NOTHING
           RETURNING id"#,
        &ids as &[&[u8]],
        &request_hashes as &[&[u8]],
        &statuses,
        &bodies as &[&[u8]],
    )
    .fetch_all(db)
    .await?;
    Ok(stored_ids(rows))
}

/// Stores the answers of claimed keys (a batch's requests'), in the caller's transaction.
pub async fn answer_all(db: impl PgExecutor<'_>, records: &[&KeyRecord]) -> Result<(), sqlx::Error> {
    let KeyColumns { ids, statuses, bodies, .. } = KeyColumns::of(records.iter().copied());
    sqlx::query!(
        "UPDATE idempotency_keys k SET response_status = a.status, response_body = a.body, instance_id = NULL
         FROM unnest($1::bytea[], $2::int2[], $3::bytea[]) AS a(id, status, body)
         WHERE k.id = a.id",
        &ids as &[&[u8]],
        &statuses,
        &bodies as &[&[u8]],
    )
    .execute(db)
    .await
    .map(|_| ())
}

pub enum Claim {
    Ours { recovery_point: Option<Uuid> },
    Replay { status: i16, body: Vec<u8> },
    Mismatch,
    InFlight,
}

/// Claims the key for this instance; or finds its answer, or that it is in use.
/// A claim whose instance's lease ran out is taken over, with its recovery point.
pub async fn claim(pool: &PgPool, ctx: &KeyContext) -> Result<Claim, sqlx::Error> {
    for _ in 0..3 {
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (id, request_hash, instance_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &ctx.id[..],
            ctx.request_hash,
            ctx.instance
        )
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Ours { recovery_point: None });
        }
        let Some(row) = find(pool, ctx).await? else {
            // Deleted between our insert and select: try again.
            continue;
        };
        if row.request_hash != ctx.request_hash {
            return Ok(Claim::Mismatch);
        }
        if let (Some(status), Some(body)) = (row.response_status, row.response_body) {
            return Ok(Claim::Replay { status, body });
        }
        if !row.abandoned {
            return Ok(Claim::InFlight);
        }
        let taken = sqlx::query_scalar!(
            "UPDATE idempotency_keys SET instance_id = $2, created_at = now()
             WHERE id = $1 AND response_status IS NULL AND instance_id IS NOT DISTINCT FROM $3
             RETURNING recovery_point",
            &ctx.id[..],
            ctx.instance,
            row.instance_id
        )
        .fetch_optional(pool)
        .await?;
        return Ok(match taken {
            Some(recovery_point) => {
                tracing::info!("took over an Idempotency-Key whose request's instance is gone");
                Claim::Ours { recovery_point }
            }
            None => Claim::InFlight,
        });
    }
    Ok(Claim::InFlight)
}

struct Found {
    request_hash: Vec<u8>,
    response_status: Option<i16>,
    response_body: Option<Vec<u8>>,
    instance_id: Option<Uuid>,
    abandoned: bool,
}

/// The key's row. Unanswered, it is abandoned when its instance's lease ran
/// out, or (an instance that never renewed, or a released claim) its claim is
/// older than a lease.
async fn find(pool: &PgPool, ctx: &KeyContext) -> Result<Option<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"SELECT k.request_hash, k.response_status, k.response_body, k.instance_id,
                  (CASE WHEN i.id IS NOT NULL THEN i.lease_until < clock_timestamp()
                        ELSE k.created_at < clock_timestamp() - make_interval(secs => $2) END) AS "abandoned!"
           FROM idempotency_keys k LEFT JOIN instances i ON i.id = k.instance_id
           WHERE k.id = $1"#,
        &ctx.id[..],
        LEASE.as_secs_f64()
    )
    .fetch_optional(pool)
    .await
}

/// What the table holds for a key this request did not get to record. An
/// unanswered claim whose instance is gone (left by a version of nts that
/// claimed these routes before their effect) is dropped: the next retry runs.
pub async fn lookup(pool: &PgPool, ctx: &KeyContext) -> Result<Claim, sqlx::Error> {
    Ok(match find(pool, ctx).await? {
        Some(row) if row.request_hash != ctx.request_hash => Claim::Mismatch,
        Some(Found { response_status: Some(status), response_body: Some(body), .. }) => Claim::Replay { status, body },
        Some(row) if row.abandoned => {
            sqlx::query!(
                "DELETE FROM idempotency_keys
                 WHERE id = $1 AND response_status IS NULL AND instance_id IS NOT DISTINCT FROM $2",
                &ctx.id[..],
                row.instance_id
            )
            .execute(pool)
            .await?;
            Claim::InFlight
        }
        _ => Claim::InFlight,
    })
}

/// Gives up this instance's claim, keeping its recovery point: the next retry takes it over.
pub async fn release(pool: &PgPool, ctx: &KeyContext) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE idempotency_keys SET instance_id = NULL, created_at = now() - interval '1 hour'
         WHERE id = $1 AND response_status IS NULL AND instance_id = $2",
        &ctx.id[..],
        ctx.instance
    )
    .execute(pool)
    .await
    .map(|_| ())
}

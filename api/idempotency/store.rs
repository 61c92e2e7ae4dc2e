//! The `idempotency_keys` table: keys stored with their answers in the
//! caller's transaction, claims tied to an instance's lease, and look-ups.

use actix_web::http::StatusCode;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{KeyContext, KeyRecord};
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
            "UPDATE idempotency_keys SET recovery_point = $3 WHERE scope = $1 AND key = $2 AND instance_id = $4",
            self.scope,
            self.key,
            point,
            self.instance
        )
        .execute(db)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}

/// Stores many answered keys at once (a batch's); answers the `(scope, key)`
/// pairs that were stored: a missing pair existed already. Keys go in in
/// their sort order, so two batches that share keys (a client's retries sent
/// to two instances) wait for each other's in one order and cannot deadlock.
pub async fn insert_answered(
    db: impl PgExecutor<'_>,
    records: &[KeyRecord],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let scopes: Vec<&str> = records.iter().map(|r| r.scope.as_str()).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let hashes: Vec<&[u8]> = records.iter().map(|r| r.request_hash.as_slice()).collect();
    let statuses: Vec<i16> = records.iter().map(|r| r.status).collect();
    let bodies: Vec<&[u8]> = records.iter().map(|r| r.body.as_slice()).collect();
    let rows = sqlx::query!(
        r#"INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int2[], $5::bytea[])
                         AS r(scope, key, request_hash, response_status, response_body)
           ORDER BY scope, key
           ON CONFLICT DO NOTHING
           RETURNING scope, key"#,
        &scopes as &[&str],
        &keys as &[&str],
        &hashes as &[&[u8]],
        &statuses,
        &bodies as &[&[u8]],
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.scope, r.key)).collect())
}

/// Stores the answers of claimed keys (a batch's requests'), in the caller's transaction.
pub async fn answer_all(db: impl PgExecutor<'_>, records: &[&KeyRecord]) -> Result<(), sqlx::Error> {
    let scopes: Vec<&str> = records.iter().map(|r| r.scope.as_str()).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let statuses: Vec<i16> = records.iter().map(|r| r.status).collect();
    let bodies: Vec<&[u8]> = records.iter().map(|r| r.body.as_slice()).collect();
    sqlx::query!(
        "UPDATE idempotency_keys k SET response_status = a.status, response_body = a.body, instance_id = NULL
         FROM unnest($1::text[], $2::text[], $3::int2[], $4::bytea[]) AS a(scope, key, status, body)
         WHERE k.scope = a.scope AND k.key = a.key",
        &scopes as &[&str],
        &keys as &[&str],
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
            "INSERT INTO idempotency_keys (scope, key, request_hash, instance_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            ctx.scope,
            ctx.key,
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
            "UPDATE idempotency_keys SET instance_id = $3, created_at = now()
             WHERE scope = $1 AND key = $2 AND response_status IS NULL AND instance_id IS NOT DISTINCT FROM $4
             RETURNING recovery_point",
            ctx.scope,
            ctx.key,
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
                        ELSE k.created_at < clock_timestamp() - make_interval(secs => $3) END) AS "abandoned!"
           FROM idempotency_keys k LEFT JOIN instances i ON i.id = k.instance_id
           WHERE k.scope = $1 AND k.key = $2"#,
        ctx.scope,
        ctx.key,
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
                 WHERE scope = $1 AND key = $2 AND response_status IS NULL AND instance_id IS NOT DISTINCT FROM $3",
                ctx.scope,
                ctx.key,
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
         WHERE scope = $1 AND key = $2 AND response_status IS NULL AND instance_id = $3",
        ctx.scope,
        ctx.key,
        ctx.instance
    )
    .execute(pool)
    .await
    .map(|_| ())
}

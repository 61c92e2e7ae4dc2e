//! `Idempotency-Key` on every POST, with Stripe's semantics: the same key and
//! the same request replay the first answer; the same key with another
//! request is a 422; the same key while the first is still running is a 409.
//!
//! A key belongs to a scope: the route (its template, with every UUID in the
//! path in canonical form) and the credential (bearer token) of the request,
//! so one client cannot read another's replay, and `/events/ABC…/holds` is the
//! same route as `/events/abc…/holds`. Answers with a 5xx status are not
//! stored: every operation behind a key is itself a guarded transition, so
//! running it again after a failure is safe, and storing the failure would
//! make the client's retry useless.
//!
//! Atomic phases: a key's answer commits in the transaction that makes its
//! effect, so after any crash a retry either replays the committed answer or
//! finds nothing done.
//! - Holds and checkouts ([`ATOMIC_ROUTES`]) claim nothing beforehand: their
//!   transaction (for holds, the batch's group commit) inserts the key with
//!   its answer; a key that already exists makes the request replay instead.
//! - Other routes claim the key first, tied to this instance's lease (see
//!   [`instance`](crate::instance)). A request that calls a provider records
//!   its recovery point (its payment attempt) with the claim, in the
//!   transaction that creates the attempt. While the claiming instance lives
//!   the key is `in_use`, however long the provider takes; once its lease
//!   runs out (it died), the next retry takes the key over and resumes from
//!   the recovery point instead of starting over.
//!
//! A stored answer may carry a buyer secret (a new hold's, a new order's), so
//! the table keeps only a hash of each key and the answer encrypted with a key
//! derived from the Idempotency-Key itself: a database dump alone replays nothing.

use std::sync::{Arc, Mutex};

use actix_web::body::{self, BoxBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::body_limit;
use crate::error::ApiError;
use crate::instance::LEASE;
use crate::state::AppState;

pub const HEADER: &str = "Idempotency-Key";
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
const MAX_KEY_LEN: usize = 255;

/// Routes whose handlers record the key with their answer in their own
/// transaction, without a claim beforehand.
const ATOMIC_ROUTES: [&str; 2] = ["/api/v1/events/{id}/holds", "/api/v1/holds/{id}/checkout"];

/// One keyed request, as its handler sees it (from the request's extensions).
pub struct KeyContext {
    scope: String,
    key: String,
    request_hash: Vec<u8>,
    sealer: Sealer,
    instance: Uuid,
    recovery_point: Option<Uuid>,
    state: Mutex<KeyState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// Nothing recorded by the handler.
    Open,
    /// The handler's transaction stored the answer.
    Recorded,
    /// The key already had an answer (or a claim): the request must replay it.
    Taken,
}

/// A key and its answer, ready to be stored: `(scope, key, request_hash, status, sealed body)`.
pub struct KeyRecord {
    pub scope: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub status: i16,
    pub body: Vec<u8>,
}

impl KeyContext {
    /// The key of this request, if it has one.
    pub fn of(req: &HttpRequest) -> Option<Arc<KeyContext>> {
        req.extensions().get::<Arc<KeyContext>>().cloned()
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// What an earlier request with this key, whose instance died, got to.
    pub fn recovery_point(&self) -> Option<Uuid> {
        self.recovery_point
    }

    /// The answer to store with this key.
    pub fn record(&self, status: StatusCode, body: &[u8]) -> KeyRecord {
        KeyRecord {
            scope: self.scope.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            status: status.as_u16() as i16,
            body: self.sealer.seal(body),
        }
    }

    /// The handler's transaction stored the answer (call after it committed).
    pub fn mark_recorded(&self) {
        *self.state.lock().expect("key state poisoned") = KeyState::Recorded;
    }

    /// The key is someone else's: the middleware answers with what they stored.
    pub fn taken(&self) -> ApiError {
        *self.state.lock().expect("key state poisoned") = KeyState::Taken;
        in_use()
    }

    fn state(&self) -> KeyState {
        *self.state.lock().expect("key state poisoned")
    }

    /// Inserts the key, unanswered, in the caller's transaction; false if it exists already.
    pub async fn insert_in(&self, db: impl PgExecutor<'_>) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            self.scope,
            self.key,
            self.request_hash
        )
        .execute(db)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Stores the answer of a key this request inserted or claimed, in the caller's transaction.
    pub async fn answer_in(&self, db: impl PgExecutor<'_>, status: StatusCode, body: &[u8]) -> Result<(), sqlx::Error> {
        let record = self.record(status, body);
        sqlx::query!(
            "UPDATE idempotency_keys SET response_status = $3, response_body = $4, instance_id = NULL
             WHERE scope = $1 AND key = $2",
            record.scope,
            record.key,
            record.status,
            record.body
        )
        .execute(db)
        .await
        .map(|_| ())
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

    /// The error a request answers when it lost its claim.
    pub fn lost(&self) -> ApiError {
        in_use()
    }
}

/// Stores many answered keys at once (a batch's); answers the `(scope, key)`
/// pairs that were stored: a missing pair existed already.
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

/// Which of these `(scope, key)` pairs exist already.
pub async fn existing(db: impl PgExecutor<'_>, pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, sqlx::Error> {
    let scopes: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let keys: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let rows = sqlx::query!(
        r#"SELECT k.scope, k.key FROM idempotency_keys k
           JOIN unnest($1::text[], $2::text[]) AS p(scope, key) ON k.scope = p.scope AND k.key = p.key"#,
        &scopes as &[&str],
        &keys as &[&str],
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.scope, r.key)).collect())
}

/// Debug builds only: `NTS_DEBUG_STALL_AFTER=<point>` makes requests stop for
/// an hour at that point (after their effect committed, before they answer),
/// so tests can kill the process there.
pub async fn debug_stall(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("NTS_DEBUG_STALL_AFTER").is_ok_and(|p| p == point) {
        tracing::warn!(point, "stalling on purpose (NTS_DEBUG_STALL_AFTER)");
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    let _ = point;
}

fn in_use() -> ApiError {
    ApiError::conflict(
        "idempotency_key_in_use",
        format!("a request with this {HEADER} is still being processed; retry shortly"),
    )
}

fn reused() -> ApiError {
    ApiError::Validation {
        code: "idempotency_key_reused",
        message: format!("this {HEADER} was used with a different request; use a new key"),
    }
}

/// The route of a path: its template (every UUID segment as `{id}`) and its
/// UUIDs in canonical form, in order.
fn route(path: &str) -> (String, Vec<Uuid>) {
    let mut template = String::with_capacity(path.len());
    let mut ids = Vec::new();
    for segment in path.split('/').skip(1) {
        template.push('/');
        match Uuid::parse_str(&percent_decoded(segment)) {
            Ok(id) => {
                template.push_str("{id}");
                ids.push(id);
            }
            Err(_) => template.push_str(segment),
        }
    }
    (template, ids)
}

/// `%41` → `A`, as the router decodes a path before matching it (other bytes stay).
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    out.push(b as char);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::POST || !req.headers().contains_key(HEADER) {
        return next.call(req).await;
    }
    let secret_key = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()) => k.to_owned(),
        _ => {
            let err = ApiError::BadRequest {
                code: "invalid_idempotency_key",
                message: format!("{HEADER} must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            };
            return Ok(req.into_response(err.error_response()));
        }
    };
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone();

    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) if body.len() + chunk.len() <= state.limits.body_bytes => chunk,
            Ok(_) | Err(PayloadError::Overflow) => {
                return Ok(req.into_response(body_limit::too_large(state.limits.body_bytes).error_response()))
            }
            Err(e) => {
                let err = ApiError::BadRequest {
                    code: "invalid_body",
                    message: format!("the request body could not be read: {e}"),
                };
                return Ok(req.into_response(err.error_response()));
            }
        };
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();

    let (template, ids) = route(req.path());
    let credential = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    let mut scope = Sha256::new().chain_update(&template);
    for id in &ids {
        scope.update([0]);
        scope.update(id.as_bytes());
    }
    let scope = hex(&scope.chain_update([0]).chain_update(credential).finalize());
    let key = hex(&Sha256::digest(secret_key.as_bytes()));
    let sealer = Sealer::new(&scope, &secret_key);
    let request_hash = Sha256::new()
        .chain_update(req.query_string())
        .chain_update([0])
        .chain_update(req.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or_default())
        .chain_update([0])
        .chain_update(&body)
        .finalize()
        .to_vec();
    let mut ctx = KeyContext {
        scope,
        key,
        request_hash,
        sealer,
        instance: state.instance,
        recovery_point: None,
        state: Mutex::new(KeyState::Open),
    };
    let pool = &state.pool;
    let atomic = ATOMIC_ROUTES.contains(&template.as_str());
    if !atomic {
        match claim(pool, &ctx).await {
            Ok(Claim::Ours { recovery_point }) => ctx.recovery_point = recovery_point,
            Ok(other) => return Ok(req.into_response(answer_existing(&ctx, other))),
            Err(e) => return Ok(req.into_response(ApiError::from(e).error_response())),
        }
    }
    let ctx = Arc::new(ctx);
    req.extensions_mut().insert(ctx.clone());
    req.set_payload(Payload::from(body));

    // A request cancelled mid-way (the client hung up) leaves its claim to the next retry at once.
    let mut unclaim = (!atomic).then(|| Unclaim::new(pool.clone(), ctx.clone()));
    let res = next.call(req).await;
    let res = match res {
        Ok(res) => res,
        Err(e) => {
            if let Some(u) = unclaim.take() {
                u.now().await;
            }
            return Err(e);
        }
    };
    let status = res.status();
    let (req, res) = res.into_parts();
    let (res, res_body) = res.into_parts();
    let bytes = match body::to_bytes(res_body).await {
        Ok(b) => b,
        Err(_) => {
            if let Some(u) = unclaim.take() {
                u.now().await;
            }
            let err = ApiError::Internal(anyhow::anyhow!("response body failed"));
            return Ok(ServiceResponse::new(req, err.error_response()));
        }
    };
    let answer = |res: HttpResponse<()>, bytes: Bytes| res.set_body(bytes).map_into_boxed_body();
    match ctx.state() {
        KeyState::Recorded => {
            if let Some(u) = unclaim.take() {
                u.disarm();
            }
            return Ok(ServiceResponse::new(req, answer(res, bytes)));
        }
        KeyState::Taken => {
            if let Some(u) = unclaim.take() {
                u.disarm();
            }
            let existing = match lookup(pool, &ctx).await {
                Ok(found) => found,
                Err(e) => return Ok(ServiceResponse::new(req, ApiError::from(e).error_response())),
            };
            return Ok(ServiceResponse::new(req, answer_existing(&ctx, existing)));
        }
        KeyState::Open => {}
    }
    if status.is_server_error() {
        if let Some(u) = unclaim.take() {
            u.now().await;
        }
        return Ok(ServiceResponse::new(req, answer(res, bytes)));
    }
    if let Some(u) = unclaim.take() {
        u.disarm();
        if let Err(e) = ctx.answer_in(pool, status, &bytes).await {
            tracing::warn!(error = %e, "could not record the idempotent response");
        }
        return Ok(ServiceResponse::new(req, answer(res, bytes)));
    }
    // An atomic route that answered without an effect (a refusal before its
    // transaction): stored now, unless another request with the key got there first.
    match insert_answered(pool, &[ctx.record(status, &bytes)]).await {
        Ok(stored) if !stored.is_empty() => Ok(ServiceResponse::new(req, answer(res, bytes))),
        Ok(_) => match lookup(pool, &ctx).await {
            Ok(existing) => Ok(ServiceResponse::new(req, answer_existing(&ctx, existing))),
            Err(e) => Ok(ServiceResponse::new(req, ApiError::from(e).error_response())),
        },
        Err(e) => {
            tracing::warn!(error = %e, "could not record the idempotent response");
            Ok(ServiceResponse::new(req, answer(res, bytes)))
        }
    }
}

/// The answer for a key found in the table, for a request that did not claim it.
fn answer_existing(ctx: &KeyContext, found: Claim) -> HttpResponse {
    match found {
        Claim::Replay { status, body: sealed } => {
            crate::metrics::record_idempotency_replay();
            let Some(stored) = ctx.sealer.open(&sealed) else {
                return ApiError::Internal(anyhow::anyhow!("a stored idempotent answer does not decrypt"))
                    .error_response();
            };
            HttpResponse::build(StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((REPLAYED_HEADER, "true"))
                .body(stored)
        }
        Claim::Mismatch => {
            crate::metrics::record_idempotency_conflict("key_reused");
            reused().error_response()
        }
        Claim::InFlight | Claim::Ours { .. } => {
            crate::metrics::record_idempotency_conflict("in_flight");
            in_use().error_response()
        }
    }
}

/// Releases a claim whose request ended without an answer to store (a 5xx, a
/// cancelled request): the next retry takes it over at once, from its recovery point.
struct Unclaim {
    pool: PgPool,
    ctx: Arc<KeyContext>,
    armed: bool,
}

impl Unclaim {
    fn new(pool: PgPool, ctx: Arc<KeyContext>) -> Self {
        Unclaim { pool, ctx, armed: true }
    }

    async fn now(mut self) {
        self.armed = false;
        if let Err(e) = release(&self.pool, &self.ctx).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Unclaim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pool, ctx) = (self.pool.clone(), self.ctx.clone());
        tokio::spawn(async move {
            if let Err(e) = release(&pool, &ctx).await {
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
        });
    }
}

enum Claim {
    Ours { recovery_point: Option<Uuid> },
    Replay { status: i16, body: Vec<u8> },
    Mismatch,
    InFlight,
}

/// Claims the key for this instance; or finds its answer, or that it is in use.
/// A claim whose instance's lease ran out is taken over, with its recovery point.
async fn claim(pool: &PgPool, ctx: &KeyContext) -> Result<Claim, sqlx::Error> {
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
async fn lookup(pool: &PgPool, ctx: &KeyContext) -> Result<Claim, sqlx::Error> {
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
async fn release(pool: &PgPool, ctx: &KeyContext) -> Result<(), sqlx::Error> {
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

/// Encrypts stored answers with a key only the client's Idempotency-Key (and its scope) gives.
struct Sealer(ChaCha20Poly1305);

const NONCE_LEN: usize = 12;

impl Sealer {
    fn new(scope: &str, secret_key: &str) -> Self {
        let key = Sha256::new()
            .chain_update(b"nts idempotent answer\0")
            .chain_update(scope)
            .chain_update([0])
            .chain_update(secret_key)
            .finalize();
        Sealer(ChaCha20Poly1305::new(&key))
    }

    /// nonce ‖ ciphertext
    fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(self.0.encrypt(&nonce, plain).expect("encrypting in memory cannot fail"));
        out
    }

    fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.0.decrypt(Nonce::from_slice(nonce), ciphertext).ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_canonical_whatever_the_case_or_encoding_of_their_ids() {
        let id = "0b9c6a5e-2f5d-4c4e-9a53-6f1f6f3e2d10";
        let (template, ids) = route(&format!("/api/v1/events/{id}/holds"));
        assert_eq!(template, "/api/v1/events/{id}/holds");
        assert_eq!(ids, [Uuid::parse_str(id).unwrap()]);
        assert_eq!(route(&format!("/api/v1/events/{}/holds", id.to_uppercase())), (template.clone(), ids.clone()));
        assert_eq!(route(&format!("/api/v1/events/{}/holds", id.replace('-', ""))), (template.clone(), ids.clone()));
        assert_eq!(route(&format!("/api/v1/events/%30{}/holds", &id[1..])), (template, ids));
        assert_eq!(route("/api/v1/admin/events").0, "/api/v1/admin/events");
        assert_eq!(route("/api/v1/x/%E2%82%AC%4").0, "/api/v1/x/%E2%82%AC%4");
    }
}

//! `Idempotency-Key` on every POST, with Stripe's semantics: the same key and
//! the same request replay the first answer; the same key with another
//! request is a 422; the same key while the first is still running is a 409.
//!
//! A key belongs to a scope: the path and the credential (bearer token) of
//! the request, so one client cannot read another's replay. Answers with a
//! 5xx status are not stored: every operation behind a key is itself a guarded
//! transition, so running it again after a failure is safe, and storing the
//! failure would make the client's retry useless.
//!
//! A stored answer may carry a buyer secret (a new hold's, a new order's), so
//! the table keeps only a hash of each key and the answer encrypted with a key
//! derived from the Idempotency-Key itself: a database dump alone replays nothing.

use actix_web::body::{self, BoxBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::body_limit;
use crate::error::ApiError;
use crate::startup::AppState;

pub const HEADER: &str = "Idempotency-Key";
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
const MAX_KEY_LEN: usize = 255;
/// A key whose first request died (crash, kill) without an answer is taken over after this long.
const ABANDONED_AFTER_SECS: f64 = 60.0;

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

    let credential = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    let scope = hex(&Sha256::new().chain_update(req.path()).chain_update([0]).chain_update(credential).finalize());
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

    match claim(&state.pool, &scope, &key, &request_hash).await {
        Ok(Claim::Ours) => {}
        Ok(Claim::Replay { status, body: sealed }) => {
            crate::metrics::record_idempotency_replay();
            let Some(stored) = sealer.open(&sealed) else {
                let err = ApiError::Internal(anyhow::anyhow!("a stored idempotent answer does not decrypt"));
                return Ok(req.into_response(err.error_response()));
            };
            let res = HttpResponse::build(StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((REPLAYED_HEADER, "true"))
                .body(stored);
            return Ok(req.into_response(res));
        }
        Ok(Claim::Mismatch) => {
            crate::metrics::record_idempotency_conflict("key_reused");
            let err = ApiError::Validation {
                code: "idempotency_key_reused",
                message: format!("this {HEADER} was used with a different request; use a new key"),
            };
            return Ok(req.into_response(err.error_response()));
        }
        Ok(Claim::InFlight) => {
            crate::metrics::record_idempotency_conflict("in_flight");
            let err = ApiError::conflict(
                "idempotency_key_in_use",
                format!("a request with this {HEADER} is still being processed; retry shortly"),
            );
            return Ok(req.into_response(err.error_response()));
        }
        Err(e) => return Ok(req.into_response(ApiError::from(e).error_response())),
    }

    req.set_payload(Payload::from(body));
    let res = next.call(req).await?;
    let status = res.status();
    let (req, res) = res.into_parts();
    let (res, res_body) = res.into_parts();
    let bytes = match body::to_bytes(res_body).await {
        Ok(b) => b,
        Err(_) => {
            let _ = forget(&state.pool, &scope, &key).await;
            return Ok(ServiceResponse::new(
                req,
                ApiError::Internal(anyhow::anyhow!("response body failed")).error_response(),
            ));
        }
    };
    let saved = if status.is_server_error() {
        forget(&state.pool, &scope, &key).await
    } else {
        save(&state.pool, &scope, &key, status.as_u16() as i16, &sealer.seal(&bytes)).await
    };
    if let Err(e) = saved {
        tracing::warn!(error = %e, "could not record the idempotent response");
    }
    Ok(ServiceResponse::new(req, res.set_body(bytes).map_into_boxed_body()))
}

enum Claim {
    Ours,
    Replay { status: i16, body: Vec<u8> },
    Mismatch,
    InFlight,
}

async fn claim(pool: &sqlx::PgPool, scope: &str, key: &str, request_hash: &[u8]) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        scope,
        key,
        request_hash
    )
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Ours);
    }
    let Some(row) = sqlx::query!(
        r#"SELECT request_hash, response_status, response_body,
                  created_at < now() - make_interval(secs => $3) AS "abandoned!"
           FROM idempotency_keys WHERE scope = $1 AND key = $2"#,
        scope,
        key,
        ABANDONED_AFTER_SECS
    )
    .fetch_optional(pool)
    .await?
    else {
        // Deleted between our insert and select (a failed first attempt): try again.
        return Box::pin(claim(pool, scope, key, request_hash)).await;
    };
    if row.request_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    match (row.response_status, row.response_body) {
        (Some(status), Some(body)) => Ok(Claim::Replay { status, body }),
        _ if row.abandoned => {
            let taken = sqlx::query!(
                "UPDATE idempotency_keys SET created_at = now()
                 WHERE scope = $1 AND key = $2 AND response_status IS NULL
                   AND created_at < now() - make_interval(secs => $3)",
                scope,
                key,
                ABANDONED_AFTER_SECS
            )
            .execute(pool)
            .await?;
            Ok(if taken.rows_affected() == 1 { Claim::Ours } else { Claim::InFlight })
        }
        _ => Ok(Claim::InFlight),
    }
}

async fn save(pool: &sqlx::PgPool, scope: &str, key: &str, status: i16, body: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        body
    )
    .execute(pool)
    .await
    .map(|_| ())
}

async fn forget(pool: &sqlx::PgPool, scope: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND response_status IS NULL", scope, key)
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

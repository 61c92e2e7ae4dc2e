//! The `Idempotency-Key` middleware (the semantics are described in
//! [`idempotency`](crate::idempotency)): it reads the key and the body,
//! claims the key unless the route stores it in its own transaction, runs the
//! handler, and stores or replays the answer.

use std::sync::Arc;

use actix_web::body::{self, BoxBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use futures_util::StreamExt;
use sqlx::PgPool;

use crate::error::{ApiError, ErrorCode};
use crate::http::body_limit;
use crate::idempotency::store::{claim, lookup, release, Claim};
use crate::idempotency::{in_use, insert_answered, KeyContext, KeyState, HEADER, REPLAYED_HEADER};
use crate::state::AppState;

mod scope;

const MAX_KEY_LEN: usize = 255;

/// Routes whose handlers record the key with their answer in their own
/// transaction, without a claim beforehand.
const ATOMIC_ROUTES: [&str; 2] = ["/api/v1/events/{id}/holds", "/api/v1/holds/{id}/checkout"];

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
                code: ErrorCode::InvalidIdempotencyKey,
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
                    code: ErrorCode::InvalidBody,
                    message: format!("the request body could not be read: {e}"),
                };
                return Ok(req.into_response(err.error_response()));
            }
        };
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();

    let (scope, template) = scope::scope(req.request());
    let request_hash = scope::request_hash(req.request(), &body);
    let mut ctx = KeyContext::new(scope, &secret_key, request_hash, state.instance);
    let pool = &state.pool;
    let atomic = ATOMIC_ROUTES.contains(&template.as_str());
    if !atomic {
        match claim(pool, &ctx).await {
            Ok(Claim::Ours { recovery_point }) => ctx.resume_from(recovery_point),
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
            let Some(stored) = ctx.open(&sealed) else {
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

fn reused() -> ApiError {
    ApiError::Validation {
        code: ErrorCode::IdempotencyKeyReused,
        message: format!("this {HEADER} was used with a different request; use a new key"),
    }
}

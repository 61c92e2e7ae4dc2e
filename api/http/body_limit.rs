//! Request bodies larger than `Limits::body_bytes` are refused with 413 before
//! anything reads them: at once when `Content-Length` says so, and as soon as
//! the limit is crossed for a chunked body (every reader of the payload, the
//! JSON extractor and the idempotency middleware alike, sees the overflow).

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = req.app_data::<web::Data<AppState>>().expect("AppState is registered").limits.body_bytes;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            return Ok(req.into_response(too_large(limit).error_response()));
        }
        // The HTTP decoder stops at Content-Length; only chunked bodies need counting.
        Some(_) => {}
        None => {
            let mut seen = 0usize;
            let limited = req.take_payload().map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len();
                if seen > limit {
                    Err(PayloadError::Overflow)
                } else {
                    Ok(chunk)
                }
            });
            req.set_payload(Payload::Stream { payload: Box::pin(limited) });
        }
    }
    next.call(req).await
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes"))
}

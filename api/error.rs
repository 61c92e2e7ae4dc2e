//! The one error type of the HTTP layer, mapped to a status and a JSON body
//! `{"code", "message"}` here and nowhere else.

use std::borrow::Cow;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable, stable: `sold_out`, `validation_failed`, `hold_expired`, ...
    pub code: Cow<'static, str>,
    /// For people.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(&'static str),
    /// 404 with a code more precise than `not_found` (e.g. `unknown_ticket`).
    #[error("{message}")]
    NotFoundCode { code: &'static str, message: &'static str },
    /// 422: the request is well-formed JSON but its values are not acceptable.
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    /// 400: the request could not be read at all.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 409: valid, but the current state does not allow it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 402: the payment provider refused the payment.
    #[error("{message}")]
    PaymentRefused { code: String, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not JSON (or has no content type).
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// 405: the path exists, the method does not; `allow` lists the methods that do.
    #[error("this path does not answer {method}; it answers {allow}")]
    MethodNotAllowed { method: String, allow: String },
    /// 429: this client sent too many requests; it may retry after `retry_after_secs`.
    #[error("too many requests from your address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("authentication required")]
    Unauthorized,
    #[error("the token is not valid")]
    Forbidden,
    /// 503: a dependency (database, provider) is unreachable; retrying later is fine.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation { code: "validation_failed", message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn sold_out() -> Self {
        Self::conflict("sold_out", "not enough tickets left for this request")
    }

    pub fn code(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::NotFoundCode { code, .. } => code,
            ApiError::Validation { code, .. } | ApiError::BadRequest { code, .. } | ApiError::Conflict { code, .. } => {
                code
            }
            ApiError::PaymentRefused { code, .. } => return Cow::Owned(code.clone()),
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_content_type",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::Unavailable { code, .. } => code,
            ApiError::Internal(_) => "internal_error",
        })
    }
}

impl ApiError {
    /// The JSON body [`error_response`](ResponseError::error_response) sends, for a client error.
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody { code: self.code(), message: self.to_string() })
            .expect("an error body serialises")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NotFoundCode { .. } => StatusCode::NOT_FOUND,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PaymentRefused { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "something went wrong on our side; nothing was charged twice, please retry".to_owned()
            }
            other => other.to_string(),
        };
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Unavailable { .. } => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::RateLimited { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                res.insert_header((header::ALLOW, allow.as_str()));
            }
            // The rest of the body is not read, so the connection cannot carry another request.
            ApiError::PayloadTooLarge(_) => {
                res.insert_header((header::CONNECTION, "close"));
            }
            _ => {}
        }
        res.json(ErrorBody { code: self.code(), message })
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                if matches!(e, sqlx::Error::PoolTimedOut) {
                    crate::metrics::record_pool_timeout();
                }
                ApiError::Unavailable {
                    code: "database_unavailable",
                    message: "the database is unavailable; please retry shortly".into(),
                }
            }
            sqlx::Error::Database(db) if db.constraint() == Some("ticket_types_inventory") => ApiError::sold_out(),
            sqlx::Error::Database(db) if is_connection_loss(db.code().as_deref()) => ApiError::Unavailable {
                code: "database_unavailable",
                message: "the database is unavailable; please retry shortly".into(),
            },
            _ => ApiError::Internal(anyhow::Error::new(e).context("database query failed")),
        }
    }
}

/// SQLSTATE classes 08 (connection exception) and 57P (operator intervention:
/// shutdown, restart) mean the database went away, not that the query was wrong.
fn is_connection_loss(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
}

/// Turns actix's own extractor failures (bad JSON, wrong types, bad paths) into our error body.
pub fn json_error_handler(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } | E::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::PayloadTooLarge("the request body is too large".into())
        }
        E::ContentType => ApiError::UnsupportedMediaType,
        E::Deserialize(de) if de.is_data() => ApiError::validation(de.to_string()),
        E::Deserialize(de) => {
            ApiError::BadRequest { code: "invalid_json", message: format!("the body is not valid JSON: {de}") }
        }
        other => ApiError::BadRequest { code: "invalid_body", message: other.to_string() },
    };
    api.into()
}

pub fn path_error_handler(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    let _ = err;
    ApiError::NotFound("no such resource").into()
}

pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::validation(format!("invalid query string: {err}")).into()
}

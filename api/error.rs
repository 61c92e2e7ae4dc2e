//! The one error type of the service, with its stable `code`. Its mapping to
//! an HTTP status and the JSON body `{"code", "message"}` is in one place, on
//! the HTTP edge (`http::error`).

use std::borrow::Cow;

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
    /// The JSON body an error response carries, for a client error.
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody { code: self.code(), message: self.to_string() })
            .expect("an error body serialises")
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

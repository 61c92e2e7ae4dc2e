//! The one error type of the service, with its stable [`ErrorCode`]. Its mapping to
//! an HTTP status and the JSON body `{"code", "message"}` is in one place, on
//! the HTTP edge (`http::error`).

use std::borrow::Cow;

use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable and stable: one of `ErrorCode`; a 402 carries the payment provider's decline code instead.
    pub code: Cow<'static, str>,
    /// For people.
    pub message: String,
    /// Only with `sold_out` for a hold: the lines that did not fit (nothing was held).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub lines: Vec<Shortfall>,
}

/// A line of a hold request that did not fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Shortfall {
    pub ticket_type_id: uuid::Uuid,
    pub requested: i32,
    /// Seats of this type that were free when the request was refused.
    pub available: i32,
}

/// Every code nts answers with, as it appears in `{"code": …}`. A 402 carries
/// the payment provider's decline code instead (`card_declined` when it gave none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400
    InvalidJson,
    InvalidBody,
    InvalidIdempotencyKey,
    InvalidSignature,
    InvalidEvent,
    // 401, 403
    Unauthorized,
    Forbidden,
    DeviceRevoked,
    // 402
    CardDeclined,
    // 404
    NotFound,
    UnknownTicket,
    // 405
    MethodNotAllowed,
    // 409
    SoldOut,
    SalesClosed,
    TooManyUnpaid,
    HoldExpired,
    HoldReleased,
    HoldCheckedOut,
    OrderAlreadyPaid,
    OrderExpired,
    OrderNotAwaitingPayment,
    OrderNotPaid,
    OrderAlreadyRefunded,
    OrderNotRefunded,
    SeatsAlreadyReleased,
    RefundNotFailed,
    PaymentNotOpen,
    PaymentCanceled,
    PaymentInProgress,
    RealMoneyOrders,
    AlreadyCheckedIn,
    TicketNotValid,
    NotCheckedIn,
    MailNotFailed,
    IdempotencyKeyInUse,
    // 413, 415
    PayloadTooLarge,
    UnsupportedContentType,
    // 422
    ValidationFailed,
    CurrencyNotChargeable,
    AmountBelowProviderMinimum,
    AmountAboveProviderMaximum,
    AmountTooSmall,
    AmountTooLarge,
    PaymentMethodRequired,
    InvalidEmail,
    OtherEvent,
    ScanIdReused,
    SignedCodeRequired,
    IdempotencyKeyReused,
    // 429
    RateLimited,
    // 500
    InternalError,
    // 503
    DatabaseUnavailable,
    PaymentProviderUnavailable,
    CheckinContended,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 54] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::InvalidSignature,
        ErrorCode::InvalidEvent,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::DeviceRevoked,
        ErrorCode::CardDeclined,
        ErrorCode::NotFound,
        ErrorCode::UnknownTicket,
        ErrorCode::MethodNotAllowed,
        ErrorCode::SoldOut,
        ErrorCode::SalesClosed,
        ErrorCode::TooManyUnpaid,
        ErrorCode::HoldExpired,
        ErrorCode::HoldReleased,
        ErrorCode::HoldCheckedOut,
        ErrorCode::OrderAlreadyPaid,
        ErrorCode::OrderExpired,
        ErrorCode::OrderNotAwaitingPayment,
        ErrorCode::OrderNotPaid,
        ErrorCode::OrderAlreadyRefunded,
        ErrorCode::OrderNotRefunded,
        ErrorCode::SeatsAlreadyReleased,
        ErrorCode::RefundNotFailed,
        ErrorCode::PaymentNotOpen,
        ErrorCode::PaymentCanceled,
        ErrorCode::PaymentInProgress,
        ErrorCode::RealMoneyOrders,
        ErrorCode::AlreadyCheckedIn,
        ErrorCode::TicketNotValid,
        ErrorCode::NotCheckedIn,
        ErrorCode::MailNotFailed,
        ErrorCode::IdempotencyKeyInUse,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedContentType,
        ErrorCode::ValidationFailed,
        ErrorCode::CurrencyNotChargeable,
        ErrorCode::AmountBelowProviderMinimum,
        ErrorCode::AmountAboveProviderMaximum,
        ErrorCode::AmountTooSmall,
        ErrorCode::AmountTooLarge,
        ErrorCode::PaymentMethodRequired,
        ErrorCode::InvalidEmail,
        ErrorCode::OtherEvent,
        ErrorCode::ScanIdReused,
        ErrorCode::SignedCodeRequired,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::PaymentProviderUnavailable,
        ErrorCode::CheckinContended,
    ];

    /// The code on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::CardDeclined => "card_declined",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownTicket => "unknown_ticket",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::SoldOut => "sold_out",
            ErrorCode::SalesClosed => "sales_closed",
            ErrorCode::TooManyUnpaid => "too_many_unpaid",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::HoldReleased => "hold_released",
            ErrorCode::HoldCheckedOut => "hold_checked_out",
            ErrorCode::OrderAlreadyPaid => "order_already_paid",
            ErrorCode::OrderExpired => "order_expired",
            ErrorCode::OrderNotAwaitingPayment => "order_not_awaiting_payment",
            ErrorCode::OrderNotPaid => "order_not_paid",
            ErrorCode::OrderAlreadyRefunded => "order_already_refunded",
            ErrorCode::OrderNotRefunded => "order_not_refunded",
            ErrorCode::SeatsAlreadyReleased => "seats_already_released",
            ErrorCode::RefundNotFailed => "refund_not_failed",
            ErrorCode::PaymentNotOpen => "payment_not_open",
            ErrorCode::PaymentCanceled => "payment_canceled",
            ErrorCode::PaymentInProgress => "payment_in_progress",
            ErrorCode::RealMoneyOrders => "real_money_orders",
            ErrorCode::AlreadyCheckedIn => "already_checked_in",
            ErrorCode::TicketNotValid => "ticket_not_valid",
            ErrorCode::NotCheckedIn => "not_checked_in",
            ErrorCode::MailNotFailed => "mail_not_failed",
            ErrorCode::IdempotencyKeyInUse => "idempotency_key_in_use",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedContentType => "unsupported_content_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::CurrencyNotChargeable => "currency_not_chargeable",
            ErrorCode::AmountBelowProviderMinimum => "amount_below_provider_minimum",
            ErrorCode::AmountAboveProviderMaximum => "amount_above_provider_maximum",
            ErrorCode::AmountTooSmall => "amount_too_small",
            ErrorCode::AmountTooLarge => "amount_too_large",
            ErrorCode::PaymentMethodRequired => "payment_method_required",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::OtherEvent => "other_event",
            ErrorCode::ScanIdReused => "scan_id_reused",
            ErrorCode::SignedCodeRequired => "signed_code_required",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::DatabaseUnavailable => "database_unavailable",
            ErrorCode::PaymentProviderUnavailable => "payment_provider_unavailable",
            ErrorCode::CheckinContended => "checkin_contended",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(&'static str),
    /// 404 with a code more precise than `not_found` (e.g. `unknown_ticket`).
    #[error("{message}")]
    NotFoundCode { code: ErrorCode, message: &'static str },
    /// 422: the request is well-formed JSON but its values are not acceptable.
    #[error("{message}")]
    Validation { code: ErrorCode, message: String },
    /// 400: the request could not be read at all.
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    /// 409: valid, but the current state does not allow it.
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// 409 `sold_out`: not enough seats; `lines` names the lines of a hold that did not fit, when known.
    #[error("not enough tickets left for this request")]
    SoldOut { lines: Vec<Shortfall> },
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
    /// 403 `device_revoked`: the organiser revoked this check-in device.
    #[error("{0}")]
    DeviceRevoked(&'static str),
    /// 503: a dependency (database, provider) is unreachable; retrying later is fine.
    #[error("{message}")]
    Unavailable { code: ErrorCode, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation { code: ErrorCode::ValidationFailed, message: message.into() }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn sold_out() -> Self {
        ApiError::SoldOut { lines: Vec::new() }
    }

    pub fn code(&self) -> Cow<'static, str> {
        let code = match self {
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::NotFoundCode { code, .. }
            | ApiError::Validation { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code, .. } => *code,
            ApiError::PaymentRefused { code, .. } => return Cow::Owned(code.clone()),
            ApiError::SoldOut { .. } => ErrorCode::SoldOut,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedContentType,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::DeviceRevoked(_) => ErrorCode::DeviceRevoked,
            ApiError::Internal(_) => ErrorCode::InternalError,
        };
        Cow::Borrowed(code.as_str())
    }
}

impl ApiError {
    /// What the error body's `lines` holds.
    pub fn lines(&self) -> Vec<Shortfall> {
        match self {
            ApiError::SoldOut { lines } => lines.clone(),
            _ => Vec::new(),
        }
    }

    /// The JSON body an error response carries, for a client error.
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody { code: self.code(), message: self.to_string(), lines: self.lines() })
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
                    code: ErrorCode::DatabaseUnavailable,
                    message: "the database is unavailable; please retry shortly".into(),
                }
            }
            sqlx::Error::Database(db) if db.constraint() == Some("ticket_types_inventory") => ApiError::sold_out(),
            sqlx::Error::Database(db) if is_connection_loss(db.code().as_deref()) => ApiError::Unavailable {
                code: ErrorCode::DatabaseUnavailable,
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

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_is_on_the_wire_as_it_is_spelled() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
        }
        let mut spelled: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        spelled.sort_unstable();
        spelled.dedup();
        assert_eq!(spelled.len(), ErrorCode::ALL.len(), "two codes share a spelling");
    }
}

//! [`ApiError`] as an HTTP answer: its status, headers and JSON body, here
//! and nowhere else; and actix's own extractor failures as `ApiError`s.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::error::{ApiError, ErrorBody, ErrorCode};

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NotFoundCode { .. } => StatusCode::NOT_FOUND,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict { .. } | ApiError::SoldOut { .. } => StatusCode::CONFLICT,
            ApiError::PaymentRefused { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::DeviceRevoked(_) => StatusCode::FORBIDDEN,
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
        res.json(ErrorBody { code: self.code(), message, lines: self.lines() })
    }
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
            ApiError::BadRequest { code: ErrorCode::InvalidJson, message: format!("the body is not valid JSON: {de}") }
        }
        other => ApiError::BadRequest { code: ErrorCode::InvalidBody, message: other.to_string() },
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

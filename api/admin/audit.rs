//! The payments audit, for the organiser (and for every reliability test).

use actix_web::{get, web, HttpResponse};

use crate::caller::Admin;
use crate::error::{ApiResult, ErrorBody, ErrorCode};
use crate::payments::audit::{self, AuditReport};
use crate::state::AppState;

/// Compare our orders and payments with the payment provider's objects.
#[utoipa::path(
    tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The comparison; an empty `mismatches` means the books agree", body = AuditReport),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 503, description = format!("`{}`", ErrorCode::PaymentProviderUnavailable), body = ErrorBody),
    )
)]
#[get("/admin/payments/audit")]
pub async fn payments_audit(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(audit::run(&state.payments).await?))
}

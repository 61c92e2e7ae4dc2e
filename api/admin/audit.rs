//! The payments audit, for the organiser (and for every reliability test).

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

use crate::caller::Admin;
use crate::error::{ApiResult, ErrorBody, ErrorCode};
use crate::payments::audit::{self, AuditReport, Window};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditWindow {
    /// Start of the window (RFC 3339); by default 24 hours before `until`.
    pub since: Option<String>,
    /// End of the window (RFC 3339); by default now. At most 31 days after `since`.
    pub until: Option<String>,
}

/// Compare our payments and refunds with the payment provider's objects made within a window.
#[utoipa::path(
    tag = "admin",
    params(AuditWindow),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The comparison; an empty `mismatches` means the books agree", body = AuditReport),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 422, description = "`since` or `until` is not an RFC 3339 time, `since` is not before `until`, or the window is longer than 31 days", body = ErrorBody),
        (status = 503, description = format!("`{}`", ErrorCode::PaymentProviderUnavailable), body = ErrorBody),
    )
)]
#[get("/admin/payments/audit")]
pub async fn payments_audit(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<AuditWindow>,
) -> ApiResult<HttpResponse> {
    let window = Window::parse(query.since.as_deref(), query.until.as_deref(), time::OffsetDateTime::now_utc())?;
    Ok(HttpResponse::Ok().json(audit::run(&state.payments, window).await?))
}

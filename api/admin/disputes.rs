//! Disputes of buyers' payments (chargebacks and inquiries), for the organiser.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use crate::caller::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::payments::disputes::{self, DisputeView};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DisputeFilter {
    /// Only this event's disputes; all when absent.
    pub event_id: Option<Uuid>,
}

/// Disputes Stripe reported, with their status as Stripe names it.
#[utoipa::path(
    tag = "admin",
    params(DisputeFilter),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Newest first, at most 500", body = [DisputeView]),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 422, description = "`event_id` is not a UUID", body = ErrorBody),
    )
)]
#[get("/admin/disputes")]
pub async fn list_disputes(
    state: web::Data<AppState>,
    _admin: Admin,
    filter: web::Query<DisputeFilter>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(disputes::list(&state.pool, filter.event_id).await?))
}

//! Refunding a paid order in full, through the payment provider.

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Admin;
use crate::domain::status::PaymentStatus;
use crate::error::{ApiResult, ErrorBody};
use crate::payments::refunds::refund_order;
use crate::startup::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Put the order's seats back on sale (otherwise they stay sold).
    pub release_seats: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    /// `refunded`, or `refund_pending` while the provider has not confirmed
    /// (the reconciler finishes it with the same idempotency key).
    pub payment_status: PaymentStatus,
    pub seats_released: bool,
}

/// Refund a paid order in full; the order becomes `refunded`.
#[utoipa::path(
    tag = "admin",
    params(
        ("order_id" = Uuid, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the first answer is replayed"),
    ),
    request_body = RefundRequest,
    security(("admin" = [])),
    responses(
        (status = 200, description = "Refunded at the provider", body = RefundView),
        (status = 202, description = "Recorded; the provider's confirmation is pending", body = RefundView),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`order_not_paid` or `order_already_refunded`", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
#[post("/admin/orders/{order_id}/refund")]
pub async fn refund(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<Uuid>,
    body: web::Json<RefundRequest>,
) -> ApiResult<HttpResponse> {
    let order_id = path.into_inner();
    let done = refund_order(&state.payments, order_id, body.release_seats).await?;
    let view = RefundView {
        order_id,
        payment_id: done.payment_id,
        payment_status: done.payment_status,
        seats_released: done.seats_released,
    };
    Ok(match view.payment_status {
        PaymentStatus::Refunded => HttpResponse::Ok().json(view),
        _ => HttpResponse::Accepted().json(view),
    })
}

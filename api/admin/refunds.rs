//! Refunding a paid order in full, through the payment provider.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Admin;
use crate::domain::status::{OrderStatus, PaymentStatus, RefundStatus};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::payments::refunds::{self, refund_order, OrderRefund};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Put the order's seats back on sale (otherwise they stay sold).
    pub release_seats: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub order_id: Uuid,
    /// `null` for a free order: it has no payment, and the provider is not called.
    pub payment_id: Option<Uuid>,
    /// `refund_pending` until the provider says the money went back
    /// (`refunded`), or `refund_failed` if it could not; `null` for a free order.
    pub payment_status: Option<PaymentStatus>,
    pub seats_released: bool,
}

/// Refund a paid order in full; the order becomes `refunded` (a free order too, without the provider).
#[utoipa::path(
    tag = "admin",
    params(("order_id" = Uuid, Path, description = "Order id")),
    request_body = RefundRequest,
    security(("admin" = [])),
    responses(
        (status = 200, description = "Refunded at the provider, or a free order refunded (no payment)", body = RefundView),
        (status = 202, description = "Recorded; the provider's refund is pending (or failed: `refund_failed`)", body = RefundView),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = format!("`{}` or `{}`", ErrorCode::OrderNotPaid, ErrorCode::OrderAlreadyRefunded), body = ErrorBody),
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
    Ok(refund_answer(order_id, refund_order(&state.payments, order_id, body.release_seats).await?))
}

fn refund_answer(order_id: Uuid, done: OrderRefund) -> HttpResponse {
    let view = RefundView {
        order_id,
        payment_id: done.payment_id,
        payment_status: done.payment_status,
        seats_released: done.seats_released,
    };
    match view.payment_status {
        Some(PaymentStatus::Refunded) | None => HttpResponse::Ok().json(view),
        _ => HttpResponse::Accepted().json(view),
    }
}

/// Ask the provider again for a refund it could not make (`refund_failed`).
#[utoipa::path(
    tag = "admin",
    params(("order_id" = Uuid, Path, description = "Order id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Refunded at the provider", body = RefundView),
        (status = 202, description = "Asked again; the provider's refund is pending (or failed again: `refund_failed`)", body = RefundView),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = format!("`{}`: the order's refund has not failed", ErrorCode::RefundNotFailed), body = ErrorBody),
    )
)]
#[post("/admin/orders/{order_id}/refund/retry")]
pub async fn retry_refund(state: web::Data<AppState>, _admin: Admin, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let order_id = path.into_inner();
    Ok(refund_answer(order_id, refunds::retry_refund(&state.payments, order_id).await?))
}

/// One refund at the provider, for the organiser: asked by nts (an admin's
/// refund, money an order could not take) or made outside nts (Stripe's
/// dashboard, in whole or in part).
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundRow {
    pub refund_id: Uuid,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub event_name: String,
    pub buyer_email: String,
    /// This refund's amount, in minor units of `currency`.
    pub amount_minor: i64,
    /// The payment's amount.
    pub payment_amount_minor: i64,
    pub currency: String,
    /// `pending` (asked, not yet confirmed by the provider), `succeeded`,
    /// `failed` (the buyer is still owed the money) or `canceled`.
    pub status: RefundStatus,
    /// `requested_by_organiser`, `order_cannot_take_payment`, or `outside_nts`
    /// (made at the provider without nts).
    pub reason: String,
    /// The payment's status: `refund_pending`, `refund_failed`, `refunded`,
    /// or `succeeded` for a payment refunded only in part.
    pub payment_status: PaymentStatus,
    pub order_status: OrderStatus,
    /// The provider's refund, once it exists.
    pub refund_ref: Option<String>,
    /// Why the provider could not refund (or refused to: `charge_disputed`, say).
    pub refund_failure: Option<String>,
    /// The seats are back on sale; otherwise `POST .../release-seats` puts them back.
    pub seats_released: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RefundFilter {
    /// Only `pending`, `failed` (failed or canceled) or `refunded` (succeeded); all when absent.
    pub status: Option<String>,
}

/// Refunds: pending at the provider, failed (the buyer is still owed the
/// money), and done — including refunds made in the provider's dashboard.
#[utoipa::path(
    tag = "admin",
    params(RefundFilter),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Newest first, at most 500", body = [RefundRow]),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 422, description = "`status` is not pending, failed or refunded", body = ErrorBody),
    )
)]
#[get("/admin/refunds")]
pub async fn list_refunds(
    state: web::Data<AppState>,
    _admin: Admin,
    filter: web::Query<RefundFilter>,
) -> ApiResult<HttpResponse> {
    use RefundStatus::*;
    let wanted: Vec<RefundStatus> = match filter.status.as_deref() {
        None => vec![Pending, Succeeded, Failed, Canceled],
        Some("pending") => vec![Pending],
        Some("failed") => vec![Failed, Canceled],
        Some("refunded") => vec![Succeeded],
        Some(_) => return Err(ApiError::validation("status must be pending, failed or refunded")),
    };
    let rows = sqlx::query_as!(
        RefundRow,
        r#"SELECT r.id AS refund_id, p.order_id, p.id AS payment_id, e.name AS event_name, o.buyer_email,
                  r.amount_minor, p.amount_minor AS payment_amount_minor, r.currency AS "currency!",
                  r.status AS "status: RefundStatus", r.reason, p.status AS "payment_status: PaymentStatus",
                  o.status AS "order_status: OrderStatus", r.provider_ref AS refund_ref, r.failure AS refund_failure,
                  o.seats_released_at IS NOT NULL AS "seats_released!", r.updated_at
           FROM refunds r JOIN payments p ON p.id = r.payment_id JOIN orders o ON o.id = p.order_id
           JOIN events e ON e.id = r.event_id
           WHERE r.status = ANY($1)
           ORDER BY r.updated_at DESC, r.id LIMIT 500"#,
        &wanted as &[RefundStatus]
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeatsReleased {
    pub order_id: Uuid,
    pub seats_released: bool,
}

/// Put a refunded order's seats back on sale (refunded without releasing
/// them, or refunded in the payment provider's dashboard).
#[utoipa::path(
    tag = "admin",
    params(("order_id" = Uuid, Path, description = "Order id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The seats are on sale again", body = SeatsReleased),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = format!("`{}` or `{}`", ErrorCode::OrderNotRefunded, ErrorCode::SeatsAlreadyReleased), body = ErrorBody),
    )
)]
#[post("/admin/orders/{order_id}/release-seats")]
pub async fn release_seats(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let order_id = path.into_inner();
    refunds::release_seats(&state.pool, order_id).await?;
    Ok(HttpResponse::Ok().json(SeatsReleased { order_id, seats_released: true }))
}

//! The buyer's "card" under the simulated gateway: confirm an attempt with the
//! outcome of your choice. Registered only while the simulated gateway is active.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::gateway::PaymentMethod;
use crate::caller::BuyerSecret;
use crate::error::{ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::KeyContext;
use crate::sales::views::PaymentView;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimulatedOutcome {
    Succeeded,
    Declined,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub outcome: SimulatedOutcome,
}

/// Confirm a payment attempt with the simulated provider (no real money moves).
#[utoipa::path(
    tag = "payments",
    params(
        ("payment_id" = Uuid, Path, description = "Payment attempt id"),
    ),
    request_body = ConfirmRequest,
    security(("buyer" = [])),
    responses(
        (status = 200, description = "Paid", body = PaymentView),
        (status = 202, description = "The provider's answer is pending; poll the order", body = PaymentView),
        (status = 402, description = format!("`{}`", ErrorCode::CardDeclined), body = ErrorBody),
        (status = 404, description = "No such payment, or not the order's secret", body = ErrorBody),
        (status = 409, description = format!("`{}`, `{}` or `{}`", ErrorCode::PaymentNotOpen, ErrorCode::PaymentCanceled, ErrorCode::OrderNotAwaitingPayment), body = ErrorBody),
        (status = 422, description = format!("`{}`: `outcome` is not `succeeded` or `declined`", ErrorCode::ValidationFailed), body = ErrorBody),
        (status = 503, description = format!("`{}`: the provider did not answer; retry", ErrorCode::PaymentProviderUnavailable), body = ErrorBody),
    )
)]
#[post("/payments/simulated/{payment_id}/confirm")]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
    body: web::Json<ConfirmRequest>,
) -> ApiResult<HttpResponse> {
    let method = PaymentMethod::Simulated { succeed: matches!(body.outcome, SimulatedOutcome::Succeeded) };
    let key = KeyContext::of(&req);
    let (status, view) =
        state.payments.confirm_attempt(path.into_inner(), &secret.hash, &method, key.as_deref()).await?;
    Ok(HttpResponse::build(status).json(view))
}

//! The buyer's order where the sale meets payments: checkout (the order and
//! its first attempt), a new attempt, and the order read that first asks the
//! provider about its latest attempt.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::checkouts::{Checkout, Outcome};
use super::gateway::PaymentMethod;
use crate::caller::BuyerSecret;
use crate::domain::status::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::{self, KeyContext};
use crate::sales::holds::earlier_order;
use crate::sales::orders::{fetch_order, fetch_order_by_id};
use crate::sales::views::{CheckoutView, OrderView, PaymentView};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(checkout).service(get_order).service(create_payment);
}

/// Turn a live hold into an order awaiting payment (paid at once if free); the order takes over the seats.
#[utoipa::path(
    tag = "holds",
    params(
        ("hold_id" = Uuid, Path, description = "Hold id"),
    ),
    security(("buyer" = [])),
    responses(
        (status = 201, description = "Order created (or, if this hold was already checked out, the same order again); keep its secret. An order of total zero (free tickets) is `paid` at once, with its tickets and no payment", body = CheckoutView),
        (status = 404, description = "No such hold, or not your secret", body = ErrorBody),
        (status = 409, description = format!("`{}` or `{}`", ErrorCode::HoldExpired, ErrorCode::HoldReleased), body = ErrorBody),
        (status = 503, description = format!("`{}`: the provider did not answer; retry", ErrorCode::PaymentProviderUnavailable), body = ErrorBody),
    )
)]
#[post("/holds/{hold_id}/checkout")]
pub async fn checkout(
    state: web::Data<AppState>,
    http: HttpRequest,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    let hold_id = path.into_inner();
    let key = KeyContext::of(&http);
    let checkout = Checkout {
        hold_id,
        hold_secret_hash: secret.hash.clone(),
        // Derived from the hold secret, so a repeated checkout can hand out the same order secret again.
        order_secret: secret.derive("order"),
        key: key.clone(),
    };
    // The order, its first attempt (simulated gateway) and the key with its
    // answer commit together, in this instance's group commit of checkouts;
    // the batch's first attempts go to the provider after that.
    match state.checkouts.checkout(&checkout).await? {
        Outcome::Created { body, .. } => {
            idempotency::debug_stall("checkout").await;
            Ok(HttpResponse::Created().content_type("application/json").body(body))
        }
        Outcome::KeyTaken => Err(key.map_or_else(idempotency::in_use, |k| k.taken())),
        Outcome::NotTaken | Outcome::Again => {
            // Checked out already: the same order again, with its latest attempt.
            let order_id = earlier_order(&state.pool, hold_id, &secret).await?;
            let mut order = fetch_order_by_id(&state.pool, &state.config.ticket_keys, order_id).await?;
            order.secret = Some(checkout.order_secret);
            Ok(HttpResponse::Created().json(CheckoutView { payment: order.payment.clone(), order }))
        }
    }
}

/// An order, seen by its buyer: status and, once paid, the tickets.
#[utoipa::path(
    tag = "orders",
    params(("order_id" = Uuid, Path, description = "Order id")),
    security(("buyer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order, or not your secret", body = ErrorBody),
    )
)]
#[get("/orders/{order_id}")]
pub async fn get_order(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let order = fetch_order(&state.pool, &state.config.ticket_keys, id, Some(&secret.hash)).await?;
    let refreshed = match &order.payment {
        Some(latest) if order.status == OrderStatus::AwaitingPayment => state.payments.refresh_attempt(latest).await?,
        _ => false,
    };
    if refreshed {
        return Ok(
            HttpResponse::Ok().json(fetch_order(&state.pool, &state.config.ticket_keys, id, Some(&secret.hash)).await?)
        );
    }
    Ok(HttpResponse::Ok().json(order))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// Stripe PaymentMethod id (`pm_...`); omit with the simulated gateway.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_]+$")]
    pub payment_method: Option<String>,
}

/// Start a new payment attempt; any open attempt is canceled first.
#[utoipa::path(
    tag = "orders",
    params(
        ("order_id" = Uuid, Path, description = "Order id"),
    ),
    request_body(content = PaymentRequest, description = "`{}` for the simulated gateway; `{\"payment_method\": \"pm_...\"}` for Stripe"),
    security(("buyer" = [])),
    responses(
        (status = 201, description = "The new attempt; under Stripe already confirmed: `succeeded`, `processing` (poll the order) or `requires_action` (authenticate with `client_secret`)", body = PaymentView),
        (status = 402, description = format!("`{}`: the provider refused the card; the order still awaits payment", ErrorCode::CardDeclined), body = ErrorBody),
        (status = 404, description = "No such order, or not your secret", body = ErrorBody),
        (status = 409, description = format!("`{}`, `{}`, `{}`, `{}` or `{}`", ErrorCode::OrderNotAwaitingPayment, ErrorCode::OrderExpired, ErrorCode::OrderAlreadyPaid, ErrorCode::PaymentInProgress, ErrorCode::PaymentCanceled), body = ErrorBody),
        (status = 422, description = format!("`{}` (Stripe) or an invalid `payment_method`; `{}` or `{}` when the provider will not charge the order's amount at all (the attempt failed with that code)", ErrorCode::PaymentMethodRequired, ErrorCode::AmountTooSmall, ErrorCode::AmountTooLarge), body = ErrorBody),
        (status = 503, description = format!("`{}`: retry with the same Idempotency-Key", ErrorCode::PaymentProviderUnavailable), body = ErrorBody),
    )
)]
#[post("/orders/{order_id}/payments")]
pub async fn create_payment(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
    body: web::Json<PaymentRequest>,
) -> ApiResult<HttpResponse> {
    let order_id = path.into_inner();
    let method = body.into_inner().payment_method;
    if method.as_ref().is_some_and(|pm| {
        pm.is_empty() || pm.len() > 255 || !pm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }) {
        return Err(ApiError::validation("payment_method must be a PaymentMethod id such as pm_card_visa"));
    }
    fetch_order(&state.pool, &state.config.ticket_keys, order_id, Some(&secret.hash)).await?;
    let method = method.map(PaymentMethod::Provider);
    // Where Stripe sends the buyer back if authenticating needs a redirect:
    // this order's page at the configured origin (required with Stripe), never
    // at the Host or X-Forwarded-Host the request claims.
    let return_url = state.config.public_url.as_ref().map(|origin| format!("{origin}/order.html#id={order_id}"));
    let key = KeyContext::of(&req);
    // An earlier request with this key started an attempt and never answered: carry on with it.
    let resumed = match key.as_ref().and_then(|k| k.recovery_point()) {
        Some(payment_id) => state.payments.resume_attempt(order_id, payment_id).await?,
        None => None,
    };
    let payment = match resumed {
        Some(payment) => payment,
        None => state.payments.start_attempt(order_id, method, return_url, key.as_deref()).await?,
    };
    idempotency::debug_stall("payment").await;
    Ok(HttpResponse::Created().json(payment))
}

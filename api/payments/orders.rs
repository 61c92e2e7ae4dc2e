//! The buyer's order where the sale meets payments: checkout (the order and
//! its first attempt), a new attempt, and the order read that first asks the
//! provider about its latest attempt.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::gateway::PaymentMethod;
use crate::caller::BuyerSecret;
use crate::domain::secret::hash_secret;
use crate::domain::status::OrderStatus;
use crate::domain::Money;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::{self, KeyContext};
use crate::sales::checkout::{earlier_order, take_over};
use crate::sales::orders::{fetch_order, fetch_order_by_id, latest_payment};
use crate::sales::views::{CheckoutView, OrderView, PaymentView};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(checkout).service(get_order).service(create_payment);
}

/// Turn a live hold into an order awaiting payment; the order takes over the seats.
#[utoipa::path(
    tag = "holds",
    params(
        ("hold_id" = Uuid, Path, description = "Hold id"),
    ),
    security(("buyer" = [])),
    responses(
        (status = 201, description = "Order created (or, if this hold was already checked out, the same order again); keep its secret", body = CheckoutView),
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
    // Derived from the hold secret, so a repeated checkout can hand out the same order secret again.
    let order_secret = secret.derive("order");
    let key = KeyContext::of(&http);
    // One transaction: the order, its first attempt (simulated gateway) and
    // the key with its answer. The provider is called after it commits, as a
    // retry or the reconciler would. A twin request with the same key waits
    // for this one's lock on the hold, then finds it checked out.
    let mut tx = state.pool.begin().await?;
    let order_seconds = state.config.order_duration.as_secs_f64();
    let created = take_over(&mut tx, hold_id, &secret.hash, &hash_secret(&order_secret), order_seconds).await?;
    let Some(mut order) = created else {
        drop(tx);
        // Checked out already: the same order again, with its latest attempt.
        let order_id = earlier_order(&state.pool, hold_id, &secret).await?;
        let payment = latest_payment(&state.pool, order_id).await?;
        let mut order = fetch_order_by_id(&state.pool, order_id).await?;
        order.secret = Some(order_secret);
        return Ok(HttpResponse::Created().json(CheckoutView { order, payment }));
    };
    let first =
        state.payments.first_attempt_in(&mut tx, order.id, Money::stored(order.amount_minor, &order.currency)?).await?;
    let payment = first.as_ref().map(|(_, view)| view.clone());
    // For the link in the order's e-mails.
    crate::mail::links::remember(&mut *tx, state.config.mail.link_key.as_ref(), order.id, &order_secret).await?;
    order.secret = Some(order_secret);
    order.payment = payment.clone();
    let body = serde_json::to_vec(&CheckoutView { order, payment: payment.clone() }).expect("a view serialises");
    if let Some(key) = &key {
        if idempotency::insert_answered(&mut *tx, &[key.record(StatusCode::CREATED, &body)]).await?.is_empty() {
            // The key is stored already (with another request, or a twin's answer): nothing of this commits.
            return Err(key.taken());
        }
    }
    tx.commit().await?;
    if let Some(key) = &key {
        key.mark_recorded();
    }
    idempotency::debug_stall("checkout").await;
    if let Some((attempt, _)) = &first {
        state.payments.send_first_attempt(attempt).await;
    }
    Ok(HttpResponse::Created().content_type("application/json").body(body))
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
    let order = fetch_order(&state.pool, id, Some(&secret.hash)).await?;
    let refreshed = match &order.payment {
        Some(latest) if order.status == OrderStatus::AwaitingPayment => state.payments.refresh_attempt(latest).await?,
        _ => false,
    };
    if refreshed {
        return Ok(HttpResponse::Ok().json(fetch_order(&state.pool, id, Some(&secret.hash)).await?));
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
        (status = 422, description = format!("`{}` (Stripe) or an invalid `payment_method`", ErrorCode::PaymentMethodRequired), body = ErrorBody),
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
    fetch_order(&state.pool, order_id, Some(&secret.hash)).await?;
    let method = method.map(PaymentMethod::Provider);
    // Where Stripe sends the buyer back if authenticating needs a redirect:
    // this order's page, on the address the buyer used.
    let return_url = {
        let conn = req.connection_info();
        format!("{}://{}/order.html#id={order_id}", conn.scheme(), conn.host())
    };
    let key = KeyContext::of(&req);
    // An earlier request with this key started an attempt and never answered: carry on with it.
    let resumed = match key.as_ref().and_then(|k| k.recovery_point()) {
        Some(payment_id) => state.payments.resume_attempt(order_id, payment_id).await?,
        None => None,
    };
    let payment = match resumed {
        Some(payment) => payment,
        None => state.payments.start_attempt(order_id, method, Some(return_url), key.as_deref()).await?,
    };
    idempotency::debug_stall("payment").await;
    Ok(HttpResponse::Created().json(payment))
}

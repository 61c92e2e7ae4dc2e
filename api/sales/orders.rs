//! Orders: what a buyer sees after checkout, and new payment attempts.

use actix_web::{get, http::header, post, web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::views::{OrderView, PaymentView, TicketView};
use crate::caller::BuyerSecret;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::idempotency::{self, KeyContext};
use crate::payments::gateway::PaymentMethod;
use crate::state::AppState;

struct OrderRow {
    id: Uuid,
    status: OrderStatus,
    event_id: Uuid,
    event_name: String,
    ticket_type_id: Uuid,
    ticket_type_name: String,
    buyer_name: String,
    buyer_email: String,
    quantity: i32,
    amount_minor: i64,
    currency: String,
    expires_at: time::OffsetDateTime,
    paid_at: Option<time::OffsetDateTime>,
}

pub(crate) async fn fetch_order_by_id(pool: &PgPool, id: Uuid) -> ApiResult<OrderView> {
    fetch_order(pool, id, None).await
}

/// The order with its tickets and latest payment; with `secret_hash`, only if it matches.
async fn fetch_order(pool: &PgPool, id: Uuid, secret_hash: Option<&[u8]>) -> ApiResult<OrderView> {
    let row = sqlx::query_as!(
        OrderRow,
        r#"SELECT o.id, o.status AS "status: OrderStatus", o.event_id, e.name AS event_name,
                  o.ticket_type_id, t.name AS ticket_type_name, o.buyer_name, o.buyer_email,
                  o.quantity, o.amount_minor, o.currency AS "currency!", o.expires_at, o.paid_at
           FROM orders o
           JOIN events e ON e.id = o.event_id
           JOIN ticket_types t ON t.id = o.ticket_type_id
           WHERE o.id = $1 AND ($2::bytea IS NULL OR o.secret_hash = $2)"#,
        id,
        secret_hash
    )
    .fetch_optional(pool)
    .await?
    .ok_or(ApiError::NotFound("no such order"))?;
    let tickets = sqlx::query_scalar!("SELECT code FROM tickets WHERE order_id = $1 ORDER BY position", id)
        .fetch_all(pool)
        .await?;
    let tickets = if tickets.is_empty() {
        Vec::new()
    } else {
        let key = crate::checkin::codes::EventKey::for_event(pool, row.event_id).await?;
        tickets.into_iter().map(|code| TicketView { signed_code: key.signed_code(&code), code }).collect()
    };
    let payment = latest_payment(pool, id).await?;
    Ok(OrderView {
        id: row.id,
        secret: None,
        status: row.status,
        event_id: row.event_id,
        event_name: row.event_name,
        ticket_type_id: row.ticket_type_id,
        ticket_type_name: row.ticket_type_name,
        name: row.buyer_name,
        email: row.buyer_email,
        quantity: row.quantity,
        amount_minor: row.amount_minor,
        currency: row.currency,
        expires_at: row.expires_at,
        paid_at: row.paid_at,
        tickets,
        payment,
    })
}

pub(crate) async fn latest_payment(pool: &PgPool, order_id: Uuid) -> Result<Option<PaymentView>, sqlx::Error> {
    sqlx::query_as!(
        PaymentView,
        r#"SELECT id, order_id, provider, status AS "status: PaymentStatus", amount_minor,
                  currency AS "currency!", client_secret, failure_code
           FROM payments WHERE order_id = $1 ORDER BY created_at DESC, id LIMIT 1"#,
        order_id
    )
    .fetch_optional(pool)
    .await
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
        (status = 402, description = "`card_declined`: the provider refused the card; the order still awaits payment", body = ErrorBody),
        (status = 404, description = "No such order, or not your secret", body = ErrorBody),
        (status = 409, description = "`order_not_awaiting_payment`, `order_expired`, `order_already_paid`, `payment_in_progress` or `payment_canceled`", body = ErrorBody),
        (status = 422, description = "`payment_method_required` (Stripe) or an invalid `payment_method`", body = ErrorBody),
        (status = 503, description = "`payment_provider_unavailable`: retry with the same Idempotency-Key", body = ErrorBody),
    )
)]
#[post("/orders/{order_id}/payments")]
pub async fn create_payment(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
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

/// The QR code of one ticket, as SVG.
#[utoipa::path(
    tag = "orders",
    params(
        ("order_id" = Uuid, Path, description = "Order id"),
        ("code" = String, Path, description = "Ticket code"),
    ),
    security(("buyer" = [])),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such ticket in this order, or not your secret", body = ErrorBody),
    )
)]
#[get("/orders/{order_id}/tickets/{code}/qr")]
pub async fn ticket_qr(
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    let (order_id, code) = path.into_inner();
    if !crate::domain::secret::is_ticket_code(&code) {
        return Err(ApiError::NotFound("no such ticket"));
    }
    let found = sqlx::query!(
        r#"SELECT t.code, o.event_id FROM tickets t JOIN orders o ON o.id = t.order_id
           WHERE t.order_id = $1 AND t.code = $2 AND o.secret_hash = $3 AND o.status = 'paid'"#,
        order_id,
        code,
        secret.hash
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound("no such ticket"))?;
    // The QR carries the signed code, which gates can check offline.
    let signed =
        crate::checkin::codes::EventKey::for_event(&state.pool, found.event_id).await?.signed_code(&found.code);
    let qr = qrcode::QrCode::new(signed.as_bytes()).map_err(|e| ApiError::Internal(e.into()))?;
    let svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(svg))
}

//! Orders: what a buyer sees after checkout, and the tickets' QR codes.

use actix_web::{get, http::header, web, HttpResponse};
use serde::Deserialize;
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use super::views::{single_type, LineView, OrderView, PaymentView, TicketView};
use crate::caller::BuyerSecret;
use crate::checkin::codes::{EventKey, StoredSeed};
use crate::checkin::ticket_keys::{code_hash, StoredCode, TicketKeys};
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

struct OrderRow {
    id: Uuid,
    status: OrderStatus,
    event_id: Uuid,
    event_name: String,
    buyer_name: String,
    buyer_email: String,
    quantity: i32,
    amount_minor: i64,
    currency: String,
    expires_at: time::OffsetDateTime,
    paid_at: Option<time::OffsetDateTime>,
    payment_id: Option<Uuid>,
    payment_provider: Option<String>,
    payment_status: Option<PaymentStatus>,
    payment_amount_minor: Option<i64>,
    payment_currency: Option<String>,
    payment_client_secret: Option<String>,
    payment_failure_code: Option<String>,
    seed_plain: Option<Vec<u8>>,
    seed_sealed: Option<Vec<u8>>,
    seed_key_id: Option<Vec<u8>>,
    lines: Json<Vec<LineView>>,
    tickets: Json<Vec<TicketRow>>,
}

/// A ticket as stored: its code is derived again (or opened) with the ticket keys.
#[derive(Deserialize)]
struct TicketRow {
    id: Uuid,
    /// Hex, as the JSON of the row carries bytes.
    key_id: Option<String>,
    sealed_code: Option<String>,
    legacy_code: Option<String>,
    ticket_type_id: Uuid,
    ticket_type_name: String,
}

impl TicketRow {
    fn code(&self, keys: &TicketKeys, event_id: Uuid) -> Result<String, sqlx::Error> {
        let hex = |h: &Option<String>| h.as_deref().map(hex::decode).transpose();
        let bad = |_| sqlx::Error::Decode("tickets: a key id or sealed code that is not hex".into());
        let (key_id, sealed_code) = (hex(&self.key_id).map_err(bad)?, hex(&self.sealed_code).map_err(bad)?);
        keys.require_code(&StoredCode {
            event_id,
            ticket_id: self.id,
            key_id: key_id.as_deref(),
            sealed_code: sealed_code.as_deref(),
            legacy_code: self.legacy_code.as_deref(),
        })
    }
}

impl OrderRow {
    /// Its latest payment attempt, read with it.
    fn payment(&mut self) -> Option<PaymentView> {
        Some(PaymentView {
            id: self.payment_id?,
            order_id: self.id,
            provider: self.payment_provider.take()?,
            status: self.payment_status?,
            amount_minor: self.payment_amount_minor?,
            currency: self.payment_currency.take()?,
            client_secret: self.payment_client_secret.take(),
            failure_code: self.payment_failure_code.take(),
        })
    }
}

pub(crate) async fn fetch_order_by_id(pool: &PgPool, keys: &TicketKeys, id: Uuid) -> ApiResult<OrderView> {
    fetch_order(pool, keys, id, None).await
}

/// The order with its lines, tickets and latest payment; with `secret_hash`,
/// only if it matches.
pub(crate) async fn fetch_order(
    pool: &PgPool,
    keys: &TicketKeys,
    id: Uuid,
    secret_hash: Option<&[u8]>,
) -> ApiResult<OrderView> {
    read(pool, keys, id, secret_hash).await?.ok_or(ApiError::NotFound("no such order"))
}

/// The order with its lines, tickets (with their signed codes) and latest
/// payment, if it exists (and, with `secret_hash`, if that is its buyer's).
/// One statement: a buyer's page polls it, every purchase ends with it, and
/// every e-mail about an order is written from it.
pub(crate) async fn read(
    pool: &PgPool,
    keys: &TicketKeys,
    id: Uuid,
    secret_hash: Option<&[u8]>,
) -> Result<Option<OrderView>, sqlx::Error> {
    let row = sqlx::query_as!(
        OrderRow,
        r#"SELECT o.id, o.status AS "status: OrderStatus", o.event_id, e.name AS event_name,
                  o.buyer_name, o.buyer_email,
                  o.quantity, o.amount_minor, o.currency AS "currency!", o.expires_at, o.paid_at,
                  p.id AS "payment_id?", p.provider AS "payment_provider?",
                  p.status AS "payment_status?: PaymentStatus", p.amount_minor AS "payment_amount_minor?",
                  p.currency AS "payment_currency?", p.client_secret AS payment_client_secret,
                  p.failure_code AS payment_failure_code,
                  k.secret_key AS seed_plain, k.sealed_secret AS seed_sealed, k.key_id AS seed_key_id,
                  (SELECT COALESCE(json_agg(json_build_object(
                              'ticket_type_id', l.ticket_type_id, 'ticket_type_name', t.name,
                              'quantity', l.quantity, 'unit_price_minor', l.unit_price_minor,
                              'amount_minor', l.unit_price_minor * l.quantity) ORDER BY l.position), '[]')
                   FROM hold_lines l JOIN ticket_types t ON t.id = l.ticket_type_id
                   WHERE l.hold_id = o.hold_id) AS "lines!: Json<Vec<LineView>>",
                  (SELECT COALESCE(json_agg(json_build_object(
                              'id', c.id, 'key_id', encode(c.key_id, 'hex'),
                              'sealed_code', encode(c.sealed_code, 'hex'), 'legacy_code', c.legacy_code,
                              'ticket_type_id', c.ticket_type_id, 'ticket_type_name', t.name)
                              ORDER BY c.position), '[]')
                   FROM tickets c JOIN ticket_types t ON t.id = c.ticket_type_id
                   WHERE c.order_id = o.id) AS "tickets!: Json<Vec<TicketRow>>"
           FROM orders o
           JOIN events e ON e.id = o.event_id
           LEFT JOIN LATERAL (SELECT * FROM payments WHERE order_id = o.id ORDER BY created_at DESC, id LIMIT 1) p
                  ON true
           LEFT JOIN checkin_event_keys k ON k.event_id = o.event_id
           WHERE o.id = $1 AND ($2::bytea IS NULL OR o.secret_hash = $2)"#,
        id,
        secret_hash
    )
    .fetch_optional(pool)
    .await?;
    let Some(mut row) = row else { return Ok(None) };
    let payment = row.payment();
    let Json(rows) = row.tickets;
    let tickets = if rows.is_empty() {
        Vec::new()
    } else {
        let seed = StoredSeed {
            secret_key: row.seed_plain.as_deref(),
            sealed_secret: row.seed_sealed.as_deref(),
            key_id: row.seed_key_id.as_deref(),
        };
        let key = match (&seed.secret_key, &seed.sealed_secret) {
            (None, None) => EventKey::for_event(pool, keys, row.event_id).await?,
            _ => EventKey::from_stored(keys, row.event_id, &seed)?,
        };
        rows.into_iter()
            .map(|t| {
                let code = t.code(keys, row.event_id)?;
                Ok(TicketView {
                    signed_code: key.signed_code(&code),
                    code,
                    ticket_type_id: t.ticket_type_id,
                    ticket_type_name: t.ticket_type_name,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?
    };
    let Json(lines) = row.lines;
    let (ticket_type_id, ticket_type_name) = single_type(&lines);
    Ok(Some(OrderView {
        id: row.id,
        secret: None,
        status: row.status,
        event_id: row.event_id,
        event_name: row.event_name,
        ticket_type_id,
        ticket_type_name,
        name: row.buyer_name,
        email: row.buyer_email,
        quantity: row.quantity,
        amount_minor: row.amount_minor,
        currency: row.currency,
        expires_at: row.expires_at,
        paid_at: row.paid_at,
        tickets,
        payment,
        lines,
    }))
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
    let event_id = sqlx::query_scalar!(
        r#"SELECT t.event_id FROM tickets t JOIN orders o ON o.id = t.order_id
           WHERE t.order_id = $1 AND t.code_hash = $2 AND o.secret_hash = $3 AND o.status = $4"#,
        order_id,
        code_hash(&code),
        secret.hash,
        OrderStatus::Paid as OrderStatus,
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound("no such ticket"))?;
    // The QR carries the signed code, which gates can check offline.
    let signed = EventKey::for_event(&state.pool, &state.config.ticket_keys, event_id).await?.signed_code(&code);
    let qr = qrcode::QrCode::new(signed.as_bytes()).map_err(|e| ApiError::Internal(e.into()))?;
    let svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(svg))
}

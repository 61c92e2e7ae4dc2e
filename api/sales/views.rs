//! The JSON shapes the public API answers with.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::status::{HoldStatus, OrderStatus, PaymentStatus};

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketTypeView {
    pub id: Uuid,
    pub name: String,
    /// Price of one ticket in minor units of `currency` (pence, cents).
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    /// Seats that can be held right now: capacity − sold − live holds and unpaid orders.
    pub available: i32,
    pub max_per_order: i32,
}

/// Seats of one ticket type in a hold or order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct LineView {
    pub ticket_type_id: Uuid,
    pub ticket_type_name: String,
    pub quantity: i32,
    /// The price of one ticket when the seats were held, in minor units of `currency`.
    pub unit_price_minor: i64,
    /// `unit_price_minor × quantity`.
    pub amount_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    pub name: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub currency: String,
    /// At most this many tickets in one order, across ticket types; `null`: only each type's `max_per_order`.
    pub max_tickets_per_order: Option<i32>,
    pub ticket_types: Vec<TicketTypeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    pub id: Uuid,
    /// Only in the answer that creates the hold: send it back as `Authorization: Bearer <secret>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub status: HoldStatus,
    pub event_id: Uuid,
    pub event_name: String,
    /// Deprecated: the ticket type of a single-line hold (`null` with several lines); read `lines`.
    #[schema(deprecated)]
    pub ticket_type_id: Option<Uuid>,
    /// Deprecated: see `ticket_type_id`.
    #[schema(deprecated)]
    pub ticket_type_name: Option<String>,
    pub name: String,
    pub email: String,
    /// Tickets in all lines.
    pub quantity: i32,
    /// The sum of the lines' amounts.
    pub amount_minor: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The order made from this hold, once checked out.
    pub order_id: Option<Uuid>,
    /// One per ticket type, in the order the buyer asked for them.
    pub lines: Vec<LineView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    /// The ticket's code: it identifies the ticket. Gates take it signed (`signed_code`); bare, only a ticket
    /// issued before codes were derived from a server key, and only online.
    pub code: String,
    /// What the ticket's QR code holds: `code` signed by the event's key, which gates check even offline.
    pub signed_code: String,
    pub ticket_type_id: Uuid,
    pub ticket_type_name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub order_id: Uuid,
    /// `simulated` or `stripe`.
    pub provider: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    /// For Stripe.js `handleNextAction` when `status` is `requires_action`.
    pub client_secret: Option<String>,
    pub failure_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// Only in the checkout answer: send it back as `Authorization: Bearer <secret>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub status: OrderStatus,
    pub event_id: Uuid,
    pub event_name: String,
    /// Deprecated: the ticket type of a single-line hold (`null` with several lines); read `lines`.
    #[schema(deprecated)]
    pub ticket_type_id: Option<Uuid>,
    /// Deprecated: see `ticket_type_id`.
    #[schema(deprecated)]
    pub ticket_type_name: Option<String>,
    pub name: String,
    pub email: String,
    /// Tickets in all lines.
    pub quantity: i32,
    /// The sum of the lines' amounts.
    pub amount_minor: i64,
    pub currency: String,
    /// Pay before this moment or the seats go back on sale.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
    pub tickets: Vec<TicketView>,
    /// The latest payment attempt.
    pub payment: Option<PaymentView>,
    /// One per ticket type, in the order the buyer asked for them.
    pub lines: Vec<LineView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutView {
    pub order: OrderView,
    /// The first payment attempt (simulated gateway); `null` under Stripe until the buyer pays.
    pub payment: Option<PaymentView>,
}

/// The deprecated single-type fields of a hold or order view: set only when it has one line.
pub fn single_type(lines: &[LineView]) -> (Option<Uuid>, Option<String>) {
    match lines {
        [line] => (Some(line.ticket_type_id), Some(line.ticket_type_name.clone())),
        _ => (None, None),
    }
}

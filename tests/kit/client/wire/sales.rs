//! Events, holds, orders and payments: what buyers see.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{nullable, present, rfc3339_nullable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    CheckedOut,
    Released,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    AwaitingPayment,
    Paid,
    Expired,
    Canceled,
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Created,
    Processing,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
    RefundPending,
    Refunded,
    RefundFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulatedOutcome {
    Succeeded,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// With `sold_out` for a hold: the lines that did not fit.
    #[serde(default)]
    pub lines: Vec<Shortfall>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shortfall {
    pub ticket_type_id: Uuid,
    pub requested: i32,
    pub available: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub demo: bool,
    pub gateway: String,
    pub hold_seconds: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub stripe_js_url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub stripe_publishable_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: String,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketType {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    pub available: i32,
    pub max_per_order: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: Uuid,
    pub name: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub currency: String,
    #[serde(deserialize_with = "nullable")]
    pub max_tickets_per_order: Option<i32>,
    pub ticket_types: Vec<TicketType>,
}

/// The one-type body of a hold (the older form; see [`LinesHoldRequest`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldRequest {
    pub ticket_type_id: Uuid,
    pub quantity: i64,
    pub name: String,
    pub email: String,
}

/// A hold of one or more ticket types.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinesHoldRequest {
    pub lines: Vec<LineRequest>,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LineRequest {
    pub ticket_type_id: Uuid,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub ticket_type_id: Uuid,
    pub ticket_type_name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub id: Uuid,
    #[serde(default, deserialize_with = "present")]
    pub secret: Option<String>,
    pub status: HoldStatus,
    pub event_id: Uuid,
    pub event_name: String,
    /// Deprecated by the service: set only for a one-line hold.
    #[serde(deserialize_with = "nullable")]
    pub ticket_type_id: Option<Uuid>,
    #[serde(deserialize_with = "nullable")]
    pub ticket_type_name: Option<String>,
    pub name: String,
    pub email: String,
    pub quantity: i32,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(deserialize_with = "nullable")]
    pub order_id: Option<Uuid>,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    pub code: String,
    pub signed_code: String,
    pub ticket_type_id: Uuid,
    pub ticket_type_name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub provider: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(deserialize_with = "nullable")]
    pub client_secret: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub failure_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: Uuid,
    #[serde(default, deserialize_with = "present")]
    pub secret: Option<String>,
    pub status: OrderStatus,
    pub event_id: Uuid,
    pub event_name: String,
    /// Deprecated by the service: set only for a one-line hold.
    #[serde(deserialize_with = "nullable")]
    pub ticket_type_id: Option<Uuid>,
    #[serde(deserialize_with = "nullable")]
    pub ticket_type_name: Option<String>,
    pub name: String,
    pub email: String,
    pub quantity: i32,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(deserialize_with = "rfc3339_nullable::deserialize")]
    pub paid_at: Option<OffsetDateTime>,
    pub tickets: Vec<Ticket>,
    #[serde(deserialize_with = "nullable")]
    pub payment: Option<Payment>,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    pub order: Order,
    #[serde(deserialize_with = "nullable")]
    pub payment: Option<Payment>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PaymentRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendAccepted {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAck {
    pub received: bool,
    pub duplicate: bool,
}

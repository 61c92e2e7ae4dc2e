//! The organiser's side: events with their counters, refunds, the e-mail outbox, the payments audit.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{nullable, rfc3339_nullable, OrderStatus, PaymentStatus};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTicketType {
    pub name: String,
    pub price_minor: i64,
    pub capacity: i64,
    pub max_per_order: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    pub name: String,
    pub venue: String,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub ticket_types: Vec<NewTicketType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tickets_per_order: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTicketType {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    pub available: i32,
    pub held: i32,
    pub sold: i32,
    pub max_per_order: i32,
    pub revenue_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEvent {
    pub id: Uuid,
    pub name: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub currency: String,
    #[serde(deserialize_with = "super::nullable")]
    pub max_tickets_per_order: Option<i32>,
    /// `admit` or `refuse_while_disputed`.
    pub dispute_policy: String,
    pub revenue_minor: i64,
    pub ticket_types: Vec<AdminTicketType>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundRequest {
    pub release_seats: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    pub order_id: Uuid,
    /// `None` for a free order (no payment).
    #[serde(deserialize_with = "nullable")]
    pub payment_id: Option<Uuid>,
    #[serde(deserialize_with = "nullable")]
    pub payment_status: Option<PaymentStatus>,
    pub seats_released: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRow {
    pub refund_id: Uuid,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub event_name: String,
    pub buyer_email: String,
    pub amount_minor: i64,
    pub payment_amount_minor: i64,
    pub currency: String,
    pub status: RefundStatus,
    pub reason: String,
    pub order_status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub seats_released: bool,
    #[serde(deserialize_with = "nullable")]
    pub refund_ref: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub refund_failure: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatsReleased {
    pub order_id: Uuid,
    pub seats_released: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    MoneyWithoutPaidOrder,
    PaidOrderWithoutMoney,
    ExtraCharge,
    RefundNotReflected,
    AmountMismatch,
    RefundFailed,
    AmountNotChargeable,
    PartialRefund,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mismatch {
    pub kind: MismatchKind,
    #[serde(deserialize_with = "nullable")]
    pub order_id: Option<Uuid>,
    #[serde(deserialize_with = "nullable")]
    pub payment_id: Option<Uuid>,
    #[serde(deserialize_with = "nullable")]
    pub provider_ref: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditReport {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub checked_payments: i64,
    pub provider_objects: i64,
    pub provider_refunds: i64,
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_name: String,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub buyer_email: String,
    pub provider_ref: String,
    /// As Stripe names it.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    pub funds_withdrawn: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    OrderPaid,
    OrderRefunded,
    Resend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Pending,
    Sending,
    Sent,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: MailKind,
    pub recipient: String,
    pub status: MailStatus,
    pub attempts: i32,
    #[serde(deserialize_with = "nullable")]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(deserialize_with = "rfc3339_nullable::deserialize")]
    pub sent_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    pub smtp_configured: bool,
    pub counts: OutboxCounts,
    pub rows: Vec<OutboxRow>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestCheckin {
    pub ticket: String,
    pub device: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    pub order_id: Uuid,
    pub name: String,
    pub email: String,
    pub tickets: Vec<String>,
    pub ticket_types: Vec<String>,
    pub checked_in: Vec<GuestCheckin>,
}

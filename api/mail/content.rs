//! What an e-mail about an order says, read from the database when it is sent.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::links::{self, LinkKey};
use crate::checkin::ticket_keys::TicketKeys;
use crate::domain::money::Money;
use crate::domain::status::OrderStatus;
use crate::sales::orders;

#[derive(Debug, Clone)]
pub struct OrderMail {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub buyer_name: String,
    pub event_name: String,
    pub venue: String,
    pub starts_at: OffsetDateTime,
    /// Ticket type name and count, per line of the order.
    pub lines: Vec<(String, i32)>,
    /// The amount as people read it (`GBP 19.98`).
    pub amount: String,
    /// What each ticket's QR holds (the signed code, as on the order page).
    pub codes: Vec<String>,
    /// The order page with the order's secret in the fragment; `None` when the
    /// secret is not available (no mail key, or sealed under another key).
    pub link: Option<String>,
}

/// `None` when the order does not exist (any more).
pub async fn load(
    pool: &PgPool,
    ticket_keys: &TicketKeys,
    order_id: Uuid,
    public_url: Option<&str>,
    key: Option<&LinkKey>,
) -> Result<Option<OrderMail>, sqlx::Error> {
    let Some(order) = orders::read(pool, ticket_keys, order_id, None).await? else { return Ok(None) };
    let event =
        sqlx::query!("SELECT venue, starts_at FROM events WHERE id = $1", order.event_id).fetch_one(pool).await?;
    let amount = Money::stored(order.amount_minor, &order.currency)?;
    let link = match public_url {
        Some(base) => links::recall(pool, key, order_id)
            .await?
            .map(|secret| format!("{base}/order.html#id={order_id}&secret={secret}")),
        None => None,
    };
    Ok(Some(OrderMail {
        order_id,
        status: order.status,
        buyer_name: order.name,
        event_name: order.event_name,
        venue: event.venue,
        starts_at: event.starts_at,
        lines: order.lines.into_iter().map(|l| (l.ticket_type_name, l.quantity)).collect(),
        amount: amount.to_string(),
        codes: order.tickets.into_iter().map(|t| t.signed_code).collect(),
        link,
    }))
}

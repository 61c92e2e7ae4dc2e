//! What an e-mail about an order says, read from the database when it is sent.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::links::{self, LinkKey};
use crate::checkin::codes::signed_ticket_codes;
use crate::domain::money::Money;
use crate::domain::status::OrderStatus;

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
    order_id: Uuid,
    public_url: Option<&str>,
    key: Option<&LinkKey>,
) -> Result<Option<OrderMail>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        r#"SELECT o.status AS "status: OrderStatus", o.buyer_name, o.event_id, e.name AS event_name, e.venue,
                  e.starts_at, o.hold_id, o.amount_minor, o.currency AS "currency!"
           FROM orders o JOIN events e ON e.id = o.event_id
           WHERE o.id = $1"#,
        order_id
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let codes: Vec<String> =
        signed_ticket_codes(pool, row.event_id, order_id).await?.into_iter().map(|t| t.signed).collect();
    let lines = crate::sales::lines::of_hold(pool, row.hold_id)
        .await?
        .into_iter()
        .map(|l| (l.ticket_type_name, l.quantity))
        .collect();
    let amount = Money::stored(row.amount_minor, &row.currency)?;
    let link = match public_url {
        Some(base) => links::recall(pool, key, order_id)
            .await?
            .map(|secret| format!("{base}/order.html#id={order_id}&secret={secret}")),
        None => None,
    };
    Ok(Some(OrderMail {
        order_id,
        status: row.status,
        buyer_name: row.buyer_name,
        event_name: row.event_name,
        venue: row.venue,
        starts_at: row.starts_at,
        lines,
        amount: amount.to_string(),
        codes,
        link,
    }))
}

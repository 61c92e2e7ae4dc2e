//! DEBUG BUILDS ONLY, and only with `NTS_DEBUG_UNSAFE_SKIP_INVENTORY_GUARD=1`:
//! a deliberately broken way to take seats, so that `nts-torture
//! --break-inventory-guard` can prove it detects overselling. Availability is
//! read in one statement and the seats are taken in another, without the
//! guard, so concurrent buyers can take the same last seats. Release builds do
//! not contain this module.

use std::sync::LazyLock;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::holds::NewHold;
use super::views::HoldView;
use crate::domain::secret::{hash_secret, new_buyer_secret};
use crate::domain::status::HoldStatus;
use crate::error::{ApiError, ApiResult};

static ENABLED: LazyLock<bool> = LazyLock::new(|| {
    let on = std::env::var("NTS_DEBUG_UNSAFE_SKIP_INVENTORY_GUARD").is_ok_and(|v| v.trim() == "1");
    if on {
        tracing::error!(
            "NTS_DEBUG_UNSAFE_SKIP_INVENTORY_GUARD=1: holds skip the inventory guard; this instance WILL oversell"
        );
    }
    on
});

pub fn enabled() -> bool {
    *ENABLED
}

/// The read-then-write race the real `take_seats` exists to prevent.
pub async fn take_seats(pool: &PgPool, hold: &NewHold, hold_seconds: i64) -> ApiResult<HoldView> {
    let available = sqlx::query_scalar!(
        r#"SELECT capacity - sold - held AS "available!" FROM ticket_types WHERE id = $1 AND event_id = $2"#,
        hold.ticket_type_id,
        hold.event_id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(ApiError::NotFound("no such ticket type"))?;
    if available < hold.quantity {
        return Err(ApiError::sold_out());
    }
    // Widens the window so the race shows on a quiet machine too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = Uuid::new_v4();
    let secret = new_buyer_secret();
    let r = sqlx::query!(
        r#"WITH taken AS (
               UPDATE ticket_types SET held = held + $3 WHERE id = $2 RETURNING id, name, price_minor
           ), ins AS (
               INSERT INTO holds (id, secret_hash, event_id, ticket_type_id, buyer_name, buyer_email,
                                  quantity, amount_minor, currency, expires_at)
               SELECT $1, $4, e.id, taken.id, $6, $7, $3, taken.price_minor * $3, e.currency,
                      now() + make_interval(secs => $8)
               FROM taken JOIN events e ON e.id = $5
               RETURNING amount_minor, currency, expires_at
           )
           SELECT ins.amount_minor, ins.currency AS "currency!", ins.expires_at,
                  taken.name AS ticket_type_name, e.name AS event_name
           FROM ins, taken, events e WHERE e.id = $5"#,
        id,
        hold.ticket_type_id,
        hold.quantity,
        hash_secret(&secret),
        hold.event_id,
        hold.name.as_str(),
        hold.email.as_str(),
        hold_seconds as f64,
    )
    .fetch_one(pool)
    .await?;
    Ok(HoldView {
        id,
        secret: Some(secret),
        status: HoldStatus::Active,
        event_id: hold.event_id,
        event_name: r.event_name,
        ticket_type_id: hold.ticket_type_id,
        ticket_type_name: r.ticket_type_name,
        name: hold.name.as_str().to_owned(),
        email: hold.email.as_str().to_owned(),
        quantity: hold.quantity,
        amount_minor: r.amount_minor,
        currency: r.currency,
        expires_at: r.expires_at,
        order_id: None,
    })
}

//! ONLY WITH CARGO FEATURE `broken-oversell`, and only with
//! `NTS_DEBUG_UNSAFE_SKIP_INVENTORY_GUARD=1`: a deliberately broken way to take
//! seats, so that `nts-torture --break-inventory-guard` can prove it detects
//! overselling. Availability is read in one statement and the seats are taken
//! in another, without the guard, so concurrent buyers can take the same last
//! seats. Builds without the feature do not contain this module.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::hold_rules::{first_fit, refusal, Facts, NewHold, TypeFacts};
use super::seats::{self, Claim, Locked};
use super::views::{single_type, HoldView};
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
    let mut facts = Facts {
        event_name: String::new(),
        currency: String::new(),
        on_sale: true,
        max_tickets_per_order: None,
        types: HashMap::new(),
    };
    for line in hold.lines.iter() {
        // Not checked at compile time: `.sqlx/` is prepared without this feature.
        let row: Option<(String, String, Option<i32>, String, i64, i32, i32)> = sqlx::query_as(
            "SELECT e.name, e.currency, e.max_tickets_per_order, t.name, t.price_minor, t.max_per_order,
                    t.capacity - t.sold - t.held
             FROM ticket_types t JOIN events e ON e.id = t.event_id WHERE t.id = $1 AND t.event_id = $2",
        )
        .bind(line.ticket_type_id)
        .bind(hold.event_id)
        .fetch_optional(pool)
        .await?;
        let Some((event_name, currency, per_order, name, price_minor, max_per_order, free)) = row else { continue };
        (facts.event_name, facts.currency, facts.max_tickets_per_order) = (event_name, currency, per_order);
        facts.types.insert(line.ticket_type_id, TypeFacts { name, price_minor, max_per_order, free });
    }
    if let Some(why) = refusal(Some(&facts), &hold.lines) {
        return Err(ApiError::from(why));
    }
    let mut free = facts.types.iter().map(|(id, t)| (*id, t.free)).collect();
    if let Some(Err(lines)) = first_fit(&mut free, std::iter::once(hold.lines.as_slice())).pop() {
        return Err(ApiError::SoldOut { lines });
    }
    // Widens the window so the race shows on a quiet machine too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = Uuid::new_v4();
    let secret = new_buyer_secret();
    let secret_hash = hash_secret(&secret);
    let claim = Claim {
        id,
        secret_hash: &secret_hash,
        name: hold.name.as_str(),
        email: hold.email.as_str(),
        lines: hold.lines.as_slice(),
        hold_seconds: hold_seconds as f64,
        origin: None,
    };
    let priced = seats::price(&Locked::unlocked(facts), vec![claim])?;
    seats::store(pool, hold.event_id, &priced, &[]).await?;
    let (_, r) = priced.holds().next().ok_or_else(ApiError::sold_out)?;
    let r = r.clone();
    let (ticket_type_id, ticket_type_name) = single_type(&r.lines);
    Ok(HoldView {
        id,
        secret: Some(secret),
        status: HoldStatus::Active,
        event_id: hold.event_id,
        event_name: r.event_name,
        ticket_type_id,
        ticket_type_name,
        name: hold.name.as_str().to_owned(),
        email: hold.email.as_str().to_owned(),
        quantity: hold.lines.total(),
        amount_minor: r.amount.minor(),
        currency: r.amount.currency().to_string(),
        expires_at: r.expires_at,
        order_id: None,
        lines: r.lines,
    })
}

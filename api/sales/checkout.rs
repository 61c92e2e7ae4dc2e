//! Checkout, the sale's side: a live hold becomes an order awaiting payment,
//! which takes over the hold's seats (the counters do not move).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::holds::{fetch_hold, not_active};
use super::lines;
use super::views::{single_type, OrderView};
use crate::caller::BuyerSecret;
use crate::domain::status::{checked, HoldStatus, OrderStatus};
use crate::error::{ApiError, ApiResult};

/// In one statement: the hold, if active, live and opened by `hold_secret_hash`,
/// becomes checked out, and its order is created with the hold's price and
/// seats, to be paid within `order_seconds`. `None` if the hold could not be
/// checked out. The view has no secret and no payment yet.
pub async fn take_over(
    tx: &mut PgConnection,
    hold_id: Uuid,
    hold_secret_hash: &[u8],
    order_secret_hash: &[u8],
    order_seconds: f64,
) -> Result<Option<OrderView>, sqlx::Error> {
    let (from, to) = checked(&[HoldStatus::Active], HoldStatus::CheckedOut);
    let created = sqlx::query!(
        r#"WITH hold AS (
               UPDATE holds SET status = $7, finished_at = now()
               WHERE id = $1 AND secret_hash = $2 AND status = ANY($6) AND expires_at > clock_timestamp()
               RETURNING *
           ), ins AS (
               INSERT INTO orders (id, secret_hash, hold_id, event_id, buyer_name, buyer_email,
                                   quantity, amount_minor, currency, expires_at, client_address)
               SELECT $3, $4, hold.id, hold.event_id, hold.buyer_name, hold.buyer_email,
                      hold.quantity, hold.amount_minor, hold.currency, clock_timestamp() + make_interval(secs => $5),
                      hold.client_address
               FROM hold
               RETURNING *
           )
           SELECT ins.id, ins.event_id, e.name AS event_name,
                  ins.buyer_name, ins.buyer_email, ins.quantity, ins.amount_minor, ins.currency AS "currency!",
                  ins.expires_at
           FROM ins JOIN events e ON e.id = ins.event_id"#,
        hold_id,
        hold_secret_hash,
        Uuid::new_v4(),
        order_secret_hash,
        order_seconds,
        from as &[HoldStatus],
        to as HoldStatus,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(o) = created else { return Ok(None) };
    let lines = lines::of_hold(&mut *tx, hold_id).await?;
    let (ticket_type_id, ticket_type_name) = single_type(&lines);
    Ok(Some(OrderView {
        id: o.id,
        secret: None,
        status: OrderStatus::AwaitingPayment,
        event_id: o.event_id,
        event_name: o.event_name,
        ticket_type_id,
        ticket_type_name,
        name: o.buyer_name,
        email: o.buyer_email,
        quantity: o.quantity,
        amount_minor: o.amount_minor,
        currency: o.currency,
        expires_at: o.expires_at,
        paid_at: None,
        tickets: Vec::new(),
        payment: None,
        lines,
    }))
}

/// The order an earlier checkout of this hold made (by a request whose answer
/// never arrived: it had no key, or another one); otherwise why the hold
/// cannot be checked out.
pub async fn earlier_order(pool: &PgPool, hold_id: Uuid, secret: &BuyerSecret) -> ApiResult<Uuid> {
    let view = fetch_hold(pool, hold_id, secret).await?;
    match view.order_id.filter(|_| view.status == HoldStatus::CheckedOut) {
        Some(order_id) => Ok(order_id),
        None => Err::<Uuid, ApiError>(not_active(&view)),
    }
}

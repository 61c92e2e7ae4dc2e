//! Checkout, the sale's side: a live hold becomes an order awaiting payment,
//! which takes over the hold's seats (the counters do not move).

use std::collections::HashSet;

use sqlx::PgConnection;
use uuid::Uuid;

use super::lines;
use super::views::{single_type, OrderView};
use crate::domain::status::{checked, HoldStatus, OrderStatus};

/// One hold to check out: the buyer's proof, and the order it is to become.
pub struct TakeOver<'a> {
    pub hold_id: Uuid,
    pub hold_secret_hash: &'a [u8],
    pub order_id: Uuid,
    pub order_secret_hash: &'a [u8],
}

/// Every hold of `requests` that is active, live and opened by its
/// `hold_secret_hash` becomes checked out, and its order is created with the
/// hold's price and seats, to be paid within `order_seconds`. Answers the
/// orders created (by their ids, which the requests chose); a request
/// without one could not check its hold out. The views have no secret and no
/// payment yet.
///
/// The holds are locked in id order first, so two transactions that check
/// out some of the same holds (a buyer's retries sent to two instances) wait
/// for each other in one order and cannot deadlock. A hold named twice
/// becomes one order, of the first request naming it.
pub async fn take_over_all(
    tx: &mut PgConnection,
    requests: &[TakeOver<'_>],
    order_seconds: f64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    let (from, to) = checked(&[HoldStatus::Active], HoldStatus::CheckedOut);
    let mut named = HashSet::with_capacity(requests.len());
    let requests: Vec<&TakeOver> = requests.iter().filter(|r| named.insert(r.hold_id)).collect();
    let hold_ids: Vec<Uuid> = requests.iter().map(|r| r.hold_id).collect();
    if requests.len() > 1 {
        sqlx::query!(
            "SELECT id FROM holds WHERE id = ANY($1) AND status = ANY($2) ORDER BY id FOR UPDATE",
            &hold_ids,
            from as &[HoldStatus],
        )
        .fetch_all(&mut *tx)
        .await?;
    }
    let hold_hashes: Vec<&[u8]> = requests.iter().map(|r| r.hold_secret_hash).collect();
    let order_ids: Vec<Uuid> = requests.iter().map(|r| r.order_id).collect();
    let order_hashes: Vec<&[u8]> = requests.iter().map(|r| r.order_secret_hash).collect();
    let created = sqlx::query!(
        r#"WITH req AS (
               SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::uuid[], $4::bytea[])
                             AS r(hold_id, hold_secret_hash, order_id, order_secret_hash)
           ), hold AS (
               UPDATE holds h SET status = $7, finished_at = now()
               FROM req
               WHERE h.id = req.hold_id AND h.secret_hash = req.hold_secret_hash
                 AND h.status = ANY($6) AND h.expires_at > clock_timestamp()
               RETURNING h.id, h.event_id, h.buyer_name, h.buyer_email, h.quantity, h.amount_minor, h.currency,
                         h.client_address, h.client_network, req.order_id, req.order_secret_hash
           ), ins AS (
               INSERT INTO orders (id, secret_hash, hold_id, event_id, buyer_name, buyer_email,
                                   quantity, amount_minor, currency, expires_at, client_address, client_network)
               SELECT hold.order_id, hold.order_secret_hash, hold.id, hold.event_id, hold.buyer_name,
                      hold.buyer_email, hold.quantity, hold.amount_minor, hold.currency,
                      clock_timestamp() + make_interval(secs => $5), hold.client_address, hold.client_network
               FROM hold
               RETURNING *
           )
           SELECT ins.id, ins.hold_id, ins.event_id, e.name AS event_name,
                  ins.buyer_name, ins.buyer_email, ins.quantity, ins.amount_minor, ins.currency AS "currency!",
                  ins.expires_at
           FROM ins JOIN events e ON e.id = ins.event_id"#,
        &hold_ids,
        &hold_hashes as &[&[u8]],
        &order_ids,
        &order_hashes as &[&[u8]],
        order_seconds,
        from as &[HoldStatus],
        to as HoldStatus,
    )
    .fetch_all(&mut *tx)
    .await?;
    if created.is_empty() {
        return Ok(Vec::new());
    }
    let taken: Vec<Uuid> = created.iter().map(|o| o.hold_id).collect();
    let mut lines = lines::of_holds(&mut *tx, &taken).await?;
    Ok(created
        .into_iter()
        .map(|o| {
            let lines = lines.remove(&o.hold_id).unwrap_or_default();
            let (ticket_type_id, ticket_type_name) = single_type(&lines);
            OrderView {
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
            }
        })
        .collect())
}

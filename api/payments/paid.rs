//! Orders becoming paid, in group commits. Every paid order moves its seats
//! from `held` to `sold` on its ticket types' counter rows, which every sale
//! of the event shares; one transaction per payment is capped by those rows'
//! locks and by one WAL flush each. Concurrent successes in this instance
//! (buyers confirming, webhooks, the reconciler) join one queue, and one
//! transaction records all of them: a few statements whatever their number,
//! each counter locked and changed once.
//!
//! Nothing is given up: the batch takes the one lock order of nts (orders,
//! then payments, each in id order, then the counters in id order), so it
//! waits for and is waited on by single transactions and other instances'
//! batches without deadlock; every change is a guarded transition, so a
//! payment recorded twice (by two batches, or by a batch that failed and its
//! payments alone) is recorded once. If a batch fails, each of its payments
//! is recorded in a transaction of its own.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use uuid::Uuid;

use super::payment_status;
use super::refund_rows::{self, RefundReason};
use crate::batching::{Batches, Member};
use crate::checkin::ticket_keys::{code_hash, TicketKeys};
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::idempotency::{store::answer_all, KeyRecord};
use crate::mail::outbox::{self, MailKind};
use crate::sales::order_status::{self, Moved};
use crate::sales::seats::{self, Move};

/// Most payments in one transaction; more wait for the next one.
const MAX_BATCH: usize = 500;

/// The states a payment can succeed from: also a failed or canceled attempt,
/// when the provider took the money after all.
const MAY_SUCCEED: [PaymentStatus; 5] = [
    PaymentStatus::Created,
    PaymentStatus::Processing,
    PaymentStatus::RequiresAction,
    PaymentStatus::Failed,
    PaymentStatus::Canceled,
];

/// This instance's queue of successful payments to record; cheap to clone.
#[derive(Clone)]
pub struct PaidBatcher {
    pool: PgPool,
    /// Derive the codes of the tickets issued.
    keys: TicketKeys,
    batches: Batches<(), Paying, Option<PaymentStatus>>,
}

/// A successful payment to record, with the answer its request's
/// Idempotency-Key gets if the payment ends succeeded.
struct Paying {
    payment_id: Uuid,
    answer: Option<KeyRecord>,
}

impl PaidBatcher {
    pub fn new(pool: PgPool, keys: TicketKeys) -> Self {
        PaidBatcher { pool, keys, batches: Batches::new(MAX_BATCH) }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn ticket_keys(&self) -> &TicketKeys {
        &self.keys
    }

    /// The provider took the money of `payment_id`. If its order still awaits
    /// payment it becomes paid and its tickets are issued; otherwise (paid by
    /// another attempt, expired, canceled) the money is owed back and the
    /// payment waits for the reconciler to refund it. Answers the payment's
    /// status afterwards.
    pub async fn record(&self, payment_id: Uuid) -> Result<PaymentStatus, sqlx::Error> {
        self.record_answering(payment_id, None).await
    }

    /// As [`record`](Self::record); if the payment ends succeeded, `answer`
    /// (what its request's Idempotency-Key answers then) is stored in the
    /// same transaction.
    pub async fn record_answering(
        &self,
        payment_id: Uuid,
        answer: Option<KeyRecord>,
    ) -> Result<PaymentStatus, sqlx::Error> {
        let (pool, keys) = (self.pool.clone(), self.keys.clone());
        let paying = Paying { payment_id, answer: answer.clone() };
        let batched =
            self.batches.join((), paying, move |(), members| serve(pool.clone(), keys.clone(), members)).await;
        if let Some(Some(status)) = batched {
            return Ok(status);
        }
        let answers: Vec<(Uuid, &KeyRecord)> = answer.iter().map(|a| (payment_id, a)).collect();
        record_all(&self.pool, &self.keys, &[payment_id], &answers)
            .await?
            .remove(&payment_id)
            .ok_or(sqlx::Error::RowNotFound)
    }
}

async fn serve(pool: PgPool, keys: TicketKeys, members: Vec<Member<Paying, Option<PaymentStatus>>>) {
    let mut ids: Vec<Uuid> = members.iter().map(|m| m.item.payment_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let answers: Vec<(Uuid, &KeyRecord)> =
        members.iter().filter_map(|m| Some((m.item.payment_id, m.item.answer.as_ref()?))).collect();
    match record_all(&pool, &keys, &ids, &answers).await {
        Ok(statuses) => members.into_iter().for_each(|m| {
            let status = statuses.get(&m.item.payment_id).copied();
            m.answer(status)
        }),
        Err(e) => {
            tracing::warn!(error = %e, payments = ids.len(), "recording a batch of paid orders failed; each goes alone");
            members.into_iter().for_each(|m| m.answer(None));
        }
    }
}

/// Records the success of every payment of `ids` in one transaction, with
/// the `answers` of the payments that end succeeded; answers the status of
/// each payment that exists.
pub async fn record_all(
    pool: &PgPool,
    keys: &TicketKeys,
    ids: &[Uuid],
    answers: &[(Uuid, &KeyRecord)],
) -> Result<HashMap<Uuid, PaymentStatus>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let orders = sqlx::query!(
        r#"SELECT id, status AS "status: OrderStatus" FROM orders
           WHERE id IN (SELECT order_id FROM payments WHERE id = ANY($1))
           ORDER BY id
           FOR UPDATE"#,
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let payments = sqlx::query!(
        r#"SELECT id, status AS "status: PaymentStatus", order_id FROM payments
           WHERE id = ANY($1)
           ORDER BY id
           FOR UPDATE"#,
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let awaiting: HashSet<Uuid> =
        orders.iter().filter(|o| o.status == OrderStatus::AwaitingPayment).map(|o| o.id).collect();
    let mut statuses = HashMap::with_capacity(payments.len());
    let (mut paying, mut owed, mut paid_orders) = (Vec::new(), Vec::new(), HashSet::new());
    for p in &payments {
        let status = if !MAY_SUCCEED.contains(&p.status) {
            p.status
        } else if awaiting.contains(&p.order_id) && paid_orders.insert(p.order_id) {
            tracing::info!(payment_id = %p.id, order_id = %p.order_id, "order paid");
            paying.push(p.id);
            PaymentStatus::Succeeded
        } else {
            // Paid already (maybe by another payment of this batch), expired or canceled.
            tracing::warn!(payment_id = %p.id, order_id = %p.order_id,
                "payment succeeded for an order that cannot take it; refunding");
            owed.push(p.id);
            PaymentStatus::RefundPending
        };
        statuses.insert(p.id, status);
    }
    let answered: Vec<&KeyRecord> = answers
        .iter()
        .filter(|(id, _)| statuses.get(id) == Some(&PaymentStatus::Succeeded))
        .map(|(_, answer)| *answer)
        .collect();
    if !answered.is_empty() {
        answer_all(&mut *tx, &answered).await?;
    }
    if !owed.is_empty() {
        let moved = payment_status::transition_all(&mut *tx, &owed, &MAY_SUCCEED, PaymentStatus::RefundPending).await?;
        refund_rows::owe_all(&mut tx, &moved, Some(RefundReason::OrderCannotTakePayment)).await?;
    }
    if !paying.is_empty() {
        payment_status::transition_all(&mut *tx, &paying, &MAY_SUCCEED, PaymentStatus::Succeeded).await?;
        let order_ids: Vec<Uuid> = paid_orders.into_iter().collect();
        // Last before the commit: it moves the counters, every sale's rows, whose locks are held as briefly as can be.
        make_paid(&mut tx, keys, &order_ids).await?;
    }
    tx.commit().await?;
    Ok(statuses)
}

/// A ticket [`make_paid`] issued.
pub struct Issued {
    pub order_id: Uuid,
    /// Derived from the ticket's id: shown to its buyer, never stored.
    pub code: String,
    pub ticket_type_id: Uuid,
}

/// The one place an order becomes paid: each order of `order_ids` still
/// awaiting payment (locked by the caller, or made by its transaction) moves
/// to `paid`, gets its tickets and its e-mail, and its seats move from held
/// to sold, last (the counter rows are every sale's). The caller decides what
/// pays it: a succeeded payment ([`record_all`]), or nothing for an order of
/// total zero (a free order, at its checkout). Answers the orders that moved
/// and their tickets.
pub async fn make_paid(
    tx: &mut sqlx::PgConnection,
    keys: &TicketKeys,
    order_ids: &[Uuid],
) -> Result<(Vec<Moved>, Vec<Issued>), sqlx::Error> {
    let moved =
        order_status::transition_all(&mut *tx, order_ids, &[OrderStatus::AwaitingPayment], OrderStatus::Paid).await?;
    if moved.is_empty() {
        return Ok((moved, Vec::new()));
    }
    let issued = issue_tickets(&mut *tx, keys, &moved).await?;
    let paid: Vec<Uuid> = moved.iter().map(|m| m.id).collect();
    outbox::enqueue_all(&mut *tx, &paid, MailKind::OrderPaid).await?;
    let hold_ids: Vec<Uuid> = moved.iter().map(|m| m.hold_id).collect();
    seats::move_seats_of(&mut *tx, &hold_ids, Move::Sell).await?;
    Ok((moved, issued))
}

/// One ticket per seat of each paid order's lines, numbered from 1 within
/// its order in the lines' order. Each code is derived from the ticket's id
/// with the newest ticket key; the table keeps its hash and the key's id.
async fn issue_tickets(
    tx: &mut sqlx::PgConnection,
    keys: &TicketKeys,
    orders: &[Moved],
) -> Result<Vec<Issued>, sqlx::Error> {
    let hold_ids: Vec<Uuid> = orders.iter().map(|o| o.hold_id).collect();
    // Planned afresh at every execution, as `lines::of_holds` (see there why).
    let lines: Vec<(Uuid, Uuid, i32, Uuid)> = sqlx::query_as(
        "SELECT l.hold_id, l.ticket_type_id, l.quantity, t.event_id
         FROM hold_lines l JOIN ticket_types t ON t.id = l.ticket_type_id
         WHERE l.hold_id = ANY($1) ORDER BY l.hold_id, l.position",
    )
    .bind(&hold_ids)
    .persistent(false)
    .fetch_all(&mut *tx)
    .await?;
    let order_of: HashMap<Uuid, Uuid> = orders.iter().map(|o| (o.hold_id, o.id)).collect();
    let mut issued = Vec::new();
    let (mut ids, mut events, mut hashes, mut order_ids, mut types, mut positions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let key_id = keys.newest_id();
    let mut next: HashMap<Uuid, i32> = HashMap::new();
    for (hold_id, ticket_type_id, quantity, event_id) in lines {
        let Some(&order_id) = order_of.get(&hold_id) else { continue };
        for _ in 0..quantity {
            let position = next.entry(order_id).or_insert(0);
            *position += 1;
            let id = Uuid::new_v4();
            let (code, _) = keys.new_code(event_id, id);
            ids.push(id);
            events.push(event_id);
            hashes.push(code_hash(&code));
            order_ids.push(order_id);
            types.push(ticket_type_id);
            positions.push(*position);
            issued.push(Issued { order_id, code, ticket_type_id });
        }
    }
    sqlx::query!(
        "INSERT INTO tickets (event_id, id, code_hash, key_id, order_id, ticket_type_id, position)
         SELECT u.event_id, u.id, u.code_hash, $4, u.order_id, u.ticket_type_id, u.position
         FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $5::uuid[], $6::uuid[], $7::int4[])
              AS u(event_id, id, code_hash, order_id, ticket_type_id, position)",
        &events,
        &ids,
        &hashes,
        &key_id[..],
        &order_ids,
        &types,
        &positions
    )
    .execute(&mut *tx)
    .await?;
    Ok(issued)
}

#[cfg(test)]
mod tests;

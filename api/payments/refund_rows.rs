//! The rows of `refunds`, one per refund at the provider, and the one way
//! each changes: a refund nts asks for is recorded (`pending`, with its
//! idempotency key) in the transaction that decides the money goes back,
//! before the provider is called; the provider's answer or news names the row
//! by the provider's refund id (or, before that is recorded, by the key the
//! refund carries), and moves it with a guarded transition.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::status::{checked, OrderStatus, RefundStatus};

/// Why money goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundReason {
    /// An admin refunded the order.
    RequestedByOrganiser,
    /// The provider took money for an order that could not take it (paid already, expired, canceled).
    OrderCannotTakePayment,
    /// Made at the provider without nts (Stripe's dashboard, say), found in its news.
    OutsideNts,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::RequestedByOrganiser => "requested_by_organiser",
            RefundReason::OrderCannotTakePayment => "order_cannot_take_payment",
            RefundReason::OutsideNts => "outside_nts",
        }
    }
}

/// A refund row, as the code that moves it reads it.
#[derive(Debug, Clone)]
pub struct RefundRow {
    pub event_id: Uuid,
    pub id: Uuid,
    pub payment_id: Uuid,
    pub idempotency_key: Option<String>,
    pub provider_ref: Option<String>,
    pub status: RefundStatus,
}

/// Records a pending refund of what is left of each payment of `payment_ids`
/// (its amount less what went back or is on its way), under the payment's
/// next refund key. A payment with a pending refund of nts's, or with nothing
/// left, gets none. `reason` `None`: the organiser's if the order is
/// refunded, otherwise the order could not take the money. Answers how many
/// rows were made.
pub async fn owe_all(
    db: &mut PgConnection,
    payment_ids: &[Uuid],
    reason: Option<RefundReason>,
) -> Result<u64, sqlx::Error> {
    // The key's number counts on from the payment's older single refund key
    // (`refund_key_seq`), so no key Stripe stored an answer under is reused.
    let done = sqlx::query!(
        r#"INSERT INTO refunds (event_id, id, payment_id, idempotency_key, amount_minor, currency, reason)
           SELECT o.event_id, gen_random_uuid(), p.id,
                  'nts-refund-' || p.id
                      || CASE WHEN n.ours + p.refund_key_seq > 0 THEN '-' || (n.ours + p.refund_key_seq) ELSE '' END,
                  p.amount_minor - n.back, p.currency,
                  COALESCE($2, CASE WHEN o.status = $5 THEN $6 ELSE $7 END)
           FROM payments p JOIN orders o ON o.id = p.order_id
           CROSS JOIN LATERAL (
               SELECT COUNT(r.idempotency_key) AS ours,
                      COALESCE(SUM(r.amount_minor) FILTER (WHERE r.status = ANY($3)), 0) AS back,
                      COUNT(*) FILTER (WHERE r.idempotency_key IS NOT NULL AND r.status = $4) AS ours_pending
               FROM refunds r WHERE r.payment_id = p.id) n
           WHERE p.id = ANY($1) AND n.ours_pending = 0 AND p.amount_minor > n.back
           ON CONFLICT (idempotency_key, event_id) DO NOTHING"#,
        payment_ids,
        reason.map(RefundReason::as_str),
        &[RefundStatus::Pending, RefundStatus::Succeeded] as &[RefundStatus],
        RefundStatus::Pending as RefundStatus,
        OrderStatus::Refunded as OrderStatus,
        RefundReason::RequestedByOrganiser.as_str(),
        RefundReason::OrderCannotTakePayment.as_str(),
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The payment's refund that nts asked for and that has not ended, if any (at most one).
pub async fn pending_of(db: impl PgExecutor<'_>, payment_id: Uuid) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as!(
        RefundRow,
        r#"SELECT event_id, id, payment_id, idempotency_key, provider_ref, status AS "status: RefundStatus"
           FROM refunds WHERE payment_id = $1 AND status = $2 AND idempotency_key IS NOT NULL
           ORDER BY created_at DESC, id DESC LIMIT 1"#,
        payment_id,
        RefundStatus::Pending as RefundStatus,
    )
    .fetch_optional(db)
    .await
}

/// The payment's pending refunds made outside nts.
pub async fn pending_outside(db: impl PgExecutor<'_>, payment_id: Uuid) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as!(
        RefundRow,
        r#"SELECT event_id, id, payment_id, idempotency_key, provider_ref, status AS "status: RefundStatus"
           FROM refunds WHERE payment_id = $1 AND status = $2 AND idempotency_key IS NULL
           ORDER BY created_at, id"#,
        payment_id,
        RefundStatus::Pending as RefundStatus,
    )
    .fetch_all(db)
    .await
}

pub async fn by_provider_ref(db: impl PgExecutor<'_>, provider_ref: &str) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as!(
        RefundRow,
        r#"SELECT event_id, id, payment_id, idempotency_key, provider_ref, status AS "status: RefundStatus"
           FROM refunds WHERE provider_ref = $1"#,
        provider_ref
    )
    .fetch_optional(db)
    .await
}

pub async fn by_key(db: impl PgExecutor<'_>, key: &str) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as!(
        RefundRow,
        r#"SELECT event_id, id, payment_id, idempotency_key, provider_ref, status AS "status: RefundStatus"
           FROM refunds WHERE idempotency_key = $1"#,
        key
    )
    .fetch_optional(db)
    .await
}

/// Records the provider's refund id (and its amount) on nts's row that has
/// none yet. A row adopted from the provider's news for that very refund
/// before nts's answer was recorded (news without nts's key) gives way: it was
/// nts's refund all along.
pub async fn attach(
    db: &mut PgConnection,
    row: &RefundRow,
    provider_ref: &str,
    amount_minor: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(db).await?;
    sqlx::query!(
        "DELETE FROM refunds WHERE provider_ref = $1 AND event_id = $2 AND payment_id = $3 AND idempotency_key IS NULL",
        provider_ref,
        row.event_id,
        row.payment_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE refunds SET provider_ref = $3, amount_minor = $4, updated_at = now()
         WHERE event_id = $1 AND id = $2 AND provider_ref IS NULL",
        row.event_id,
        row.id,
        provider_ref,
        amount_minor
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A refund made without nts, for a payment of nts's (found by the
/// provider's PaymentIntent): recorded as pending with its amount, once.
/// Answers its row, or `None` if no payment of nts's has that PaymentIntent.
pub async fn adopt(
    db: &mut PgConnection,
    payment_ref: &str,
    provider_ref: &str,
    amount_minor: i64,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let made = sqlx::query!(
        "INSERT INTO refunds (event_id, id, payment_id, provider_ref, amount_minor, currency, reason)
         SELECT o.event_id, gen_random_uuid(), p.id, $2, $3, p.currency, $4
         FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE p.provider_ref = $1
         ON CONFLICT (provider_ref, event_id) DO NOTHING",
        payment_ref,
        provider_ref,
        amount_minor,
        RefundReason::OutsideNts.as_str(),
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    if made == 1 {
        tracing::warn!(provider_ref, payment_ref, amount_minor, "a refund made outside nts was found and recorded");
    }
    by_provider_ref(&mut *db, provider_ref).await
}

/// Moves the refund to `to` if it is in one of `from` (with why it failed,
/// if it did); answers the new status, or `None` if it was not moved.
pub async fn transition(
    db: impl PgExecutor<'_>,
    row: &RefundRow,
    from: &[RefundStatus],
    to: RefundStatus,
    failure: Option<&str>,
) -> Result<Option<RefundStatus>, sqlx::Error> {
    let (from, to) = checked(from, to);
    sqlx::query_scalar!(
        r#"UPDATE refunds SET status = $4, failure = COALESCE($5, failure), updated_at = now()
           WHERE event_id = $1 AND id = $2 AND status = ANY($3)
           RETURNING status AS "status: RefundStatus""#,
        row.event_id,
        row.id,
        from as &[RefundStatus],
        to as RefundStatus,
        failure,
    )
    .fetch_optional(db)
    .await
}

//! The one way a payment attempt's status changes (see [`PaymentStatus`]'s state machine).

use sqlx::PgExecutor;
use uuid::Uuid;

use super::attempt::Attempt;
use crate::domain::status::{checked, PaymentStatus};

/// Columns a transition may set with the status (`None` keeps what is
/// stored), and the refund it must still be following.
#[derive(Debug, Default, Clone, Copy)]
pub struct Also<'a> {
    pub failure_code: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub refund_ref: Option<&'a str>,
    pub refund_failure: Option<&'a str>,
    /// The reconciler leaves the payment alone for this many seconds.
    pub check_in_secs: Option<f64>,
    /// A new refund under the next refund key: the last refund's reference and failure are cleared.
    pub new_refund: bool,
    /// Moves only while the payment follows this refund (`Some(None)`: none
    /// yet). News of a refund read before an admin asked for a new one must
    /// not move the payment that now follows the new one.
    pub following: Option<Option<&'a str>>,
}

/// Moves the payment to `to` if it is in one of `from`; answers the new status, or `None` if it was not moved.
pub async fn transition(
    db: impl PgExecutor<'_>,
    payment_id: Uuid,
    from: &[PaymentStatus],
    to: PaymentStatus,
    also: Also<'_>,
) -> Result<Option<PaymentStatus>, sqlx::Error> {
    let (from, to) = checked(from, to);
    sqlx::query_scalar!(
        r#"UPDATE payments SET status = $3, updated_at = now(),
                  failure_code = COALESCE($4, failure_code), client_secret = COALESCE($5, client_secret),
                  refund_ref = CASE WHEN $9 THEN NULL ELSE COALESCE($6, refund_ref) END,
                  refund_failure = CASE WHEN $9 THEN NULL ELSE COALESCE($7, refund_failure) END,
                  refund_key_seq = refund_key_seq + CASE WHEN $9 THEN 1 ELSE 0 END,
                  next_check_at = COALESCE(now() + make_interval(secs => $8), next_check_at)
           WHERE id = $1 AND status = ANY($2) AND (NOT $10 OR refund_ref IS NOT DISTINCT FROM $11)
           RETURNING status AS "status: PaymentStatus""#,
        payment_id,
        from as &[PaymentStatus],
        to as PaymentStatus,
        also.failure_code,
        also.client_secret,
        also.refund_ref,
        also.refund_failure,
        also.check_in_secs,
        also.new_refund,
        also.following.is_some(),
        also.following.flatten(),
    )
    .fetch_optional(db)
    .await
}

/// Moves every payment of `ids` that is in one of `from` to `to` (no other
/// column changes); answers the ids it moved.
pub async fn transition_all(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    from: &[PaymentStatus],
    to: PaymentStatus,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (from, to) = checked(from, to);
    sqlx::query_scalar!(
        "UPDATE payments SET status = $3, updated_at = now() WHERE id = ANY($1) AND status = ANY($2) RETURNING id",
        ids,
        from as &[PaymentStatus],
        to as PaymentStatus,
    )
    .fetch_all(db)
    .await
}

/// The attempt `payment_id`, read for its buyer's confirmation (only if
/// `order_secret_hash` is its order's), as it was before this statement; if
/// it awaits confirmation at the provider (`created`, its provider object
/// recorded), the same statement moves it to `processing`, since the
/// confirmation is sent next. One statement on every purchase's path.
pub async fn begin_confirmation(
    db: impl PgExecutor<'_>,
    payment_id: Uuid,
    order_secret_hash: &[u8],
) -> Result<Option<Attempt>, sqlx::Error> {
    let (from, to) = checked(&[PaymentStatus::Created], PaymentStatus::Processing);
    // The main query reads the statement's snapshot, which the CTE's update
    // is not in: the attempt as it was.
    sqlx::query_as!(
        Attempt,
        r#"WITH moved AS (
               UPDATE payments p SET status = $4, updated_at = now()
               FROM orders o
               WHERE p.id = $1 AND o.id = p.order_id AND o.secret_hash = $2
                 AND p.status = ANY($3) AND p.provider_ref IS NOT NULL
               RETURNING p.id
           )
           SELECT p.id, p.order_id, p.provider, p.status AS "status: PaymentStatus", p.provider_ref,
                  p.idempotency_key, p.amount_minor, p.currency AS "currency!", p.payment_method, p.return_url,
                  p.client_secret, p.failure_code, p.create_error_stored, p.created_at
           FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE p.id = $1 AND o.secret_hash = $2"#,
        payment_id,
        order_secret_hash,
        from as &[PaymentStatus],
        to as PaymentStatus,
    )
    .fetch_optional(db)
    .await
}

#[cfg(test)]
mod tests;

//! Applying what the provider says about an attempt to our records. Every
//! function here is safe to call any number of times, from any instance, in
//! any order: each change is a guarded transition.

use sqlx::PgPool;
use uuid::Uuid;

use super::attempt::IN_FLIGHT_UNTIL;
use super::gateway::{Intent, IntentStatus};
use super::paid::PaidBatcher;
use super::payment_status::{self, Also};
use crate::domain::status::{OrderStatus, PaymentStatus, Transitions};
use crate::mail::outbox::{self, MailKind};
use crate::sales::order_status;
use crate::sales::seats::{self, Move};

/// Applies the provider's view of `payment_id`; answers the payment's status
/// afterwards. A success is recorded with `paid`'s group commit.
pub async fn apply(paid: &PaidBatcher, payment_id: Uuid, intent: &Intent) -> Result<PaymentStatus, sqlx::Error> {
    let pool = paid.pool();
    match &intent.status {
        IntentStatus::Succeeded => {
            let status = paid.record(payment_id).await?;
            if intent.refunded {
                return record_refunded(pool, payment_id, None).await;
            }
            Ok(status)
        }
        IntentStatus::Failed { code } => {
            transition(pool, payment_id, &PaymentStatus::OPEN, PaymentStatus::Failed, Some(code), None).await
        }
        IntentStatus::Canceled => {
            transition(pool, payment_id, &PaymentStatus::OPEN, PaymentStatus::Canceled, None, None).await
        }
        IntentStatus::RequiresAction { client_secret } => {
            transition(
                pool,
                payment_id,
                &[PaymentStatus::Created, PaymentStatus::Processing],
                PaymentStatus::RequiresAction,
                None,
                Some(client_secret),
            )
            .await
        }
        IntentStatus::Processing => {
            transition(pool, payment_id, &[PaymentStatus::Created], PaymentStatus::Processing, None, None).await
        }
        IntentStatus::Open => current_status(pool, payment_id).await,
    }
}

async fn current_status(pool: &PgPool, payment_id: Uuid) -> Result<PaymentStatus, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT status AS "status: PaymentStatus" FROM payments WHERE id = $1"#, payment_id)
        .fetch_one(pool)
        .await
}

/// Moves the payment to `to` if it is in one of `from`; answers its status either way.
pub async fn transition(
    pool: &PgPool,
    payment_id: Uuid,
    from: &[PaymentStatus],
    to: PaymentStatus,
    failure_code: Option<&str>,
    client_secret: Option<&str>,
) -> Result<PaymentStatus, sqlx::Error> {
    let also = Also { failure_code, client_secret, ..Also::default() };
    match payment_status::transition(pool, payment_id, from, to, also).await? {
        Some(s) => Ok(s),
        None => current_status(pool, payment_id).await,
    }
}

pub struct LockedPayment {
    pub status: PaymentStatus,
    pub order_id: Uuid,
}

/// Locks a payment's order, then the payment: the one lock order of nts
/// (orders before payments), so an admin's refund and a webhook about the
/// same payment wait for each other instead of deadlocking.
async fn lock_order_then_payment(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    payment_id: Uuid,
) -> Result<LockedPayment, sqlx::Error> {
    sqlx::query!(
        "SELECT id FROM orders WHERE id = (SELECT order_id FROM payments WHERE id = $1) FOR UPDATE",
        payment_id
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query_as!(
        LockedPayment,
        r#"SELECT status AS "status: PaymentStatus", order_id FROM payments WHERE id = $1 FOR UPDATE"#,
        payment_id
    )
    .fetch_one(&mut **tx)
    .await
}

/// The provider could not give the money back: the buyer is still owed it,
/// which the organiser sees (admin refunds list, payments audit). Only while
/// the payment follows the refund `following` (`None`: none yet); `refund_ref`
/// is the refund that failed, if the provider made one.
pub async fn record_refund_failed(
    pool: &PgPool,
    payment_id: Uuid,
    following: Option<&str>,
    refund_ref: Option<&str>,
    reason: &str,
) -> Result<PaymentStatus, sqlx::Error> {
    let also = Also { refund_ref, refund_failure: Some(reason), following: Some(following), ..Also::default() };
    let moved = payment_status::transition(
        pool,
        payment_id,
        &[PaymentStatus::RefundPending],
        PaymentStatus::RefundFailed,
        also,
    )
    .await?;
    if moved.is_some() {
        tracing::error!(%payment_id, reason, "the provider could not refund a payment; the organiser must act");
    }
    match moved {
        Some(s) => Ok(s),
        None => current_status(pool, payment_id).await,
    }
}

/// The provider says the money went back. A refunded payment that had paid
/// its order refunds the order too (a refund made in Stripe's dashboard,
/// say): its seats stay sold until an admin releases them.
pub async fn record_refunded(
    pool: &PgPool,
    payment_id: Uuid,
    refund_ref: Option<&str>,
) -> Result<PaymentStatus, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let payment = lock_order_then_payment(&mut tx, payment_id).await?;
    if !payment.status.can_become(PaymentStatus::Refunded) {
        return Ok(payment.status);
    }
    let also = Also { refund_ref, ..Also::default() };
    payment_status::transition(&mut *tx, payment_id, &[payment.status], PaymentStatus::Refunded, also).await?;
    if payment.status == PaymentStatus::Succeeded {
        tracing::warn!(%payment_id, order_id = %payment.order_id, "a paid order was refunded at the provider");
        order_status::transition(&mut *tx, payment.order_id, &[OrderStatus::Paid], OrderStatus::Refunded).await?;
        outbox::enqueue(&mut tx, payment.order_id, MailKind::OrderRefunded).await?;
    }
    tx.commit().await?;
    Ok(PaymentStatus::Refunded)
}

/// Ends an unpaid order whose deadline passed and gives its seats back, but
/// only when no attempt of it could still take money without nts knowing
/// where to look: every open attempt left is indeterminate (no PaymentIntent
/// known, none can still be created), and money the reconciler finds for one
/// later is refunded, since the order can no longer take it.
pub async fn expire_order(pool: &PgPool, order_id: Uuid) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Lock first, then look at the payments in a new statement: its snapshot
    // then sees any attempt committed by a transaction that held the lock.
    sqlx::query!("SELECT id FROM orders WHERE id = $1 FOR UPDATE", order_id).fetch_optional(&mut *tx).await?;
    let due = sqlx::query_scalar!(
        r#"SELECT o.expires_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = ANY($2)
                                  AND (p.provider_ref IS NOT NULL OR p.created_at > now() - make_interval(secs => $3)))
                  AS "due!"
           FROM orders o WHERE o.id = $1"#,
        order_id,
        &PaymentStatus::OPEN as &[PaymentStatus],
        IN_FLIGHT_UNTIL.as_seconds_f64(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    if due != Some(true) {
        return Ok(false);
    }
    let expired =
        order_status::transition(&mut *tx, order_id, &[OrderStatus::AwaitingPayment], OrderStatus::Expired).await?;
    if let Some(o) = &expired {
        seats::move_seats(&mut *tx, o.hold_id, Move::GiveBack).await?;
    }
    tx.commit().await?;
    Ok(expired.is_some())
}

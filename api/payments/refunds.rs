//! Giving money back. The intent is recorded first (`refund_pending`), then
//! the provider is called with one idempotency key per payment, so the
//! reconciler, an admin and a retry all ask for the same single refund. A
//! refund is `refund_pending` until the provider says it succeeded (Stripe's
//! refunds are pending first, and may fail days later): then `refunded`, or
//! `refund_failed` for the organiser to see.

use sqlx::PgPool;
use uuid::Uuid;

use super::gateway::{GatewayError, Refund, RefundStatus};
use super::payment_status::{self, Also};
use super::service::PaymentService;
use super::settle;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sales::order_status;
use crate::sales::seats::{self, Move};

/// The provider's idempotency key of a payment's refund. `seq` moves on only
/// after the provider stored an error under the previous key and has no
/// refund for the payment (so a new request cannot refund twice).
pub fn refund_key(payment_id: Uuid, seq: i32) -> String {
    match seq {
        0 => format!("nts-refund-{payment_id}"),
        n => format!("nts-refund-{payment_id}-{n}"),
    }
}

/// Moves a `refund_pending` payment on: asks the provider for the refund
/// (once per key), or how the refund it already has is doing. Answers the
/// payment's status afterwards: still `refund_pending` while the provider's
/// refund is pending or its answer is unknown (the reconciler asks again).
pub async fn refund_payment(payments: &PaymentService, payment_id: Uuid) -> Result<PaymentStatus, GatewayError> {
    let pool = &payments.pool;
    let recorded = |e: sqlx::Error| GatewayError::Unknown(format!("recording the refund: {e}"));
    let row = sqlx::query!(
        r#"SELECT status AS "status: PaymentStatus", provider_ref, refund_ref, refund_key_seq FROM payments WHERE id = $1"#,
        payment_id
    )
    .fetch_one(pool)
    .await
    .map_err(recorded)?;
    let Some(provider_ref) = row.provider_ref.filter(|_| row.status == PaymentStatus::RefundPending) else {
        return Ok(row.status);
    };
    let refund = match &row.refund_ref {
        Some(refund_ref) => payments.gateway.retrieve_refund(refund_ref).await?,
        None => match payments.gateway.refund(&provider_ref, &refund_key(payment_id, row.refund_key_seq)).await {
            Ok(refund) => refund,
            // The key's answer is a stored error: does Stripe have a refund
            // for the payment all the same? Adopt it; otherwise the next try
            // goes out under a new key.
            Err(GatewayError::Stored(detail)) => {
                tracing::warn!(%payment_id, %detail, "Stripe stored an error for the refund; looking for it");
                match payments.gateway.find_refund(&provider_ref).await? {
                    Some(refund) => refund,
                    None => {
                        sqlx::query!(
                            "UPDATE payments SET refund_key_seq = refund_key_seq + 1
                             WHERE id = $1 AND refund_key_seq = $2 AND refund_ref IS NULL",
                            payment_id,
                            row.refund_key_seq
                        )
                        .execute(pool)
                        .await
                        .map_err(recorded)?;
                        return Err(GatewayError::Stored(detail));
                    }
                }
            }
            // Refused: maybe it is being (or was) refunded another way
            // (Stripe's dashboard): that refund is the one to follow.
            // Otherwise it cannot be refunded, and the organiser must know.
            Err(GatewayError::Refused { code, message }) => match payments.gateway.find_refund(&provider_ref).await? {
                Some(refund) => refund,
                None => {
                    let reason = format!("{code}: {message}");
                    return settle::record_refund_failed(pool, payment_id, None, None, &reason).await.map_err(recorded);
                }
            },
            Err(e) => return Err(e),
        },
    };
    apply_refund(pool, payment_id, row.refund_ref.as_deref(), &refund).await.map_err(recorded)
}

/// Records what the provider says about one of our refunds, read while the
/// payment followed the refund `following` (`None`: none yet, `refund` is the
/// provider's answer to our request). A payment that follows another refund
/// by now (an admin asked again after a failure) is left alone: a failure or
/// a pending refund is news of the old one. Money back is recorded whatever
/// the payment follows.
pub async fn apply_refund(
    pool: &PgPool,
    payment_id: Uuid,
    following: Option<&str>,
    refund: &Refund,
) -> Result<PaymentStatus, sqlx::Error> {
    match refund.status {
        RefundStatus::Succeeded => {
            tracing::info!(%payment_id, refund_ref = %refund.provider_ref, "refunded");
            settle::record_refunded(pool, payment_id, Some(&refund.provider_ref)).await
        }
        RefundStatus::Failed => {
            let reason = refund.failure_reason.as_deref().unwrap_or("failed");
            settle::record_refund_failed(pool, payment_id, following, Some(&refund.provider_ref), reason).await
        }
        RefundStatus::Pending => {
            sqlx::query_scalar!(
                r#"WITH followed AS (
                     UPDATE payments SET refund_ref = COALESCE(refund_ref, $2)
                     WHERE id = $1 AND refund_ref IS NOT DISTINCT FROM $3)
                   SELECT status AS "status: PaymentStatus" FROM payments WHERE id = $1"#,
                payment_id,
                refund.provider_ref,
                following
            )
            .fetch_one(pool)
            .await
        }
    }
}

/// What an admin's refund did. A free order has no payment: nothing went
/// back through the provider.
pub struct OrderRefund {
    pub payment_id: Option<Uuid>,
    pub payment_status: Option<PaymentStatus>,
    pub seats_released: bool,
}

/// Refunds a paid order in full: in one transaction the order becomes
/// `refunded`, its payment `refund_pending` and (if asked) its seats go back
/// on sale; then the provider is asked. A free order (paid with no payment)
/// is only marked refunded: the provider is not called. A second call finds
/// the order refunded already and changes nothing.
pub async fn refund_order(payments: &PaymentService, order_id: Uuid, release_seats: bool) -> ApiResult<OrderRefund> {
    let Some(payment_id) = mark_refunded(&payments.pool, order_id, release_seats).await? else {
        return Ok(OrderRefund { payment_id: None, payment_status: None, seats_released: release_seats });
    };
    let payment_status = ask_now(payments, payment_id).await;
    Ok(OrderRefund {
        payment_id: Some(payment_id),
        payment_status: Some(payment_status),
        seats_released: release_seats,
    })
}

/// The admin's request asks the provider itself; if that fails, the reconciler asks later.
async fn ask_now(payments: &PaymentService, payment_id: Uuid) -> PaymentStatus {
    refund_payment(payments, payment_id).await.unwrap_or_else(|e| {
        tracing::warn!(%payment_id, error = %e, "the refund is not sent yet; the reconciler will retry");
        PaymentStatus::RefundPending
    })
}

/// Answers the payment whose money is to go back; `None` for a free order.
async fn mark_refunded(pool: &PgPool, order_id: Uuid, release_seats: bool) -> ApiResult<Option<Uuid>> {
    let mut tx = pool.begin().await?;
    let order = lock_order(&mut tx, order_id).await?;
    match order.status {
        OrderStatus::Paid => {}
        OrderStatus::Refunded => {
            return Err(ApiError::conflict(ErrorCode::OrderAlreadyRefunded, "this order has been refunded already"))
        }
        _ => return Err(ApiError::conflict(ErrorCode::OrderNotPaid, "only a paid order can be refunded")),
    }
    // The request asks the provider itself right after this commit; the
    // reconciler leaves the payment to it for a few seconds, so the refund is
    // not usually asked for twice at once (if it is, both carry the same key).
    let payment_id = match payment_of(&mut tx, order_id, PaymentStatus::Succeeded).await? {
        Some(payment_id) => {
            let also = Also { check_in_secs: Some(ASKED_NOW_SECS), ..Also::default() };
            payment_status::transition(
                &mut *tx,
                payment_id,
                &[PaymentStatus::Succeeded],
                PaymentStatus::RefundPending,
                also,
            )
            .await?;
            Some(payment_id)
        }
        // Free: paid with no payment, nothing to give back.
        None if order.amount_minor == 0 => None,
        None => return Err(sqlx::Error::RowNotFound.into()),
    };
    order_status::transition(&mut *tx, order_id, &[OrderStatus::Paid], OrderStatus::Refunded).await?;
    crate::mail::outbox::enqueue(&mut tx, order_id, crate::mail::outbox::MailKind::OrderRefunded).await?;
    if release_seats {
        release(&mut tx, order_id, order.hold_id).await?;
    }
    tx.commit().await?;
    tracing::info!(%order_id, ?payment_id, release_seats, "order refunded by an admin");
    Ok(payment_id)
}

/// Asks the provider again for a refund it could not make (`refund_failed`):
/// the payment goes back to `refund_pending` under the next refund key, as the
/// failed refund's key would only replay its failure. Stripe itself refuses a
/// refund beyond what the charge still holds, so this cannot give money back twice.
pub async fn retry_refund(payments: &PaymentService, order_id: Uuid) -> ApiResult<OrderRefund> {
    let mut tx = payments.pool.begin().await?;
    let order = lock_order(&mut tx, order_id).await?;
    let payment_id = payment_of(&mut tx, order_id, PaymentStatus::RefundFailed)
        .await?
        .ok_or(ApiError::conflict(ErrorCode::RefundNotFailed, "only a failed refund can be asked for again"))?;
    let also = Also { check_in_secs: Some(ASKED_NOW_SECS), new_refund: true, ..Also::default() };
    payment_status::transition(
        &mut *tx,
        payment_id,
        &[PaymentStatus::RefundFailed],
        PaymentStatus::RefundPending,
        also,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%order_id, %payment_id, "an admin asked for a failed refund again");
    let payment_status = ask_now(payments, payment_id).await;
    Ok(OrderRefund {
        payment_id: Some(payment_id),
        payment_status: Some(payment_status),
        seats_released: order.seats_released,
    })
}

/// How long the reconciler leaves a refund the admin's request asks for itself.
const ASKED_NOW_SECS: f64 = 3.0;

/// The order's payment in `status`, if it has one (at most one is succeeded, refunded or owed back).
async fn payment_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    order_id: Uuid,
    status: PaymentStatus,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM payments WHERE order_id = $1 AND status = $2 LIMIT 1",
        order_id,
        status as PaymentStatus
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Puts a refunded order's seats back on sale, once.
async fn release(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    order_id: Uuid,
    hold_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let released = sqlx::query!(
        "UPDATE orders SET seats_released_at = now() WHERE id = $1 AND seats_released_at IS NULL",
        order_id
    )
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if released {
        seats::move_seats(&mut **tx, hold_id, Move::Unsell).await?;
    }
    Ok(released)
}

/// An admin puts the seats of a refunded order back on sale: one refunded
/// without releasing them, or refunded in Stripe's dashboard.
pub async fn release_seats(pool: &PgPool, order_id: Uuid) -> ApiResult<()> {
    let mut tx = pool.begin().await?;
    let order = lock_order(&mut tx, order_id).await?;
    if order.status != OrderStatus::Refunded {
        return Err(ApiError::conflict(ErrorCode::OrderNotRefunded, "only a refunded order's seats can be released"));
    }
    if !release(&mut tx, order_id, order.hold_id).await? {
        return Err(ApiError::conflict(ErrorCode::SeatsAlreadyReleased, "this order's seats are back on sale already"));
    }
    tx.commit().await?;
    tracing::info!(%order_id, "an admin released a refunded order's seats");
    Ok(())
}

/// An order's row, locked for the rest of the transaction (orders are always locked before their payments).
struct LockedOrder {
    status: OrderStatus,
    amount_minor: i64,
    hold_id: Uuid,
    seats_released: bool,
}

async fn lock_order(tx: &mut sqlx::PgConnection, order_id: Uuid) -> ApiResult<LockedOrder> {
    sqlx::query_as!(
        LockedOrder,
        r#"SELECT status AS "status: OrderStatus", amount_minor, hold_id,
                  seats_released_at IS NOT NULL AS "seats_released!"
           FROM orders WHERE id = $1 FOR UPDATE"#,
        order_id
    )
    .fetch_optional(tx)
    .await?
    .ok_or(ApiError::NotFound("no such order"))
}

#[cfg(test)]
mod tests;

//! Giving money back. Each refund is a row of its own (`refund_rows`),
//! committed with its idempotency key in the transaction that decides the
//! money goes back (an admin's refund, a success for an order that cannot
//! take it), before the provider is called; the reconciler, an admin and a
//! retry all ask for that one refund with its key. A refund is pending until
//! the provider says it succeeded (Stripe's refunds are pending first, and
//! may fail days later); the payment follows its rows (`settle::record_refund_outcome`):
//! `refunded` when they gave the whole amount back, `refund_failed` for the
//! organiser to see when nts's refund failed.

use sqlx::PgPool;
use uuid::Uuid;

use super::gateway::{GatewayError, Refund, RefundStatus};
use super::payment_status::{self, Also};
use super::refund_rows::{self, RefundReason, RefundRow};
use super::service::PaymentService;
use super::settle;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sales::order_status;
use crate::sales::seats::{self, Move};

/// Moves a `refund_pending` payment on: asks the provider for nts's pending
/// refund (once per key), or how the refund it already made is doing.
/// Answers the payment's status afterwards: still `refund_pending` while a
/// refund is pending or the provider's answer is unknown (the reconciler asks again).
pub async fn refund_payment(payments: &PaymentService, payment_id: Uuid) -> Result<PaymentStatus, GatewayError> {
    let pool = &payments.pool;
    let row = sqlx::query!(
        r#"SELECT status AS "status: PaymentStatus", provider_ref FROM payments WHERE id = $1"#,
        payment_id
    )
    .fetch_one(pool)
    .await
    .map_err(recorded)?;
    let Some(payment_ref) = row.provider_ref.filter(|_| row.status == PaymentStatus::RefundPending) else {
        return Ok(row.status);
    };
    let ours = match refund_rows::pending_of(pool, payment_id).await.map_err(recorded)? {
        Some(ours) => ours,
        // None pending: what is left is owed under the next key (after a key
        // whose answer was a stored error), unless refunds made elsewhere
        // give it back already or are on their way.
        None => {
            let mut conn = pool.acquire().await.map_err(recorded)?;
            refund_rows::owe_all(&mut conn, &[payment_id], None).await.map_err(recorded)?;
            match refund_rows::pending_of(pool, payment_id).await.map_err(recorded)? {
                Some(ours) => ours,
                None => return follow_outside(payments, payment_id).await,
            }
        }
    };
    let key = ours.idempotency_key.clone().expect("nts's refunds have a key");
    let news = match &ours.provider_ref {
        Some(refund_ref) => payments.gateway.retrieve_refund(refund_ref).await?,
        None => match payments.gateway.refund(&payment_ref, &key).await {
            Ok(news) => news,
            // The key's answer is a stored error: does the provider have the
            // refund all the same? Otherwise this row was never made, and the
            // next try goes out under a new key.
            Err(GatewayError::Stored(detail)) => {
                tracing::warn!(%payment_id, %detail, "the provider stored an error for the refund; looking for it");
                if !found_at_provider(payments, &payment_ref, &ours).await? {
                    refund_rows::transition(
                        pool,
                        &ours,
                        &[RefundStatus::Pending],
                        RefundStatus::Canceled,
                        Some(&detail),
                    )
                    .await
                    .map_err(recorded)?;
                    return Err(GatewayError::Stored(detail));
                }
                return settle::record_refund_outcome(pool, payment_id).await.map_err(recorded);
            }
            // Refused: for good (the charge is disputed, refunded in full
            // another way, say). Refunds made elsewhere are recorded first;
            // this one failed, and the organiser must know.
            Err(GatewayError::Refused { code, message }) => {
                if !found_at_provider(payments, &payment_ref, &ours).await? {
                    let reason = format!("{code}: {message}");
                    tracing::warn!(%payment_id, %reason, "the provider refused the refund");
                    refund_rows::transition(pool, &ours, &[RefundStatus::Pending], RefundStatus::Failed, Some(&reason))
                        .await
                        .map_err(recorded)?;
                }
                return settle::record_refund_outcome(pool, payment_id).await.map_err(recorded);
            }
            Err(e) => return Err(e),
        },
    };
    let applied = apply_news(pool, &news, Some(&ours)).await.map_err(recorded)?;
    Ok(applied.map_or(PaymentStatus::RefundPending, |(_, status)| status))
}

fn recorded(e: sqlx::Error) -> GatewayError {
    GatewayError::Unknown(format!("recording the refund: {e}"))
}

/// Every refund the provider has for the payment, recorded by its own id;
/// answers whether `ours` is among them.
async fn found_at_provider(
    payments: &PaymentService,
    payment_ref: &str,
    ours: &RefundRow,
) -> Result<bool, GatewayError> {
    let mut found = false;
    for news in payments.gateway.refunds_of(payment_ref).await? {
        let row = apply_news(&payments.pool, &news, None).await.map_err(recorded)?;
        found |= news.key.is_some() && news.key == ours.idempotency_key;
        found |= row.is_some_and(|(row, _)| row.id == ours.id);
    }
    Ok(found)
}

/// Nothing of nts's is pending: the payment waits on refunds made elsewhere; asks how they are doing.
async fn follow_outside(payments: &PaymentService, payment_id: Uuid) -> Result<PaymentStatus, GatewayError> {
    let pool = &payments.pool;
    for row in refund_rows::pending_outside(pool, payment_id).await.map_err(recorded)? {
        let Some(refund_ref) = &row.provider_ref else { continue };
        let news = payments.gateway.retrieve_refund(refund_ref).await?;
        apply_news(pool, &news, Some(&row)).await.map_err(recorded)?;
    }
    settle::record_refund_outcome(pool, payment_id).await.map_err(recorded)
}

/// Records what the provider says about one refund: its row is found by the
/// provider's refund id; else `ours` (the row whose request this answers) or
/// the row whose key the refund carries gets that id; else it was made
/// outside nts, and is adopted as a row of the payment of its PaymentIntent.
/// The row moves as the news says; then the payment follows its rows.
/// Answers the row and the payment's status, or `None` for a refund of no
/// payment of nts's.
pub async fn apply_news(
    pool: &PgPool,
    news: &Refund,
    ours: Option<&RefundRow>,
) -> Result<Option<(RefundRow, PaymentStatus)>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let found = refund_rows::by_provider_ref(&mut *conn, &news.provider_ref).await?;
    let mine = match (ours, &news.key) {
        (Some(row), _) => Some(row.clone()),
        (None, Some(key)) => refund_rows::by_key(&mut *conn, key).await?,
        (None, None) => None,
    }
    .filter(|row| row.provider_ref.is_none());
    let row = match (found, mine) {
        // Adopted from news that did not name nts's row (a refund asked for
        // before refunds carried nts's key): it was nts's all along.
        (Some(found), Some(mine)) if found.idempotency_key.is_none() && found.payment_id == mine.payment_id => {
            refund_rows::attach(&mut conn, &mine, &news.provider_ref, news.amount_minor).await?;
            mine
        }
        (Some(found), _) => found,
        (None, Some(mine)) => {
            refund_rows::attach(&mut conn, &mine, &news.provider_ref, news.amount_minor).await?;
            mine
        }
        (None, None) => {
            let Some(payment_ref) = &news.payment_ref else { return Ok(None) };
            match refund_rows::adopt(&mut conn, payment_ref, &news.provider_ref, news.amount_minor).await? {
                Some(row) => row,
                None => return Ok(None),
            }
        }
    };
    drop(conn);
    if news.status != RefundStatus::Pending {
        let failure = match news.status {
            RefundStatus::Failed => Some(news.failure_reason.as_deref().unwrap_or("failed")),
            RefundStatus::Canceled => Some(news.failure_reason.as_deref().unwrap_or("canceled at the provider")),
            _ => None,
        };
        if refund_rows::transition(pool, &row, &[RefundStatus::Pending], news.status, failure).await?.is_some() {
            tracing::info!(refund_id = %row.id, payment_id = %row.payment_id, refund_ref = %news.provider_ref,
                status = ?news.status, "refund settled");
        }
    }
    let status = settle::record_refund_outcome(pool, row.payment_id).await?;
    Ok(Some((row, status)))
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
            refund_rows::owe_all(&mut tx, &[payment_id], Some(RefundReason::RequestedByOrganiser)).await?;
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
/// the payment goes back to `refund_pending` with a new refund row under the
/// next refund key, as the failed refund's key would only replay its failure. Stripe itself refuses a
/// refund beyond what the charge still holds, so this cannot give money back twice.
pub async fn retry_refund(payments: &PaymentService, order_id: Uuid) -> ApiResult<OrderRefund> {
    let mut tx = payments.pool.begin().await?;
    let order = lock_order(&mut tx, order_id).await?;
    let payment_id = payment_of(&mut tx, order_id, PaymentStatus::RefundFailed)
        .await?
        .ok_or(ApiError::conflict(ErrorCode::RefundNotFailed, "only a failed refund can be asked for again"))?;
    let also = Also { check_in_secs: Some(ASKED_NOW_SECS), ..Also::default() };
    payment_status::transition(
        &mut *tx,
        payment_id,
        &[PaymentStatus::RefundFailed],
        PaymentStatus::RefundPending,
        also,
    )
    .await?;
    refund_rows::owe_all(&mut tx, &[payment_id], None).await?;
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

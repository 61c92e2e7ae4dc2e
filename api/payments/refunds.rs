//! Giving money back. The intent is recorded first (`refund_pending`), then
//! the provider is called with one idempotency key per payment, so the
//! reconciler, an admin and a retry all ask for the same single refund.

use sqlx::PgPool;
use uuid::Uuid;

use super::gateway::GatewayError;
use super::service::PaymentService;
use super::settle;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult};

/// The provider's idempotency key of a payment's refund.
pub fn refund_key(payment_id: Uuid) -> String {
    format!("nts-refund-{payment_id}")
}

/// Refunds a `refund_pending` payment at the provider and records it.
/// Answers the payment's status afterwards: still `refund_pending` when the
/// provider's answer is unknown (the reconciler asks again).
pub async fn refund_payment(payments: &PaymentService, payment_id: Uuid) -> Result<PaymentStatus, GatewayError> {
    let pool = &payments.pool;
    let recorded = |e: sqlx::Error| GatewayError::Unknown(format!("recording the refund: {e}"));
    let row = sqlx::query!(
        r#"SELECT status AS "status: PaymentStatus", provider_ref FROM payments WHERE id = $1"#,
        payment_id
    )
    .fetch_one(pool)
    .await
    .map_err(recorded)?;
    let Some(provider_ref) = row.provider_ref.filter(|_| row.status == PaymentStatus::RefundPending) else {
        return Ok(row.status);
    };
    match payments.gateway.refund(&provider_ref, &refund_key(payment_id)).await {
        Ok(refund_ref) => {
            tracing::info!(%payment_id, %refund_ref, "refunded");
            settle::record_refunded(pool, payment_id, Some(&refund_ref)).await.map_err(recorded)
        }
        // Refused: maybe it was refunded already (elsewhere, or under another
        // key); the intent itself says so.
        Err(GatewayError::Refused { code, message }) => {
            let intent = payments.gateway.retrieve(&provider_ref).await?;
            if intent.refunded {
                return settle::record_refunded(pool, payment_id, None).await.map_err(recorded);
            }
            Err(GatewayError::Refused { code, message })
        }
        Err(e) => Err(e),
    }
}

/// What an admin's refund did.
pub struct OrderRefund {
    pub payment_id: Uuid,
    pub payment_status: PaymentStatus,
    pub seats_released: bool,
}

/// Refunds a paid order in full: in one transaction the order becomes
/// `refunded`, its payment `refund_pending` and (if asked) its seats go back
/// on sale; then the provider is asked. A second call finds the order
/// refunded already and changes nothing.
pub async fn refund_order(payments: &PaymentService, order_id: Uuid, release_seats: bool) -> ApiResult<OrderRefund> {
    let payment_id = mark_refunded(&payments.pool, order_id, release_seats).await?;
    let payment_status = match refund_payment(payments, payment_id).await {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(%payment_id, error = %e, "the refund is not confirmed yet; the reconciler will retry");
            PaymentStatus::RefundPending
        }
    };
    Ok(OrderRefund { payment_id, payment_status, seats_released: release_seats })
}

async fn mark_refunded(pool: &PgPool, order_id: Uuid, release_seats: bool) -> ApiResult<Uuid> {
    let mut tx = pool.begin().await?;
    let order = sqlx::query!(
        r#"SELECT status AS "status: OrderStatus", ticket_type_id, quantity FROM orders WHERE id = $1 FOR UPDATE"#,
        order_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("no such order"))?;
    match order.status {
        OrderStatus::Paid => {}
        OrderStatus::Refunded => {
            return Err(ApiError::conflict("order_already_refunded", "this order has been refunded already"))
        }
        _ => return Err(ApiError::conflict("order_not_paid", "only a paid order can be refunded")),
    }
    let payment_id = sqlx::query_scalar!(
        "UPDATE payments SET status = 'refund_pending', updated_at = now()
         WHERE order_id = $1 AND status = 'succeeded' RETURNING id",
        order_id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!("UPDATE orders SET status = 'refunded', finished_at = now() WHERE id = $1", order_id)
        .execute(&mut *tx)
        .await?;
    if release_seats {
        sqlx::query!("UPDATE ticket_types SET sold = sold - $2 WHERE id = $1", order.ticket_type_id, order.quantity)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(%order_id, %payment_id, release_seats, "order refunded by an admin");
    Ok(payment_id)
}

//! The background task that makes every outcome certain: expired holds give
//! their seats back, payments stuck without an answer are looked up at the
//! provider, money owed back is refunded, unpaid orders past their deadline
//! are canceled at the provider and then released. It runs in every instance;
//! each step is a guarded transition, so instances may race freely.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::service::PaymentService;
use super::{refunds, settle};
use crate::domain::status::PaymentStatus;
use crate::sales::holds::expire_stale_holds;

/// How long an attempt may wait on the provider before the reconciler asks.
const STALE_AFTER_SECS: f64 = 5.0;
const BATCH: i64 = 100;

pub async fn run(payments: PaymentService, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = reconcile_once(&payments).await {
            tracing::warn!(error = %e, "reconciler pass failed; retrying on the next tick");
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub holds_expired: u64,
    pub payments_checked: u64,
    pub refunds: u64,
    pub orders_expired: u64,
}

pub async fn reconcile_once(payments: &PaymentService) -> anyhow::Result<Pass> {
    let pool = &payments.pool;
    let mut pass = Pass { holds_expired: expire_stale_holds(pool, None).await?, ..Pass::default() };
    for id in claim_stale_payments(pool).await? {
        match settle_stale_payment(payments, id).await {
            Ok(()) => pass.payments_checked += 1,
            Err(e) => tracing::debug!(payment_id = %id, error = %e, "provider lookup failed; will retry"),
        }
    }
    let owed: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM payments WHERE status = 'refund_pending' ORDER BY updated_at LIMIT $1",
        BATCH
    )
    .fetch_all(pool)
    .await?;
    for id in owed {
        match refunds::refund_payment(payments, id).await {
            Ok(PaymentStatus::Refunded) => pass.refunds += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(payment_id = %id, error = %e, "refund failed; will retry"),
        }
    }
    let overdue: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM orders WHERE status = 'awaiting_payment' AND expires_at <= now() ORDER BY expires_at LIMIT $1",
        BATCH
    )
    .fetch_all(pool)
    .await?;
    for order_id in overdue {
        // Rule 3: cancel at the provider before the seats go back; if the
        // provider says the money was taken, the order is paid instead.
        match payments.cancel_open_attempts(order_id).await {
            Ok(true) => continue,
            Ok(false) => {
                if settle::expire_order(pool, order_id).await? {
                    pass.orders_expired += 1;
                }
            }
            Err(e) => tracing::warn!(%order_id, error = %e, "could not cancel the order's payment; will retry"),
        }
    }
    sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'").execute(pool).await?;
    Ok(pass)
}

/// Takes a lease on attempts waiting on the provider (by moving their
/// `updated_at`), so concurrent reconcilers look at different ones.
async fn claim_stale_payments(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE payments SET updated_at = now()
           WHERE id IN (
               SELECT id FROM payments
               WHERE (status IN ('processing', 'requires_action') OR (status = 'created' AND provider_ref IS NULL))
                 AND updated_at < now() - make_interval(secs => $1)
               ORDER BY updated_at LIMIT $2
               FOR UPDATE SKIP LOCKED)
           RETURNING id"#,
        STALE_AFTER_SECS,
        BATCH
    )
    .fetch_all(pool)
    .await
}

async fn settle_stale_payment(payments: &PaymentService, id: Uuid) -> anyhow::Result<()> {
    let Some(attempt) = payments.attempt(id).await? else { return Ok(()) };
    if !attempt.status.is_open() {
        return Ok(());
    }
    // Without a provider reference this repeats the create call with the
    // attempt's key: the provider returns the object it may already have made.
    let Some(intent) = payments.current_intent(&attempt).await? else { return Ok(()) };
    let status = settle::apply(&payments.pool, id, &intent).await?;
    if status != attempt.status {
        tracing::info!(payment_id = %id, from = ?attempt.status, to = ?status, "reconciler settled a payment");
    }
    Ok(())
}

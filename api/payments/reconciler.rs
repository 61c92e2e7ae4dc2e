//! The background task that makes every outcome certain: expired holds give
//! their seats back, payments stuck without an answer are looked up at the
//! provider, money owed back is refunded, unpaid orders past their deadline
//! are canceled at the provider and then released. It runs in every instance;
//! each step is a guarded transition, so instances may race freely.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::guard::backoff;
use super::recovery::Checked;
use super::service::PaymentService;
use super::{refunds, settle};
use crate::domain::status::{OrderStatus, PaymentStatus};
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
        let started = std::time::Instant::now();
        match reconcile_once(&payments).await {
            Ok(pass) => crate::metrics::record_reconciler_pass("ok", started.elapsed(), &pass.work()),
            Err(e) => {
                crate::metrics::record_reconciler_pass("failed", started.elapsed(), &[]);
                tracing::warn!(error = %e, "reconciler pass failed; retrying on the next tick");
            }
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

impl Pass {
    /// What the pass did, as the metrics count it.
    fn work(&self) -> [(&'static str, u64); 4] {
        [
            ("holds_expired", self.holds_expired),
            ("payments_checked", self.payments_checked),
            ("refunds", self.refunds),
            ("orders_expired", self.orders_expired),
        ]
    }
}

pub async fn reconcile_once(payments: &PaymentService) -> anyhow::Result<Pass> {
    let pool = &payments.pool;
    let mut pass = Pass { holds_expired: expire_stale_holds(pool, None).await?, ..Pass::default() };
    for id in claim_stale_payments(pool).await? {
        match settle_stale_payment(payments, id).await {
            Ok(Some(Checked::Answered(status))) => {
                pass.payments_checked += 1;
                if status.is_open() {
                    back_off(pool, id).await?;
                }
            }
            Ok(Some(Checked::NotFound)) => {
                pass.payments_checked += 1;
                look_again_later(pool, id).await?;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(payment_id = %id, error = %e, "provider lookup failed; will retry later");
                back_off(pool, id).await?;
            }
        }
    }
    // Failed attempts whose PaymentIntent is not yet canceled at the provider.
    let owed: Vec<(Uuid, String)> = sqlx::query!(
        r#"SELECT id, provider_ref AS "provider_ref!" FROM payments
           WHERE close_owed AND provider_ref IS NOT NULL AND next_check_at <= now()
           ORDER BY next_check_at LIMIT $1"#,
        BATCH,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.id, r.provider_ref))
    .collect();
    for (id, provider_ref) in owed {
        payments.close(id, &provider_ref).await?;
    }
    let owed: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM payments WHERE status = $2 AND next_check_at <= now()
         ORDER BY next_check_at LIMIT $1",
        BATCH,
        PaymentStatus::RefundPending as PaymentStatus,
    )
    .fetch_all(pool)
    .await?;
    for id in owed {
        match refunds::refund_payment(payments, id).await {
            Ok(PaymentStatus::Refunded) => pass.refunds += 1,
            // Pending at the provider: its webhook usually says when it is
            // done; polled meanwhile, less and less often.
            Ok(PaymentStatus::RefundPending) => back_off(pool, id).await?,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(payment_id = %id, error = %e, "refund not sent; will retry later");
                back_off(pool, id).await?;
            }
        }
    }
    let overdue: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM orders WHERE status = $2 AND expires_at <= now() ORDER BY expires_at LIMIT $1",
        BATCH,
        OrderStatus::AwaitingPayment as OrderStatus,
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
    crate::instance::forget_dead(pool).await?;
    Ok(pass)
}

/// The provider gave no usable answer about a payment: ask again later,
/// later each time (capped), so a failing provider or a refund it refuses
/// is not asked on every pass.
async fn back_off(pool: &PgPool, payment_id: Uuid) -> Result<(), sqlx::Error> {
    let failures: i32 = sqlx::query_scalar!(
        "UPDATE payments SET provider_failures = provider_failures + 1 WHERE id = $1 RETURNING provider_failures",
        payment_id
    )
    .fetch_one(pool)
    .await?;
    let wait = backoff(failures.max(0) as u32 + 2).as_secs_f64();
    sqlx::query!(
        "UPDATE payments SET next_check_at = now() + make_interval(secs => $2) WHERE id = $1",
        payment_id,
        wait
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// No PaymentIntent of the attempt was found in its creation window: look
/// again after a tenth of its age (at most an hour), so an attempt is looked
/// for often while young and a few dozen times in all until it is given up.
async fn look_again_later(pool: &PgPool, payment_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE payments SET next_check_at = now() + LEAST((now() - created_at) / 10, interval '1 hour')
         WHERE id = $1",
        payment_id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes a lease on attempts waiting on the provider (by moving their
/// `updated_at`), so concurrent reconcilers look at different ones.
async fn claim_stale_payments(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE payments SET updated_at = now()
           WHERE id IN (
               SELECT id FROM payments
               WHERE (status = ANY($3) OR (status = $4 AND provider_ref IS NULL))
                 AND updated_at < now() - make_interval(secs => $1) AND next_check_at <= now()
               ORDER BY updated_at LIMIT $2
               FOR UPDATE SKIP LOCKED)
           RETURNING id"#,
        STALE_AFTER_SECS,
        BATCH,
        &[PaymentStatus::Processing, PaymentStatus::RequiresAction] as &[PaymentStatus],
        PaymentStatus::Created as PaymentStatus,
    )
    .fetch_all(pool)
    .await
}

/// What asking the provider came to; `None` if the attempt was settled already.
async fn settle_stale_payment(payments: &PaymentService, id: Uuid) -> anyhow::Result<Option<Checked>> {
    let Some(attempt) = payments.attempt(id).await? else { return Ok(None) };
    if !attempt.status.is_open() {
        return Ok(None);
    }
    let checked = payments.settle_stale(&attempt).await?;
    if let Checked::Answered(status) = checked {
        if status != attempt.status {
            tracing::info!(payment_id = %id, from = ?attempt.status, to = ?status, "reconciler settled a payment");
        }
    }
    Ok(Some(checked))
}

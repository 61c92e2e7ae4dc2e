//! Refund news against a real database.

use std::sync::Arc;

use super::*;
use crate::config::SimulatedFaults;
use crate::domain::status::HoldStatus;
use crate::payments::simulated::SimulatedGateway;
use crate::test_db::TestDb;

/// A refunded order whose payment follows the refund `re_first`, still pending; answers (order, payment).
async fn refund_pending(db: &TestDb) -> (Uuid, Uuid) {
    let (event, tt) = db.event(10, 10, 3600.0).await;
    let hold = db.hold(event, &[(tt, 1)], 500, HoldStatus::CheckedOut, 3600.0, b"\0").await;
    let (order, payment) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO orders (id, secret_hash, hold_id, event_id, buyer_name, buyer_email, quantity, amount_minor,
                             currency, expires_at, status)
         VALUES ($1, '\\x01', $2, $3, 'Ada', 'ada@example.com', 1, 500, 'GBP', now() + interval '1 hour', $4)",
    )
    .bind(order)
    .bind(hold)
    .bind(event)
    .bind(OrderStatus::Refunded)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency, status,
                               provider_ref, refund_ref)
         VALUES ($1, $2, 'simulated', $3, 500, 'GBP', $4, 'pi_gone', 're_first')",
    )
    .bind(payment)
    .bind(order)
    .bind(format!("nts-pay-{payment}"))
    .bind(PaymentStatus::RefundPending)
    .execute(&db.pool)
    .await
    .unwrap();
    (order, payment)
}

fn news(refund_ref: &str, status: RefundStatus) -> Refund {
    Refund {
        provider_ref: refund_ref.into(),
        failure_reason: (status == RefundStatus::Failed).then(|| "expired_or_canceled_card".into()),
        status,
        payment_ref: Some("pi_gone".into()),
    }
}

/// (status, refund followed, refund key's sequence).
async fn payment(db: &TestDb, id: Uuid) -> (PaymentStatus, Option<String>, i32) {
    sqlx::query_as("SELECT status, refund_ref, refund_key_seq FROM payments WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

// Stripe sends a failed refund's news more than once (refund.failed,
// refund.updated), and a webhook reads which payment the refund is of
// before it applies the news: one delivery may be read before an admin asks
// again and applied after.
#[tokio::test]
async fn news_of_a_failed_refund_does_not_fail_the_refund_asked_for_after_it() {
    let db = TestDb::new().await;
    let (order, id) = refund_pending(&db).await;
    let failed = news("re_first", RefundStatus::Failed);
    let status = apply_refund(&db.pool, id, Some("re_first"), &failed).await.unwrap();
    assert_eq!(status, PaymentStatus::RefundFailed);

    // The provider knows no such intent: the new refund is not sent yet and the reconciler will ask.
    let gateway = Arc::new(SimulatedGateway::new(db.pool.clone(), SimulatedFaults::default()));
    let asked = retry_refund(&PaymentService::new(db.pool.clone(), gateway), order).await.unwrap();
    assert_eq!(asked.payment_status, Some(PaymentStatus::RefundPending));
    assert_eq!(payment(&db, id).await, (PaymentStatus::RefundPending, None, 1));

    let late = apply_refund(&db.pool, id, Some("re_first"), &failed).await.unwrap();
    assert_eq!(late, PaymentStatus::RefundPending, "the first refund's failure again");
    let pending = news("re_first", RefundStatus::Pending);
    apply_refund(&db.pool, id, Some("re_first"), &pending).await.unwrap();
    assert_eq!(payment(&db, id).await, (PaymentStatus::RefundPending, None, 1), "the first refund's creation, late");

    let second = news("re_second", RefundStatus::Pending);
    assert_eq!(apply_refund(&db.pool, id, None, &second).await.unwrap(), PaymentStatus::RefundPending);
    assert_eq!(payment(&db, id).await.1.as_deref(), Some("re_second"));
    apply_refund(&db.pool, id, Some("re_first"), &failed).await.unwrap();
    assert_eq!(payment(&db, id).await.0, PaymentStatus::RefundPending);
    let second_failed = news("re_second", RefundStatus::Failed);
    let status = apply_refund(&db.pool, id, Some("re_second"), &second_failed).await.unwrap();
    assert_eq!(status, PaymentStatus::RefundFailed, "the refund followed fails the payment");
}

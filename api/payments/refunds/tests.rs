//! Refund news against a real database.

use std::sync::Arc;

use super::*;
use crate::checkin::ticket_keys::TicketKeys;
use crate::config::SimulatedFaults;
use crate::domain::status::{HoldStatus, RefundStatus};
use crate::payments::simulated::SimulatedGateway;
use crate::test_db::TestDb;

/// An order in `order_status` with one payment of 1500 in `payment_status`
/// (PaymentIntent `pi_gone`, which the simulated provider does not know);
/// answers (order, payment).
async fn order_with_payment(db: &TestDb, order_status: OrderStatus, payment_status: PaymentStatus) -> (Uuid, Uuid) {
    let (event, tt) = db.event(10, 10, 3600.0).await;
    let hold = db.hold(event, &[(tt, 1)], 1500, HoldStatus::CheckedOut, 3600.0, b"\0").await;
    let (order, payment) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO orders (id, secret_hash, hold_id, event_id, buyer_name, buyer_email, quantity, amount_minor,
                             currency, expires_at, status)
         VALUES ($1, '\\x01', $2, $3, 'Ada', 'ada@example.com', 1, 1500, 'GBP', now() + interval '1 hour', $4)",
    )
    .bind(order)
    .bind(hold)
    .bind(event)
    .bind(order_status)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency, status, provider_ref)
         VALUES ($1, $2, 'simulated', $3, 1500, 'GBP', $4, 'pi_gone')",
    )
    .bind(payment)
    .bind(order)
    .bind(format!("nts-pay-{payment}"))
    .bind(payment_status)
    .execute(&db.pool)
    .await
    .unwrap();
    (order, payment)
}

/// A refunded order whose payment is owed back, its refund recorded (not yet sent); answers (order, payment).
async fn refund_pending(db: &TestDb) -> (Uuid, Uuid) {
    let (order, payment) = order_with_payment(db, OrderStatus::Refunded, PaymentStatus::RefundPending).await;
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(refund_rows::owe_all(&mut conn, &[payment], None).await.unwrap(), 1);
    (order, payment)
}

fn news(refund_ref: &str, status: RefundStatus, amount: i64, key: Option<String>) -> Refund {
    Refund {
        provider_ref: refund_ref.into(),
        failure_reason: (status == RefundStatus::Failed).then(|| "expired_or_canceled_card".into()),
        status,
        payment_ref: Some("pi_gone".into()),
        amount,
        amount_minor: amount,
        currency: "GBP".into(),
        key,
    }
}

/// The payment's refund rows, oldest first: (provider's id, status, amount, reason).
async fn rows(db: &TestDb, payment: Uuid) -> Vec<(Option<String>, RefundStatus, i64, String)> {
    sqlx::query_as(
        "SELECT provider_ref, status, amount_minor, reason FROM refunds WHERE payment_id = $1 ORDER BY created_at, id",
    )
    .bind(payment)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn statuses(db: &TestDb, order: Uuid, payment: Uuid) -> (OrderStatus, PaymentStatus) {
    sqlx::query_as("SELECT o.status, p.status FROM orders o JOIN payments p ON p.order_id = o.id WHERE p.id = $1")
        .bind(payment)
        .fetch_one(&db.pool)
        .await
        .map(|(o, p): (OrderStatus, PaymentStatus)| {
            let _ = order;
            (o, p)
        })
        .unwrap()
}

fn service(db: &TestDb) -> PaymentService {
    let gateway = Arc::new(SimulatedGateway::new(db.pool.clone(), SimulatedFaults::default()));
    PaymentService::new(db.pool.clone(), gateway, TicketKeys::dev())
}

// Stripe sends a failed refund's news more than once (refund.failed,
// refund.updated): a late copy must not fail the refund asked for after it.
#[tokio::test]
async fn news_of_a_failed_refund_does_not_fail_the_refund_asked_for_after_it() {
    let db = TestDb::new().await;
    let (order, id) = refund_pending(&db).await;
    let first_key = refund_rows::pending_of(&db.pool, id).await.unwrap().unwrap().idempotency_key.unwrap();
    assert_eq!(first_key, format!("nts-refund-{id}"));
    let failed = news("re_first", RefundStatus::Failed, 1500, Some(first_key.clone()));
    let (_, status) = apply_news(&db.pool, &failed, None).await.unwrap().unwrap();
    assert_eq!(status, PaymentStatus::RefundFailed);

    // The provider knows no such intent: the new refund is recorded, not sent yet, and the reconciler will ask.
    let asked = retry_refund(&service(&db), order).await.unwrap();
    assert_eq!(asked.payment_status, Some(PaymentStatus::RefundPending));
    let second = refund_rows::pending_of(&db.pool, id).await.unwrap().expect("a new refund under a new key");
    assert_eq!(second.idempotency_key, Some(format!("nts-refund-{id}-1")));

    let (_, late) = apply_news(&db.pool, &failed, None).await.unwrap().unwrap();
    assert_eq!(late, PaymentStatus::RefundPending, "the first refund's failure again");
    let created_late = news("re_first", RefundStatus::Pending, 1500, Some(first_key));
    apply_news(&db.pool, &created_late, None).await.unwrap();
    assert_eq!(rows(&db, id).await[0].1, RefundStatus::Failed, "a refund that ended stays ended");

    let second_news = news("re_second", RefundStatus::Pending, 1500, second.idempotency_key.clone());
    let (row, status) = apply_news(&db.pool, &second_news, None).await.unwrap().unwrap();
    assert_eq!((row.id, status), (second.id, PaymentStatus::RefundPending), "found by the key it carries");
    let second_failed = news("re_second", RefundStatus::Failed, 1500, None);
    let (_, status) = apply_news(&db.pool, &second_failed, None).await.unwrap().unwrap();
    assert_eq!(status, PaymentStatus::RefundFailed, "the latest refund fails the payment");
    assert_eq!(
        rows(&db, id).await.into_iter().map(|r| (r.0.unwrap(), r.1)).collect::<Vec<_>>(),
        [("re_first".to_owned(), RefundStatus::Failed), ("re_second".to_owned(), RefundStatus::Failed)]
    );
}

// Two refunds of one payment made in the provider's dashboard: each is a row
// of its own, and each piece of news moves its own row only.
#[tokio::test]
async fn two_refunds_of_one_payment_are_matched_by_their_own_ids() {
    let db = TestDb::new().await;
    let (order, id) = order_with_payment(&db, OrderStatus::Paid, PaymentStatus::Succeeded).await;
    for (r, amount) in [("re_a", 500), ("re_b", 1000)] {
        let (_, status) =
            apply_news(&db.pool, &news(r, RefundStatus::Pending, amount, None), None).await.unwrap().unwrap();
        assert_eq!(status, PaymentStatus::Succeeded);
    }
    apply_news(&db.pool, &news("re_b", RefundStatus::Succeeded, 1000, None), None).await.unwrap();
    let outside = "outside_nts".to_owned();
    assert_eq!(
        rows(&db, id).await,
        [
            (Some("re_a".into()), RefundStatus::Pending, 500, outside.clone()),
            (Some("re_b".into()), RefundStatus::Succeeded, 1000, outside.clone()),
        ]
    );
    assert_eq!(statuses(&db, order, id).await, (OrderStatus::Paid, PaymentStatus::Succeeded), "a part went back");
    apply_news(&db.pool, &news("re_a", RefundStatus::Failed, 500, None), None).await.unwrap();
    assert_eq!(rows(&db, id).await[1].1, RefundStatus::Succeeded, "the other refund is untouched");
    // Duplicates change nothing; a third refund gives the rest back.
    apply_news(&db.pool, &news("re_b", RefundStatus::Succeeded, 1000, None), None).await.unwrap();
    let (_, status) =
        apply_news(&db.pool, &news("re_c", RefundStatus::Succeeded, 500, None), None).await.unwrap().unwrap();
    assert_eq!(status, PaymentStatus::Refunded);
    assert_eq!(statuses(&db, order, id).await, (OrderStatus::Refunded, PaymentStatus::Refunded));
    assert_eq!(rows(&db, id).await.len(), 3);
    // News of a refund of a PaymentIntent nts never made is no row of nts's.
    let mut stray = news("re_x", RefundStatus::Succeeded, 500, None);
    stray.payment_ref = Some("pi_unknown".into());
    assert!(apply_news(&db.pool, &stray, None).await.unwrap().is_none());
}

// nts's refund fails while one made elsewhere is still pending: only its row
// moves, and the payment waits for the other refund.
#[tokio::test]
async fn a_pending_refund_that_fails_moves_only_its_row() {
    let db = TestDb::new().await;
    let (order, id) = refund_pending(&db).await;
    let ours = refund_rows::pending_of(&db.pool, id).await.unwrap().unwrap();
    apply_news(&db.pool, &news("re_ours", RefundStatus::Pending, 1500, ours.idempotency_key.clone()), None)
        .await
        .unwrap();
    apply_news(&db.pool, &news("re_dash", RefundStatus::Pending, 1500, None), None).await.unwrap();
    let (row, status) =
        apply_news(&db.pool, &news("re_ours", RefundStatus::Failed, 1500, None), None).await.unwrap().unwrap();
    assert_eq!((row.id, status), (ours.id, PaymentStatus::RefundPending), "another refund may still give it back");
    let now = rows(&db, id).await;
    assert_eq!((now[0].1, now[1].1), (RefundStatus::Failed, RefundStatus::Pending));
    let (_, status) =
        apply_news(&db.pool, &news("re_dash", RefundStatus::Succeeded, 1500, None), None).await.unwrap().unwrap();
    assert_eq!(status, PaymentStatus::Refunded);
    assert_eq!(statuses(&db, order, id).await, (OrderStatus::Refunded, PaymentStatus::Refunded));
}

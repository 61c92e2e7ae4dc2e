//! Status changes against a real database.

use super::*;
use crate::test_db::TestDb;

/// An attempt in `status`, its provider object recorded if `provider_ref`,
/// of an order whose secret hashes to `\x01`.
async fn attempt(db: &TestDb, status: PaymentStatus, provider_ref: Option<&str>) -> Uuid {
    let (event, tt) = db.event(10, 4, 3600.0).await;
    let payment = db.order(event, &[(tt, 1)], &[status]).await.1[0];
    sqlx::query("UPDATE payments SET provider_ref = $2 WHERE id = $1")
        .bind(payment)
        .bind(provider_ref)
        .execute(&db.pool)
        .await
        .unwrap();
    payment
}

async fn stored(db: &TestDb, payment: Uuid) -> PaymentStatus {
    sqlx::query_scalar("SELECT status FROM payments WHERE id = $1").bind(payment).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_confirmation_reads_the_attempt_as_it_was_and_moves_only_one_awaiting_confirmation() {
    let db = TestDb::new().await;
    let awaiting = attempt(&db, PaymentStatus::Created, Some("sim_pi_1")).await;
    let read = begin_confirmation(&db.pool, awaiting, b"\x01").await.unwrap().unwrap();
    assert_eq!(
        (read.id, read.status, read.provider_ref.as_deref()),
        (awaiting, PaymentStatus::Created, Some("sim_pi_1"))
    );
    assert_eq!(stored(&db, awaiting).await, PaymentStatus::Processing, "its confirmation is sent next");

    // No provider object yet: the confirmation must make it first.
    let unmade = attempt(&db, PaymentStatus::Created, None).await;
    assert_eq!(begin_confirmation(&db.pool, unmade, b"\x01").await.unwrap().unwrap().status, PaymentStatus::Created);
    assert_eq!(stored(&db, unmade).await, PaymentStatus::Created);

    for status in [PaymentStatus::Processing, PaymentStatus::Succeeded, PaymentStatus::Failed] {
        let other = attempt(&db, status, Some(&format!("sim_pi_{status:?}"))).await;
        assert_eq!(begin_confirmation(&db.pool, other, b"\x01").await.unwrap().unwrap().status, status);
        assert_eq!(stored(&db, other).await, status);
    }
}

#[tokio::test]
async fn a_confirmation_with_another_orders_secret_reads_and_moves_nothing() {
    let db = TestDb::new().await;
    let awaiting = attempt(&db, PaymentStatus::Created, Some("sim_pi_1")).await;
    assert!(begin_confirmation(&db.pool, awaiting, b"\x02").await.unwrap().is_none());
    assert!(begin_confirmation(&db.pool, Uuid::new_v4(), b"\x01").await.unwrap().is_none());
    assert_eq!(stored(&db, awaiting).await, PaymentStatus::Created);
}

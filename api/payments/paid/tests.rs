//! The group commit of paid orders against a real database.

use futures_util::future::join_all;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::*;
use crate::checkin::ticket_keys::TicketKeys;
use crate::test_db::TestDb;

/// An order of one seat of `tt` that expired unpaid, its one attempt still
/// processing; answers (order, attempts).
async fn expired_order(db: &TestDb, event: Uuid, tt: Uuid) -> (Uuid, Vec<Uuid>) {
    let (expired, attempts) = db.order(event, &[(tt, 1)], &[PaymentStatus::Processing]).await;
    sqlx::query("UPDATE orders SET status = $2 WHERE id = $1")
        .bind(expired)
        .bind(OrderStatus::Expired)
        .execute(&db.pool)
        .await
        .unwrap();
    (expired, attempts)
}

/// (held, sold) of a ticket type.
async fn seats(db: &TestDb, ticket_type: Uuid) -> (i32, i32) {
    sqlx::query_as("SELECT held, sold FROM ticket_types WHERE id = $1")
        .bind(ticket_type)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// The tickets of an order: (ticket type, position), by position.
async fn tickets(db: &TestDb, order: Uuid) -> Vec<(Uuid, i32)> {
    sqlx::query_as("SELECT ticket_type_id, position FROM tickets WHERE order_id = $1 ORDER BY position")
        .bind(order)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn status(db: &TestDb, payment: Uuid) -> PaymentStatus {
    sqlx::query_scalar("SELECT status FROM payments WHERE id = $1").bind(payment).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn one_batch_pays_many_orders_and_moves_each_counter_once() {
    let db = TestDb::new().await;
    let (event, adult) = db.event(100, 10, 3600.0).await;
    let child = db.ticket_type(event, 1, 100).await;
    let mut orders = Vec::new();
    for i in 0..40 {
        let lines: Vec<(Uuid, i32)> = if i % 2 == 0 { vec![(adult, 2), (child, 1)] } else { vec![(child, 1)] };
        orders.push(db.order(event, &lines, &[PaymentStatus::Processing]).await);
    }
    assert_eq!((seats(&db, adult).await, seats(&db, child).await), ((40, 0), (40, 0)));
    let ids: Vec<Uuid> = orders.iter().map(|(_, p)| p[0]).collect();
    let statuses = record_all(&db.pool, &TicketKeys::dev(), &ids, &[]).await.unwrap();
    assert!(ids.iter().all(|id| statuses[id] == PaymentStatus::Succeeded), "{statuses:?}");
    assert_eq!((seats(&db, adult).await, seats(&db, child).await), ((0, 40), (0, 40)));
    for (i, (order, _)) in orders.iter().enumerate() {
        let expected = if i % 2 == 0 { vec![(adult, 1), (adult, 2), (child, 3)] } else { vec![(child, 1)] };
        assert_eq!(tickets(&db, *order).await, expected);
    }
    let mails: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox WHERE kind = $1")
        .bind(MailKind::OrderPaid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(mails, 40);
    // Recorded again (a webhook after the buyer's confirmation): nothing moves twice.
    let again = record_all(&db.pool, &TicketKeys::dev(), &ids, &[]).await.unwrap();
    assert!(ids.iter().all(|id| again[id] == PaymentStatus::Succeeded));
    assert_eq!((seats(&db, adult).await, seats(&db, child).await), ((0, 40), (0, 40)));
    assert_eq!(tickets(&db, orders[0].0).await.len(), 3);
}

#[tokio::test]
async fn two_successes_of_one_order_in_one_batch_pay_it_once_and_owe_the_other_back() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 10, 3600.0).await;
    let (order_id, attempts) = db.order(event, &[(tt, 2)], &[PaymentStatus::Processing, PaymentStatus::Canceled]).await;
    let (expired, late) = expired_order(&db, event, tt).await;
    let mut ids = vec![attempts[0], attempts[1], late[0]];
    ids.sort_unstable();
    let statuses = record_all(&db.pool, &TicketKeys::dev(), &ids, &[]).await.unwrap();
    let of_order = [statuses[&attempts[0]], statuses[&attempts[1]]];
    assert!(of_order.contains(&PaymentStatus::Succeeded) && of_order.contains(&PaymentStatus::RefundPending));
    assert_eq!(statuses[&late[0]], PaymentStatus::RefundPending);
    for id in ids {
        assert_eq!(status(&db, id).await, statuses[&id]);
    }
    assert_eq!(tickets(&db, order_id).await.len(), 2);
    assert!(tickets(&db, expired).await.is_empty());
    // The expired order's seat is not sold (it was given back, or will be, by its expiry).
    assert_eq!(seats(&db, tt).await, (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_successes_share_transactions_and_each_gets_its_answer() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(500, 10, 3600.0).await;
    let mut payments = Vec::new();
    for _ in 0..200 {
        payments.push(db.order(event, &[(tt, 1)], &[PaymentStatus::Processing]).await.1[0]);
    }
    let batcher = PaidBatcher::new(db.pool.clone(), TicketKeys::dev());
    // Every payment twice at once (the buyer's confirmation and a webhook).
    let answers = join_all(payments.iter().chain(&payments).map(|&p| batcher.record(p))).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(PaymentStatus::Succeeded))), "{answers:?}");
    assert_eq!(seats(&db, tt).await, (0, 200));
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(&db.pool).await.unwrap();
    assert_eq!(tickets, 200);
    // The transactions that wrote the successes: one per payment without the group commit.
    let transactions: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM payments").fetch_one(&db.pool).await.unwrap();
    assert!(transactions < 50, "{transactions} transactions for 200 payments");
}

#[tokio::test]
async fn a_batch_that_fails_sends_each_payment_alone() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 10, 3600.0).await;
    let (_, good) = db.order(event, &[(tt, 1)], &[PaymentStatus::Processing]).await;
    let (_, bad) = db.order(event, &[(tt, 1)], &[PaymentStatus::Processing]).await;
    // A ticket code already taken by another order's ticket would fail the
    // batch's insert; here a trigger fails every batch of more than one.
    db.refuse_batches("orders", "UPDATE").await;
    let batcher = PaidBatcher::new(db.pool.clone(), TicketKeys::dev());
    let answers = join_all([good[0], bad[0]].map(|p| batcher.record(p))).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(PaymentStatus::Succeeded))), "{answers:?}");
    assert_eq!(seats(&db, tt).await, (0, 2));
}

/// A claimed Idempotency-Key, as the middleware leaves it before the handler runs.
async fn claimed_key(db: &TestDb, key: &str) -> KeyRecord {
    let id: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    sqlx::query("INSERT INTO idempotency_keys (id, request_hash, instance_id) VALUES ($1, '\\x01', $2)")
        .bind(&id[..])
        .bind(Uuid::new_v4())
        .execute(&db.pool)
        .await
        .unwrap();
    KeyRecord { id, request_hash: vec![1], status: 200, body: format!("sealed answer of {key}").into_bytes() }
}

/// (status, body, still claimed) of a key's row.
async fn key_row(db: &TestDb, key: &str) -> (Option<i16>, Option<Vec<u8>>, bool) {
    sqlx::query_as("SELECT response_status, response_body, instance_id IS NOT NULL FROM idempotency_keys WHERE id = $1")
        .bind(&Sha256::digest(key.as_bytes())[..])
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_keyed_success_commits_its_answer_with_the_payment_and_a_refund_owed_commits_none() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 10, 3600.0).await;
    let (_, paying) = db.order(event, &[(tt, 1)], &[PaymentStatus::Processing]).await;
    let (_, late) = expired_order(&db, event, tt).await;
    let (paid_answer, owed_answer) = (claimed_key(&db, "paid").await, claimed_key(&db, "owed").await);
    let mut ids = vec![paying[0], late[0]];
    ids.sort_unstable();
    let statuses =
        record_all(&db.pool, &TicketKeys::dev(), &ids, &[(paying[0], &paid_answer), (late[0], &owed_answer)])
            .await
            .unwrap();
    assert_eq!((statuses[&paying[0]], statuses[&late[0]]), (PaymentStatus::Succeeded, PaymentStatus::RefundPending));
    assert_eq!(key_row(&db, "paid").await, (Some(200), Some(paid_answer.body), false));
    // Its request answers something else (a 409), stored by the middleware.
    assert_eq!(key_row(&db, "owed").await, (None, None, true));

    // Through the queue, as a buyer's confirmation goes.
    let (_, queued) = db.order(event, &[(tt, 1)], &[PaymentStatus::Processing]).await;
    let answer = claimed_key(&db, "queued").await;
    let batcher = PaidBatcher::new(db.pool.clone(), TicketKeys::dev());
    assert_eq!(batcher.record_answering(queued[0], Some(answer.clone())).await.unwrap(), PaymentStatus::Succeeded);
    assert_eq!(key_row(&db, "queued").await, (Some(200), Some(answer.body), false));
}

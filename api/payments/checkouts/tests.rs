//! The group commit of checkouts against a real database.

use futures_util::future::join_all;

use super::*;
use crate::checkin::ticket_keys::TicketKeys;
use crate::config::SimulatedFaults;
use crate::domain::secret::new_buyer_secret;
use crate::domain::status::{HoldStatus, OrderStatus, PaymentStatus};
use crate::payments::simulated::SimulatedGateway;
use crate::test_db::TestDb;

fn batcher(db: &TestDb) -> CheckoutBatcher {
    let gateway = Arc::new(SimulatedGateway::new(db.pool.clone(), SimulatedFaults::default()));
    let payments = PaymentService::new(db.pool.clone(), gateway, TicketKeys::dev());
    CheckoutBatcher::new(payments, Some(LinkKey::from_secret("checkout tests")), 900.0)
}

/// A hold of `lines` (its seats counted as held), live for `live_secs`;
/// answers its checkout by its buyer (the hold's secret is fresh).
async fn hold(db: &TestDb, event: Uuid, lines: &[(Uuid, i32)], live_secs: f64) -> Checkout {
    let secret = new_buyer_secret();
    let id = db.hold(event, lines, 100, HoldStatus::Active, live_secs, &hash_secret(&secret)).await;
    Checkout { hold_id: id, hold_secret_hash: hash_secret(&secret), order_secret: format!("order-{secret}"), key: None }
}

fn keyed(mut checkout: Checkout, key: &str) -> Checkout {
    let scope = format!("POST /api/v1/holds/{}/checkout", checkout.hold_id);
    checkout.key = Some(Arc::new(KeyContext::new(scope, key, vec![1], Uuid::new_v4())));
    checkout
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

/// The orders made from each hold: (hold, order, order's status), by hold.
async fn orders(db: &TestDb) -> Vec<(Uuid, Uuid, OrderStatus)> {
    sqlx::query_as("SELECT hold_id, id, status FROM orders ORDER BY hold_id").fetch_all(&db.pool).await.unwrap()
}

fn created(outcome: &Outcome) -> Option<serde_json::Value> {
    match outcome {
        Outcome::Created { body, .. } => Some(serde_json::from_slice(body).unwrap()),
        _ => None,
    }
}

#[tokio::test]
async fn one_transaction_checks_out_many_holds_each_by_its_own_buyer() {
    let db = TestDb::new().await;
    let (event, adult) = db.event(100, 10, 3600.0).await;
    let child = db.ticket_type(event, 1, 100).await;
    let batcher = batcher(&db);
    let two_lines = hold(&db, event, &[(adult, 2), (child, 1)], 600.0).await;
    let one_line = keyed(hold(&db, event, &[(child, 3)], 600.0).await, "key-1");
    let mut wrong_secret = hold(&db, event, &[(adult, 1)], 600.0).await;
    wrong_secret.hold_secret_hash = hash_secret("not the buyer");
    let expired = hold(&db, event, &[(adult, 1)], -1.0).await;
    let twin = two_lines.clone();
    let checkouts = [two_lines.clone(), one_line.clone(), wrong_secret.clone(), expired.clone(), twin];

    let outcomes = batcher.checkout_all(&checkouts).await.unwrap();

    let views: Vec<Option<serde_json::Value>> = outcomes.iter().map(created).collect();
    assert!(views[0].is_some() && views[1].is_some(), "both buyers' holds are checked out");
    assert!(views[2..].iter().all(Option::is_none), "wrong secret, expired, and the twin of a checked-out hold");
    let two = views[0].as_ref().unwrap();
    assert_eq!(two["order"]["secret"], two_lines.order_secret.as_str());
    assert_eq!(two["order"]["quantity"], 3);
    assert_eq!(two["order"]["amount_minor"], 300);
    assert_eq!(two["order"]["lines"].as_array().unwrap().len(), 2);
    assert_eq!(two["order"]["ticket_type_id"], serde_json::Value::Null);
    assert_eq!(two["payment"]["status"], "created");
    assert_eq!(two["payment"], two["order"]["payment"]);
    let one = views[1].as_ref().unwrap();
    assert_eq!(one["order"]["ticket_type_id"], child.to_string());
    assert!(matches!(&outcomes[1], Outcome::Created { first: Some(a), .. } if a.status == PaymentStatus::Created));

    let made = orders(&db).await;
    let mut expected = vec![two_lines.hold_id, one_line.hold_id];
    expected.sort();
    assert_eq!(made.iter().map(|o| o.0).collect::<Vec<_>>(), expected, "one order per hold checked out");
    assert!(made.iter().all(|o| o.2 == OrderStatus::AwaitingPayment));
    let statuses: Vec<(Uuid, HoldStatus)> =
        sqlx::query_as("SELECT id, status FROM holds ORDER BY id").fetch_all(&db.pool).await.unwrap();
    for (id, status) in statuses {
        let checked_out = id == two_lines.hold_id || id == one_line.hold_id;
        assert_eq!(status == HoldStatus::CheckedOut, checked_out, "hold {id}");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM payments").await, 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM order_links").await, 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM idempotency_keys").await, 1, "the keyed request's answer");
    assert!(one_line.key.as_ref().unwrap().state() == idempotency::KeyState::Recorded);
    // The counters do not move at checkout: the order takes the hold's seats over.
    let held: i64 = count(&db, "SELECT SUM(held)::int8 FROM ticket_types").await;
    assert_eq!(held, 3 + 3 + 1 + 1);

    // Checking out again makes nothing more.
    let again = batcher.checkout_all(&[two_lines, one_line]).await.unwrap();
    assert!(again.iter().all(|o| matches!(o, Outcome::NotTaken)));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 2);
}

#[tokio::test]
async fn a_key_stored_already_commits_nothing_of_its_batch() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(100, 10, 3600.0).await;
    let batcher = batcher(&db);
    let first = keyed(hold(&db, event, &[(tt, 1)], 600.0).await, "retried");
    let other = keyed(hold(&db, event, &[(tt, 1)], 600.0).await, "other");
    let plain = hold(&db, event, &[(tt, 1)], 600.0).await;
    // The key's answer is there already (a retry of a request that answered).
    let stored = first.key.as_ref().unwrap().record(StatusCode::CREATED, b"{}");
    idempotency::insert_answered(&db.pool, &[stored]).await.unwrap();

    let outcomes = batcher.checkout_all(&[first.clone(), other.clone(), plain.clone()]).await.unwrap();

    assert!(matches!(outcomes[0], Outcome::KeyTaken));
    assert!(matches!(outcomes[1], Outcome::Again) && matches!(outcomes[2], Outcome::Again));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM idempotency_keys").await, 1);
    // Alone, the others check out; the taken one replays.
    for c in [&other, &plain] {
        assert!(created(&batcher.checkout(c).await.unwrap()).is_some());
    }
    assert!(matches!(batcher.checkout(&first).await.unwrap(), Outcome::KeyTaken));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM idempotency_keys").await, 2);
}

#[tokio::test]
async fn concurrent_checkouts_share_transactions_and_make_one_order_per_hold() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(1000, 10, 3600.0).await;
    let batcher = batcher(&db);
    let mut holds = Vec::new();
    for _ in 0..150 {
        holds.push(hold(&db, event, &[(tt, 2)], 600.0).await);
    }
    // Every hold checked out twice at once, as by a buyer's double click.
    let requests: Vec<Checkout> = holds.iter().chain(holds.iter()).cloned().collect();
    let outcomes = join_all(requests.into_iter().map(|c| {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.checkout(&c).await.unwrap() })
    }))
    .await;
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let answered: Vec<serde_json::Value> = outcomes.iter().filter_map(created).collect();
    assert_eq!(answered.len(), 150, "one order per hold, the twin finds it made");
    let made = orders(&db).await;
    assert_eq!(made.len(), 150);
    for view in &answered {
        let id: Uuid = view["order"]["id"].as_str().unwrap().parse().unwrap();
        assert!(made.iter().any(|o| o.1 == id), "the answered order {id} exists");
    }
    // One transaction per checkout without the group commit.
    let transactions = count(&db, "SELECT COUNT(DISTINCT xmin::text) FROM orders").await;
    assert!(transactions < 75, "{transactions} transactions for 150 checkouts");
    // Every first attempt's intent was made and recorded before its checkout
    // answered, for a whole batch at a time.
    let recorded = count(
        &db,
        "SELECT COUNT(*) FROM payments p JOIN simulated_intents s ON s.id = p.provider_ref AND s.payment_id = p.id",
    )
    .await;
    assert_eq!((recorded, count(&db, "SELECT COUNT(*) FROM simulated_intents").await), (150, 150));
    let creations = count(&db, "SELECT COUNT(DISTINCT xmin::text) FROM simulated_intents").await;
    let recordings = count(&db, "SELECT COUNT(DISTINCT xmin::text) FROM payments").await;
    assert!(creations < 75 && recordings < 75, "{creations} creations and {recordings} recordings for 150");
}

#[tokio::test]
async fn batches_of_two_instances_sharing_holds_do_not_deadlock() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(1000, 10, 3600.0).await;
    let (one, two) = (batcher(&db), batcher(&db));
    for round in 0..10 {
        let mut holds = Vec::new();
        for _ in 0..80 {
            holds.push(hold(&db, event, &[(tt, 1)], 600.0).await);
        }
        // The same holds, in opposite orders, in two transactions at once.
        let reversed: Vec<Checkout> = holds.iter().rev().cloned().collect();
        let (a, b) = tokio::join!(one.checkout_all(&holds), two.checkout_all(&reversed));
        let (a, b) = (a.unwrap_or_else(|e| panic!("round {round}: {e}")), b.unwrap_or_else(|e| panic!("{e}")));
        let made = a.iter().chain(&b).filter(|o| created(o).is_some()).count();
        assert_eq!(made, 80, "round {round}: each hold checked out once");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 800);
}

#[tokio::test]
async fn a_batch_that_fails_sends_each_checkout_alone() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(100, 10, 3600.0).await;
    let batcher = batcher(&db);
    let mut checkouts = Vec::new();
    for i in 0..3 {
        checkouts.push(keyed(hold(&db, event, &[(tt, 1)], 600.0).await, &format!("alone-{i}")));
    }
    db.refuse_batches("orders", "INSERT").await;
    assert!(batcher.checkout_all(&checkouts).await.is_err(), "the trigger refuses a batch");

    // Queued together (a single-threaded runtime: all join before the batch runs), refused together, made alone.
    let outcomes = join_all(checkouts.iter().map(|c| batcher.checkout(c))).await;
    for outcome in &outcomes {
        assert!(created(outcome.as_ref().unwrap_or_else(|e| panic!("{e}"))).is_some());
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM payments").await, 3);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM idempotency_keys").await, 3);
}

//! The group commit against a real database.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::join_all;
use futures_util::StreamExt;
use uuid::Uuid;

use super::*;
use crate::config::Config;
use crate::domain::status::HoldStatus;
use crate::domain::{BuyerName, Email, Quantity};
use crate::error::ApiError;
use crate::error::Shortfall;
use crate::payments::simulated::SimulatedGateway;
use crate::payments::PaymentGateway;
use crate::sales::hold_rules::{Line, Lines, NewHold};
use crate::sales::holds::take_seats;
use crate::startup::Application;
use crate::test_db::TestDb;

fn seats(event_id: Uuid, ticket_type_id: Uuid, quantity: i32) -> Seats {
    Seats {
        event_id,
        lines: Lines::one(ticket_type_id, Quantity::parse(quantity.into()).unwrap()),
        id: Uuid::new_v4(),
        secret_hash: vec![7; 32],
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        hold_seconds: 300.0,
        origin: None,
        keyed: None,
    }
}

fn held(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Held(_))
}

#[tokio::test]
async fn a_lone_request_is_held_at_once() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 4, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let request = seats(event, tt, 3);
    let id = request.id;
    let Outcome::Held(taken) = batcher.take(request).await else { panic!("not held") };
    assert_eq!(
        (taken.amount.minor(), taken.amount.currency().as_str(), taken.event_name.as_str()),
        (4500, "GBP", "Batch test")
    );
    assert_eq!(db.counters(tt).await, (3, 1));
    let stored = sqlx::query_scalar!("SELECT quantity FROM holds WHERE id = $1", id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, 3);
}

#[tokio::test]
async fn one_batch_grants_first_fit_in_arrival_order() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(5, 5, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    // On this single-threaded runtime all three are queued before the flusher first runs: one batch.
    let outcomes = join_all([4, 3, 1].map(|q| batcher.take(seats(event, tt, q)))).await;
    assert!(held(&outcomes[0]) && held(&outcomes[2]), "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Refused(Refusal::SoldOut(_))), "{outcomes:?}");
    assert_eq!(db.counters(tt).await, (5, 2));
}

#[tokio::test]
async fn each_request_is_checked_on_its_own() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(100, 10, 3600.0).await;
    let (_, other_tt) = db.event(100, 10, 3600.0).await;
    let (past_event, past_tt) = db.event(100, 10, -60.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let outcomes = join_all(
        [
            seats(event, tt, 2),
            seats(event, tt, 11),
            seats(event, tt, 1),
            seats(event, other_tt, 1),
            seats(Uuid::new_v4(), tt, 1),
            seats(past_event, past_tt, 1),
        ]
        .map(|s| batcher.take(s)),
    )
    .await;
    assert!(held(&outcomes[0]) && held(&outcomes[2]), "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Refused(Refusal::TooMany { max_per_order: 10, .. })), "{outcomes:?}");
    assert!(matches!(outcomes[3], Outcome::Refused(Refusal::NotThisEvent { .. })), "{outcomes:?}");
    assert!(matches!(outcomes[4], Outcome::Refused(Refusal::NoSuchEvent)), "{outcomes:?}");
    assert!(matches!(outcomes[5], Outcome::Refused(Refusal::SalesClosed)), "{outcomes:?}");
    assert_eq!(db.counters(tt).await, (3, 2));
    assert_eq!(db.counters(other_tt).await, (0, 0));
    assert_eq!(db.counters(past_tt).await, (0, 0));
}

#[tokio::test]
async fn stale_holds_are_expired_once_before_anyone_is_told_sold_out() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(2, 2, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let mut short = seats(event, tt, 2);
    short.hold_seconds = 0.2;
    let first = short.id;
    assert!(held(&batcher.take(short).await));
    assert!(matches!(batcher.take(seats(event, tt, 1)).await, Outcome::Refused(Refusal::SoldOut(_))));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let outcomes = join_all([2, 1].map(|q| batcher.take(seats(event, tt, q)))).await;
    assert!(held(&outcomes[0]), "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Refused(Refusal::SoldOut(_))), "{outcomes:?}");
    assert_eq!(db.counters(tt).await, (2, 1));
    let status = sqlx::query_scalar!(r#"SELECT status::text AS "s!" FROM holds WHERE id = $1"#, first)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "expired");
}

#[tokio::test]
async fn expired_seats_come_back_before_first_fit_so_arrival_order_holds() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(4, 4, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let mut short = seats(event, tt, 2);
    short.hold_seconds = 0.2;
    assert!(held(&batcher.take(short).await));
    assert!(held(&batcher.take(seats(event, tt, 1)).await));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // One seat is free and two are in an expired hold: the earlier request
    // for 3 must get them, not the later request for 1.
    let outcomes = join_all([3, 1].map(|q| batcher.take(seats(event, tt, q)))).await;
    assert!(held(&outcomes[0]), "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Refused(Refusal::SoldOut(_))), "{outcomes:?}");
    assert_eq!(db.counters(tt).await, (4, 2));
}

#[tokio::test]
async fn a_hold_that_waited_for_the_counters_lives_its_whole_time_from_then_and_answers_what_is_stored() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(5, 5, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query!("SELECT id FROM ticket_types WHERE id = $1 FOR UPDATE", tt).fetch_one(&mut *blocker).await.unwrap();
    let mut request = seats(event, tt, 1);
    request.hold_seconds = 1.0;
    let id = request.id;
    let waiting = tokio::spawn(async move { batcher.take(request).await });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let released_at =
        sqlx::query_scalar!(r#"SELECT clock_timestamp() AS "t!""#).fetch_one(&mut *blocker).await.unwrap();
    blocker.commit().await.unwrap();
    let Outcome::Held(taken) = waiting.await.unwrap() else { panic!("not held") };
    assert!(
        taken.expires_at >= released_at + time::Duration::seconds(1),
        "born {} before the lock was had",
        released_at + time::Duration::seconds(1) - taken.expires_at
    );
    let stored =
        sqlx::query_scalar!("SELECT expires_at FROM holds WHERE id = $1", id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, taken.expires_at, "the answer shows the stored deadline");
}

#[tokio::test]
async fn one_batch_sweeps_many_stale_holds_of_several_types_and_only_its_events() {
    let db = TestDb::new().await;
    let (event, adult) = db.event(100, 10, 3600.0).await;
    let child = db.ticket_type(event, 1, 100).await;
    let (other_event, other_tt) = db.event(100, 10, 3600.0).await;
    let lines = [(adult, 2), (child, 1)];
    let mut stale = Vec::new();
    for _ in 0..30 {
        stale.push(db.hold(event, &lines, 1000, HoldStatus::Active, -1.0, &[1; 32]).await);
    }
    for _ in 0..10 {
        db.hold(event, &lines, 1000, HoldStatus::Active, 3600.0, &[1; 32]).await;
    }
    let elsewhere = db.hold(other_event, &[(other_tt, 3)], 1000, HoldStatus::Active, -1.0, &[1; 32]).await;
    assert_eq!(db.counters(adult).await, (80, 40));

    let batcher = HoldBatcher::new(db.pool.clone());
    assert!(held(&batcher.take(seats(event, adult, 1)).await));

    assert_eq!(db.counters(adult).await, (21, 11), "10 live holds of 2 and the new one");
    assert_eq!(db.counters(child).await, (10, 10));
    assert_eq!(db.counters(other_tt).await, (3, 1), "another event's holds are its own batches' to sweep");
    let statuses: Vec<HoldStatus> = sqlx::query_scalar("SELECT status FROM holds WHERE id = ANY($1)")
        .bind(&stale)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(statuses.len(), 30);
    assert!(statuses.iter().all(|s| *s == HoldStatus::Expired), "{statuses:?}");
    let status: HoldStatus =
        sqlx::query_scalar("SELECT status FROM holds WHERE id = $1").bind(elsewhere).fetch_one(&db.pool).await.unwrap();
    assert_eq!(status, HoldStatus::Active);
}

fn lines(event_id: Uuid, lines: &[(Uuid, i64)]) -> Seats {
    let lines = lines.iter().map(|&(t, q)| Line { ticket_type_id: t, quantity: Quantity::parse(q).unwrap() }).collect();
    Seats { lines: Lines::parse(lines).unwrap(), ..seats(event_id, Uuid::nil(), 1) }
}

#[tokio::test]
async fn a_batch_of_several_types_grants_whole_requests_first_fit_in_arrival_order() {
    let db = TestDb::new().await;
    let (event, adult) = db.event(4, 10, 3600.0).await;
    let child = db.ticket_type(event, 1, 1).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let mut outcomes = join_all(
        [
            lines(event, &[(adult, 2), (child, 2)]), // child does not fit: nothing for it
            lines(event, &[(adult, 3), (child, 1)]),
        ]
        .map(|s| batcher.take(s)),
    )
    .await;
    // Holds of one type queue on their own: after the first batch, not beside it.
    outcomes.extend(
        join_all(
            [
                lines(event, &[(adult, 2)]), // 1 adult left
                lines(event, &[(adult, 1)]),
            ]
            .map(|s| batcher.take(s)),
        )
        .await,
    );
    let Outcome::Refused(Refusal::SoldOut(short)) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(short, &[Shortfall { ticket_type_id: child, requested: 2, available: 1 }]);
    let Outcome::Held(taken) = &outcomes[1] else { panic!("{outcomes:?}") };
    assert_eq!(taken.amount.minor(), 3 * 1500 + 700);
    assert!(matches!(&outcomes[2], Outcome::Refused(Refusal::SoldOut(_))), "{outcomes:?}");
    assert!(held(&outcomes[3]), "{outcomes:?}");
    assert_eq!((db.counters(adult).await, db.counters(child).await), ((4, 2), (1, 1)));
}

/// `seats` with an Idempotency-Key whose answer reads the same for every outcome.
fn keyed(event_id: Uuid, ticket_type_id: Uuid, key: &str) -> Seats {
    let render: Arc<Render> = Arc::new(|outcome: &Outcome| match outcome {
        Outcome::Held(_) | Outcome::Refused(_) => Some((actix_web::http::StatusCode::CREATED, b"{}".to_vec())),
        _ => None,
    });
    let context = Arc::new(KeyContext::new("holds".into(), key, vec![1], Uuid::new_v4()));
    Seats { keyed: Some(Keyed { context, render }), ..seats(event_id, ticket_type_id, 1) }
}

#[tokio::test]
async fn a_key_stored_already_leaves_its_batch_for_a_replay_and_the_others_commit() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 4, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    assert!(held(&batcher.take(keyed(event, tt, "first")).await));
    // One batch: the retry of a stored key, a new key, no key.
    let outcomes =
        join_all([keyed(event, tt, "first"), keyed(event, tt, "second"), seats(event, tt, 1)].map(|s| batcher.take(s)))
            .await;
    assert!(matches!(outcomes[0], Outcome::KeyTaken), "{outcomes:?}");
    assert!(held(&outcomes[1]) && held(&outcomes[2]), "{outcomes:?}");
    assert_eq!(db.counters(tt).await, (3, 3), "the retry took no seat");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&db.pool).await.unwrap();
    assert_eq!(keys, 2);
}

#[tokio::test]
async fn an_unreachable_database_fails_the_request_at_once() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 4, 3600.0).await;
    let pool = crate::db::connect(&db.url, 2).await.unwrap();
    let batcher = HoldBatcher::new(pool.clone());
    pool.close().await;
    assert!(matches!(
        batcher.take(seats(event, tt, 1)).await,
        Outcome::Unavailable { code: crate::error::ErrorCode::DatabaseUnavailable, .. }
    ));
    let hold = NewHold {
        event_id: event,
        lines: Lines::one(tt, Quantity::parse(1).unwrap()),
        name: BuyerName::parse("Ada").unwrap(),
        email: Email::parse("ada@example.com").unwrap(),
        origin: None,
        key: None,
    };
    let err = take_seats(&batcher, &hold, 300).await.err().expect("no database, no hold");
    assert!(matches!(err, ApiError::Unavailable { .. }), "{err:?}");
    assert_eq!(db.counters(tt).await, (0, 0));
}

#[tokio::test]
async fn a_flush_that_fails_otherwise_stores_nothing_and_sends_everyone_alone() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(10, 4, 3600.0).await;
    let batcher = HoldBatcher::new(db.pool.clone());
    let mut poisoned = seats(event, tt, 1);
    // PostgreSQL refuses NUL in text; the HTTP layer never lets one through.
    poisoned.name = "Ada\0".into();
    let outcomes = join_all([seats(event, tt, 1), poisoned].map(|s| batcher.take(s))).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Failed)), "{outcomes:?}");
    assert_eq!(db.counters(tt).await, (0, 0));
}

async fn start_instance(url: &str) -> String {
    let vars = [
        ("NTS_ADDRESS", "127.0.0.1:0"),
        ("DATABASE_URL", url),
        ("NTS_ADMIN_TOKEN", "batch-test-admin-token-0123456789abcdef"),
        ("NTS_PAYMENTS", "simulated"),
        ("NTS_DEMO", "false"),
        ("NTS_DB_POOL_SIZE", "8"),
        ("NTS_MAX_UNPAID_PER_ADDRESS", "0"),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    let pool = crate::db::connect(url, config.db_pool_size).await.unwrap();
    let gateway: Arc<dyn PaymentGateway> =
        Arc::new(SimulatedGateway::new(pool.clone(), config.simulated().cloned().unwrap_or_default()));
    let app = Application::build_with(config, pool, gateway).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sell_exactly_the_capacity() {
    let db = TestDb::new().await;
    let (event, tt) = db.event(100, 4, 3600.0).await;
    let instances = [start_instance(&db.url).await, start_instance(&db.url).await];
    let client = reqwest::Client::new();
    let answers: Vec<(u16, serde_json::Value)> = futures_util::stream::iter(0..500)
        .map(|i| {
            let url = format!("{}/api/v1/events/{event}/holds", instances[i % 2]);
            let body = serde_json::json!({"ticket_type_id": tt, "quantity": 1, "name": format!("Buyer {i}"), "email": format!("b{i}@example.com")});
            let client = client.clone();
            async move {
                let res = client.post(url).json(&body).send().await.expect("an answer");
                (res.status().as_u16(), res.json().await.expect("a JSON body"))
            }
        })
        .buffer_unordered(250)
        .collect()
        .await;
    let held: HashSet<Uuid> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let sold_out = answers.iter().filter(|(status, body)| *status == 409 && body["code"] == "sold_out").count();
    assert_eq!(
        (held.len(), sold_out),
        (100, 400),
        "other answers: {:?}",
        answers.iter().filter(|(s, _)| *s != 201 && *s != 409).collect::<Vec<_>>()
    );
    assert_eq!(db.counters(tt).await, (100, 100));
    let stored: HashSet<Uuid> = sqlx::query_scalar!("SELECT hold_id FROM hold_lines WHERE ticket_type_id = $1", tt)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored, held);
}

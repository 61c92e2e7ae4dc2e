use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::binary::NtsProcess;
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_requests_make_one_hold() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let body = json!({"ticket_type_id": tt, "quantity": 2, "name": "Ada", "email": "ada@example.com"});

    let answers =
        join_all((0..20).map(|_| app.call_on(0, Method::POST, &path, Some(&body), None, Some("key-1")))).await;
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 1);
    assert_eq!(app.counters(&tt).await, (0, 2));
    let created: Vec<_> = answers.iter().filter(|a| a.status == 201).collect();
    assert!(!created.is_empty());
    for a in &answers {
        assert!(a.status == 201 || (a.status == 409 && a.code() == "idempotency_key_in_use"), "{:?}", a);
    }
    assert!(created.windows(2).all(|w| w[0].body == w[1].body), "every success is the same hold");

    let replay = app.call_on(0, Method::POST, &path, Some(&body), None, Some("key-1")).await;
    assert_eq!(replay.expect(201), &created[0].body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(app.counters(&tt).await, (0, 2));
}

#[tokio::test]
async fn a_key_reused_with_another_request_is_refused() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    app.call_on(0, Method::POST, &path, Some(&body), None, Some("k")).await.expect(201);
    let other = json!({"ticket_type_id": tt, "quantity": 2, "name": "Ada", "email": "ada@example.com"});
    app.call_on(0, Method::POST, &path, Some(&other), None, Some("k"))
        .await
        .expect_error(422, "idempotency_key_reused");
    assert_eq!(app.counters(&tt).await, (0, 1));
}

#[tokio::test]
async fn errors_are_replayed_too_and_keys_are_scoped_by_credential() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(1, 1).await;
    let hold = app.hold(&event, &tt, 1).await.expect(201).clone();
    let path = format!("/api/v1/events/{event}/holds");
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    app.call_on(0, Method::POST, &path, Some(&body), None, Some("e")).await.expect_error(409, "sold_out");
    // Seats come back, but the key's answer stays what it was.
    let release = format!("/api/v1/holds/{}", hold["id"].as_str().unwrap());
    app.call(Method::DELETE, &release, None, hold["secret"].as_str()).await.expect(200);
    app.call_on(0, Method::POST, &path, Some(&body), None, Some("e")).await.expect_error(409, "sold_out");

    // The same key under another buyer's credential is another key.
    let a = app.checkout(&event, &tt, 1).await;
    let order = a["order"]["id"].as_str().unwrap();
    let pay = format!("/api/v1/orders/{order}/payments");
    let first = app.call_on(0, Method::POST, &pay, Some(&json!({})), a["order"]["secret"].as_str(), Some("p")).await;
    first.expect(201);
    let stranger = app.call_on(0, Method::POST, &pay, Some(&json!({})), Some("someone-else"), Some("p")).await;
    stranger.expect_error(404, "not_found");
}

#[tokio::test]
async fn malformed_keys_are_rejected() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 1).await;
    let path = format!("/api/v1/events/{event}/holds");
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let long = "k".repeat(256);
    app.call_on(0, Method::POST, &path, Some(&body), None, Some(&long))
        .await
        .expect_error(400, "invalid_idempotency_key");
    assert_eq!(app.counters(&tt).await, (0, 0));
}

/// Counts rows of a table in the test's database.
async fn count(app: &crate::helpers::TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&app.pool).await.unwrap()
}

/// Sends a keyed POST to a real nts process in the background (its answer never comes: the process is killed).
fn send_and_forget(url: String, body: serde_json::Value, bearer: Option<String>, key: &str) {
    let key = key.to_owned();
    tokio::spawn(async move {
        let mut req = reqwest::Client::new().post(url).json(&body).header("Idempotency-Key", key);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let _ = req.send().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_instance_dies_after_its_commit_is_replayed_not_taken_twice() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let body = json!({"ticket_type_id": tt, "quantity": 2, "name": "Ada", "email": "ada@example.com"});
    let mut doomed = NtsProcess::start(&app.db.url, &[("NTS_DEBUG_STALL_AFTER", "hold")]);
    send_and_forget(doomed.url(&path), body.clone(), None, "crash-hold");
    app.eventually(60, || async { count(&app, "holds").await == 1 }).await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    let retry = app.call_on(0, Method::POST, &path, Some(&body), None, Some("crash-hold")).await;
    let held: String = sqlx::query_scalar("SELECT id::text FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(retry.expect(201)["id"], held.as_str(), "the retry answers the hold its first request made");
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert!(retry.body["secret"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(count(&app, "holds").await, 1);
    assert_eq!(app.counters(&tt).await, (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_instance_dies_after_its_commit_is_replayed() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let hold = app.hold(&event, &tt, 1).await.expect(201).clone();
    let path = format!("/api/v1/holds/{}/checkout", hold["id"].as_str().unwrap());
    let secret = hold["secret"].as_str().unwrap().to_owned();
    let mut doomed = NtsProcess::start(&app.db.url, &[("NTS_DEBUG_STALL_AFTER", "checkout")]);
    send_and_forget(doomed.url(&path), json!({}), Some(secret.clone()), "crash-checkout");
    app.eventually(60, || async { count(&app, "orders").await == 1 }).await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    let retry = app.call_on(0, Method::POST, &path, Some(&json!({})), Some(&secret), Some("crash-checkout")).await;
    let order: String = sqlx::query_scalar("SELECT id::text FROM orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!(retry.expect(201)["order"]["id"], order.as_str());
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert!(retry.body["order"]["secret"].as_str().is_some());
    assert_eq!((count(&app, "orders").await, count(&app, "payments").await), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_instance_died_is_resumed_by_the_next_retry_not_refused_for_a_minute() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let checkout = app.checkout(&event, &tt, 1).await;
    let order = checkout["order"]["id"].as_str().unwrap();
    let secret = checkout["order"]["secret"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/orders/{order}/payments");
    let mut doomed = NtsProcess::start(&app.db.url, &[("NTS_DEBUG_STALL_AFTER", "payment")]);
    send_and_forget(doomed.url(&path), json!({}), Some(secret.clone()), "crash-pay");
    // The new attempt exists and its provider object was made: the request is
    // past its effect and has not answered.
    app.eventually(60, || async {
        let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE provider_ref IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        count(&app, "payments").await == 2 && made == 2
    })
    .await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    // The claim's instance is dead: retries are answered once its lease runs
    // out (about 2 s), not `in_use` until a minute has passed.
    let killed = std::time::Instant::now();
    let answer = loop {
        let a = app.call_on(0, Method::POST, &path, Some(&json!({})), Some(&secret), Some("crash-pay")).await;
        if a.status != 409 {
            break a;
        }
        assert_eq!(a.code(), "idempotency_key_in_use");
        assert!(killed.elapsed() < std::time::Duration::from_secs(30), "still in use 30 s after the kill");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let second: String =
        sqlx::query_scalar("SELECT id::text FROM payments WHERE order_id = $1::uuid ORDER BY created_at DESC LIMIT 1")
            .bind(order)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(answer.expect(201)["id"], second.as_str(), "the retry carries on with the attempt already made");
    assert_eq!(count(&app, "payments").await, 2, "no second attempt");
    let again = app.call_on(0, Method::POST, &path, Some(&json!({})), Some(&secret), Some("crash-pay")).await;
    assert_eq!(again.expect(201), &answer.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_provider_call_keeps_its_key_in_use_on_every_instance() {
    let mut app = crate::helpers::spawn_app_with(&[("NTS_SIM_SLOW_RATE", "1"), ("NTS_SIM_SLOW_MS", "1500")]).await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let checkout = app.checkout(&event, &tt, 1).await;
    let order = checkout["order"]["id"].as_str().unwrap().to_owned();
    let secret = checkout["order"]["secret"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/orders/{order}/payments");
    let first = {
        let (client, url, secret) = (app.client.clone(), format!("{}{path}", app.instances[0].address), secret.clone());
        tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(secret)
                .header("Idempotency-Key", "slow")
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        })
    };
    // Cancelling the open attempt and creating the new one take several slow
    // provider calls, longer than an instance's lease. Retries start once the
    // first request has claimed its key.
    app.eventually(60, || async { count(&app, "idempotency_keys").await == 1 }).await;
    let mut retries = 0;
    loop {
        let retry = app.call_on(1, Method::POST, &path, Some(&json!({})), Some(&secret), Some("slow")).await;
        if retry.status == 201 {
            break; // the first request has answered: this is its replay
        }
        retry.expect_error(409, "idempotency_key_in_use");
        retries += 1;
        if first.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(retries > 0, "the first request ended before any retry");
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 201, "{body}");
    let replay = app.call_on(1, Method::POST, &path, Some(&json!({})), Some(&secret), Some("slow")).await;
    assert_eq!(replay.expect(201), &body);
    assert_eq!(count(&app, "payments").await, 2, "the first attempt and the one this key made");
}

#[tokio::test]
async fn the_same_key_on_the_same_route_written_otherwise_replays() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let first =
        app.call_on(0, Method::POST, &format!("/api/v1/events/{event}/holds"), Some(&body), None, Some("case")).await;
    let upper = format!("/api/v1/events/{}/holds", event.to_uppercase());
    let again = app.call_on(0, Method::POST, &upper, Some(&body), None, Some("case")).await;
    assert_eq!(again.expect(201), first.expect(201));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let simple = format!("/api/v1/events/{}/holds", event.replace('-', ""));
    let third = app.call_on(0, Method::POST, &simple, Some(&body), None, Some("case")).await;
    assert_eq!(third.expect(201), first.expect(201));
    assert_eq!(count(&app, "holds").await, 1);
    assert_eq!(app.counters(&tt).await, (0, 1));
}

#[tokio::test]
async fn a_refused_hold_is_replayed_with_its_refusal_even_after_seats_come_back() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_EMAIL", "1")]).await;
    let (event, tt) = app.simple_event(50, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let first = app.call_on(0, Method::POST, &path, Some(&body), None, Some("cap-1")).await.expect(201).clone();
    app.call_on(0, Method::POST, &path, Some(&body), None, Some("cap-2")).await.expect_error(409, "too_many_unpaid");
    let release = format!("/api/v1/holds/{}", first["id"].as_str().unwrap());
    app.call(Method::DELETE, &release, None, first["secret"].as_str()).await.expect(200);
    let replay = app.call_on(0, Method::POST, &path, Some(&body), None, Some("cap-2")).await;
    replay.expect_error(409, "too_many_unpaid");
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(app.counters(&tt).await, (0, 0));
}

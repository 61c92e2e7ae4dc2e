use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

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

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_hold_takes_seats_and_answers_its_secret() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;

    let answer = app.hold(&event, &tt, 2).await;
    let hold = answer.expect(201);
    assert_eq!(hold["status"], "active");
    assert_eq!(hold["quantity"], 2);
    assert_eq!(hold["amount_minor"], 1998);
    assert_eq!(hold["currency"], "GBP");
    assert!(hold["secret"].as_str().unwrap().len() >= 43);
    assert!(hold["expires_at"].as_str().is_some());
    assert_eq!(app.counters(&tt).await, (0, 2));

    // The secret is stored hashed.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_ne!(stored, hold["secret"].as_str().unwrap().as_bytes());
}

#[tokio::test]
async fn sold_out_takes_nothing() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(3, 4).await;
    app.hold(&event, &tt, 2).await.expect(201);
    app.hold(&event, &tt, 2).await.expect_error(409, "sold_out");
    assert_eq!(app.counters(&tt).await, (0, 2));
    app.hold(&event, &tt, 1).await.expect(201);
    app.hold(&event, &tt, 1).await.expect_error(409, "sold_out");
}

#[tokio::test]
async fn invalid_holds_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let (_, other_tt) = app.simple_event(10, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let good = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let with = |field: &str, value: serde_json::Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    for (body, why) in [
        (with("quantity", json!(0)), "quantity 0"),
        (with("quantity", json!(-3)), "negative quantity"),
        (with("quantity", json!(5)), "over max_per_order"),
        (with("email", json!("not-an-email")), "bad email"),
        (with("email", json!("a@b")), "email without a dotted domain"),
        (with("name", json!("   ")), "blank name"),
        (with("name", json!("x".repeat(201))), "long name"),
        (with("ticket_type_id", json!(other_tt)), "ticket type of another event"),
        (with("ticket_type_id", json!(uuid::Uuid::new_v4())), "unknown ticket type"),
        (with("quantity", json!("two")), "quantity of the wrong type"),
        (with("ticket_type_id", json!("nope")), "malformed ticket type id"),
        (with("extra", json!(1)), "unknown field"),
        (json!({"quantity": 1}), "missing fields"),
        (json!([1, 2]), "not an object"),
    ] {
        let answer = app.post(&path, &body, None).await;
        assert_eq!(answer.status.as_u16(), 422, "{why}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed", "{why}");
    }
    app.post(&format!("/api/v1/events/{}/holds", uuid::Uuid::new_v4()), &good, None)
        .await
        .expect_error(404, "not_found");
    app.post_raw(&path, Some("application/json"), "{\"quantity\": ").await.expect_error(400, "invalid_json");
    app.post_raw(&path, Some("text/plain"), "hello").await.expect_error(415, "unsupported_content_type");
    assert_eq!(app.counters(&tt).await, (0, 0));
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 0);
}

#[tokio::test]
async fn holds_are_visible_only_with_their_secret() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let hold = app.hold(&event, &tt, 1).await.expect(201).clone();
    let path = format!("/api/v1/holds/{}", hold["id"].as_str().unwrap());
    let seen = app.get(&path, hold["secret"].as_str()).await;
    assert_eq!(seen.expect(200)["status"], "active");
    assert!(seen.body.get("secret").is_none(), "the secret is only shown once");
    app.get(&path, None).await.expect_error(404, "not_found");
    app.get(&path, Some("wrong-secret")).await.expect_error(404, "not_found");
    app.call(Method::DELETE, &path, None, Some("wrong-secret")).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn releasing_gives_the_seats_back_once() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let hold = app.hold(&event, &tt, 3).await.expect(201).clone();
    let path = format!("/api/v1/holds/{}", hold["id"].as_str().unwrap());
    let secret = hold["secret"].as_str();
    let released = app.call(Method::DELETE, &path, None, secret).await;
    assert_eq!(released.expect(200)["status"], "released");
    assert_eq!(app.counters(&tt).await, (0, 0));
    app.call(Method::DELETE, &path, None, secret).await.expect_error(409, "hold_released");
    assert_eq!(app.counters(&tt).await, (0, 0));
    let checkout = format!("{path}/checkout");
    app.post(&checkout, &json!({}), secret).await.expect_error(409, "hold_released");
}

#[tokio::test]
async fn expired_holds_free_their_seats_and_cannot_be_checked_out() {
    let app = spawn_app_with(&[("NTS_HOLD_SECONDS", "1"), ("NTS_RECONCILE_MS", "100")]).await;
    let (event, tt) = app.simple_event(4, 4).await;
    let hold = app.hold(&event, &tt, 4).await.expect(201).clone();
    assert_eq!(app.available(&event).await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Exact at read time, before or after the sweeper ran.
    assert_eq!(app.available(&event).await, 4);
    let path = format!("/api/v1/holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(app.get(&path, hold["secret"].as_str()).await.expect(200)["status"], "expired");
    app.post(&format!("{path}/checkout"), &json!({}), hold["secret"].as_str()).await.expect_error(409, "hold_expired");
    app.eventually(5, || async { app.counters(&tt).await == (0, 0) }).await;
    let status: String = sqlx::query_scalar("SELECT status::text FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(status, "expired");
}

#[tokio::test]
async fn a_hold_request_reclaims_seats_of_holds_past_their_deadline() {
    // The sweeper is effectively off: the hold request itself must find the stale seats.
    let app = spawn_app_with(&[("NTS_HOLD_SECONDS", "1"), ("NTS_RECONCILE_MS", "3600000")]).await;
    let (event, tt) = app.simple_event(2, 2).await;
    app.hold(&event, &tt, 2).await.expect(201);
    app.hold(&event, &tt, 1).await.expect_error(409, "sold_out");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.hold(&event, &tt, 2).await.expect(201);
    assert_eq!(app.counters(&tt).await, (0, 2));
}

#[tokio::test]
async fn events_that_started_are_no_longer_on_sale() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 2).await;
    sqlx::query("UPDATE events SET starts_at = now() - interval '1 minute' WHERE id = $1::uuid")
        .bind(&event)
        .execute(&app.pool)
        .await
        .unwrap();
    app.hold(&event, &tt, 1).await.expect_error(409, "sales_closed");
}

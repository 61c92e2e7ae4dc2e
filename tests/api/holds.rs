use nts_testkit::wire::HoldStatus;
use nts_testkit::{ada, spawn_app, spawn_app_with, Expect};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_hold_takes_seats_and_answers_its_secret() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;

    let hold = app.hold(event, tt, 2).await.unwrap();
    assert_eq!(hold.status, HoldStatus::Active);
    assert_eq!(hold.quantity, 2);
    assert_eq!(hold.amount_minor, 1998);
    assert_eq!(hold.currency, "GBP");
    let secret = hold.secret.as_deref().unwrap();
    assert!(secret.len() >= 43);
    assert_eq!(app.sold_and_held(tt).await, (0, 2));

    // The secret is stored hashed.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_ne!(stored, secret.as_bytes());
}

#[tokio::test]
async fn sold_out_takes_nothing() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(3, 4).await;
    app.hold(event, tt, 2).await.unwrap();
    app.hold(event, tt, 2).await.expect_error(409, "sold_out");
    assert_eq!(app.sold_and_held(tt).await, (0, 2));
    app.hold(event, tt, 1).await.unwrap();
    app.hold(event, tt, 1).await.expect_error(409, "sold_out");
}

#[tokio::test]
async fn invalid_holds_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let (_, other_tt) = app.simple_event(10, 4).await;
    let api = app.api();
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
        (with("ticket_type_id", json!(Uuid::new_v4())), "unknown ticket type"),
        (with("quantity", json!("two")), "quantity of the wrong type"),
        (with("ticket_type_id", json!("nope")), "malformed ticket type id"),
        (with("extra", json!(1)), "unknown field"),
        (json!({"quantity": 1}), "missing fields"),
        (json!([1, 2]), "not an object"),
    ] {
        let answer = api.send_json(Method::POST, &path, Some(&body), None).await;
        assert_eq!(answer.status.as_u16(), 422, "{why}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed", "{why}");
    }
    let mut good = ada(tt, 1);
    good.name = "Ada".into();
    api.create_hold(Uuid::new_v4(), &good).await.expect_error(404, "not_found");
    api.post_bytes(&path, Some("application/json"), "{\"quantity\": ").await.expect_error(400, "invalid_json");
    api.post_bytes(&path, Some("text/plain"), "hello").await.expect_error(415, "unsupported_content_type");
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 0);
}

#[tokio::test]
async fn holds_are_visible_only_with_their_secret() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let api = app.api();
    let hold = app.hold(event, tt, 1).await.unwrap();
    let seen = api.hold(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
    assert_eq!(seen.status, HoldStatus::Active);
    assert!(seen.secret.is_none(), "the secret is only shown once");
    // No credential at all: only a raw request can leave it out.
    api.send_json(Method::GET, &format!("/api/v1/holds/{}", hold.id), None, None).await.expect_error(404, "not_found");
    api.hold(hold.id, "wrong-secret").await.expect_error(404, "not_found");
    api.release_hold(hold.id, "wrong-secret").await.expect_error(404, "not_found");
}

#[tokio::test]
async fn releasing_gives_the_seats_back_once() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let api = app.api();
    let hold = app.hold(event, tt, 3).await.unwrap();
    let secret = hold.secret.as_deref().unwrap();
    let released = api.release_hold(hold.id, secret).await.unwrap();
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    api.release_hold(hold.id, secret).await.expect_error(409, "hold_released");
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    api.checkout(hold.id, secret).await.expect_error(409, "hold_released");
}

#[tokio::test]
async fn expired_holds_free_their_seats_and_cannot_be_checked_out() {
    let app = spawn_app_with(&[("NTS_HOLD_SECONDS", "1"), ("NTS_RECONCILE_MS", "100")]).await;
    let (event, tt) = app.simple_event(4, 4).await;
    let api = app.api();
    let hold = app.hold(event, tt, 4).await.unwrap();
    let secret = hold.secret.as_deref().unwrap();
    assert_eq!(app.available(event).await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Exact at read time, before or after the sweeper ran.
    assert_eq!(app.available(event).await, 4);
    assert_eq!(api.hold(hold.id, secret).await.unwrap().status, HoldStatus::Expired);
    api.checkout(hold.id, secret).await.expect_error(409, "hold_expired");
    app.eventually(5, || async { app.sold_and_held(tt).await == (0, 0) }).await;
    let status: String = sqlx::query_scalar("SELECT status::text FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(status, "expired");
}

#[tokio::test]
async fn a_hold_request_reclaims_seats_of_holds_past_their_deadline() {
    // The sweeper is effectively off: the hold request itself must find the stale seats.
    let app = spawn_app_with(&[("NTS_HOLD_SECONDS", "1"), ("NTS_RECONCILE_MS", "3600000")]).await;
    let (event, tt) = app.simple_event(2, 2).await;
    app.hold(event, tt, 2).await.unwrap();
    app.hold(event, tt, 1).await.expect_error(409, "sold_out");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.hold(event, tt, 2).await.unwrap();
    assert_eq!(app.sold_and_held(tt).await, (0, 2));
}

#[tokio::test]
async fn events_that_started_are_no_longer_on_sale() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 2).await;
    sqlx::query("UPDATE events SET starts_at = now() - interval '1 minute' WHERE id = $1")
        .bind(event)
        .execute(&app.pool)
        .await
        .unwrap();
    app.hold(event, tt, 1).await.expect_error(409, "sales_closed");
}

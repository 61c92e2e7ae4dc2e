use nts_testkit::wire::{NewEvent, NewTicketType, SimulatedOutcome};
use nts_testkit::{spawn_app, spawn_app_with, Expect, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

fn jazz_night() -> NewEvent {
    let tt = |name: &str, price_minor, capacity, max_per_order| NewTicketType {
        name: name.into(),
        price_minor,
        capacity,
        max_per_order,
    };
    NewEvent {
        max_tickets_per_order: None,
        name: "Jazz night".into(),
        venue: "Blue Room".into(),
        starts_at: datetime!(2099-05-01 19:30 UTC),
        currency: "eur".into(),
        ticket_types: vec![tt("Standing", 1500, 100, 6), tt("Seated", 3000, 20, 2)],
    }
}

/// Buys `quantity` seats of `tt` and pays.
async fn buy(app: &TestApp, event: Uuid, tt: Uuid, quantity: i64) {
    let c = app.checkout(event, tt, quantity).await;
    app.confirm(c.payment.unwrap().id, c.order.secret.as_deref().unwrap(), SimulatedOutcome::Succeeded)
        .await
        .expect_status(200);
}

#[tokio::test]
async fn admin_calls_need_the_token() {
    let app = spawn_app().await;
    let api = app.api();
    let path = "/api/v1/admin/events";
    let body = serde_json::to_value(jazz_night()).unwrap();
    // Without a credential: only a raw request can leave it out.
    let missing = api.send_json(Method::POST, path, Some(&body), None).await;
    missing.expect_error(401, "unauthorized");
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    let wrong = api.with_admin_token("wrong-token-wrong-token-wrong-token");
    wrong.create_event(&jazz_night()).await.expect_error(403, "forbidden");
    api.send_json(Method::GET, path, None, None).await.expect_error(401, "unauthorized");
    api.with_admin_token("x").guests(Uuid::new_v4()).await.expect_error(403, "forbidden");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn creates_events_and_reports_their_sales() {
    let app = spawn_app().await;
    let api = app.api();
    let event = api.create_event(&jazz_night()).await.unwrap();
    assert_eq!(event.currency, "EUR");
    assert_eq!(event.ticket_types.len(), 2);
    assert_eq!(event.ticket_types[1].name, "Seated");
    let (id, seated) = (event.id, event.ticket_types[1].id);

    // The public view has no sales figures: they are for the organiser (its type refuses unknown fields).
    let public = api.event(id).await.unwrap();
    assert_eq!(public.name, "Jazz night");

    buy(&app, id, seated, 2).await;
    app.hold(id, seated, 1).await.unwrap();

    let sales = api.admin_events().await.unwrap();
    let t = &sales[0].ticket_types[1];
    assert_eq!(t.sold, 2);
    assert_eq!(t.held, 1);
    assert_eq!(t.available, 17);
    assert_eq!(t.revenue_minor, 6000);
    assert_eq!(sales[0].revenue_minor, 6000);
}

#[tokio::test]
async fn invalid_events_are_rejected() {
    let app = spawn_app().await;
    let cases = [
        ("name", json!("")),
        ("currency", json!("XXX")),
        ("starts_at", json!("2001-01-01T00:00:00Z")),
        ("starts_at", json!("tomorrow")),
        ("ticket_types", json!([])),
        ("ticket_types", json!([{"name": "A", "price_minor": -1, "capacity": 1, "max_per_order": 1}])),
        ("ticket_types", json!([{"name": "A", "price_minor": 1, "capacity": 1, "max_per_order": 0}])),
        ("ticket_types", json!([{"name": "A", "price_minor": 1, "capacity": 10000000, "max_per_order": 1}])),
        ("ticket_types", json!([{"name": "A", "price_minor": 1, "capacity": 1, "max_per_order": 1, "x": 1}])),
    ];
    for (field, value) in cases {
        let mut body = serde_json::to_value(jazz_night()).unwrap();
        body[field] = value.clone();
        let answer = app.api().send_json(Method::POST, "/api/v1/admin/events", Some(&body), Some(ADMIN_TOKEN)).await;
        assert_eq!(answer.status, 422, "{field} = {value}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed");
    }
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(events, 0, "nothing half-created");
}

#[tokio::test]
async fn the_guest_list_comes_as_csv() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    buy(&app, event, tt, 2).await;
    let path = format!("/api/v1/admin/events/{event}/guests");
    let res = api.raw(Method::GET, &format!("{path}?format=csv")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "order_id,name,email,ticket_type,ticket_code,checked_in_at,checkin_device");
    assert_eq!(lines.len(), 3, "one row per ticket: {csv}");
    assert!(lines[1].contains("Ada Lovelace") && lines[1].contains("ada@example.com"));
    api.send_json(Method::GET, &format!("{path}?format=xml"), None, Some(ADMIN_TOKEN))
        .await
        .expect_error(422, "validation_failed");
    api.guests(Uuid::new_v4()).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn the_demo_event_is_created_on_an_empty_database_and_can_be_reset() {
    let app = spawn_app_with(&[("NTS_DEMO", "true")]).await;
    let api = app.api();
    let events = api.events().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "The best ever show");
    assert_eq!(events[0].currency, "GBP");
    assert_eq!(events[0].ticket_types[0].price_minor, 999);
    buy(&app, events[0].id, events[0].ticket_types[0].id, 2).await;

    // Without a credential: only a raw request can leave it out.
    api.send_json(Method::POST, "/api/v1/admin/demo/reset", Some(&json!({})), None)
        .await
        .expect_error(401, "unauthorized");
    let fresh = api.demo_reset().await.unwrap();
    assert_eq!(fresh.ticket_types[0].available, fresh.ticket_types[0].capacity);
    let after = api.events().await.unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].id, events[0].id);
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!(orders, 0);
}

#[tokio::test]
async fn the_demo_reset_never_deletes_an_order_a_real_provider_took_part_in() {
    let app = spawn_app_with(&[("NTS_DEMO", "true")]).await;
    let api = app.api();
    let events = api.events().await.unwrap();
    buy(&app, events[0].id, events[0].ticket_types[0].id, 1).await;
    // The database once ran with Stripe: this order's money is real.
    sqlx::query("UPDATE payments SET provider = 'stripe'").execute(&app.pool).await.unwrap();

    api.demo_reset().await.expect_error(409, "real_money_orders");
    let after = api.events().await.unwrap();
    assert_eq!(after[0].id, events[0].id, "the demo event is untouched");
    let (orders, tickets): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM orders WHERE status = 'paid'), (SELECT COUNT(*) FROM tickets)")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((orders, tickets), (1, 1), "the paid order and its ticket are kept");
}

#[tokio::test]
async fn without_the_demo_there_is_no_reset_and_no_demo_event() {
    let app = spawn_app().await;
    let api = app.api();
    assert!(api.events().await.unwrap().is_empty());
    api.demo_reset().await.expect_error(404, "not_found");
}

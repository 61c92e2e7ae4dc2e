use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, ADMIN_TOKEN};

fn event_body() -> serde_json::Value {
    json!({
        "name": "Jazz night", "venue": "Blue Room", "starts_at": "2099-05-01T19:30:00Z", "currency": "eur",
        "ticket_types": [
            {"name": "Standing", "price_minor": 1500, "capacity": 100, "max_per_order": 6},
            {"name": "Seated", "price_minor": 3000, "capacity": 20, "max_per_order": 2}
        ]
    })
}

#[tokio::test]
async fn admin_calls_need_the_token() {
    let app = spawn_app().await;
    let path = "/api/v1/admin/events";
    let missing = app.post(path, &event_body(), None).await;
    missing.expect_error(401, "unauthorized");
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    app.post(path, &event_body(), Some("wrong-token-wrong-token-wrong-token")).await.expect_error(403, "forbidden");
    app.get(path, None).await.expect_error(401, "unauthorized");
    app.get(&format!("/api/v1/admin/events/{}/guests", uuid::Uuid::new_v4()), Some("x"))
        .await
        .expect_error(403, "forbidden");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn creates_events_and_reports_their_sales() {
    let app = spawn_app().await;
    let created = app.post("/api/v1/admin/events", &event_body(), Some(ADMIN_TOKEN)).await;
    let event = created.expect(201).clone();
    assert_eq!(event["currency"], "EUR");
    assert_eq!(event["ticket_types"].as_array().unwrap().len(), 2);
    assert_eq!(event["ticket_types"][1]["name"], "Seated");
    let (id, seated) = (event["id"].as_str().unwrap(), event["ticket_types"][1]["id"].as_str().unwrap());

    let public = app.get(&format!("/api/v1/events/{id}"), None).await;
    assert_eq!(public.expect(200)["name"], "Jazz night");
    assert!(public.body["ticket_types"][0].get("sold").is_none(), "sales figures are for the organiser");

    let c = app.checkout(id, seated, 2).await;
    app.confirm(c["payment"]["id"].as_str().unwrap(), c["order"]["secret"].as_str().unwrap(), "succeeded")
        .await
        .expect(200);
    app.hold(id, seated, 1).await.expect(201);

    let sales = app.get("/api/v1/admin/events", Some(ADMIN_TOKEN)).await;
    let t = &sales.expect(200)[0]["ticket_types"][1];
    assert_eq!(t["sold"], 2);
    assert_eq!(t["held"], 1);
    assert_eq!(t["available"], 17);
    assert_eq!(t["revenue_minor"], 6000);
    assert_eq!(sales.body[0]["revenue_minor"], 6000);
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
        let mut body = event_body();
        body[field] = value.clone();
        let answer = app.post("/api/v1/admin/events", &body, Some(ADMIN_TOKEN)).await;
        assert_eq!(answer.status, 422, "{field} = {value}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed");
    }
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(events, 0, "nothing half-created");
}

#[tokio::test]
async fn the_guest_list_comes_as_csv() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let c = app.checkout(&event, &tt, 2).await;
    app.confirm(c["payment"]["id"].as_str().unwrap(), c["order"]["secret"].as_str().unwrap(), "succeeded")
        .await
        .expect(200);
    let res = app
        .client
        .get(app.url(&format!("/api/v1/admin/events/{event}/guests?format=csv")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "order_id,name,email,ticket_type,ticket_code,checked_in_at,checkin_device");
    assert_eq!(lines.len(), 3, "one row per ticket: {csv}");
    assert!(lines[1].contains("Ada Lovelace") && lines[1].contains("ada@example.com"));
    app.get(&format!("/api/v1/admin/events/{event}/guests?format=xml"), Some(ADMIN_TOKEN))
        .await
        .expect_error(422, "validation_failed");
    app.get(&format!("/api/v1/admin/events/{}/guests", uuid::Uuid::new_v4()), Some(ADMIN_TOKEN))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn the_demo_event_is_created_on_an_empty_database_and_can_be_reset() {
    let app = spawn_app_with(&[("NTS_DEMO", "true")]).await;
    let events = app.get("/api/v1/events", None).await.expect(200).clone();
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["name"], "The best ever show");
    assert_eq!(events[0]["currency"], "GBP");
    assert_eq!(events[0]["ticket_types"][0]["price_minor"], 999);
    let (event, tt) = (events[0]["id"].as_str().unwrap(), events[0]["ticket_types"][0]["id"].as_str().unwrap());
    let c = app.checkout(event, tt, 2).await;
    app.confirm(c["payment"]["id"].as_str().unwrap(), c["order"]["secret"].as_str().unwrap(), "succeeded")
        .await
        .expect(200);

    app.post("/api/v1/admin/demo/reset", &json!({}), None).await.expect_error(401, "unauthorized");
    let reset = app.post("/api/v1/admin/demo/reset", &json!({}), Some(ADMIN_TOKEN)).await;
    let fresh = reset.expect(200);
    assert_eq!(fresh["ticket_types"][0]["available"], fresh["ticket_types"][0]["capacity"]);
    let after = app.get("/api/v1/events", None).await.expect(200).clone();
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_ne!(after[0]["id"], events[0]["id"]);
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!(orders, 0);
}

#[tokio::test]
async fn the_demo_reset_never_deletes_an_order_a_real_provider_took_part_in() {
    let app = spawn_app_with(&[("NTS_DEMO", "true")]).await;
    let events = app.get("/api/v1/events", None).await.expect(200).clone();
    let (event, tt) = (events[0]["id"].as_str().unwrap(), events[0]["ticket_types"][0]["id"].as_str().unwrap());
    let c = app.checkout(event, tt, 1).await;
    app.confirm(c["payment"]["id"].as_str().unwrap(), c["order"]["secret"].as_str().unwrap(), "succeeded")
        .await
        .expect(200);
    // The database once ran with Stripe: this order's money is real.
    sqlx::query("UPDATE payments SET provider = 'stripe'").execute(&app.pool).await.unwrap();

    let reset = app.post("/api/v1/admin/demo/reset", &json!({}), Some(ADMIN_TOKEN)).await;
    reset.expect_error(409, "real_money_orders");
    let after = app.get("/api/v1/events", None).await.expect(200).clone();
    assert_eq!(after[0]["id"], events[0]["id"], "the demo event is untouched");
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
    assert!(app.get("/api/v1/events", None).await.expect(200).as_array().unwrap().is_empty());
    app.post("/api/v1/admin/demo/reset", &json!({}), Some(ADMIN_TOKEN)).await.expect_error(404, "not_found");
}

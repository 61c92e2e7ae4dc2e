use crate::helpers::spawn_app;

#[tokio::test]
async fn lists_upcoming_events_with_exact_availability() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;

    let list = app.get("/api/v1/events", None).await;
    let events = list.expect(200).as_array().unwrap();
    assert_eq!(events.len(), 1);
    let t = &events[0]["ticket_types"][0];
    assert_eq!(t["id"], tt.as_str());
    assert_eq!(t["price_minor"], 999);
    assert_eq!(t["currency"], "GBP");
    assert_eq!(t["capacity"], 10);
    assert_eq!(t["available"], 10);
    assert_eq!(t["max_per_order"], 4);

    app.hold(&event, &tt, 3).await.expect(201);
    assert_eq!(app.available(&event).await, 7);
}

#[tokio::test]
async fn unknown_or_malformed_event_ids_are_404() {
    let app = spawn_app().await;
    let missing = app.get(&format!("/api/v1/events/{}", uuid::Uuid::new_v4()), None).await;
    missing.expect_error(404, "not_found");
    app.get("/api/v1/events/not-a-uuid", None).await.expect_error(404, "not_found");
    app.get("/api/v1/nothing-here", None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn past_events_are_not_listed() {
    let app = spawn_app().await;
    let (event, _) = app.simple_event(5, 2).await;
    sqlx::query("UPDATE events SET starts_at = now() - interval '1 hour' WHERE id = $1::uuid")
        .bind(&event)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(app.get("/api/v1/events", None).await.expect(200).as_array().unwrap().is_empty());
}

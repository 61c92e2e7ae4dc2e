use nts_testkit::{spawn_app, Expect};
use reqwest::Method;

#[tokio::test]
async fn lists_upcoming_events_with_exact_availability() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;

    let events = app.api().events().await.unwrap();
    assert_eq!(events.len(), 1);
    let t = &events[0].ticket_types[0];
    assert_eq!(t.id, tt);
    assert_eq!(t.price_minor, 999);
    assert_eq!(t.currency, "GBP");
    assert_eq!(t.capacity, 10);
    assert_eq!(t.available, 10);
    assert_eq!(t.max_per_order, 4);

    app.hold(event, tt, 3).await.unwrap();
    assert_eq!(app.available(event).await, 7);
}

#[tokio::test]
async fn unknown_or_malformed_event_ids_are_404() {
    let app = spawn_app().await;
    let api = app.api();
    api.event(uuid::Uuid::new_v4()).await.expect_error(404, "not_found");
    api.send_json(Method::GET, "/api/v1/events/not-a-uuid", None, None).await.expect_error(404, "not_found");
    api.send_json(Method::GET, "/api/v1/nothing-here", None, None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn past_events_are_not_listed() {
    let app = spawn_app().await;
    let (event, _) = app.simple_event(5, 2).await;
    sqlx::query("UPDATE events SET starts_at = now() - interval '1 hour' WHERE id = $1")
        .bind(event)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(app.api().events().await.unwrap().is_empty());
}

//! One client cannot take a sale off the market without paying: unpaid holds
//! and orders are capped per client address and per e-mail address.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app_with, Answer, TestApp};

fn hold_body(tt: &str, email: &str) -> serde_json::Value {
    json!({"ticket_type_id": tt, "quantity": 2, "name": "Buyer", "email": email})
}

/// A hold sent through a trusted proxy on behalf of `client`.
async fn hold_from(app: &TestApp, instance: usize, event: &str, tt: &str, client: &str, email: &str) -> Answer {
    let url = format!("{}/api/v1/events/{event}/holds", app.instances[instance].address);
    let res = app.client.post(url).header("X-Forwarded-For", client).json(&hold_body(tt, email)).send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    Answer { status, body: res.json().await.unwrap(), headers }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_holds_at_most_its_cap_however_many_requests_race_on_two_instances() {
    let mut app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_ADDRESS", "5"), ("NTS_TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(1000, 4).await;

    let answers = join_all((0..60).map(|i| {
        let email = format!("bot{i}@example.com");
        let (app, event, tt) = (&app, event.clone(), tt.clone());
        async move { hold_from(app, i % 2, &event, &tt, "198.51.100.7", &email).await }
    }))
    .await;

    let held = answers.iter().filter(|a| a.status == 201).count();
    let capped: Vec<&Answer> = answers.iter().filter(|a| a.status != 201).collect();
    assert_eq!(held, 5, "exactly the cap");
    for a in &capped {
        a.expect_error(409, "too_many_unpaid");
        assert!(a.body["message"].as_str().unwrap().contains("unpaid holds or orders"), "{}", a.body);
    }
    assert_eq!(app.counters(&tt).await, (0, 10), "capped requests took no seats");

    // Another address is not affected by the first one's cap.
    hold_from(&app, 0, &event, &tt, "203.0.113.9", "someone@example.com").await.expect(201);
}

#[tokio::test]
async fn an_email_address_is_capped_across_case_and_unpaid_orders_count_until_paid() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_EMAIL", "2")]).await;
    let (event, tt) = app.simple_event(100, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let hold = |email: &'static str| {
        let (app, path, body) = (&app, path.clone(), hold_body(&tt, email));
        async move { app.call(Method::POST, &path, Some(&body), None).await }
    };

    let first = hold("ada@example.com").await.expect(201).clone();
    let second = hold("ADA@Example.com").await.expect(201).clone();
    hold("ada@example.com").await.expect_error(409, "too_many_unpaid");
    let (_, held) = app.counters(&tt).await;
    assert_eq!(held, 4);

    // A hold checked out becomes an order awaiting payment: still unpaid, still counted.
    let checkout_path = format!("/api/v1/holds/{}/checkout", first["id"].as_str().unwrap());
    let checkout = app.post(&checkout_path, &json!({}), first["secret"].as_str()).await.expect(201).clone();
    hold("ada@example.com").await.expect_error(409, "too_many_unpaid");

    // Releasing a hold frees a place under the cap.
    let release = format!("/api/v1/holds/{}", second["id"].as_str().unwrap());
    app.call(Method::DELETE, &release, None, second["secret"].as_str()).await.expect(200);
    let third = hold("ada@example.com").await.expect(201).clone();
    hold("ada@example.com").await.expect_error(409, "too_many_unpaid");

    // Paying for the order frees its place too.
    let payment = checkout["payment"]["id"].as_str().unwrap();
    app.confirm(payment, checkout["order"]["secret"].as_str().unwrap(), "succeeded").await.expect(200);
    hold("ada@example.com").await.expect(201);
    assert!(third["id"].is_string());
    // Someone else is not affected.
    hold("grace@example.com").await.expect(201);
}

#[tokio::test]
async fn holds_past_their_deadline_do_not_count() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_EMAIL", "1"), ("NTS_HOLD_SECONDS", "1")]).await;
    let (event, tt) = app.simple_event(100, 4).await;
    let path = format!("/api/v1/events/{event}/holds");
    let body = hold_body(&tt, "ada@example.com");
    app.call(Method::POST, &path, Some(&body), None).await.expect(201);
    app.call(Method::POST, &path, Some(&body), None).await.expect_error(409, "too_many_unpaid");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.call(Method::POST, &path, Some(&body), None).await.expect(201);
}

//! One client cannot take a sale off the market without paying: unpaid holds
//! and orders are capped per client address and per e-mail address.

use futures_util::future::join_all;
use nts_testkit::wire::{Hold, HoldRequest, SimulatedOutcome};
use nts_testkit::{spawn_app_with, ApiResult, Expect, TestApp};
use uuid::Uuid;

fn hold_request(tt: Uuid, email: &str) -> HoldRequest {
    HoldRequest { ticket_type_id: tt, quantity: 2, name: "Buyer".into(), email: email.into() }
}

/// A hold sent through a trusted proxy on behalf of `client`.
async fn hold_from(
    app: &TestApp,
    instance: usize,
    event: Uuid,
    tt: Uuid,
    client: &str,
    email: &str,
) -> ApiResult<Hold> {
    app.api_on(instance).with_header("X-Forwarded-For", client).create_hold(event, &hold_request(tt, email)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_holds_at_most_its_cap_however_many_requests_race_on_two_instances() {
    let mut app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_ADDRESS", "5"), ("NTS_TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(1000, 4).await;

    let answers = join_all((0..60).map(|i| {
        let email = format!("bot{i}@example.com");
        let app = &app;
        async move { hold_from(app, i % 2, event, tt, "198.51.100.7", &email).await }
    }))
    .await;

    let held = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(held, 5, "exactly the cap");
    for a in answers.into_iter().filter(|a| a.is_err()) {
        let error = a.expect_error(409, "too_many_unpaid");
        assert!(error.message.contains("unpaid holds or orders"), "{}", error.body);
    }
    assert_eq!(app.sold_and_held(tt).await, (0, 10), "capped requests took no seats");

    // Another address is not affected by the first one's cap.
    hold_from(&app, 0, event, tt, "203.0.113.9", "someone@example.com").await.unwrap();
}

#[tokio::test]
async fn an_email_address_is_capped_across_case_and_unpaid_orders_count_until_paid() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_EMAIL", "2")]).await;
    let (event, tt) = app.simple_event(100, 4).await;
    let api = app.api();
    let hold = |email: &'static str| {
        let (api, request) = (&api, hold_request(tt, email));
        async move { api.create_hold(event, &request).await }
    };

    let first = hold("ada@example.com").await.unwrap();
    let second = hold("ADA@Example.com").await.unwrap();
    hold("ada@example.com").await.expect_error(409, "too_many_unpaid");
    let (_, held) = app.sold_and_held(tt).await;
    assert_eq!(held, 4);

    // A hold checked out becomes an order awaiting payment: still unpaid, still counted.
    let checkout = api.checkout(first.id, first.secret.as_deref().unwrap()).await.unwrap();
    hold("ada@example.com").await.expect_error(409, "too_many_unpaid");

    // Releasing a hold frees a place under the cap.
    api.release_hold(second.id, second.secret.as_deref().unwrap()).await.unwrap();
    hold("ada@example.com").await.unwrap();
    hold("ada@example.com").await.expect_error(409, "too_many_unpaid");

    // Paying for the order frees its place too.
    let payment = checkout.payment.as_ref().unwrap().id;
    app.confirm(payment, checkout.order.secret.as_deref().unwrap(), SimulatedOutcome::Succeeded)
        .await
        .expect_status(200);
    hold("ada@example.com").await.unwrap();
    // Someone else is not affected.
    hold("grace@example.com").await.unwrap();
}

#[tokio::test]
async fn holds_past_their_deadline_do_not_count() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_EMAIL", "1"), ("NTS_HOLD_SECONDS", "1")]).await;
    let (event, tt) = app.simple_event(100, 4).await;
    let (api, request) = (app.api(), hold_request(tt, "ada@example.com"));
    api.create_hold(event, &request).await.unwrap();
    api.create_hold(event, &request).await.expect_error(409, "too_many_unpaid");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.create_hold(event, &request).await.unwrap();
}

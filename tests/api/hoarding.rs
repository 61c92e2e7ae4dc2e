//! One client cannot take a sale off the market without paying: unpaid holds
//! and orders are capped per client address (IPv6 per /64) and per network
//! (IPv6 /48, optionally IPv4 /24), never per e-mail address, and every cap
//! answers alike.

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
        assert!(!error.message.contains('5'), "the refusal does not tell the cap: {}", error.body);
    }
    assert_eq!(app.sold_and_held(tt).await, (0, 10), "capped requests took no seats");

    // Another address is not affected by the first one's cap.
    hold_from(&app, 0, event, tt, "203.0.113.9", "someone@example.com").await.unwrap();
}

#[tokio::test]
async fn unpaid_orders_count_against_the_cap_until_paid() {
    // Every request of this test comes from 127.0.0.1.
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_ADDRESS", "2")]).await;
    let (event, tt) = app.simple_event(100, 4).await;
    let api = app.api();
    let hold = |email: &'static str| {
        let (api, request) = (&api, hold_request(tt, email));
        async move { api.create_hold(event, &request).await }
    };

    let first = hold("ada@example.com").await.unwrap();
    let second = hold("grace@example.com").await.unwrap();
    hold("someone.else@example.com").await.expect_error(409, "too_many_unpaid");
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
}

#[tokio::test]
async fn holds_past_their_deadline_do_not_count() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_ADDRESS", "1"), ("NTS_HOLD_SECONDS", "1")]).await;
    let (event, tt) = app.simple_event(100, 4).await;
    let (api, request) = (app.api(), hold_request(tt, "ada@example.com"));
    api.create_hold(event, &request).await.unwrap();
    api.create_hold(event, &request).await.expect_error(409, "too_many_unpaid");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.create_hold(event, &request).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_64s_of_one_48_share_its_cap_and_a_24_has_one_when_asked() {
    let mut app = spawn_app_with(&[
        ("NTS_MAX_UNPAID_PER_ADDRESS", "3"),
        ("NTS_MAX_UNPAID_PER_IPV6_48", "10"),
        ("NTS_MAX_UNPAID_PER_IPV4_24", "4"),
        ("NTS_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(1000, 4).await;

    // Two holds from each of 40 /64s of one /48, racing on two instances: without
    // the /48's cap they would get 80 holds (40 × 2, under the /64 cap of 3).
    let clients: Vec<String> = (0..80).map(|i| format!("2001:db8:77:{:x}::{}", i / 2, 1 + i % 2)).collect();
    let answers = join_all(clients.iter().enumerate().map(|(i, client)| {
        let (app, email) = (&app, format!("buyer{i}@example.com"));
        async move { hold_from(app, i % 2, event, tt, client, &email).await }
    }))
    .await;
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 10, "exactly the /48's cap");
    for a in answers.into_iter().filter(|a| a.is_err()) {
        a.expect_error(409, "too_many_unpaid");
    }
    // Another /48 has a cap of its own.
    hold_from(&app, 0, event, tt, "2001:db8:78::1", "next@example.com").await.unwrap();

    // Asked for, a /24's addresses share one too.
    let answers = join_all((1..=10).map(|i| {
        let app = &app;
        async move { hold_from(app, i % 2, event, tt, &format!("198.51.100.{i}"), "v4@example.com").await }
    }))
    .await;
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 4, "exactly the /24's cap");
    hold_from(&app, 0, event, tt, "198.51.101.1", "v4@example.com").await.unwrap();
    assert_eq!(app.sold_and_held(tt).await, (0, 2 * (10 + 1 + 4 + 1)), "capped requests took no seats");
}

#[tokio::test]
async fn holds_with_a_victims_email_from_elsewhere_do_not_lock_the_victim_out() {
    // The caps as deployed (none per e-mail), behind a proxy.
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_ADDRESS", "40"), ("NTS_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let (event, tt) = app.simple_event(1000, 4).await;
    // An attacker takes holds in the victim's name, from addresses of its own
    // (more than a cap per e-mail would allow: once it bit, the rest were refused).
    for i in 0..10 {
        let attacker = format!("203.0.113.{}", 1 + i % 3);
        let _ = hold_from(&app, 0, event, tt, &attacker, "Victim@Example.com").await;
    }
    // The victim still buys.
    let hold = hold_from(&app, 0, event, tt, "198.51.100.20", "victim@example.com").await.unwrap();
    app.api().checkout(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
}

#[tokio::test]
async fn every_cap_refuses_with_the_same_answer() {
    let app = spawn_app_with(&[
        ("NTS_MAX_UNPAID_PER_ADDRESS", "1"),
        ("NTS_MAX_UNPAID_PER_IPV6_48", "2"),
        ("NTS_MAX_UNPAID_PER_IPV4_24", "2"),
        ("NTS_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let (event, tt) = app.simple_event(100, 4).await;
    let hold = |client: &'static str, email: &'static str| hold_from(&app, 0, event, tt, client, email);
    let mut refusals = Vec::new();
    for (a, b, c) in
        [("2001:db8:9:1::1", "2001:db8:9:2::1", "2001:db8:9:3::1"), ("192.0.2.1", "192.0.2.2", "192.0.2.3")]
    {
        hold(a, "ada@example.com").await.unwrap();
        // The address's cap, with someone else's e-mail and with the same.
        refusals.push(hold(a, "grace@example.com").await.expect_error(409, "too_many_unpaid"));
        refusals.push(hold(a, "ada@example.com").await.expect_error(409, "too_many_unpaid"));
        hold(b, "grace@example.com").await.unwrap();
        // The network's cap, for an address with nothing held.
        refusals.push(hold(c, "edsger@example.com").await.expect_error(409, "too_many_unpaid"));
    }
    for refusal in &refusals {
        assert_eq!(refusal.body, refusals[0].body, "a refusal tells nothing of which cap it was, nor whose");
    }
    assert!(!refusals[0].body.contains("mail"), "{}", refusals[0].body);
}

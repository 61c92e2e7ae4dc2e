//! The Stripe stand-in (tests/stripe) as strict as Stripe where nts's money
//! depends on it: single-use PaymentMethods, `Stripe-Should-Retry` on 429s,
//! `lock_timeout` 429s, and the account-wide rate limit; and what nts makes
//! of them.

use futures_util::future::join_all;
use nts_testkit::wire::PaymentStatus;
use nts_testkit::Expect;
use serde_json::{json, Value};

use crate::stripe_emulator::*;

/// A call straight to the proxy, as any Stripe client of the account would
/// make it: (status, `Stripe-Should-Retry`, body).
async fn through_proxy(
    stripe: &Emulator,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = stripe.http.request(method, format!("{}{path}", stripe.proxy_url)).bearer_auth("sk_test_other");
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key).form(&[("amount", "500"), ("currency", "gbp")]);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get("Stripe-Should-Retry").map(|v| v.to_str().unwrap().to_owned());
    (status, retry, res.json().await.unwrap())
}

// A PaymentMethod made for one payment (not attached to a Customer) pays once:
// Stripe refuses it for a second PaymentIntent. Stripe's test tokens make a
// fresh PaymentMethod at each use, whose own id each PaymentIntent carries.
#[tokio::test]
async fn a_payment_method_pays_once_and_test_tokens_make_a_fresh_one_each_time() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let card = stripe.card("4242424242424242").await;
    let (first, first_secret, _) = stripe_order(&app, 1).await;
    let paid = pay(&app, 0, first, &first_secret, &card).await.expect_status(201);
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(
        stripe.intents_of(first).await[0].payment_method.as_ref().map(|pm| pm.id().to_string()),
        Some(card.clone())
    );

    let (second, second_secret, _) = stripe_order(&app, 1).await;
    pay(&app, 1, second, &second_secret, &card).await.expect_error(503, "payment_provider_unavailable");
    assert!(stripe.intents_of(second).await.is_empty(), "Stripe made a PaymentIntent with a used PaymentMethod");
    let refused = stripe
        .calls()
        .await
        .into_iter()
        .filter(|c| c["path"] == "/v1/payment_intents" && c["method"] == "POST")
        .last()
        .unwrap();
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(order_status(&app, second).await, "awaiting_payment");
    // A fresh PaymentMethod of the same card pays.
    let again = pay(&app, 1, second, &second_secret, &stripe.card("4242424242424242").await).await;
    assert_eq!(again.expect_status(201).status, PaymentStatus::Succeeded);

    let (third, third_secret, _) = stripe_order(&app, 1).await;
    let (fourth, fourth_secret, _) = stripe_order(&app, 1).await;
    pay(&app, 0, third, &third_secret, "pm_card_visa").await.expect_status(201);
    pay(&app, 1, fourth, &fourth_secret, "pm_card_visa").await.expect_status(201);
    let method = |pi: &stripe_core::PaymentIntent| pi.payment_method.as_ref().map(|pm| pm.id().to_string()).unwrap();
    let (third_pm, fourth_pm) =
        (method(&stripe.intents_of(third).await[0]), method(&stripe.intents_of(fourth).await[0]));
    assert!(third_pm.starts_with("pm_") && third_pm != "pm_card_visa", "{third_pm}");
    assert_ne!(third_pm, fourth_pm, "two uses of a test token made one PaymentMethod");
    settled_and_audited(&app).await;
}

// The proxy's 429s say whether to retry, as Stripe's do: `false` for the rate
// limit, `true` for a lock timeout (another request held the object).
#[tokio::test]
async fn a_429_says_whether_to_retry() {
    let stripe = Emulator::start();
    for (fault, code, retry) in [("rate_limit", "rate_limit", "false"), ("lock_timeout", "lock_timeout", "true")] {
        stripe.fault("GET", "/v1/payment_intents", fault, 1).await;
        let (status, should_retry, body) =
            through_proxy(&stripe, reqwest::Method::GET, "/v1/payment_intents", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some(code)), "{body}");
        assert_eq!(should_retry.as_deref(), Some(retry), "{fault}");
    }
    let (status, should_retry, _) = through_proxy(&stripe, reqwest::Method::GET, "/v1/payment_intents", None).await;
    assert_eq!((status, should_retry), (200, None));
}

// Stripe limits the whole account, every client together; a call past the
// limit is answered 429 `rate_limit`, is not forwarded, and is not stored
// under its key (the same key pays once the limit allows it).
#[tokio::test]
async fn the_account_rate_limit_refuses_calls_past_it_without_storing_them() {
    let stripe = Emulator::start();
    let listing = || through_proxy(&stripe, reqwest::Method::GET, "/v1/payment_intents", None);
    let unlimited = join_all((0..10).map(|_| listing())).await;
    assert!(unlimited.iter().all(|(status, ..)| *status == 200), "the limit is off unless a test sets it");

    stripe.configure("ratelimit", json!({"per_second": 1})).await;
    let answers = join_all((0..10).map(|_| listing())).await;
    let limited: Vec<_> = answers.iter().filter(|(status, ..)| *status == 429).collect();
    assert!(!limited.is_empty() && limited.len() < 10, "{answers:?}");
    for (_, should_retry, body) in &limited {
        assert_eq!(body["error"]["code"], "rate_limit", "{body}");
        assert_eq!(should_retry.as_deref(), Some("false"));
    }
    let (status, _, _) = through_proxy(&stripe, reqwest::Method::POST, "/v1/payment_intents", Some("k-1")).await;
    assert_eq!(status, 429, "a limit of 1 per second already spent");
    let how: Vec<String> =
        stripe.calls().await.iter().filter(|c| c["status"] == 429).map(|c| c["how"].as_str().unwrap().into()).collect();
    assert!(how.iter().all(|h| h == "rate limited"), "{how:?}");

    stripe.configure("ratelimit", json!({"per_second": 0})).await;
    let (status, _, body) = through_proxy(&stripe, reqwest::Method::POST, "/v1/payment_intents", Some("k-1")).await;
    assert_eq!(status, 200, "the refused call was stored under its key: {body}");
    assert!(body["id"].as_str().unwrap().starts_with("pi_"));
}

// A `lock_timeout` 429 says nothing of Stripe's load: however many in a row,
// nts's circuit breaker stays closed, and the next payment goes through.
#[tokio::test]
async fn lock_timeouts_do_not_open_the_circuit() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let mut orders = Vec::new();
    for _ in 0..7 {
        orders.push(stripe_order(&app, 1).await);
    }
    stripe.fault("POST", "/v1/payment_intents", "lock_timeout", 6).await;
    for (order, secret, _) in &orders[..6] {
        pay(&app, 0, *order, secret, "pm_card_visa").await.expect_error(503, "payment_provider_unavailable");
    }
    let locked = stripe.calls().await.iter().filter(|c| c["how"] == "injected lock_timeout").count();
    assert_eq!(locked, 6, "each payment met one lock_timeout");
    for (order, secret, _) in &orders {
        let paid = pay(&app, 0, *order, secret, "pm_card_visa").await.expect_status(201);
        assert_eq!(paid.status, PaymentStatus::Succeeded);
    }
    settled_and_audited(&app).await;
}

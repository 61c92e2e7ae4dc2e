//! Stripe as its documentation says it behaves, strictest reading: answers
//! stored under an idempotency key for 24 hours (500s included), reused keys
//! compared byte for byte, refunds pending before they succeed or fail,
//! webhooks redelivered. One test (or more) per point of the issue
//! "Money that survives the real Stripe"; each failed on the code before it.

use std::time::Duration;

use nts_testkit::wire::{MismatchKind, NewEvent, NewTicketType, OrderStatus, PaymentRequest, PaymentStatus};
use nts_testkit::{Expect, NtsProcess, TestApp};
use serde_json::{json, Value};
use stripe_core::PaymentIntentStatus;
use uuid::Uuid;

use crate::stripe_emulator::*;

/// `application/x-www-form-urlencoded` pairs, decoded.
fn form_decode(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).expect("UTF-8")
    }
    body.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn creates_with_key<'a>(calls: &'a [Value], key: &str) -> Vec<&'a Value> {
    calls.iter().filter(|c| c["path"] == "/v1/payment_intents" && c["method"] == "POST" && c["key"] == key).collect()
}

async fn payment_row(app: &TestApp, payment: Uuid) -> Value {
    let row: (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT status::text, provider_ref, failure_code FROM payments WHERE id = $1")
            .bind(payment)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    json!({"status": row.0, "provider_ref": row.1, "failure_code": row.2})
}

/// An event in a month, one ticket type "Seat" at `price_minor` in `currency`.
fn event_in(name: &str, currency: &str, price_minor: i64) -> NewEvent {
    NewEvent {
        max_tickets_per_order: None,
        name: name.into(),
        venue: "Hall".into(),
        currency: currency.into(),
        starts_at: time::OffsetDateTime::now_utc() + time::Duration::days(30),
        ticket_types: vec![NewTicketType { name: "Seat".into(), price_minor, capacity: 10, max_per_order: 4 }],
    }
}

/// An event at a price in `currency`; answers (order id, secret, ticket type).
async fn order_in(app: &TestApp, currency: &str, price_minor: i64) -> (Uuid, String, Uuid) {
    let event = app.api().create_event(&event_in("Strict", currency, price_minor)).await.expect_status(201);
    let tt = event.ticket_types[0].id;
    let order = app.checkout(event.id, tt, 1).await.order;
    (order.id, order.secret.expect("a new order has its secret"), tt)
}

// 1. A stored 500 is not re-sent for a day: it is looked up by listing.
#[tokio::test]
async fn a_stored_500_is_looked_up_by_listing_never_replayed() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], false).await;

    // A 500 after Stripe charged, stored under the key: the buyer sees the
    // attempt in flight, and the reconciler's listing finds the PaymentIntent.
    let (order, secret, _) = stripe_order(&app, 1).await;
    stripe.fault("POST", "/v1/payment_intents", "error_after", 1).await;
    let sent = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(sent.status, PaymentStatus::Processing);
    app.eventually(20, || async { order_status(&app, order).await == "paid" }).await;
    assert_eq!(payment_row(&app, sent.id).await["status"], "succeeded");
    let calls = stripe.calls().await;
    let creates = creates_with_key(&calls, &format!("nts-pay-{}", sent.id));
    assert_eq!(creates.len(), 1, "the stored 500 was not asked again: {creates:?}");
    assert_eq!(creates[0]["how"], "forwarded, error stored");
    let lists: Vec<&Value> =
        calls.iter().filter(|c| c["method"] == "GET" && c["path"] == "/v1/payment_intents").collect();
    assert!(
        !lists.is_empty()
            && lists.iter().all(|c| {
                let query = c["query"].as_str().unwrap();
                query.contains("gte") && query.contains("lte")
            }),
        "listed by a window bounded on both sides: {lists:?}"
    );
    settled_and_audited(&app).await;
}

// 1. An attempt too old for its key to be trusted is never re-sent.
#[tokio::test]
async fn an_attempt_older_than_the_resend_bound_is_looked_up_not_created_again() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    // Stripe charged; none of the three answers arrived; no webhook comes.
    stripe.fault("POST", "/v1/payment_intents", "lose", 3).await;
    let payment = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::Processing);
    let id = payment.id;
    // The attempt is three minutes old: past the time its creation is sent
    // in, so it is only looked for (what was sent may still be arriving).
    sqlx::query("UPDATE payments SET created_at = now() - interval '3 minutes' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    // The PaymentIntent was made now, two hours after the attempt: the list
    // starts before the attempt, so it is found all the same.
    app.eventually(20, || async { order_status(&app, order).await == "paid" }).await;
    let calls = stripe.calls().await;
    assert_eq!(creates_with_key(&calls, &format!("nts-pay-{id}")).len(), 3, "no create after the three lost ones");
    settled_and_audited(&app).await;
}

// 2. Same attempt, same bytes: many lost answers, every retry identical.
#[tokio::test]
async fn every_retry_of_a_creation_sends_the_very_same_bytes() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    for i in 0..8 {
        let (order, secret, _) = stripe_order(&app, 1).await;
        stripe.fault("POST", "/v1/payment_intents", "lose", 1).await;
        let paid = pay(&app, i % 2, order, &secret, "pm_card_visa").await.expect_status(201);
        assert_eq!(paid.status, PaymentStatus::Succeeded, "{:#?}", stripe.calls().await);
    }
    let calls = stripe.calls().await;
    let creates: Vec<&Value> =
        calls.iter().filter(|c| c["path"] == "/v1/payment_intents" && c["method"] == "POST").collect();
    assert_eq!(creates.len(), 16);
    assert!(creates.iter().all(|c| c["how"] != "idempotency mismatch"), "{creates:#?}");
    for pair in creates.chunks(2) {
        assert_eq!(pair[0]["body"], pair[1]["body"]);
        assert_eq!(pair[1]["how"], "replayed");
    }
    settled_and_audited(&app).await;
}

// 3. Reads never create at Stripe; a refused refund is not asked on every pass.
#[tokio::test]
async fn reading_an_order_never_calls_stripe_to_create() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "600000")], false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    stripe.fault("POST", "/v1/payment_intents", "lose", 3).await;
    let payment = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::Processing);
    let before = stripe.calls().await.len();
    for i in 0..20 {
        let seen = app.api_on(i % 2).order(order, &secret).await.expect_status(200);
        assert_eq!(seen.status, OrderStatus::AwaitingPayment);
    }
    let after = stripe.calls().await;
    assert_eq!(after.len(), before, "a GET made provider calls: {:#?}", &after[before..]);
}

#[tokio::test]
async fn a_refund_stripe_refuses_is_failed_and_not_asked_again_every_pass() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "50")], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    stripe.fault("POST", "/v1/refunds", "invalid", 1000).await;
    let answer = app.api().refund(order, false).await.expect_status(202);
    assert_eq!(answer.payment_status, PaymentStatus::RefundFailed);
    tokio::time::sleep(Duration::from_secs(2)).await; // some 40 reconciler passes
    let refund_calls =
        stripe.calls().await.iter().filter(|c| c["path"] == "/v1/refunds" && c["method"] == "POST").count();
    assert_eq!(refund_calls, 1, "refused once, not asked again on every pass");
    let failed = app.api().refunds("?status=failed").await.expect_status(200);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].order_id, order);
    assert!(failed[0].refund_failure.as_deref().unwrap().contains("parameter_invalid_empty"));
    let report = audit(&app).await;
    let kinds: Vec<MismatchKind> = report.mismatches.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MismatchKind::RefundFailed], "{report:#?}");
}

// 3. A provider answering 429 (or 5xx) trips the circuit breaker: buyers get a
// quick 503 and Stripe is left alone (the open circuit doubles each time it reopens).
#[tokio::test]
async fn a_provider_answering_429_trips_the_breaker_and_is_left_alone() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(stripe_order(&app, 1).await);
    }
    stripe.fault("POST", "/v1/payment_intents", "rate_limit", 1000).await;
    for (order, secret, _) in &orders {
        pay(&app, 0, *order, secret, "pm_card_visa").await.expect_error(503, "payment_provider_unavailable");
    }
    let creates =
        stripe.calls().await.iter().filter(|c| c["path"] == "/v1/payment_intents" && c["method"] == "POST").count();
    // Five 429s open the circuit; after that, one probe per (doubling) open window at most.
    assert!(creates < 12, "{creates} creations reached a provider answering 429 for 20 payments");
    assert!(creates >= 5, "the breaker opened before the provider said anything: {creates}");
}

// 4. A webhook whose process dies between receipt and effect is applied on redelivery.
#[tokio::test]
async fn a_webhook_interrupted_by_a_crash_is_applied_when_delivered_again() {
    let (app, stripe) = spawn_stripe_app(&[], false).await;
    let (order, secret, tt) = stripe_order(&app, 1).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let pi = stripe.intents_of(order).await.remove(0).id.to_string();
    // Refunded in Stripe's dashboard; the refund succeeds at once.
    stripe.configure("refunds", json!({"settle_ms": 0})).await;
    stripe.dashboard_refund(&pi).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let event = stripe.events().await.into_iter().find(|e| e["type"] == "charge.refunded").expect("charge.refunded");
    let body = event.to_string();

    let mut process = NtsProcess::start(
        &app.db.url,
        &[
            ("NTS_STRIPE_SECRET_KEY", "sk_test_nts"),
            ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test_nts"),
            ("NTS_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("NTS_STRIPE_API_BASE", stripe.proxy_url.as_str()),
            ("NTS_STRIPE_TIMEOUT_MS", "10000"),
            ("NTS_RECONCILE_MS", "600000"),
        ],
    );
    // The effect asks Stripe for the PaymentIntent; that answer is slow, and
    // the process is killed while it waits.
    stripe.fault("GET", "/v1/payment_intents/[^/]+", "timeout", 1).await;
    let (api, sent) = (process.api(), body.clone());
    let delivery = tokio::spawn(async move { api.stripe_webhook(&sent, &signed(&sent, now())).await });
    app.eventually(10, || async {
        stripe.calls().await.iter().any(|c| c["method"] == "GET" && c["path"] == format!("/v1/payment_intents/{pi}"))
    })
    .await;
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    let unanswered = delivery.await.unwrap().expect_err("the killed process never answered");
    assert_eq!(unanswered.code, "unreachable", "the killed process never answered: {unanswered}");
    assert_eq!(order_status(&app, order).await, "paid", "the effect never happened");

    // Stripe delivers the event again, to another instance.
    let again = deliver(&app, 0, &body, Some(signed(&body, now()))).await.expect_status(200);
    assert!(!again.duplicate, "the first receipt left no record");
    assert_eq!(order_status(&app, order).await, "refunded");
    assert_eq!(app.sold_and_held(tt).await, (1, 0), "a dashboard refund leaves the seats sold");
    let third = deliver(&app, 1, &body, Some(signed(&body, now()))).await;
    assert!(third.expect_status(200).duplicate);
    settled_and_audited(&app).await;
}

// 5. Amounts follow Stripe's currency rules, or the event is refused.
#[tokio::test]
async fn every_currency_is_charged_exactly_or_refused_at_event_creation() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    // (currency, price as nts shows it in minor units, what Stripe must be sent)
    for (currency, price, stripe_amount) in [
        ("GBP", 1999, 1999),
        ("JPY", 1500, 1500),
        ("KRW", 15000, 15000),
        ("ISK", 1500, 150_000),
        ("HUF", 150_000, 150_000),
    ] {
        let (order, secret, _) = order_in(&app, currency, price).await;
        let paid = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
        assert_eq!(paid.amount_minor, price, "{currency}");
        let pi = stripe.intents_of(order).await.remove(0);
        assert_eq!(pi.amount, stripe_amount, "{currency}: Stripe reads amount {}", pi.amount);
        assert_eq!(pi.currency.to_string(), currency.to_ascii_lowercase());
    }
    for (currency, price) in [("UGX", 5000), ("HUF", 150_050), ("TWD", 99)] {
        let refused = app.api().create_event(&event_in("No", currency, price)).await;
        let refused = refused.expect_error(422, "currency_not_chargeable");
        assert!(refused.message.contains(currency), "{currency}: {:?}", refused.body);
    }
    let events = app.api().admin_events().await.expect_status(200);
    assert_eq!(events.len(), 5, "nothing was created by the refusals");
    settled_and_audited(&app).await;
}

// 6. Operator errors answer 503; only declines reach buyers.
#[tokio::test]
async fn provider_errors_are_the_operators_and_declines_the_buyers() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    for fault in ["auth", "rate_limit", "invalid"] {
        stripe.fault("POST", "/v1/payment_intents", fault, 1).await;
        let answer = pay(&app, 0, order, &secret, "pm_card_visa").await;
        let message = answer.expect_error(503, "payment_provider_unavailable").message;
        assert!(
            !message.contains("sk_") && !message.contains("API Key") && !message.contains("injected"),
            "{fault}: {message}"
        );
        assert_eq!(order_status(&app, order).await, "awaiting_payment", "{fault}");
    }
    let declined = pay(&app, 0, order, &secret, "pm_card_chargeCustomerFail").await;
    let declined = declined.expect_error(402, "card_declined");
    assert!(!declined.message.is_empty());
    let paid = pay(&app, 1, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    settled_and_audited(&app).await;
}

// 6. A 503 (Stripe refused to work: 429) is not kept under the buyer's
// Idempotency-Key: the same key again, once Stripe is back, pays with a new attempt.
#[tokio::test]
async fn a_payment_answered_503_is_paid_by_a_retry_with_the_same_key() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    stripe.fault("POST", "/v1/payment_intents", "rate_limit", 1).await;
    let request = PaymentRequest { payment_method: Some("pm_card_visa".into()) };
    let api = app.api_on(0).with_key("pay-once");
    api.create_payment(order, &secret, &request).await.expect_error(503, "payment_provider_unavailable");
    let paid = api.create_payment(order, &secret, &request).await.expect_status(201);
    assert_eq!(paid.status, PaymentStatus::Succeeded, "the retry was answered with the first 503 again");
    assert_eq!(order_status(&app, order).await, "paid");
    settled_and_audited(&app).await;
}

// 7. Refunds are pending until Stripe says succeeded; failures are visible; dashboard refunds recognised.
#[tokio::test]
async fn a_refund_is_pending_until_stripe_says_it_succeeded() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], true).await;
    stripe.configure("refunds", json!({"settle_ms": 2500})).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let answer = app.api().refund(order, true).await.expect_status(202);
    assert_eq!(answer.payment_status, PaymentStatus::RefundPending);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(payment_status_of_order(&app, order).await, "refund_pending", "Stripe's refund is still pending");
    let pending = app.api().refunds("?status=pending").await.expect_status(200);
    assert_eq!(pending[0].order_id, order);
    assert!(pending[0].refund_ref.as_deref().unwrap().starts_with("re_"));
    app.eventually(10, || async { payment_status_of_order(&app, order).await == "refunded" }).await;
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn a_failed_refund_is_shown_to_the_admin_and_in_the_audit_and_can_be_asked_again() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    stripe.configure("refunds", json!({"settle_ms": 300, "fail": 1})).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let answer = app.api().refund(order, false).await.expect_status(202);
    assert_eq!(answer.payment_status, PaymentStatus::RefundPending);
    app.eventually(10, || async { payment_status_of_order(&app, order).await == "refund_failed" }).await;
    let failed = app.api().refunds("?status=failed").await.expect_status(200);
    assert_eq!(failed[0].order_id, order);
    assert_eq!(failed[0].refund_failure.as_deref(), Some("expired_or_canceled_card"));
    let report = audit(&app).await;
    let kinds: Vec<MismatchKind> = report.mismatches.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MismatchKind::RefundFailed], "{report:#?}");
    app.api().refunds("?status=nope").await.expect_error(422, "validation_failed");

    // The organiser asks again: a new refund (the failed one's key would replay its failure), which succeeds.
    let answer = app.api().retry_refund(order).await;
    assert!([200, 202].contains(&status(&answer)), "{answer:?}");
    assert_ne!(answer.unwrap().payment_status, PaymentStatus::RefundFailed);
    app.eventually(10, || async { payment_status_of_order(&app, order).await == "refunded" }).await;
    let refunds = stripe.calls().await.iter().filter(|c| c["path"] == "/v1/refunds" && c["method"] == "POST").count();
    assert_eq!(refunds, 2, "one refund that failed, one that succeeded");
    app.api().retry_refund(order).await.expect_error(409, "refund_not_failed");
    let (unpaid, _, _) = stripe_order(&app, 1).await;
    app.api().retry_refund(unpaid).await.expect_error(409, "refund_not_failed");
    app.api().retry_refund(Uuid::new_v4()).await.expect_error(404, "not_found");
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn a_dashboard_refund_is_recognised_and_the_admin_releases_its_seats() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let pi = stripe.intents_of(order).await.remove(0).id.to_string();
    let refund = stripe.dashboard_refund(&pi).await;
    assert_eq!(refund["status"], "pending");
    app.eventually(10, || async { order_status(&app, order).await == "refunded" }).await;
    assert_eq!(app.sold_and_held(tt).await, (2, 0), "the seats stay sold until the admin decides");
    let listed = app.api().refunds("?status=refunded").await.expect_status(200);
    assert!(!listed[0].seats_released);
    app.api().release_seats(order).await.expect_status(200);
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    app.api().release_seats(order).await.expect_error(409, "seats_already_released");
    let (unpaid, _, _) = stripe_order(&app, 1).await;
    app.api().release_seats(unpaid).await.expect_error(409, "order_not_refunded");
    app.api().release_seats(Uuid::new_v4()).await.expect_error(404, "not_found");
    settled_and_audited(&app).await;
}

// 7. A refund made in Stripe's dashboard is money back only once Stripe says it succeeded.
#[tokio::test]
async fn a_pending_dashboard_refund_leaves_the_order_paid_until_it_succeeds() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], true).await;
    stripe.configure("refunds", json!({"settle_ms": 3000})).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let pi = stripe.intents_of(order).await.remove(0).id.to_string();
    let refund = stripe.dashboard_refund(&pi).await;
    assert_eq!(refund["status"], "pending");
    // charge.refunded and refund.created arrive now (the emulator sends them after 1 s); the refund is still pending.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(order_status(&app, order).await, "paid", "a pending refund is not money back");
    assert_eq!(payment_status_of_order(&app, order).await, "succeeded");
    app.eventually(10, || async { order_status(&app, order).await == "refunded" }).await;
    assert_eq!(app.sold_and_held(tt).await, (2, 0), "the seats stay sold until the admin decides");
    settled_and_audited(&app).await;
}

// 8. One lock order: order first, then payment.
#[tokio::test]
async fn a_refund_webhook_locks_the_order_before_the_payment() {
    let (app, stripe) = spawn_stripe_app(&[], false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    let paid = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let pi = stripe.intents_of(order).await.remove(0).id.to_string();
    stripe.configure("refunds", json!({"settle_ms": 0})).await;
    stripe.dashboard_refund(&pi).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let event = stripe.events().await.into_iter().find(|e| e["type"] == "charge.refunded").unwrap().to_string();

    // Someone (an admin's refund) holds the order; the webhook must wait for
    // it without holding the payment, or the two deadlock.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM orders WHERE id = $1 FOR UPDATE").bind(order).execute(&mut *holder).await.unwrap();
    let webhook = {
        let (api, body) = (app.api_on(1), event.clone());
        tokio::spawn(async move { status(&api.stripe_webhook(&body, &signed(&body, now())).await) })
    };
    app.eventually(10, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    let payment_free = sqlx::query("SELECT id FROM payments WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(paid.id)
        .execute(&mut *holder)
        .await;
    assert!(payment_free.is_ok(), "the webhook locked the payment before the order: {payment_free:?}");
    holder.commit().await.unwrap();
    assert_eq!(webhook.await.unwrap(), 200);
    assert_eq!(order_status(&app, order).await, "refunded");
}

#[tokio::test]
async fn admin_refunds_racing_refund_webhooks_never_deadlock() {
    let (app, stripe) = spawn_stripe_app(&[], false).await;
    stripe.configure("refunds", json!({"settle_ms": 0})).await;
    for _ in 0..6 {
        let (order, secret, _) = stripe_order(&app, 1).await;
        pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
        let pi = stripe.intents_of(order).await.remove(0).id.to_string();
        stripe.dashboard_refund(&pi).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let event = stripe
            .events()
            .await
            .into_iter()
            .find(|e| e["type"] == "charge.refunded" && e["data"]["object"]["payment_intent"] == pi.as_str())
            .unwrap()
            .to_string();
        let admin_api = app.api_on(0);
        let (admin, hook_a, hook_b) = tokio::join!(
            admin_api.refund(order, true),
            deliver(&app, 1, &event, Some(signed(&event, now()))),
            deliver(&app, 0, &event, Some(signed(&event, now()))),
        );
        // Refunded already in the dashboard: the admin's refund follows that refund (200), or
        // finds the order refunded by the webhook (409).
        assert!([200, 202, 409].contains(&status(&admin)), "{admin:?}");
        assert_eq!(status(&hook_a), 200, "{hook_a:?}");
        assert_eq!(status(&hook_b), 200, "{hook_b:?}");
        assert_eq!(order_status(&app, order).await, "refunded");
    }
    settled_and_audited(&app).await;
}

// 9. Loose ends: failed intents canceled, use_stripe_sdk and return_url sent, namespaced metadata.
#[tokio::test]
async fn a_failed_authentication_cancels_the_payment_intent() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    let card = stripe.card("4000002500003155").await;
    let payment = pay(&app, 0, order, &secret, &card).await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::RequiresAction);
    let client_secret = payment.client_secret.as_deref().unwrap();
    let pi = client_secret.split("_secret_").next().unwrap();
    assert!(stripe.authenticate_as(pi, client_secret, false).await);
    app.eventually(10, || async { stripe.intents_of(order).await.remove(0).status == PaymentIntentStatus::Canceled })
        .await;
    assert_eq!(payment_status_of_order(&app, order).await, "failed");
    // The buyer's browser still holds the client secret: it confirms nothing now.
    assert!(!stripe.authenticate(pi, client_secret).await);

    let create =
        stripe.calls().await.into_iter().find(|c| c["path"] == "/v1/payment_intents" && c["method"] == "POST").unwrap();
    let form = form_decode(create["body"].as_str().unwrap());
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(field("use_stripe_sdk"), Some("true"), "{form:?}");
    let return_url = field("return_url").unwrap();
    assert!(return_url.starts_with("http://127.0.0.1:") && return_url.ends_with(&format!("/order.html#id={order}")));
    assert_eq!(field("metadata[nts_order_id]"), Some(order.to_string().as_str()));
    assert_eq!(field("metadata[nts_payment_id]"), Some(payment.id.to_string().as_str()));
    assert_eq!(field("metadata[order_id]"), None, "generic keys would be mistaken for another integration's");
    settled_and_audited(&app).await;
}

// 1. Listing the account's PaymentIntents grows with its history and may take
// longer than any single call should: it has its own, longer timeout
// (NTS_STRIPE_LIST_TIMEOUT_MS), so a slow listing still finds a charge made
// under a stored 500 instead of timing out and asking again.
#[tokio::test]
async fn a_slow_listing_is_waited_for_not_timed_out_and_asked_again() {
    let settings = [("NTS_STRIPE_LIST_TIMEOUT_MS", "10000"), ("NTS_RECONCILE_MS", "100")];
    let (app, stripe) = spawn_stripe_app(&settings, false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    stripe.fault("POST", "/v1/payment_intents", "error_after", 1).await;
    // Answered after 3 s, twice the 1.5 s the tests allow any other call.
    let late = json!({"method": "GET", "path": "/v1/payment_intents", "fault": "timeout", "times": 3, "seconds": 3});
    stripe.configure("faults", late).await;

    let sent = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(sent.status, PaymentStatus::Processing);
    app.eventually(20, || async { order_status(&app, order).await == "paid" }).await;
    let calls = stripe.calls().await;
    let lists: Vec<&Value> =
        calls.iter().filter(|c| c["method"] == "GET" && c["path"] == "/v1/payment_intents").collect();
    assert_eq!(lists.len(), 1, "one listing, waited for: {lists:?}");
    assert_eq!(lists[0]["how"], "forwarded, answer late");
    settled_and_audited(&app).await;
}

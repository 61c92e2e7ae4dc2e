//! Stripe payments against localstripe through the fault-injecting proxy,
//! with the real async-stripe client and two nts instances on one database.
//! Every test ends with the payments audit finding nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nts_testkit::wire::{MismatchKind, OrderStatus, PaymentStatus};
use nts_testkit::{Expect, TestApp};
use serde_json::{json, Value};
use stripe_core::payment_intent::CreatePaymentIntent;
use stripe_core::{PaymentIntentAllowedPaymentMethodTypes, PaymentIntentStatus};

use crate::stripe_emulator::*;

async fn events_of_type(app: &TestApp, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM provider_events WHERE event_type = $1")
        .bind(kind)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn succeeded(intents: &[stripe_core::PaymentIntent]) -> usize {
    intents.iter().filter(|pi| pi.status == PaymentIntentStatus::Succeeded).count()
}

#[tokio::test]
async fn a_card_payment_makes_one_payment_intent_and_the_books_agree() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let config = app.api().config().await.expect_status(200);
    assert_eq!(config.gateway, "stripe");
    assert_eq!(config.stripe_publishable_key.as_deref(), Some("pk_test_nts"));
    assert_eq!(config.stripe_js_url, Some(format!("{}/js.stripe.com/v3/", stripe.stripe_url)));

    let (order, secret, tt) = stripe_order(&app, 2).await;
    let payment = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(payment.provider, "stripe");
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(payment.amount_minor, 1998);
    assert!(payment.client_secret.is_none(), "a confirmed intent's secret stays on the server");

    let intents = stripe.intents_of(order).await;
    assert_eq!(intents.len(), 1);
    let pi = &intents[0];
    assert_eq!(pi.amount, 1998);
    assert_eq!(pi.currency.to_string(), "gbp");
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!(pi.metadata["nts_payment_id"], payment.id.to_string());
    assert_eq!(pi.metadata["nts_order_id"], order.to_string());

    // The event reaches both instances at once; it is applied once.
    app.eventually(10, || async { events_of_type(&app, "payment_intent.succeeded").await == 1 }).await;
    let seen = app.api().order(order, &secret).await.expect_status(200);
    assert_eq!(seen.status, OrderStatus::Paid);
    assert_eq!(seen.tickets.len(), 2);
    assert_eq!(seen.payment.as_ref().map(|p| p.id), Some(payment.id));
    assert_eq!(app.sold_and_held(tt).await, (2, 0));

    let report = settled_and_audited(&app).await;
    assert_eq!(report.checked_payments, 1);
    assert_eq!(report.provider_objects, 1);
}

#[tokio::test]
async fn a_declined_card_then_a_good_one_charges_once() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    pay(&app, 0, order, &secret, "pm_card_chargeCustomerFail").await.expect_error(402, "card_declined");
    assert_eq!(order_status(&app, order).await, "awaiting_payment");
    assert_eq!(app.sold_and_held(tt).await, (0, 2), "the seats stay held for the next card");
    let seen = app.api().order(order, &secret).await.expect_status(200);
    let failed = seen.payment.as_ref().expect("the failed attempt");
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert_eq!(failed.failure_code.as_deref(), Some("card_declined"));

    let payment = pay(&app, 1, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(order_status(&app, order).await, "paid");
    let intents = stripe.intents_of(order).await;
    assert_eq!(intents.len(), 2);
    assert_eq!(succeeded(&intents), 1, "exactly one charge: {intents:?}");
    assert_eq!(app.sold_and_held(tt).await, (2, 0));
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn lost_late_and_failed_answers_are_asked_again_with_the_same_key() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    // lose: Stripe charged but the answer never came; timeout: it came after
    // nts gave up (1.5 s). The proxy compares the retry's raw bytes with the
    // first request's, as Stripe may: a reordered form is an idempotency_error.
    for (fault, times) in [("lose", 1), ("lose", 2), ("timeout", 1), ("lose", 1), ("lose", 1), ("lose", 1)] {
        let (order, secret, _) = stripe_order(&app, 1).await;
        stripe.fault("POST", "/v1/payment_intents", fault, times).await;
        let answer = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
        assert_eq!(answer.status, PaymentStatus::Succeeded, "{fault} x{times}: {:#?}", stripe.calls().await);
        assert_eq!(order_status(&app, order).await, "paid", "{fault} x{times}");
        let intents = stripe.intents_of(order).await;
        assert_eq!((intents.len(), succeeded(&intents)), (1, 1), "{fault} x{times}: one PaymentIntent, charged once");
    }
    let calls = stripe.calls().await;
    let creates: Vec<&Value> = calls.iter().filter(|c| c["path"] == "/v1/payment_intents").collect();
    let hows: Vec<&str> = creates.iter().map(|c| c["how"].as_str().unwrap()).collect();
    assert_eq!(hows.iter().filter(|h| h.starts_with("forwarded")).count(), 6, "one creation per order: {hows:?}");
    assert!(!hows.contains(&"idempotency mismatch"), "every retry sent the same bytes: {hows:?}");
    assert!(
        hows.contains(&"forwarded, answer lost")
            && hows.contains(&"forwarded, answer late")
            && hows.contains(&"replayed")
    );
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn a_new_attempt_cancels_the_waiting_one_first_even_when_the_answer_is_lost() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    let waiting = pay(&app, 0, order, &secret, &stripe.card("4000002500003155").await).await.expect_status(201);
    assert_eq!(waiting.status, PaymentStatus::RequiresAction);
    // The buyer gives up on 3-D Secure and pays with another card; Stripe
    // cancels the first PaymentIntent but the answer is lost.
    stripe.fault("POST", "/v1/payment_intents/[^/]+/cancel", "lose", 1).await;
    pay(&app, 1, order, &secret, "pm_card_visa").await.expect_error(503, "payment_provider_unavailable");
    assert_eq!(order_status(&app, order).await, "awaiting_payment");
    let second = pay(&app, 1, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(second.status, PaymentStatus::Succeeded);
    // Whatever the buyer's browser does with the old client secret now, it cannot pay twice.
    let secret_of_first = waiting.client_secret.as_deref().unwrap();
    assert!(!stripe.authenticate(secret_of_first.split("_secret_").next().unwrap(), secret_of_first).await);
    let intents = stripe.intents_of(order).await;
    // Stripe lists newest first; two intents made in the same second come in either order.
    let mut statuses: Vec<_> = intents.iter().map(|pi| pi.status.as_str().to_owned()).collect();
    statuses.sort();
    assert_eq!(statuses, ["canceled", "succeeded"]);
    let cancels: Vec<String> = stripe
        .calls()
        .await
        .iter()
        .filter(|c| c["path"].as_str().unwrap().ends_with("/cancel"))
        .map(|c| c["how"].as_str().unwrap().to_owned())
        .collect();
    // The retry first looks at the PaymentIntent, finds it canceled, and goes on.
    assert_eq!(cancels, ["forwarded, answer lost"]);
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn the_webhook_pays_an_order_whose_answers_were_all_lost() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    stripe.fault("POST", "/v1/payment_intents", "lose", 3).await;
    let payment = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::Processing, "nts does not know yet whether money moved");
    // Watched in the database, not through GET /orders (which would ask
    // Stripe itself), and sooner than the reconciler looks (5 s): the webhook
    // finds the attempt by the payment id in the PaymentIntent's metadata.
    let started = Instant::now();
    app.eventually(10, || async { order_status(&app, order).await == "paid" }).await;
    assert!(started.elapsed() < Duration::from_secs(5), "settled by the webhook, not the reconciler");
    let provider_ref: Option<String> = sqlx::query_scalar("SELECT provider_ref FROM payments WHERE id = $1")
        .bind(payment.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let intents = stripe.intents_of(order).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(provider_ref.as_deref(), Some(intents[0].id.as_str()));
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn without_webhooks_the_buyers_look_or_the_reconciler_settles_and_a_late_event_changes_nothing() {
    let (app, stripe) = spawn_stripe_app(&[], false).await;
    let (polled, polled_secret, _) = stripe_order(&app, 1).await;
    let (left, left_secret, _) = stripe_order(&app, 1).await;
    for (order, secret) in [(polled, &polled_secret), (left, &left_secret)] {
        stripe.fault("POST", "/v1/payment_intents", "lose", 3).await;
        assert_eq!(
            pay(&app, 0, order, secret, "pm_card_visa").await.expect_status(201).status,
            PaymentStatus::Processing
        );
    }
    // The buyer looks at the order: a read never sends a creation to Stripe
    // (the PaymentIntent's id is not known yet); the reconciler settles both,
    // asking Stripe again with the same key and the same bytes.
    let creates = stripe.calls().await.iter().filter(|c| c["path"] == "/v1/payment_intents").count();
    let seen = app.api().order(polled, &polled_secret).await.expect_status(200);
    assert_eq!(seen.payment.as_ref().map(|p| p.status), Some(PaymentStatus::Processing));
    assert_eq!(stripe.calls().await.iter().filter(|c| c["path"] == "/v1/payment_intents").count(), creates);
    for order in [polled, left] {
        app.eventually(20, || async { order_status(&app, order).await == "paid" }).await;
    }
    for order in [polled, left] {
        let intents = stripe.intents_of(order).await;
        assert_eq!((intents.len(), succeeded(&intents)), (1, 1));
    }
    settled_and_audited(&app).await;

    // Stripe's events, delivered late (after the reconciler settled), twice, on both instances.
    let events = stripe.events().await;
    let succeeded_events: Vec<&Value> = events.iter().filter(|e| e["type"] == "payment_intent.succeeded").collect();
    assert_eq!(succeeded_events.len(), 2);
    for event in succeeded_events {
        let body = event.to_string();
        for on in [0, 1] {
            let answer = deliver(&app, on, &body, Some(signed(&body, now()))).await;
            assert!(answer.expect_status(200).received);
        }
    }
    assert_eq!(events_of_type(&app, "payment_intent.succeeded").await, 2);
    assert_eq!(order_status(&app, polled).await, "paid");
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn webhooks_twice_out_of_order_or_badly_signed_change_nothing() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, tt) = stripe_order(&app, 1).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    app.eventually(10, || async { events_of_type(&app, "payment_intent.succeeded").await == 1 }).await;
    let pi = stripe.intents_of(order).await.remove(0);
    let object: Value = stripe
        .http
        .get(format!("{}/v1/payment_intents/{}", stripe.stripe_url, pi.id))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let event = |id: &str, kind: &str, object: &Value| {
        json!({"id": id, "object": "event", "type": kind, "data": {"object": object}}).to_string()
    };
    // The very event Stripe delivered, again.
    let delivered = app
        .http
        .get(format!("{}/v1/events?limit=100", stripe.stripe_url))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .unwrap()
        .to_string();
    let again = deliver(&app, 1, &delivered, Some(signed(&delivered, now()))).await;
    assert!(again.expect_status(200).duplicate);

    // Older news arriving after the success: a failure and a cancellation.
    let mut failed = object.clone();
    failed["status"] = json!("requires_payment_method");
    failed["last_payment_error"] = json!({"type": "card_error", "code": "card_declined"});
    let mut canceled = object.clone();
    canceled["status"] = json!("canceled");
    for body in [
        event("evt_late_failure", "payment_intent.payment_failed", &failed),
        event("evt_late_cancel", "payment_intent.canceled", &canceled),
    ] {
        let answer = deliver(&app, 0, &body, Some(signed(&body, now()))).await;
        assert!(!answer.expect_status(200).duplicate);
    }
    assert_eq!(order_status(&app, order).await, "paid");

    // Not from Stripe: refused, nothing recorded.
    let forged = event("evt_forged", "payment_intent.canceled", &canceled);
    let wrong_key =
        format!("t={},v1={}", now(), nts::payments::signature::sign(forged.as_bytes(), "whsec_someone_else", now()));
    deliver(&app, 0, &forged, Some(wrong_key)).await.expect_error(400, "invalid_signature");
    deliver(&app, 0, &forged, None).await.expect_error(400, "invalid_signature");
    deliver(&app, 0, &forged, Some(signed(&forged, now() - 301))).await.expect_error(400, "invalid_signature");
    let tampered = forged.replace("evt_forged", "evt_forged2");
    deliver(&app, 0, &tampered, Some(signed(&forged, now()))).await.expect_error(400, "invalid_signature");
    deliver(&app, 0, "{not json", Some(signed("{not json", now()))).await.expect_error(400, "invalid_event");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM provider_events WHERE event_id LIKE 'evt_forged%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // Events nts has no use for are acknowledged.
    let other = event("evt_customer", "customer.created", &json!({"id": "cus_1"}));
    assert!(deliver(&app, 0, &other, Some(signed(&other, now()))).await.expect_status(200).received);

    assert_eq!(order_status(&app, order).await, "paid");
    assert_eq!(app.sold_and_held(tt).await, (1, 0));
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn three_d_secure_settles_after_the_buyer_authenticates() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    let card = stripe.card("4000002500003155").await;
    let payment = pay(&app, 0, order, &secret, &card).await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::RequiresAction);
    let client_secret = payment.client_secret.as_deref().expect("client_secret for handleNextAction");
    assert_eq!(order_status(&app, order).await, "awaiting_payment");
    let pi = client_secret.split("_secret_").next().unwrap();
    assert!(stripe.authenticate(pi, client_secret).await);
    app.eventually(10, || async {
        app.api().order(order, &secret).await.is_ok_and(|seen| seen.status == OrderStatus::Paid)
    })
    .await;
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn an_order_expiring_while_its_buyer_pays_ends_consistent() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_ORDER_SECONDS", "2"), ("NTS_RECONCILE_MS", "50")], true).await;
    let (event, tt) = app.simple_event(100, 10).await;
    // Some creations are slow (answered after nts gave up), so the deadline
    // passes while an attempt is in flight and the reconcilers race the buyer.
    stripe.fault("POST", "/v1/payment_intents", "timeout", 3).await;
    // A PaymentMethod pays once: one for each 3-D Secure buyer.
    let mut secure_cards = Vec::new();
    for _ in 8..12 {
        secure_cards.push(stripe.card("4000002500003155").await);
    }
    let mut buyers = Vec::new();
    for i in 0..12u64 {
        let checkout = app.checkout(event, tt, 1).await;
        let start = Instant::now();
        let (order, secret) = (checkout.order.id, checkout.order.secret.expect("a new order has its secret"));
        let (app, stripe, secure_card) = (&app, &stripe, &secure_cards[(i as usize).saturating_sub(8).min(3)]);
        buyers.push(async move {
            if i < 8 {
                // Card payments from 350 ms before the order's 2 s deadline to 70 ms after it.
                tokio::time::sleep_until((start + Duration::from_millis(1650 + 60 * i)).into()).await;
                let answer = pay(app, (i % 2) as usize, order, &secret, "pm_card_visa").await;
                let code = answer.as_ref().err().map(|e| e.code.as_str()).unwrap_or_default();
                return (order, format!("card: {} {code}", status(&answer)));
            }
            // 3-D Secure: the attempt waits for the buyer, who authenticates
            // around the deadline, while the reconcilers cancel it at Stripe.
            let answer = pay(app, (i % 2) as usize, order, &secret, secure_card).await;
            let client_secret =
                answer.as_ref().ok().and_then(|payment| payment.client_secret.clone()).unwrap_or_default();
            tokio::time::sleep_until((start + Duration::from_millis(1850 + 100 * (i - 8))).into()).await;
            let pi = client_secret.split("_secret_").next().unwrap_or_default();
            let taken = stripe.authenticate(pi, &client_secret).await;
            (
                order,
                format!(
                    "3-D Secure: {} then authentication {}",
                    status(&answer),
                    if taken { "taken" } else { "refused" }
                ),
            )
        });
    }
    let outcomes = futures_util::future::join_all(buyers).await;
    app.eventually(30, || async {
        let unsettled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'awaiting_payment'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        unsettled == 0
    })
    .await;
    settled_and_audited(&app).await;
    let mut table: HashMap<String, usize> = HashMap::new();
    let mut paid = 0;
    for (order, how) in &outcomes {
        let final_status = order_status(&app, *order).await;
        let intents = stripe.intents_of(*order).await;
        let refunded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status = 'refunded'")
                .bind(order)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        match final_status.as_str() {
            "paid" => paid += 1,
            "expired" => {
                assert_eq!(succeeded(&intents) as i64, refunded, "an expired order keeps no money: {intents:?}")
            }
            other => panic!("order {order} ended {other}"),
        }
        *table.entry(format!("{how} -> order {final_status}, refunds {refunded}")).or_default() += 1;
    }
    eprintln!("expiry race outcomes: {table:#?}");
    assert_eq!(app.sold_and_held(tt).await, (paid, 0), "sold = paid orders, nothing left held");
}

#[tokio::test]
async fn two_concurrent_refunds_make_one_refund_at_stripe() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let (first, second) = (app.api_on(0), app.api_on(1));
    let (a, b) = tokio::join!(first.refund(order, true), second.refund(order, true));
    let mut statuses = [status(&a), status(&b)];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{a:?} {b:?}");
    let (done, refused) = if a.is_ok() { (a, b) } else { (b, a) };
    refused.expect_error(409, "order_already_refunded");
    let done = done.expect_status(202);
    assert_eq!(done.payment_status, Some(PaymentStatus::RefundPending), "Stripe's refunds are pending first");
    assert_eq!(order_status(&app, order).await, "refunded");
    app.eventually(10, || async { payment_status_of_order(&app, order).await == "refunded" }).await;
    assert_eq!(app.sold_and_held(tt).await, (0, 0), "the seats are back on sale");
    let pi = stripe.intents_of(order).await.remove(0);
    let refunds: Vec<_> = stripe
        .refunds()
        .await
        .into_iter()
        .filter(|r| r.payment_intent.as_ref().map(|p| p.id().as_str()) == Some(pi.id.as_str()))
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount, 1998);
    app.eventually(10, || async { events_of_type(&app, "charge.refunded").await == 1 }).await;

    // The answer to the refund is lost: recorded as pending, finished by the
    // reconciler with the same key; the seats stay sold when not released.
    let (kept, kept_secret, kept_tt) = stripe_order(&app, 1).await;
    pay(&app, 1, kept, &kept_secret, "pm_card_visa").await.expect_status(201);
    stripe.fault("POST", "/v1/refunds", "lose", 1).await;
    let pending = app.api().refund(kept, false).await.expect_status(202);
    assert_eq!(pending.payment_status, Some(PaymentStatus::RefundPending));
    settled_and_audited(&app).await;
    let pi = stripe.intents_of(kept).await.remove(0);
    let refunds = stripe
        .refunds()
        .await
        .into_iter()
        .filter(|r| r.payment_intent.as_ref().map(|p| p.id().as_str()) == Some(pi.id.as_str()))
        .count();
    assert_eq!(refunds, 1);
    assert_eq!(app.sold_and_held(kept_tt).await, (1, 0));
}

#[tokio::test]
async fn a_stray_charge_made_behind_nts_back_is_found_by_the_audit() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    // Another integration on the same Stripe account, with its own generic
    // metadata: not nts's business, not in the audit.
    CreatePaymentIntent::new(4200, "gbp".parse::<stripe_types::Currency>().unwrap())
        .metadata(HashMap::from([("order_id".to_owned(), "shop-1234".to_owned())]))
        .payment_method("pm_card_visa")
        .confirm(true)
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .send(&stripe.client)
        .await
        .unwrap();
    let stray = CreatePaymentIntent::new(999, "gbp".parse::<stripe_types::Currency>().unwrap())
        .metadata(HashMap::from([("nts_order_id".to_owned(), order.to_string())]))
        .payment_method("pm_card_visa")
        .confirm(true)
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .send(&stripe.client)
        .await
        .unwrap();
    assert_eq!(stray.status, PaymentIntentStatus::Succeeded);
    // Its webhook comes and is acknowledged; nts has no attempt for it.
    app.eventually(10, || async { events_of_type(&app, "payment_intent.succeeded").await == 3 }).await;
    assert_eq!(order_status(&app, order).await, "paid");

    let report = audit(&app).await;
    let mismatches = &report.mismatches;
    let kinds: Vec<MismatchKind> = mismatches.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MismatchKind::MoneyWithoutPaidOrder, MismatchKind::ExtraCharge], "{report:#?}");
    assert_eq!(mismatches[0].provider_ref.as_deref(), Some(stray.id.as_str()));
    assert_eq!(mismatches[0].order_id, Some(order));
    assert_eq!(mismatches[1].order_id, Some(order));
    assert_eq!(report.provider_objects, 2);
}

#[tokio::test]
async fn money_taken_for_an_order_that_cannot_take_it_is_refunded_automatically() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, tt) = stripe_order(&app, 1).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    // An attempt nts had closed (its books say canceled) whose PaymentIntent
    // succeeds at Stripe all the same: the order is paid already, so the
    // money must go back. The attempt is written directly; Stripe's own
    // webhook then reports the success.
    let late = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO payments (id, order_id, provider, idempotency_key, status, amount_minor, currency)
         VALUES ($1, $2, 'stripe', $3, 'canceled', 999, 'GBP')",
    )
    .bind(late)
    .bind(order)
    .bind(format!("nts-pay-{late}"))
    .execute(&app.pool)
    .await
    .unwrap();
    let pi = CreatePaymentIntent::new(999, "gbp".parse::<stripe_types::Currency>().unwrap())
        .metadata(HashMap::from([
            ("nts_order_id".to_owned(), order.to_string()),
            ("nts_payment_id".to_owned(), late.to_string()),
        ]))
        .payment_method("pm_card_visa")
        .confirm(true)
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .send(&stripe.client)
        .await
        .unwrap();
    app.eventually(15, || async {
        let status: String = sqlx::query_scalar("SELECT status::text FROM payments WHERE id = $1")
            .bind(late)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        status == "refunded"
    })
    .await;
    let refunds: Vec<_> = stripe
        .refunds()
        .await
        .into_iter()
        .filter(|r| r.payment_intent.as_ref().map(|p| p.id().as_str()) == Some(pi.id.as_str()))
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount, 999);
    assert_eq!(order_status(&app, order).await, "paid", "the order keeps its own payment");
    assert_eq!(app.sold_and_held(tt).await, (1, 0));
    settled_and_audited(&app).await;
}

//! An attempt leaves "in flight" only on Stripe's own word about its
//! PaymentIntent: a call that failed, a listing that does not have it, or a
//! spent budget never make nts conclude that nothing was charged. Webhooks
//! are off in every test here, so nothing but nts's own asking can repair a
//! wrong conclusion.

use std::time::Duration;

use nts_testkit::wire::PaymentStatus;
use nts_testkit::{Expect, TestApp};
use serde_json::Value;
use uuid::Uuid;

use crate::stripe_emulator::*;

async fn attempt_row(app: &TestApp, payment: Uuid) -> (String, Option<String>, Option<String>) {
    sqlx::query_as("SELECT status::text, provider_ref, failure_code FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn only_attempt(app: &TestApp, order: Uuid) -> Uuid {
    sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1").bind(order).fetch_one(&app.pool).await.unwrap()
}

/// Moves an attempt's recording back in time, as if it had been made `age` ago.
async fn age_attempt(app: &TestApp, payment: Uuid, age: &str) {
    sqlx::query(&format!(
        "UPDATE payments SET created_at = now() - interval '{age}', updated_at = now() - interval '{age}',
                next_check_at = now() WHERE id = $1"
    ))
    .bind(payment)
    .execute(&app.pool)
    .await
    .unwrap();
}

fn retrieves_of<'a>(calls: &'a [Value], pi: &str) -> Vec<&'a Value> {
    calls.iter().filter(|c| c["method"] == "GET" && c["path"] == format!("/v1/payment_intents/{pi}")).collect()
}

/// A PaymentIntent made for an nts attempt straight at Stripe, charged with a
/// card: what a creation that nts never heard the answer of leaves behind.
async fn charge_behind_nts_back(stripe: &Emulator, app: &TestApp, payment: Uuid) -> String {
    let (order, amount): (Uuid, i64) = sqlx::query_as("SELECT order_id, amount_minor FROM payments WHERE id = $1")
        .bind(payment)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let pi: Value = stripe
        .http
        .post(format!("{}/v1/payment_intents", stripe.stripe_url))
        .bearer_auth("sk_test_late")
        .form(&[
            ("amount", amount.to_string()),
            ("currency", "gbp".into()),
            ("payment_method", "pm_card_visa".into()),
            ("confirm", "true".into()),
            ("metadata[nts_order_id]", order.to_string()),
            ("metadata[nts_payment_id]", payment.to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pi["status"], "succeeded", "{pi}");
    pi["id"].as_str().unwrap().to_owned()
}

// 1. The creation charged the card; the call after it (its refunds) was
// answered 429. The PaymentIntent is recorded from the creation's own
// answer, and the buyer is not told that nothing was charged.
#[tokio::test]
async fn a_charged_card_is_recorded_from_the_creation_whatever_the_next_call_meets() {
    let (app, stripe) = spawn_stripe_app(&[], false).await;
    let (order, secret, tt) = stripe_order(&app, 1).await;
    stripe.fault("GET", "^/v1/refunds", "rate_limit", 20).await;
    let paid = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let (status, provider_ref, failure) = attempt_row(&app, paid.id).await;
    assert_eq!((status.as_str(), failure), ("succeeded", None));
    let pi = provider_ref.expect("the PaymentIntent is recorded");
    assert_eq!(stripe.intents_of(order).await.len(), 1);
    assert_eq!(stripe.intents_of(order).await[0].id.as_str(), pi);
    assert_eq!(order_status(&app, order).await, "paid");
    assert_eq!(app.sold_and_held(tt).await, (1, 0));
}

// 1. A 500 stored under the creation's key, before Stripe acted: what Stripe
// did is unknown. The attempt stays in flight (never `failed` on a listing
// that does not have it); the reconciler keeps looking; once no creation can
// be on its way the order takes a new attempt, and the PaymentIntent that
// turns up later for the first one is found and refunded.
#[tokio::test]
async fn a_stored_500_leaves_the_attempt_in_flight_until_stripe_says_what_it_did() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], false).await;
    let (order, secret, tt) = stripe_order(&app, 1).await;
    stripe.fault("POST", "^/v1/payment_intents$", "error", 1).await;
    let first = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(first.status, PaymentStatus::Processing, "not 'nothing was charged'");

    // The reconciler lists the attempt's creation window, again and again,
    // and finds nothing: the attempt is not failed for that.
    app.eventually(20, || async {
        let calls = stripe.calls().await;
        calls
            .iter()
            .filter(|c| c["method"] == "GET" && c["path"] == "/v1/payment_intents")
            .filter(|c| {
                let q = c["query"].as_str().unwrap_or_default();
                q.contains("gte") && q.contains("lte")
            })
            .count()
            >= 2
    })
    .await;
    assert_eq!(attempt_row(&app, first.id).await, ("processing".into(), None, None));

    // While its creation may still be on its way, the order waits for it.
    pay(&app, 1, order, &secret, "pm_card_visa").await.expect_error(409, "payment_in_progress");

    // Later no creation can be on its way: the attempt is indeterminate, and
    // stops nothing. The buyer pays with a new attempt.
    age_attempt(&app, first.id, "5 minutes").await;
    let second = pay(&app, 1, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(second.status, PaymentStatus::Succeeded);
    assert_eq!(order_status(&app, order).await, "paid");
    assert_eq!(attempt_row(&app, first.id).await.0, "processing", "still looked for");

    // The first attempt's PaymentIntent turns up after all: the reconciler
    // finds it in the attempt's window, and the money goes back, since the
    // order was paid by the second.
    let late = charge_behind_nts_back(&stripe, &app, first.id).await;
    age_attempt(&app, first.id, "5 minutes").await; // due for a look now, not in a tenth of its age
    app.eventually(30, || async { attempt_row(&app, first.id).await.0 == "refunded" }).await;
    assert_eq!(attempt_row(&app, first.id).await.1.as_deref(), Some(late.as_str()));
    assert_eq!(order_status(&app, order).await, "paid");
    assert_eq!(app.sold_and_held(tt).await, (1, 0));
    let refunded: Vec<_> = stripe
        .refunds()
        .await
        .into_iter()
        .filter(|r| r.payment_intent.as_ref().map(|p| p.id().to_string()) == Some(late.clone()))
        .collect();
    assert_eq!(refunded.len(), 1, "refunded once");
    settled_and_audited(&app).await;
}

// 1. An unpaid order whose only attempt is indeterminate expires at its
// deadline (its seats go back); the charge that turns up later is refunded.
#[tokio::test]
async fn an_order_with_an_indeterminate_attempt_expires_and_a_late_charge_goes_back() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100"), ("NTS_ORDER_SECONDS", "2")], false).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    stripe.fault("POST", "^/v1/payment_intents$", "error", 1).await;
    let attempt = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    assert_eq!(attempt.status, PaymentStatus::Processing);
    // Within its in-flight time the order does not expire.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(order_status(&app, order).await, "awaiting_payment");
    age_attempt(&app, attempt.id, "5 minutes").await;
    app.eventually(20, || async { order_status(&app, order).await == "expired" }).await;
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    assert_eq!(attempt_row(&app, attempt.id).await.0, "processing");

    let late = charge_behind_nts_back(&stripe, &app, attempt.id).await;
    age_attempt(&app, attempt.id, "5 minutes").await;
    app.eventually(30, || async { attempt_row(&app, attempt.id).await.0 == "refunded" }).await;
    assert_eq!(attempt_row(&app, attempt.id).await.1.as_deref(), Some(late.as_str()));
    assert_eq!(order_status(&app, order).await, "expired");
    settled_and_audited(&app).await;
}

// 1. An attempt is given up only when Stripe has surely forgotten its key
// and a listing of its whole creation window still does not have it.
#[tokio::test]
async fn an_attempt_stripe_never_made_fails_only_after_its_key_is_long_forgotten() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    stripe.fault("POST", "^/v1/payment_intents$", "error", 1).await;
    let attempt = pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    age_attempt(&app, attempt.id, "30 hours").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(attempt_row(&app, attempt.id).await.0, "processing", "Stripe may still hold the key");
    age_attempt(&app, attempt.id, "49 hours").await;
    app.eventually(20, || async { attempt_row(&app, attempt.id).await.0 == "failed" }).await;
    assert_eq!(attempt_row(&app, attempt.id).await.2.as_deref(), Some("provider_error"));
    assert_eq!(only_attempt(&app, order).await, attempt.id);
}

// 2. Reading an order asks Stripe at most every few seconds per attempt,
// whatever the number of readers and instances, and never while the buyer
// authenticates.
#[tokio::test]
async fn order_reads_ask_stripe_at_most_every_few_seconds_and_never_during_3ds() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "600000")], false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    let card = stripe.card("4000002500003155").await;
    let payment = pay(&app, 0, order, &secret, &card).await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::RequiresAction);
    let pi = attempt_row(&app, payment.id).await.1.expect("recorded");

    for i in 0..50 {
        app.api_on(i % 2).order(order, &secret).await.expect_status(200);
    }
    assert_eq!(retrieves_of(&stripe.calls().await, &pi).len(), 0, "the buyer is in the challenge");

    // An attempt in `processing` (kept there, whatever Stripe answers): 50
    // reads on two instances cost one retrieve per five seconds they took.
    let started = std::time::Instant::now();
    for i in 0..50 {
        sqlx::query("UPDATE payments SET status = 'processing' WHERE id = $1")
            .bind(payment.id)
            .execute(&app.pool)
            .await
            .unwrap();
        app.api_on(i % 2).order(order, &secret).await.expect_status(200);
    }
    let periods = 1 + started.elapsed().as_secs() as usize / 5;
    let retrieves = retrieves_of(&stripe.calls().await, &pi).len();
    assert!((1..=periods).contains(&retrieves), "{retrieves} retrieves in {periods} periods");
}

// 1. A failed PaymentIntent is canceled at Stripe so that the client secret
// the buyer holds confirms nothing later; a cancel that got no answer is
// owed and sent again, not only logged.
#[tokio::test]
async fn a_cancel_that_got_no_answer_is_sent_again_until_stripe_cancels() {
    let (app, stripe) = spawn_stripe_app(&[("NTS_RECONCILE_MS", "100")], false).await;
    let (order, secret, _) = stripe_order(&app, 1).await;
    let card = stripe.card("4000002500003155").await;
    let payment = pay(&app, 0, order, &secret, &card).await.expect_status(201);
    assert_eq!(payment.status, PaymentStatus::RequiresAction);
    let client_secret = payment.client_secret.clone().unwrap();
    let pi = client_secret.split("_secret_").next().unwrap().to_owned();
    stripe.fault("POST", "^/v1/payment_intents/[^/]+/cancel$", "rate_limit", 2).await;
    assert!(stripe.authenticate_as(&pi, &client_secret, false).await);
    app.eventually(20, || async { attempt_row(&app, payment.id).await.0 == "failed" }).await;
    app.eventually(30, || async {
        stripe.intents_of(order).await.remove(0).status == stripe_core::PaymentIntentStatus::Canceled
    })
    .await;
    let cancels = stripe.calls().await.into_iter().filter(|c| c["path"].as_str().unwrap().ends_with("/cancel")).count();
    assert!(cancels >= 3, "refused twice, then sent again: {cancels}");
    let owed: bool = sqlx::query_scalar("SELECT close_owed FROM payments WHERE id = $1")
        .bind(payment.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!owed);
    assert!(!stripe.authenticate(&pi, &client_secret).await, "the buyer's client secret confirms nothing now");
}

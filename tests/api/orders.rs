use std::sync::Arc;

use nts::payments::gateway::{GatewayError, Intent, IntentRequest, PaymentGateway, PaymentMethod, Provider, Refund};
use nts::payments::simulated::SimulatedGateway;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, ADMIN_TOKEN};

#[tokio::test]
async fn full_purchase_issues_tickets_and_lists_the_guest() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 2).await;
    let order = &checkout["order"];
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["amount_minor"], 1998);
    assert_eq!(order["currency"], "GBP");
    assert_eq!(checkout["payment"]["provider"], "simulated");
    assert_eq!(checkout["payment"]["status"], "created");
    assert_eq!(app.counters(&tt).await, (0, 2), "the order took over the hold's seats");

    let secret = order["secret"].as_str().unwrap();
    let paid = app.confirm(checkout["payment"]["id"].as_str().unwrap(), secret, "succeeded").await;
    assert_eq!(paid.expect(200)["status"], "succeeded");

    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    let seen = app.get(&path, Some(secret)).await;
    let seen = seen.expect(200);
    assert_eq!(seen["status"], "paid");
    let tickets = seen["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    for t in tickets {
        let code = t["code"].as_str().unwrap();
        assert!(code.len() >= 22, "at least 128 bits: {code}");
    }
    assert_ne!(tickets[0], tickets[1]);
    assert_eq!(app.counters(&tt).await, (2, 0));
    assert_eq!(app.available(&event).await, 8);

    let qr = app
        .client
        .get(app.url(&format!("{path}/tickets/{}/qr", tickets[0]["code"].as_str().unwrap())))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert!(qr.text().await.unwrap().contains("<svg"));
    app.get(&format!("{path}/tickets/nope/qr"), Some(secret)).await.expect_error(404, "not_found");

    let guests = app.get(&format!("/api/v1/admin/events/{event}/guests"), Some(ADMIN_TOKEN)).await;
    let guests = guests.expect(200).as_array().unwrap().clone();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0]["name"], "Ada Lovelace");
    assert_eq!(guests[0]["email"], "ada@example.com");
    assert_eq!(guests[0]["tickets"].as_array().unwrap().len(), 2);

    // Confirming again is harmless.
    let again = app.confirm(checkout["payment"]["id"].as_str().unwrap(), secret, "succeeded").await;
    again.expect(200);
    assert_eq!(app.counters(&tt).await, (2, 0));
}

#[tokio::test]
async fn orders_are_visible_only_with_their_secret() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 1).await;
    let path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());
    app.get(&path, None).await.expect_error(404, "not_found");
    app.get(&path, Some("nope")).await.expect_error(404, "not_found");
    let payment = checkout["payment"]["id"].as_str().unwrap();
    app.confirm(payment, "nope", "succeeded").await.expect_error(404, "not_found");
    app.post(&format!("{path}/payments"), &json!({}), Some("nope")).await.expect_error(404, "not_found");
    let seen = app.get(&path, checkout["order"]["secret"].as_str()).await;
    assert!(seen.expect(200).get("secret").is_none());
}

#[tokio::test]
async fn a_hold_is_checked_out_once_and_a_repeat_gets_the_same_order() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let hold = app.hold(&event, &tt, 1).await.expect(201).clone();
    let path = format!("/api/v1/holds/{}/checkout", hold["id"].as_str().unwrap());
    let first = app.post(&path, &json!({}), hold["secret"].as_str()).await.expect(201).clone();
    let again = app.post(&path, &json!({}), hold["secret"].as_str()).await.expect(201).clone();
    assert_eq!(again["order"]["id"], first["order"]["id"]);
    assert_eq!(again["order"]["secret"], first["order"]["secret"]);
    assert_eq!(again["payment"]["id"], first["payment"]["id"]);
    app.post(&path, &json!({}), Some("not-the-hold-secret")).await.expect_error(404, "not_found");
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!(orders, 1);
    let hold_path = format!("/api/v1/holds/{}", hold["id"].as_str().unwrap());
    let seen = app.get(&hold_path, hold["secret"].as_str()).await;
    assert_eq!(seen.expect(200)["status"], "checked_out");
    assert!(seen.body["order_id"].as_str().is_some());
}

/// Regression, found by nts-torture: a checkout whose instance was killed
/// after the commit left its Idempotency-Key without an answer; the retry ran
/// again and got 409 `hold_checked_out`, so the buyer never got the order
/// secret, could not pay, and the seats stayed blocked until the order expired.
/// Checkouts now store their answer with the order (see the SIGKILL test in
/// idempotency.rs); an unanswered claim can only be left by an older version.
#[tokio::test]
async fn a_checkout_retried_after_its_answer_was_lost_gets_the_same_order() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let hold = app.hold(&event, &tt, 2).await.expect(201).clone();
    let path = format!("/api/v1/holds/{}/checkout", hold["id"].as_str().unwrap());
    let body = json!({});
    let checkout = || app.call_on(0, Method::POST, &path, Some(&body), hold["secret"].as_str(), Some("checkout-1"));
    let first = checkout().await.expect(201).clone();
    // An older instance died before storing the answer: the key is left
    // claimed without one, by an instance that is gone.
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, created_at = now() - interval '1 hour'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut retry = checkout().await;
    if retry.status == 409 {
        retry.expect_error(409, "idempotency_key_in_use");
        retry = checkout().await;
    }
    let retry = retry.expect(201).clone();
    assert_eq!(retry["order"]["id"], first["order"]["id"]);
    assert_eq!(retry["order"]["secret"], first["order"]["secret"]);
    assert_eq!(retry["payment"]["id"], first["payment"]["id"]);
    let order_path = format!("/api/v1/orders/{}", first["order"]["id"].as_str().unwrap());
    app.get(&order_path, retry["order"]["secret"].as_str()).await.expect(200);
    assert_eq!(app.counters(&tt).await, (0, 2), "one order holds the seats");
}

#[tokio::test]
async fn a_declined_payment_keeps_the_seats_and_a_new_attempt_can_pay() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 2).await;
    let secret = checkout["order"]["secret"].as_str().unwrap();
    let order_path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());

    app.confirm(checkout["payment"]["id"].as_str().unwrap(), secret, "declined")
        .await
        .expect_error(402, "card_declined");
    let seen = app.get(&order_path, Some(secret)).await;
    assert_eq!(seen.expect(200)["status"], "awaiting_payment");
    assert_eq!(seen.body["payment"]["status"], "failed");
    assert_eq!(app.counters(&tt).await, (0, 2));

    // The failed attempt stays failed.
    app.confirm(checkout["payment"]["id"].as_str().unwrap(), secret, "succeeded")
        .await
        .expect_error(402, "card_declined");

    let retry = app.post(&format!("{order_path}/payments"), &json!({}), Some(secret)).await;
    let retry = retry.expect(201).clone();
    assert_ne!(retry["id"], checkout["payment"]["id"]);
    assert_eq!(retry["status"], "created");
    app.confirm(retry["id"].as_str().unwrap(), secret, "succeeded").await.expect(200);
    assert_eq!(app.get(&order_path, Some(secret)).await.expect(200)["status"], "paid");
    assert_eq!(app.counters(&tt).await, (2, 0));

    app.post(&format!("{order_path}/payments"), &json!({}), Some(secret)).await.expect_error(409, "order_already_paid");
}

#[tokio::test]
async fn a_new_attempt_cancels_the_open_one() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 1).await;
    let secret = checkout["order"]["secret"].as_str().unwrap();
    let order_path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());
    let second = app.post(&format!("{order_path}/payments"), &json!({}), Some(secret)).await.expect(201).clone();
    let first = checkout["payment"]["id"].as_str().unwrap();
    app.confirm(first, secret, "succeeded").await.expect_error(409, "payment_not_open");
    let provider_status: String =
        sqlx::query_scalar("SELECT status FROM simulated_intents WHERE payment_id = $1::uuid")
            .bind(first)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(provider_status, "canceled", "canceled at the provider, not just in our books");
    app.confirm(second["id"].as_str().unwrap(), secret, "succeeded").await.expect(200);
    let charged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE status = 'succeeded'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(charged, 1);
}

#[tokio::test]
async fn an_unpaid_order_expires_and_releases_its_seats() {
    let app = spawn_app_with(&[("NTS_ORDER_SECONDS", "1"), ("NTS_RECONCILE_MS", "100")]).await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 3).await;
    let secret = checkout["order"]["secret"].as_str().unwrap();
    let payment = checkout["payment"]["id"].as_str().unwrap();
    app.confirm(payment, secret, "declined").await.expect_error(402, "card_declined");
    assert_eq!(app.counters(&tt).await, (0, 3), "a decline keeps the seats until the order expires");

    let order_path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());
    app.eventually(10, || async { app.get(&order_path, Some(secret)).await.body["status"] == "expired" }).await;
    assert_eq!(app.counters(&tt).await, (0, 0));
    app.post(&format!("{order_path}/payments"), &json!({}), Some(secret)).await.expect_error(409, "order_expired");
}

#[tokio::test]
async fn an_expiring_order_is_canceled_at_the_provider_before_its_seats_go_back() {
    let app = spawn_app_with(&[("NTS_ORDER_SECONDS", "1"), ("NTS_RECONCILE_MS", "100")]).await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 1).await;
    let secret = checkout["order"]["secret"].as_str().unwrap();
    let order_path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());
    app.eventually(10, || async { app.get(&order_path, Some(secret)).await.body["status"] == "expired" }).await;
    let provider_status: String =
        sqlx::query_scalar("SELECT status FROM simulated_intents").fetch_one(&app.pool).await.unwrap();
    assert_eq!(provider_status, "canceled");
    // The buyer's late confirmation cannot take money any more.
    app.confirm(checkout["payment"]["id"].as_str().unwrap(), secret, "succeeded")
        .await
        .expect_error(409, "payment_not_open");
    assert_eq!(app.counters(&tt).await, (0, 0));
}

/// The simulated provider, except that every confirmation's answer is lost after it was processed.
struct LoseConfirmAnswers(SimulatedGateway);

#[async_trait::async_trait]
impl PaymentGateway for LoseConfirmAnswers {
    fn provider(&self) -> Provider {
        self.0.provider()
    }
    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError> {
        self.0.create_intent(req).await
    }
    async fn confirm(&self, r: &str, key: &str, method: &PaymentMethod) -> Result<Intent, GatewayError> {
        self.0.confirm(r, key, method).await?;
        Err(GatewayError::Unknown("lost on the way back".into()))
    }
    async fn retrieve(&self, r: &str) -> Result<Intent, GatewayError> {
        self.0.retrieve(r).await
    }
    async fn cancel(&self, r: &str, key: &str) -> Result<Intent, GatewayError> {
        self.0.cancel(r, key).await
    }
    async fn refund(&self, r: &str, key: &str) -> Result<Refund, GatewayError> {
        self.0.refund(r, key).await
    }
    async fn retrieve_refund(&self, r: &str) -> Result<Refund, GatewayError> {
        self.0.retrieve_refund(r).await
    }
    async fn find_refund(&self, r: &str) -> Result<Option<Refund>, GatewayError> {
        self.0.find_refund(r).await
    }
    async fn list_intents(&self, since: Option<time::OffsetDateTime>) -> Result<Vec<Intent>, GatewayError> {
        self.0.list_intents(since).await
    }
}

#[tokio::test]
async fn a_lost_provider_answer_is_settled_by_the_reconciler() {
    let mut app = spawn_app_with(&[("NTS_RECONCILE_MS", "100")]).await;
    app.stop_instance(0).await;
    let pool = app.pool.clone();
    app.start_instance_with(move |_| Arc::new(LoseConfirmAnswers(SimulatedGateway::new(pool, Default::default()))))
        .await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(&event, &tt, 1).await;
    let secret = checkout["order"]["secret"].as_str().unwrap();
    let answer = app.confirm(checkout["payment"]["id"].as_str().unwrap(), secret, "succeeded").await;
    assert_eq!(answer.expect(202)["status"], "processing", "unknown outcome: neither paid nor failed");
    let order_path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());
    // Either the buyer's next look or the reconciler asks the provider and finds the money.
    app.eventually(15, || async { app.get(&order_path, Some(secret)).await.body["status"] == "paid" }).await;
    assert_eq!(app.counters(&tt).await, (1, 0));
    let charged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE status = 'succeeded'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(charged, 1);
}

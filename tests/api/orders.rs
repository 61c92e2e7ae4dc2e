use std::sync::Arc;

use nts::payments::gateway::{
    GatewayError, Intent, IntentRequest, PaymentGateway, PaymentMethod, Provider, ProviderWindow, Refund,
};
use nts::payments::simulated::SimulatedGateway;
use nts_testkit::wire::{HoldStatus, OrderStatus, PaymentRequest, PaymentStatus, SimulatedOutcome};
use nts_testkit::{spawn_app, spawn_app_with, Expect};
use reqwest::Method;

#[tokio::test]
async fn full_purchase_issues_tickets_and_lists_the_guest() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(event, tt, 2).await;
    let order = &checkout.order;
    let payment = checkout.payment.as_ref().unwrap();
    assert_eq!(order.status, OrderStatus::AwaitingPayment);
    assert_eq!(order.amount_minor, 1998);
    assert_eq!(order.currency, "GBP");
    assert_eq!(payment.provider, "simulated");
    assert_eq!(payment.status, PaymentStatus::Created);
    assert_eq!(app.sold_and_held(tt).await, (0, 2), "the order took over the hold's seats");

    let secret = order.secret.as_deref().unwrap();
    let paid = app.confirm(payment.id, secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    assert_eq!(paid.status, PaymentStatus::Succeeded);

    let seen = api.order(order.id, secret).await.unwrap();
    assert_eq!(seen.status, OrderStatus::Paid);
    let tickets = &seen.tickets;
    assert_eq!(tickets.len(), 2);
    for t in tickets {
        assert!(t.code.len() >= 22, "at least 128 bits: {}", t.code);
    }
    assert_ne!(tickets[0], tickets[1]);
    assert_eq!(app.sold_and_held(tt).await, (2, 0));
    assert_eq!(app.available(event).await, 8);

    let qr = api.ticket_qr(order.id, &tickets[0].code, secret).await.unwrap();
    assert_eq!(qr.headers["content-type"], "image/svg+xml");
    assert!(String::from_utf8_lossy(&qr.body).contains("<svg"));
    api.ticket_qr(order.id, "nope", secret).await.expect_error(404, "not_found");

    let guests = api.guests(event).await.unwrap();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].name, "Ada Lovelace");
    assert_eq!(guests[0].email, "ada@example.com");
    assert_eq!(guests[0].tickets.len(), 2);

    // Confirming again is harmless.
    app.confirm(payment.id, secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    assert_eq!(app.sold_and_held(tt).await, (2, 0));
}

#[tokio::test]
async fn orders_are_visible_only_with_their_secret() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(event, tt, 1).await;
    let order = checkout.order.id;
    // No credential at all: only a raw request can leave it out.
    api.send_json(Method::GET, &format!("/api/v1/orders/{order}"), None, None).await.expect_error(404, "not_found");
    api.order(order, "nope").await.expect_error(404, "not_found");
    let payment = checkout.payment.as_ref().unwrap().id;
    app.confirm(payment, "nope", SimulatedOutcome::Succeeded).await.expect_error(404, "not_found");
    api.create_payment(order, "nope", &PaymentRequest::default()).await.expect_error(404, "not_found");
    let seen = api.order(order, checkout.order.secret.as_deref().unwrap()).await.unwrap();
    assert!(seen.secret.is_none());
}

#[tokio::test]
async fn a_hold_is_checked_out_once_and_a_repeat_gets_the_same_order() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let hold = app.hold(event, tt, 1).await.unwrap();
    let secret = hold.secret.as_deref().unwrap();
    let first = api.checkout(hold.id, secret).await.unwrap();
    let again = api.checkout(hold.id, secret).await.unwrap();
    assert_eq!(again.order.id, first.order.id);
    assert_eq!(again.order.secret, first.order.secret);
    assert_eq!(again.payment.as_ref().map(|p| p.id), first.payment.as_ref().map(|p| p.id));
    api.checkout(hold.id, "not-the-hold-secret").await.expect_error(404, "not_found");
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!(orders, 1);
    let seen = api.hold(hold.id, secret).await.unwrap();
    assert_eq!(seen.status, HoldStatus::CheckedOut);
    assert!(seen.order_id.is_some());
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
    let hold = app.hold(event, tt, 2).await.unwrap();
    let keyed = app.api_on(0).with_key("checkout-1");
    let checkout = || keyed.checkout(hold.id, hold.secret.as_deref().unwrap());
    let first = checkout().await.unwrap();
    // An older instance died before storing the answer: the key is left
    // claimed without one, by an instance that is gone.
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, created_at = now() - interval '1 hour'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut retry = checkout().await;
    if retry.as_ref().is_err_and(|e| e.status == 409) {
        retry.expect_error(409, "idempotency_key_in_use");
        retry = checkout().await;
    }
    let retry = retry.unwrap();
    assert_eq!(retry.order.id, first.order.id);
    assert_eq!(retry.order.secret, first.order.secret);
    assert_eq!(retry.payment.as_ref().map(|p| p.id), first.payment.as_ref().map(|p| p.id));
    app.api().order(first.order.id, retry.order.secret.as_deref().unwrap()).await.unwrap();
    assert_eq!(app.sold_and_held(tt).await, (0, 2), "one order holds the seats");
}

#[tokio::test]
async fn a_declined_payment_keeps_the_seats_and_a_new_attempt_can_pay() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(event, tt, 2).await;
    let secret = checkout.order.secret.as_deref().unwrap();
    let order = checkout.order.id;
    let payment = checkout.payment.as_ref().unwrap().id;

    app.confirm(payment, secret, SimulatedOutcome::Declined).await.expect_error(402, "card_declined");
    let seen = api.order(order, secret).await.unwrap();
    assert_eq!(seen.status, OrderStatus::AwaitingPayment);
    assert_eq!(seen.payment.as_ref().unwrap().status, PaymentStatus::Failed);
    assert_eq!(app.sold_and_held(tt).await, (0, 2));

    // The failed attempt stays failed.
    app.confirm(payment, secret, SimulatedOutcome::Succeeded).await.expect_error(402, "card_declined");

    let retry = api.create_payment(order, secret, &PaymentRequest::default()).await.unwrap();
    assert_ne!(retry.id, payment);
    assert_eq!(retry.status, PaymentStatus::Created);
    app.confirm(retry.id, secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    assert_eq!(api.order(order, secret).await.unwrap().status, OrderStatus::Paid);
    assert_eq!(app.sold_and_held(tt).await, (2, 0));

    api.create_payment(order, secret, &PaymentRequest::default()).await.expect_error(409, "order_already_paid");
}

#[tokio::test]
async fn a_new_attempt_cancels_the_open_one() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(event, tt, 1).await;
    let secret = checkout.order.secret.as_deref().unwrap();
    let second = app.api().create_payment(checkout.order.id, secret, &PaymentRequest::default()).await.unwrap();
    let first = checkout.payment.as_ref().unwrap().id;
    app.confirm(first, secret, SimulatedOutcome::Succeeded).await.expect_error(409, "payment_not_open");
    let provider_status: String = sqlx::query_scalar("SELECT status FROM simulated_intents WHERE payment_id = $1")
        .bind(first)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(provider_status, "canceled", "canceled at the provider, not just in our books");
    app.confirm(second.id, secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    let charged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE status = 'succeeded'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(charged, 1);
}

#[tokio::test]
async fn an_unpaid_order_expires_and_releases_its_seats() {
    let app = spawn_app_with(&[("NTS_ORDER_SECONDS", "1"), ("NTS_RECONCILE_MS", "100")]).await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(event, tt, 3).await;
    let secret = checkout.order.secret.as_deref().unwrap();
    let order = checkout.order.id;
    let payment = checkout.payment.as_ref().unwrap().id;
    app.confirm(payment, secret, SimulatedOutcome::Declined).await.expect_error(402, "card_declined");
    assert_eq!(app.sold_and_held(tt).await, (0, 3), "a decline keeps the seats until the order expires");

    app.eventually(10, || async { api.order(order, secret).await.is_ok_and(|o| o.status == OrderStatus::Expired) })
        .await;
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
    api.create_payment(order, secret, &PaymentRequest::default()).await.expect_error(409, "order_expired");
}

#[tokio::test]
async fn an_expiring_order_is_canceled_at_the_provider_before_its_seats_go_back() {
    let app = spawn_app_with(&[("NTS_ORDER_SECONDS", "1"), ("NTS_RECONCILE_MS", "100")]).await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let checkout = app.checkout(event, tt, 1).await;
    let secret = checkout.order.secret.as_deref().unwrap();
    let order = checkout.order.id;
    app.eventually(10, || async { api.order(order, secret).await.is_ok_and(|o| o.status == OrderStatus::Expired) })
        .await;
    let provider_status: String =
        sqlx::query_scalar("SELECT status FROM simulated_intents").fetch_one(&app.pool).await.unwrap();
    assert_eq!(provider_status, "canceled");
    // The buyer's late confirmation cannot take money any more.
    app.confirm(checkout.payment.as_ref().unwrap().id, secret, SimulatedOutcome::Succeeded)
        .await
        .expect_error(409, "payment_not_open");
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
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
    async fn refunds_of(&self, r: &str) -> Result<Vec<Refund>, GatewayError> {
        self.0.refunds_of(r).await
    }
    async fn list_window(
        &self,
        since: time::OffsetDateTime,
        until: time::OffsetDateTime,
    ) -> Result<ProviderWindow, GatewayError> {
        self.0.list_window(since, until).await
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
    let checkout = app.checkout(event, tt, 1).await;
    let secret = checkout.order.secret.as_deref().unwrap();
    let answer = app.confirm(checkout.payment.as_ref().unwrap().id, secret, SimulatedOutcome::Succeeded).await;
    assert_eq!(answer.expect_status(202).status, PaymentStatus::Processing, "unknown outcome: neither paid nor failed");
    let (api, order) = (app.api(), checkout.order.id);
    // Either the buyer's next look or the reconciler asks the provider and finds the money.
    app.eventually(15, || async { api.order(order, secret).await.is_ok_and(|o| o.status == OrderStatus::Paid) }).await;
    assert_eq!(app.sold_and_held(tt).await, (1, 0));
    let charged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE status = 'succeeded'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(charged, 1);
}

//! What a buyer calls: events, holds, checkout, orders, payments, and what the provider calls.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::wire::*;
use super::{send, send_bytes, ApiResult, Client};

const CREATED: &[StatusCode] = &[StatusCode::CREATED];
const OK: &[StatusCode] = &[StatusCode::OK];
const OK_OR_ACCEPTED: &[StatusCode] = &[StatusCode::OK, StatusCode::ACCEPTED];
const STRIPE_WEBHOOK: &str = "/api/v1/payments/stripe/webhook";

impl Client {
    pub async fn health(&self) -> ApiResult<Health> {
        self.get("/healthz", None).await
    }

    pub async fn config(&self) -> ApiResult<ClientConfig> {
        self.get("/api/v1/config", None).await
    }

    pub async fn events(&self) -> ApiResult<Vec<Event>> {
        self.get("/api/v1/events", None).await
    }

    pub async fn event(&self, event: Uuid) -> ApiResult<Event> {
        self.get(&format!("/api/v1/events/{event}"), None).await
    }

    pub async fn create_hold(&self, event: Uuid, hold: &HoldRequest) -> ApiResult<Hold> {
        self.post(&format!("/api/v1/events/{event}/holds"), None, hold, CREATED).await
    }

    pub async fn create_lines_hold(&self, event: Uuid, hold: &LinesHoldRequest) -> ApiResult<Hold> {
        self.post(&format!("/api/v1/events/{event}/holds"), None, hold, CREATED).await
    }

    pub async fn hold(&self, hold: Uuid, secret: &str) -> ApiResult<Hold> {
        self.get(&format!("/api/v1/holds/{hold}"), Some(secret)).await
    }

    pub async fn release_hold(&self, hold: Uuid, secret: &str) -> ApiResult<Hold> {
        send(self.request(Method::DELETE, &format!("/api/v1/holds/{hold}"), Some(secret)), OK).await
    }

    pub async fn checkout(&self, hold: Uuid, secret: &str) -> ApiResult<Checkout> {
        self.post(&format!("/api/v1/holds/{hold}/checkout"), Some(secret), &json!({}), CREATED).await
    }

    pub async fn order(&self, order: Uuid, secret: &str) -> ApiResult<Order> {
        self.get(&format!("/api/v1/orders/{order}"), Some(secret)).await
    }

    pub async fn create_payment(&self, order: Uuid, secret: &str, payment: &PaymentRequest) -> ApiResult<Payment> {
        self.post(&format!("/api/v1/orders/{order}/payments"), Some(secret), payment, CREATED).await
    }

    /// The simulated provider's payment page: 200 when settled, 202 while it is still processing.
    pub async fn confirm_simulated(
        &self,
        payment: Uuid,
        order_secret: &str,
        outcome: SimulatedOutcome,
    ) -> ApiResult<Payment> {
        let path = format!("/api/v1/payments/simulated/{payment}/confirm");
        self.post(&path, Some(order_secret), &json!({ "outcome": outcome }), OK_OR_ACCEPTED).await
    }

    /// A ticket's QR code (SVG).
    pub async fn ticket_qr(&self, order: Uuid, code: &str, secret: &str) -> ApiResult<Vec<u8>> {
        send_bytes(self.request(Method::GET, &format!("/api/v1/orders/{order}/tickets/{code}/qr"), Some(secret)), OK)
            .await
    }

    pub async fn resend(&self, email: &str) -> ApiResult<ResendAccepted> {
        self.post("/api/v1/orders/resend", None, &json!({ "email": email }), &[StatusCode::ACCEPTED]).await
    }

    /// Where Stripe delivers its events (for registering the endpoint with an emulator).
    pub fn stripe_webhook_url(&self) -> String {
        self.url(STRIPE_WEBHOOK)
    }

    /// What Stripe sends: `payload` exactly as signed in `signature` (`Stripe-Signature`).
    pub async fn stripe_webhook(&self, payload: &str, signature: &str) -> ApiResult<WebhookAck> {
        self.stripe_delivery(payload, Some(signature)).await
    }

    /// A webhook delivery with or without a `Stripe-Signature` header (forgeries included).
    pub async fn stripe_delivery(&self, payload: &str, signature: Option<&str>) -> ApiResult<WebhookAck> {
        let mut req = self
            .request(Method::POST, STRIPE_WEBHOOK, None)
            .header("content-type", "application/json")
            .body(payload.to_owned());
        if let Some(signature) = signature {
            req = req.header("Stripe-Signature", signature);
        }
        send(req, OK).await
    }
}

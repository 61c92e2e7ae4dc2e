//! localstripe and the fault-injecting proxy (tests/stripe/emulator.py), one
//! pair per test, and two nts instances on one database talking to Stripe
//! through the proxy.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use nts::payments::stripe::StripeGateway;
use serde_json::{json, Value};
use stripe_core::payment_intent::ListPaymentIntent;
use stripe_core::refund::ListRefund;
use stripe_core::{PaymentIntent, Refund};

use nts_testkit::wire::{AuditReport, Payment, PaymentRequest, WebhookAck};
use nts_testkit::{new_app, ApiResult, Expect, TestApp};
use uuid::Uuid;

pub const WEBHOOK_SECRET: &str = "whsec_nts_test_secret";
/// The shop's origin the Stripe instances are configured with (`NTS_PUBLIC_URL`).
pub const PUBLIC_URL: &str = "https://tickets.nts.test";
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub struct Emulator {
    child: Child,
    /// localstripe itself: what the test checks against.
    pub stripe_url: String,
    /// The proxy nts talks to.
    pub proxy_url: String,
    pub http: reqwest::Client,
    pub client: ::stripe::Client,
}

/// Installs localstripe (tests/stripe/setup.sh) once per test run if it is missing.
fn python() -> String {
    static SETUP: Mutex<bool> = Mutex::new(false);
    let python = format!("{ROOT}/tests/stripe/.venv/bin/python");
    let mut done = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        let status = Command::new("bash")
            .arg(format!("{ROOT}/tests/stripe/setup.sh"))
            .status()
            .expect("run tests/stripe/setup.sh");
        assert!(status.success(), "tests/stripe/setup.sh failed: localstripe is needed for the Stripe tests");
        *done = true;
    }
    python
}

impl Emulator {
    pub fn start() -> Emulator {
        let mut child = Command::new(python())
            .arg(format!("{ROOT}/tests/stripe/emulator.py"))
            .current_dir(format!("{ROOT}/tests/stripe"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/stripe/emulator.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("emulator ports");
        let ports: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("emulator did not start: {line:?}"));
        let stripe_url = format!("http://127.0.0.1:{}", ports["stripe"]);
        let proxy_url = format!("http://127.0.0.1:{}", ports["proxy"]);
        let client = ::stripe::ClientBuilder::new("sk_test_emulator").url(format!("{stripe_url}/")).build().unwrap();
        Emulator { child, stripe_url, proxy_url, http: reqwest::Client::new(), client }
    }

    /// The next `times` calls `method path` (a regex) meet `fault`: "lose", "timeout", "error" (a 500
    /// stored under the key before Stripe acts), "error_after" (Stripe acts, then a stored 500),
    /// "rate_limit" (429), "auth" (401) or "invalid" (400).
    pub async fn fault(&self, method: &str, path: &str, fault: &str, times: u32) {
        let spec = json!({"method": method, "path": path, "fault": fault, "times": times, "seconds": 4});
        self.configure("faults", spec).await;
    }

    /// `POST /_proxy/{what}` with `spec`: "refunds" {"settle_ms", "fail"}, "webhooks"
    /// {"duplicate", "max_delay_ms"}, "chaos" {fault: probability}, "clock" {"advance"}.
    pub async fn configure(&self, what: &str, spec: Value) {
        let res = self.http.post(format!("{}/_proxy/{what}", self.proxy_url)).json(&spec).send().await.unwrap();
        assert!(res.status().is_success(), "configure {what}: {}", res.status());
    }

    /// Creates a refund the way Stripe's dashboard does: straight at Stripe, without nts.
    pub async fn dashboard_refund(&self, payment_intent: &str) -> Value {
        self.http
            .post(format!("{}/v1/refunds", self.stripe_url))
            .bearer_auth("sk_test_dashboard")
            .form(&[("payment_intent", payment_intent)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A refund of part of a payment (`amount` in Stripe's units), made in Stripe's dashboard.
    pub async fn dashboard_partial_refund(&self, payment_intent: &str, amount: i64) -> Value {
        self.http
            .post(format!("{}/v1/refunds", self.stripe_url))
            .bearer_auth("sk_test_dashboard")
            .form(&[("payment_intent", payment_intent), ("amount", &amount.to_string())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The buyer's bank disputes the payment (or the dispute moves on): the
    /// charge's dispute gets `status` and Stripe sends `event` (e.g. `charge.dispute.created`).
    pub async fn dispute(&self, payment_intent: &str, status: &str, event: &str) -> Value {
        let spec = json!({"payment_intent": payment_intent, "status": status, "type": event, "reason": "fraudulent"});
        let res = self.http.post(format!("{}/_proxy/disputes", self.proxy_url)).json(&spec).send().await.unwrap();
        assert!(res.status().is_success(), "dispute: {}", res.status());
        res.json().await.unwrap()
    }

    /// Every event Stripe made, newest first.
    pub async fn events(&self) -> Vec<Value> {
        let all: Value = self
            .http
            .get(format!("{}/v1/events?limit=100", self.stripe_url))
            .bearer_auth("sk_test_x")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all["data"].as_array().unwrap().clone()
    }

    /// The calls the proxy saw: {method, path, key, status, how}.
    pub async fn calls(&self) -> Vec<Value> {
        self.http.get(format!("{}/_proxy/calls", self.proxy_url)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn register_webhook(&self, id: &str, url: &str) {
        let res = self
            .http
            .post(format!("{}/_config/webhooks/{id}", self.stripe_url))
            .form(&[("url", url), ("secret", WEBHOOK_SECRET)])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "register webhook: {}", res.status());
    }

    /// Every PaymentIntent at the emulator, through async-stripe.
    pub async fn payment_intents(&self) -> Vec<PaymentIntent> {
        ListPaymentIntent::new()
            .limit(100)
            .paginate()
            .stream(&self.client)
            .try_collect()
            .await
            .expect("list PaymentIntents")
    }

    pub async fn intents_of(&self, order_id: Uuid) -> Vec<PaymentIntent> {
        let order_id = order_id.to_string();
        let mut all = self.payment_intents().await;
        all.retain(|pi| pi.metadata.get("nts_order_id") == Some(&order_id));
        all
    }

    pub async fn refunds(&self) -> Vec<Refund> {
        ListRefund::new().limit(100).paginate().stream(&self.client).try_collect().await.expect("list refunds")
    }

    /// A card PaymentMethod from a test card number.
    pub async fn card(&self, number: &str) -> String {
        let form = [
            ("type", "card"),
            ("card[number]", number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2040"),
            ("card[cvc]", "123"),
        ];
        let pm: Value = self
            .http
            .post(format!("{}/v1/payment_methods", self.stripe_url))
            .bearer_auth("sk_test_emulator")
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pm["id"].as_str().expect("payment method id").to_owned()
    }

    /// What Stripe.js's `handleNextAction` does after the buyer passes 3-D
    /// Secure; answers whether Stripe took it (not once the intent is canceled).
    pub async fn authenticate(&self, payment_intent: &str, client_secret: &str) -> bool {
        self.authenticate_as(payment_intent, client_secret, true).await
    }

    /// The buyer passes (`true`) or fails 3-D Secure.
    pub async fn authenticate_as(&self, payment_intent: &str, client_secret: &str, passes: bool) -> bool {
        self.http
            .post(format!("{}/v1/payment_intents/{payment_intent}/_authenticate", self.stripe_url))
            .form(&[
                ("client_secret", client_secret),
                ("success", if passes { "true" } else { "false" }),
                ("key", "pk_test_emulator"),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two nts instances on one database, paying through the emulator; with
/// `webhooks`, each instance is registered as a webhook endpoint (so every
/// event reaches both at once).
pub async fn spawn_stripe_app(settings: &[(&str, &str)], webhooks: bool) -> (TestApp, Emulator) {
    let emulator = Emulator::start();
    let js = format!("{}/js.stripe.com/v3/", emulator.stripe_url);
    let mut all = vec![
        ("NTS_STRIPE_SECRET_KEY", "sk_test_nts"),
        ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test_nts"),
        ("NTS_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("NTS_STRIPE_API_BASE", emulator.proxy_url.as_str()),
        ("NTS_STRIPE_JS_URL", js.as_str()),
        ("NTS_STRIPE_TIMEOUT_MS", "1500"),
        ("NTS_PUBLIC_URL", PUBLIC_URL),
    ];
    all.extend_from_slice(settings);
    let mut app = new_app(&all).await;
    for i in 0..2 {
        app.start_instance_with(|config| {
            Arc::new(StripeGateway::new(config.stripe().expect("Stripe settings")).unwrap())
        })
        .await;
        if webhooks {
            emulator.register_webhook(&format!("nts{i}"), &app.api_on(i).stripe_webhook_url()).await;
        }
    }
    (app, emulator)
}

/// Checkout of `quantity` tickets at 9.99 GBP on a fresh event; answers (order id, order secret, ticket type id).
pub async fn stripe_order(app: &TestApp, quantity: i64) -> (Uuid, String, Uuid) {
    let (event, tt) = app.simple_event(100, 10).await;
    let checkout = app.checkout(event, tt, quantity).await;
    assert!(checkout.payment.is_none(), "under Stripe the first attempt comes with the card: {checkout:?}");
    (checkout.order.id, checkout.order.secret.expect("a new order has its secret"), tt)
}

/// POST /orders/{id}/payments with a PaymentMethod, on instance `on`.
pub async fn pay(app: &TestApp, on: usize, order: Uuid, secret: &str, pm: &str) -> ApiResult<Payment> {
    app.api_on(on).create_payment(order, secret, &PaymentRequest { payment_method: Some(pm.to_owned()) }).await
}

/// The HTTP status of an answer, success or not.
pub fn status<T>(answer: &ApiResult<T>) -> u16 {
    match answer {
        Ok(reply) => reply.http_status.as_u16(),
        Err(e) => e.status.as_u16(),
    }
}

pub async fn order_status(app: &TestApp, order: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM orders WHERE id = $1").bind(order).fetch_one(&app.pool).await.unwrap()
}

/// The status of the order's latest payment attempt.
pub async fn payment_status_of_order(app: &TestApp, order: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM payments WHERE order_id = $1 ORDER BY created_at DESC LIMIT 1")
        .bind(order)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

pub async fn audit(app: &TestApp) -> AuditReport {
    app.api().payments_audit().await.expect_status(200).body
}

#[track_caller]
pub fn assert_clean(report: &AuditReport) {
    assert_eq!(report.mismatches, [], "audit: {report:#?}");
}

/// Waits until no attempt is open and no refund is owed, then asserts that
/// the audit finds nothing: the success criterion of every payment test.
pub async fn settled_and_audited(app: &TestApp) -> AuditReport {
    app.eventually(30, || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE status IN ('created', 'processing', 'requires_action', 'refund_pending')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        open == 0
    })
    .await;
    let report = audit(app).await;
    assert_clean(&report);
    report
}

/// A webhook delivery on instance `on`, signed like Stripe's or not at all.
pub async fn deliver(app: &TestApp, on: usize, body: &str, signature: Option<String>) -> ApiResult<WebhookAck> {
    app.api_on(on).stripe_delivery(body, signature.as_deref()).await
}

pub fn signed(body: &str, t: i64) -> String {
    format!("t={t},v1={}", nts::payments::signature::sign(body.as_bytes(), WEBHOOK_SECRET, t))
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

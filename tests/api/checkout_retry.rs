//! Regression (found by nts-torture): a checkout whose answer was lost — its
//! instance was killed after the commit, so the Idempotency-Key has no stored
//! answer — used to answer the retry with 409 `hold_checked_out`. The buyer
//! never got the order secret, could not pay, and the seats stayed blocked
//! until the order expired. The retry must get the same order, with a secret
//! that works.

use std::collections::HashMap;

use nts::config::Config;
use nts::startup::Application;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

const ADMIN: &str = "checkout-retry-admin-token-0123456789abcdef";

fn server() -> String {
    std::env::var("NTS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

struct App {
    base: String,
    db: String,
    http: reqwest::Client,
}

impl App {
    async fn start() -> App {
        let db = format!("nts_test_checkout_retry_{:08x}", rand::random::<u32>());
        let vars: HashMap<&str, String> = HashMap::from([
            ("NTS_ADDRESS", "127.0.0.1:0".into()),
            ("DATABASE_URL", format!("{}/{db}", server())),
            ("NTS_DEMO", "false".into()),
            ("NTS_ADMIN_TOKEN", ADMIN.into()),
        ]);
        let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration");
        let app = Application::build(config).await.expect("the application starts");
        let base = format!("http://127.0.0.1:{}/api/v1", app.port());
        tokio::spawn(app.run_until_stopped());
        App { base, db, http: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, bearer: &str, key: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("request");
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        let mut conn = PgConnection::connect(&format!("{}/postgres", server())).await.expect("maintenance connection");
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db))
            .execute(&mut conn)
            .await
            .expect("drop the test database");
    }
}

#[tokio::test]
async fn a_checkout_retried_after_its_answer_was_lost_gets_the_same_order() {
    let app = App::start().await;
    let event = json!({
        "name": "Retry show", "venue": "Hall", "starts_at": "2099-01-01T20:00:00Z", "currency": "EUR",
        "ticket_types": [{"name": "Seat", "price_minor": 1000, "capacity": 5, "max_per_order": 2}],
    });
    let (status, event) = app.post("/admin/events", ADMIN, "event", event).await;
    assert_eq!(status, 201, "{event}");
    let hold_body = json!({"ticket_type_id": event["ticket_types"][0]["id"], "quantity": 2, "name": "Ada", "email": "ada@example.com"});
    let (status, hold) = app.post(&format!("/events/{}/holds", event["id"].as_str().unwrap()), "x", "hold", hold_body).await;
    assert_eq!(status, 201, "{hold}");
    let (hold_id, hold_secret) = (hold["id"].as_str().unwrap(), hold["secret"].as_str().unwrap());
    let checkout = format!("/holds/{hold_id}/checkout");

    let (status, first) = app.post(&checkout, hold_secret, "checkout", json!({})).await;
    assert_eq!(status, 201, "{first}");
    // The answer is lost with its instance: nothing is stored under the key.
    let mut conn = PgConnection::connect(&format!("{}/{}", server(), app.db)).await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, created_at = now() - interval '1 hour'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let (status, retry) = app.post(&checkout, hold_secret, "checkout", json!({})).await;
    assert_eq!(status, 201, "{retry}");
    assert_eq!(retry["order"]["id"], first["order"]["id"]);
    assert_eq!(retry["order"]["secret"], first["order"]["secret"]);
    assert_eq!(retry["payment"]["id"], first["payment"]["id"]);
    let order_id = first["order"]["id"].as_str().unwrap();
    let res = app
        .http
        .get(format!("{}/orders/{order_id}", app.base))
        .bearer_auth(retry["order"]["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Another buyer's secret still gets nothing.
    let (status, _) = app.post(&checkout, "not-the-hold-secret", "other", json!({})).await;
    assert_eq!(status, 404);
    app.stop().await;
}

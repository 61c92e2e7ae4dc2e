//! The log never shows a secret, even at the most verbose level.

use std::time::Duration;

use serde_json::{json, Value};

use crate::binary::NtsProcess;
use crate::helpers::{TestDb, ADMIN_TOKEN};

#[test]
fn a_generated_admin_token_is_not_written_to_a_log() {
    let db = TestDb::new();
    let mut nts = NtsProcess::start(&db.url, &[("NTS_ADMIN_TOKEN", "")]);
    nts.signal("TERM");
    assert_eq!(nts.wait_exit(Duration::from_secs(20)), Some(0));
    let log = nts.log();
    assert!(log.contains("NTS_ADMIN_TOKEN is not set"), "{log}");
    assert!(!log.contains("admin token is"), "{log}");
}

#[tokio::test]
async fn a_whole_sale_at_trace_level_logs_no_secret() {
    let db = TestDb::new();
    let mut nts = NtsProcess::start(&db.url, &[("RUST_LOG", "trace"), ("NTS_DEMO", "true")]);
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>, bearer: Option<&str>, key: Option<&str>| {
        let mut req = client.request(method, nts.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method as M;
    let (_, events) = call(M::GET, "/api/v1/events", None, None, None).await;
    let (event, tt) = (events[0]["id"].as_str().unwrap(), events[0]["ticket_types"][0]["id"].as_str().unwrap());
    let hold_key = "idem-hold-5f0c7e21";
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let (status, hold) =
        call(M::POST, &format!("/api/v1/events/{event}/holds"), Some(body), None, Some(hold_key)).await;
    assert_eq!(status, 201);
    let hold_secret = hold["secret"].as_str().unwrap().to_owned();
    let hold_path = format!("/api/v1/holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(call(M::GET, &hold_path, None, Some(&hold_secret), None).await.0, 200);
    let (status, checkout) =
        call(M::POST, &format!("{hold_path}/checkout"), Some(json!({})), Some(&hold_secret), Some("idem-co-77")).await;
    assert_eq!(status, 201);
    let order_secret = checkout["order"]["secret"].as_str().unwrap().to_owned();
    let order_path = format!("/api/v1/orders/{}", checkout["order"]["id"].as_str().unwrap());
    let confirm = format!("/api/v1/payments/simulated/{}/confirm", checkout["payment"]["id"].as_str().unwrap());
    assert_eq!(call(M::POST, &confirm, Some(json!({"outcome": "succeeded"})), Some(&order_secret), None).await.0, 200);
    let (_, order) = call(M::GET, &order_path, None, Some(&order_secret), None).await;
    let ticket = order["tickets"][0]["code"].as_str().unwrap().to_owned();
    assert_eq!(
        call(M::GET, &format!("{order_path}/tickets/{ticket}/qr"), None, Some(&order_secret), None).await.0,
        200
    );
    // Wrong credentials are logged as failures, not echoed.
    let wrong_admin = format!("{ADMIN_TOKEN}-but-wrong");
    assert_eq!(call(M::GET, "/api/v1/admin/events", None, Some(&wrong_admin), None).await.0, 403);
    assert_eq!(call(M::GET, &order_path, None, Some("guessed-secret-0123456789"), None).await.0, 404);
    assert_eq!(
        call(M::GET, &format!("/api/v1/admin/events/{event}/guests"), None, Some(ADMIN_TOKEN), None).await.0,
        200
    );
    assert_eq!(
        call(M::POST, "/api/v1/admin/demo/reset", Some(json!({})), Some(ADMIN_TOKEN), Some("idem-reset")).await.0,
        200
    );

    nts.signal("TERM");
    assert_eq!(nts.wait_exit(Duration::from_secs(20)), Some(0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = nts.log();
    assert!(log.lines().count() > 50, "trace logging is on: {log}");
    assert!(
        log.contains("INSERT INTO holds") || log.contains("insert into holds"),
        "statements are logged (without parameters)"
    );
    for (what, secret) in [
        ("admin token", ADMIN_TOKEN),
        ("wrong admin token", wrong_admin.as_str()),
        ("hold secret", &hold_secret),
        ("order secret", &order_secret),
        ("guessed secret", "guessed-secret-0123456789"),
        ("ticket code", &ticket),
        ("idempotency key", hold_key),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log");
    }
}

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
    whole_sale_at_trace_level_logs_no_secret("text").await;
}

#[tokio::test]
async fn a_whole_sale_at_trace_level_logs_no_secret_in_json_either() {
    whole_sale_at_trace_level_logs_no_secret("json").await;
}

async fn whole_sale_at_trace_level_logs_no_secret(format: &str) {
    let db = TestDb::new();
    let env = [("RUST_LOG", "trace"), ("NTS_DEMO", "true"), ("NTS_LOG_FORMAT", format)];
    let mut nts = NtsProcess::start(&db.url, &env);
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

/// A request's id: the caller's when sane, else a new one; in the answer and on its lines.
fn request_id_of(line: &Value) -> Option<&str> {
    line["span"]["request_id"].as_str().or_else(|| line["request_id"].as_str())
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_request_ids_routes_and_provider_calls() {
    let db = TestDb::new();
    let mut nts = NtsProcess::start(&db.url, &[("NTS_LOG_FORMAT", "json")]);
    let client = reqwest::Client::new();
    let admin = |path: &str, body: Value| client.post(nts.url(path)).bearer_auth(ADMIN_TOKEN).json(&body).send();
    let event = admin(
        "/api/v1/admin/events",
        json!({"name": "Log night", "venue": "Hall", "currency": "EUR", "starts_at": "2099-01-01T20:00:00Z",
               "ticket_types": [{"name": "GA", "price_minor": 1000, "capacity": 5, "max_per_order": 2}]}),
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    let (event_id, tt) = (event["id"].as_str().unwrap(), event["ticket_types"][0]["id"].as_str().unwrap());

    // The caller's id is kept and returned.
    let hold = client
        .post(nts.url(&format!("/api/v1/events/{event_id}/holds")))
        .header("X-Request-Id", "ops-hold-4711")
        .json(&json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status(), 201);
    assert_eq!(hold.headers()["x-request-id"], "ops-hold-4711");
    let hold: Value = hold.json().await.unwrap();
    let (hold_id, hold_secret) = (hold["id"].as_str().unwrap(), hold["secret"].as_str().unwrap());
    let checkout: Value = client
        .post(nts.url(&format!("/api/v1/holds/{hold_id}/checkout")))
        .bearer_auth(hold_secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_secret = checkout["order"]["secret"].as_str().unwrap();
    let confirm = client
        .post(nts.url(&format!("/api/v1/payments/simulated/{}/confirm", checkout["payment"]["id"].as_str().unwrap())))
        .bearer_auth(order_secret)
        .header("X-Request-Id", "ops-confirm-0815")
        .json(&json!({"outcome": "succeeded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    // No id, or one that could forge a line: a new one.
    let generated = client.get(nts.url("/healthz")).send().await.unwrap();
    let generated = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(generated.len() >= 16, "{generated}");
    let forged = client.get(nts.url("/healthz")).header("X-Request-Id", "x\" injected=1").send().await.unwrap();
    let replaced = forged.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!replaced.contains("injected") && replaced != generated, "{replaced}");

    nts.signal("TERM");
    assert_eq!(nts.wait_exit(Duration::from_secs(20)), Some(0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stdout = nts.stdout.lock().unwrap().clone();
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l.is_object() && l["timestamp"].is_string() && l["level"].is_string()));
    assert!(lines.iter().any(|l| l["message"] == "nts is serving"), "{stdout}");

    let answered = |id: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "answered" && request_id_of(l) == Some(id))
            .cloned()
            .unwrap_or_else(|| panic!("no answered line for request {id}:\n{stdout}"))
    };
    let line = answered("ops-hold-4711");
    assert_eq!(line["route"], "/api/v1/events/{event_id}/holds");
    assert_eq!(line["status"], 201);
    assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{line}");
    let line = answered("ops-confirm-0815");
    assert_eq!(line["route"], "/api/v1/payments/simulated/{payment_id}/confirm");
    assert_eq!(line["status"], 200);
    assert_eq!(answered(&generated)["route"], "/healthz");
    answered(&replaced);
    // The provider call made while confirming carries the request's id.
    let call = lines
        .iter()
        .find(|l| l["message"] == "provider call" && l["operation"] == "confirm")
        .unwrap_or_else(|| panic!("no provider call logged:\n{stdout}"));
    assert_eq!(request_id_of(call), Some("ops-confirm-0815"), "{call}");
    assert_eq!(call["provider"], "simulated");
    // Routes are templates: no id from a path is on a request's line.
    for line in lines.iter().filter(|l| l["message"] == "answered") {
        for id in [event_id, hold_id] {
            assert!(!line.to_string().contains(id), "an id from a path is logged: {line}");
        }
    }
}

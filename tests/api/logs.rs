//! The log never shows a secret, even at the most verbose level.

use std::time::Duration;

use nts_testkit::wire::{HoldRequest, NewEvent, NewTicketType, SimulatedOutcome};
use nts_testkit::{Expect, NtsProcess, TestDb, ADMIN_TOKEN};
use serde_json::Value;
use time::macros::datetime;
use uuid::Uuid;

fn ada(tt: Uuid) -> HoldRequest {
    HoldRequest { ticket_type_id: tt, quantity: 1, name: "Ada".into(), email: "ada@example.com".into() }
}

#[test]
fn a_generated_admin_token_is_not_written_to_a_log() {
    let db = TestDb::unborn();
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
    let db = TestDb::unborn();
    let env = [("RUST_LOG", "trace"), ("NTS_DEMO", "true"), ("NTS_LOG_FORMAT", format)];
    let mut nts = NtsProcess::start(&db.url, &env);
    let api = nts.api();
    let events = api.events().await.unwrap();
    let (event, tt) = (events[0].id, events[0].ticket_types[0].id);
    let hold_key = "idem-hold-5f0c7e21";
    let hold = api.with_key(hold_key).create_hold(event, &ada(tt)).await.unwrap();
    let hold_secret = hold.secret.clone().unwrap();
    api.hold(hold.id, &hold_secret).await.unwrap();
    let checkout = api.with_key("idem-co-77").checkout(hold.id, &hold_secret).await.unwrap();
    let order_secret = checkout.order.secret.clone().unwrap();
    let payment = checkout.payment.as_ref().unwrap().id;
    api.confirm_simulated(payment, &order_secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    let order = api.order(checkout.order.id, &order_secret).await.unwrap();
    let ticket = order.tickets[0].code.clone();
    api.ticket_qr(order.id, &ticket, &order_secret).await.unwrap();
    // Wrong credentials are logged as failures, not echoed.
    let wrong_admin = format!("{ADMIN_TOKEN}-but-wrong");
    assert_eq!(api.with_admin_token(&wrong_admin).admin_events().await.unwrap_err().status, 403);
    assert_eq!(api.order(order.id, "guessed-secret-0123456789").await.unwrap_err().status, 404);
    api.guests(event).await.unwrap();
    api.with_key("idem-reset").demo_reset().await.unwrap();

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
    let db = TestDb::unborn();
    let mut nts = NtsProcess::start(&db.url, &[("NTS_LOG_FORMAT", "json")]);
    let api = nts.api();
    let event = api
        .create_event(&NewEvent {
            max_tickets_per_order: None,
            name: "Log night".into(),
            venue: "Hall".into(),
            currency: "EUR".into(),
            starts_at: datetime!(2099-01-01 20:00 UTC),
            ticket_types: vec![NewTicketType { name: "GA".into(), price_minor: 1000, capacity: 5, max_per_order: 2 }],
        })
        .await
        .unwrap();
    let (event_id, tt) = (event.id, event.ticket_types[0].id);

    // The caller's id is kept and returned.
    let hold = api.with_header("X-Request-Id", "ops-hold-4711").create_hold(event_id, &ada(tt)).await.unwrap();
    assert_eq!(hold.headers["x-request-id"], "ops-hold-4711");
    let (hold_id, hold_secret) = (hold.id, hold.secret.clone().unwrap());
    let checkout = api.checkout(hold_id, &hold_secret).await.unwrap();
    let order_secret = checkout.order.secret.as_deref().unwrap();
    api.with_header("X-Request-Id", "ops-confirm-0815")
        .confirm_simulated(checkout.payment.as_ref().unwrap().id, order_secret, SimulatedOutcome::Succeeded)
        .await
        .expect_status(200);
    // No id, or one that could forge a line: a new one.
    let generated = api.health().await.unwrap().headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(generated.len() >= 16, "{generated}");
    let forged = api.with_header("X-Request-Id", "x\" injected=1").health().await.unwrap();
    let replaced = forged.headers["x-request-id"].to_str().unwrap().to_owned();
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
            assert!(!line.to_string().contains(&id.to_string()), "an id from a path is logged: {line}");
        }
    }
}

//! `GET /metrics`: closed unless configured, then only to its token; after a
//! little of every kind of traffic it exposes the series an operator watches,
//! in an exposition `promtool check metrics` accepts, with no id in a label.

use std::io::Write;
use std::process::{Command, Stdio};

use nts_testkit::wire::{ErrorBody, HoldRequest, SimulatedOutcome};
use nts_testkit::{spawn_app, spawn_app_with, Expect, TestApp, ADMIN_TOKEN};
use reqwest::Method;

const METRICS_TOKEN: &str = "metrics-token-for-tests-4f1d";

async fn scrape(app: &TestApp, bearer: Option<&str>) -> (u16, String) {
    let mut req = app.api().raw(Method::GET, "/metrics");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_closed_to_everyone_else() {
    let app = spawn_app().await;
    assert_eq!(scrape(&app, None).await.0, 404);
    assert_eq!(scrape(&app, Some(METRICS_TOKEN)).await.0, 404);
    assert_eq!(scrape(&app, Some(ADMIN_TOKEN)).await.0, 404);

    let app = spawn_app_with(&[("NTS_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let (status, body) = scrape(&app, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(serde_json::from_str::<ErrorBody>(&body).unwrap().code, "unauthorized");
    assert_eq!(scrape(&app, Some(ADMIN_TOKEN)).await.0, 403);
    assert_eq!(scrape(&app, Some(&format!("{METRICS_TOKEN}x"))).await.0, 403);
    assert_eq!(scrape(&app, Some(METRICS_TOKEN)).await.0, 200);
}

#[tokio::test]
async fn a_sale_shows_up_in_valid_metrics_without_ids_in_labels() {
    let app = spawn_app_with(&[("NTS_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let event = app.create_event(&[("General", 1500, 3, 3)]).await;
    let (event_id, tt) = (event.id, event.ticket_types[0].id);
    let api = app.api();

    // A purchase, paid.
    let checkout = app.checkout(event_id, tt, 2).await;
    let order_secret = checkout.order.secret.as_deref().unwrap();
    app.confirm(checkout.payment.as_ref().unwrap().id, order_secret, SimulatedOutcome::Succeeded)
        .await
        .expect_status(200);
    // A declined card.
    let declined = app.checkout(event_id, tt, 1).await;
    let declined_secret = declined.order.secret.as_deref().unwrap();
    let answer = app.confirm(declined.payment.as_ref().unwrap().id, declined_secret, SimulatedOutcome::Declined).await;
    assert!(answer.as_ref().is_err_and(|e| e.status.is_client_error()), "{answer:?}");
    // Sold out (at most one seat is left), and a quantity past max_per_order.
    app.hold(event_id, tt, 2).await.expect_error(409, "sold_out");
    app.hold(event_id, tt, 4).await.expect_error(422, "validation_failed");
    // An idempotent replay and a key reused for another request.
    let hold =
        |quantity| HoldRequest { ticket_type_id: tt, quantity, name: "Ada".into(), email: "ada@example.com".into() };
    let keyed = app.api_on(0).with_key("metrics-key-1");
    let status = |a: nts_testkit::ApiResult<_>| a.map_or_else(|e| e.status, |r| r.http_status);
    let first = status(keyed.create_hold(event_id, &hold(1)).await);
    let again = status(keyed.create_hold(event_id, &hold(1)).await);
    assert_eq!(first, again);
    keyed.create_hold(event_id, &hold(2)).await.expect_error(422, "idempotency_key_reused");
    // Pages with ids in their paths, and paths nobody routes.
    api.event(event_id).await.unwrap();
    api.order(checkout.order.id, order_secret).await.unwrap();
    api.send_json(Method::GET, &format!("/api/v1/no-such-thing/{event_id}"), None, None).await.expect(404);

    // The reconciler runs every 200 ms in tests: wait for a pass to be counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let (status, body) = scrape(&app, Some(METRICS_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        if body.contains("nts_reconciler_pass_duration_seconds_count") {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "no reconciler pass counted:\n{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };

    for series in [
        r#"nts_http_requests_total{method="POST",route="/api/v1/events/{event_id}/holds",status="201"}"#,
        r#"nts_http_requests_total{method="GET",route="/api/v1/orders/{order_id}",status="200"}"#,
        r#"nts_http_requests_total{method="GET",route="other",status="404"}"#,
        r#"nts_http_request_duration_seconds_bucket{method="POST",route="/api/v1/events/{event_id}/holds",le="0.1"}"#,
        "nts_holds_granted_total ",
        r#"nts_holds_refused_total{reason="sold_out"}"#,
        r#"nts_holds_refused_total{reason="validation_failed"}"#,
        "nts_hold_batch_size_bucket{",
        "nts_hold_flush_duration_seconds_count ",
        r#"nts_payment_attempts_total{provider="simulated",outcome="succeeded"}"#,
        r#"nts_provider_call_duration_seconds_bucket{provider="simulated",operation="confirm",outcome="ok""#,
        r#"nts_event_seats_sold{event="Test night"}"#,
        r#"nts_event_seats_held{event="Test night"}"#,
        "nts_reconciler_pass_duration_seconds_bucket{",
        r#"nts_reconciler_passes_total{result="ok"}"#,
        r#"nts_reconciler_work_total{kind="holds_expired"}"#,
        "nts_reconciler_last_pass_timestamp_seconds ",
        "nts_reconciler_lag_seconds ",
        r#"nts_reconciler_backlog{kind="overdue_orders"}"#,
        r#"nts_mail_outbox{status="pending"}"#,
        "nts_mail_outbox_oldest_unsent_seconds ",
        "nts_idempotency_replays_total ",
        r#"nts_idempotency_conflicts_total{reason="key_reused"}"#,
        r#"nts_db_pool_connections{state="in_use"}"#,
        r#"nts_db_pool_connections{state="idle"}"#,
        "nts_db_pool_max_connections ",
        "# HELP nts_holds_refused_total ",
        "# TYPE nts_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(series), "{series} is missing from:\n{text}");
    }
    let sold = text.lines().find(|l| l.starts_with(r#"nts_event_seats_sold{event="Test night"}"#)).unwrap();
    assert!(sold.ends_with(" 2"), "{sold}");

    // No id, path or secret in any label value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let labels = line.split_once('{').map(|(_, rest)| rest.rsplit_once('}').map_or(rest, |(l, _)| l));
        if let Some(labels) = labels {
            assert!(!has_uuid(labels), "an id in a label: {line}");
            assert!(!labels.contains(&event_id.to_string()) && !labels.contains(order_secret), "{line}");
        }
    }

    promtool_accepts(&text);
}

/// A UUID, hyphenated or not.
fn has_uuid(text: &str) -> bool {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    let bytes: Vec<char> = text.chars().collect();
    (0..bytes.len()).any(|i| {
        let rest: String = bytes[i..].iter().take(36).collect();
        let plain: String = bytes[i..].iter().take(32).collect();
        (rest.len() == 36
            && rest
                .char_indices()
                .all(|(j, c)| if [8, 13, 18, 23].contains(&j) { c == '-' } else { c.is_ascii_hexdigit() }))
            || (plain.len() == 32 && hex(&plain))
    })
}

/// `promtool check metrics` (Debian's prometheus package; tests/setup.sh installs it) reads the exposition on stdin.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus; tests/setup.sh does)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

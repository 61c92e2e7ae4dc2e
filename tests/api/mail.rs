//! E-mail through the transactional outbox, against a real SMTP server
//! (aiosmtpd, tests/mail/server.py): one e-mail per paid order with the right
//! link and codes, none lost while SMTP is down, none sent twice by two
//! senders, the same Message-ID after a sender is SIGKILLed mid-send, resend
//! without enumeration, and buyer names that cannot add headers.

use std::collections::HashSet;
use std::time::Duration;

use nts_testkit::wire::{HoldRequest, MailKind, MailStatus, NewEvent, NewTicketType, PaymentStatus, SimulatedOutcome};
use nts_testkit::{new_app, spawn_app_with, Client, Expect, NtsProcess, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use time::macros::datetime;
use uuid::Uuid;

use crate::mail_server::MailServer;

fn as_str_pairs<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn app_sending_to(server: &MailServer, extra: &[(&'static str, &str)]) -> TestApp {
    let settings = server.settings();
    let mut all = as_str_pairs(&settings);
    all.extend_from_slice(extra);
    spawn_app_with(&all).await
}

/// A paid order of `quantity` bought by `name` <`email`>: (order id, order secret).
async fn paid_order(app: &TestApp, tt_event: &(Uuid, Uuid), quantity: i64, name: &str, email: &str) -> (Uuid, String) {
    buy(&app.api(), tt_event, quantity, name, email).await
}

async fn buy(api: &Client, &(event, tt): &(Uuid, Uuid), quantity: i64, name: &str, email: &str) -> (Uuid, String) {
    let request = HoldRequest { ticket_type_id: tt, quantity, name: name.into(), email: email.into() };
    let hold = api.create_hold(event, &request).await.unwrap();
    let checkout = api.checkout(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
    let secret = checkout.order.secret.clone().unwrap();
    let paid = api.confirm_simulated(checkout.payment.as_ref().unwrap().id, &secret, SimulatedOutcome::Succeeded).await;
    assert_eq!(paid.expect_status(200).status, PaymentStatus::Succeeded);
    (checkout.order.id, secret)
}

/// The outbox rows of an order: (id, kind, status).
async fn outbox_of(app: &TestApp, order: Uuid) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT id::text, kind::text, status::text FROM mail_outbox WHERE order_id = $1::uuid ORDER BY created_at",
    )
    .bind(order)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn count_where(app: &TestApp, condition: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM mail_outbox WHERE {condition}"))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn message_ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["message_id"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn a_paid_order_sends_one_email_with_its_link_and_codes() {
    let server = MailServer::start();
    let app = app_sending_to(&server, &[]).await;
    let event = app.simple_event(10, 4).await;
    let (order, secret) = paid_order(&app, &event, 2, "Ada Lovelace", "ada@example.com").await;

    app.eventually(60, || async { outbox_of(&app, order).await.iter().all(|r| r.2 == "sent") }).await;
    let rows = outbox_of(&app, order).await;
    assert_eq!(rows.len(), 1, "one confirmation: {rows:?}");
    assert_eq!(rows[0].1, "order_paid");
    let messages = server.wait_for(1, 30).await;
    assert_eq!(messages.len(), 1, "exactly one e-mail");
    let m = &messages[0];
    assert_eq!(m["rcpt_tos"], json!(["ada@example.com"]));
    assert_eq!(m["message_id"], format!("<{}@nts.test>", rows[0].0), "Message-ID names the outbox row");
    assert!(m["subject"].as_str().unwrap().contains("Test night"), "{}", m["subject"]);
    assert!(m["headers"]["from"].as_str().unwrap().contains("tickets@nts.test"));

    // The link opens the order, exactly as the pages expect it.
    let link = format!("http://shop.nts.test/order.html#id={order}&secret={secret}");
    let text = m["text"].as_str().expect("a plain text part");
    let html = m["html"].as_str().expect("an HTML part");
    assert!(text.contains(&link), "link in the text: {text}");
    assert!(html.contains(&link.replace('&', "&amp;")), "link in the HTML: {html}");
    let seen = app.api().order(order, &secret).await.unwrap();

    // The codes the order page shows, in both parts, and one inline PNG per ticket.
    let codes: Vec<&str> = seen.tickets.iter().map(|t| t.signed_code.as_str()).collect();
    assert_eq!(codes.len(), 2);
    for code in &codes {
        assert!(text.contains(code) && html.contains(code), "code {code} in both parts");
    }
    for detail in ["Test night", "The Hall", "2099-01-01 20:00 UTC", "2 x General", "GBP 19.98"] {
        assert!(text.contains(detail), "{detail} in the text: {text}");
    }
    let images = m["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "one QR per ticket");
    for (i, image) in images.iter().enumerate() {
        assert_eq!(image["content_type"], "image/png");
        assert_eq!(image["disposition"], "inline");
        let cid = image["cid"].as_str().unwrap();
        assert!(html.contains(&format!("cid:{cid}")), "the HTML shows image {i}");
        assert!(image["size"].as_u64().unwrap() > 100);
    }

    // A refund is told too, once; the confirmation is not sent again.
    let _ = app.api().refund(order, false).await;
    let messages = server.wait_for(2, 60).await;
    assert!(messages[1]["subject"].as_str().unwrap().starts_with("Refunded"), "{}", messages[1]["subject"]);
    assert_eq!(messages[1]["images"].as_array().unwrap().len(), 0, "no tickets in a refund notice");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.messages().await.len(), 2);
}

#[tokio::test]
async fn emails_paid_while_smtp_is_down_all_arrive_once_it_is_back() {
    let server = MailServer::start();
    server.faults(json!({"refuse": true})).await;
    let app = app_sending_to(&server, &[]).await;
    let event = app.simple_event(100, 4).await;
    let mut orders = Vec::new();
    for i in 0..5 {
        orders.push(paid_order(&app, &event, 1, "Ada", &format!("buyer{i}@example.com")).await.0);
    }
    // Every row is tried, fails, and waits; nothing arrives.
    app.eventually(60, || async { count_where(&app, "attempts >= 2 AND last_error IS NOT NULL").await == 5 }).await;
    assert_eq!(count_where(&app, "status = 'sent'").await, 0);
    assert_eq!(server.messages().await.len(), 0);

    // Back, but the first two deliveries are cut after the data went over.
    server.faults(json!({"refuse": false, "drop_data": 2})).await;
    app.eventually(60, || async { count_where(&app, "status = 'sent'").await == 5 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = server.messages().await;
    let ids: HashSet<String> = message_ids(&messages).into_iter().collect();
    assert_eq!(messages.len(), 5, "all arrived, none twice: {:?}", message_ids(&messages));
    assert_eq!(ids.len(), 5);
    let to: HashSet<String> = messages.iter().map(|m| m["rcpt_tos"][0].as_str().unwrap().to_owned()).collect();
    assert_eq!(to.len(), 5);
}

#[tokio::test]
async fn two_instances_send_each_email_once() {
    let server = MailServer::start();
    let settings = server.settings();
    let mut app = new_app(&as_str_pairs(&settings)).await;
    app.start_instance().await;
    app.start_instance().await;
    // Slow answers keep both senders busy at the same time.
    server.faults(json!({"slow_ms": 50})).await;
    let event = app.simple_event(100, 4).await;
    for i in 0..20 {
        paid_order(&app, &event, 1, "Ada", &format!("twin{i}@example.com")).await;
    }
    app.eventually(120, || async { count_where(&app, "status = 'sent'").await == 20 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = server.messages().await;
    let ids: HashSet<String> = message_ids(&messages).into_iter().collect();
    assert_eq!((messages.len(), ids.len()), (20, 20), "no duplicates: {:?}", message_ids(&messages));
}

#[tokio::test]
async fn a_sender_killed_mid_send_is_replaced_and_the_message_keeps_its_id() {
    let server = MailServer::start();
    let app = new_app(&[]).await;
    let settings = server.settings();
    let mut env = as_str_pairs(&settings);
    env.push(("NTS_MAIL_LEASE_SECONDS", "15"));
    let first = NtsProcess::start(&app.db.url, &env);
    // Orders are made through the first process.
    server.faults(json!({"slow_ms": 4000})).await;
    let api = first.api();
    let event = api
        .create_event(&NewEvent {
            max_tickets_per_order: None,
            name: "Test night".into(),
            venue: "The Hall".into(),
            currency: "GBP".into(),
            starts_at: datetime!(2099-01-01 20:00 UTC),
            ticket_types: vec![NewTicketType {
                name: "General".into(),
                price_minor: 999,
                capacity: 10,
                max_per_order: 4,
            }],
        })
        .await
        .unwrap();
    let (order, _) = buy(&api, &(event.id, event.ticket_types[0].id), 1, "Ada", "ada@example.com").await;

    // The message is stored by the SMTP server, whose answer is held back: kill the sender now.
    app.eventually(60, || async { server.state().await["waiting"] == 1 }).await;
    let mut first = first;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    server.faults(json!({"slow_ms": 0})).await;
    assert_eq!(outbox_of(&app, order).await[0].2, "sending", "the dead sender's lease still holds the row");

    // Another process takes the row over once the lease ends and sends it again, same Message-ID.
    let _second = NtsProcess::start(&app.db.url, &env);
    app.eventually(90, || async { outbox_of(&app, order).await[0].2 == "sent" }).await;
    let messages = server.messages().await;
    let row_id = outbox_of(&app, order).await[0].0.clone();
    assert_eq!(messages.len(), 2, "at least once: the unanswered delivery and the retry");
    for id in message_ids(&messages) {
        assert_eq!(id, format!("<{row_id}@nts.test>"), "the same Message-ID both times");
    }
}

#[tokio::test]
async fn resend_sends_the_tickets_again_and_tells_nobody_who_bought() {
    let server = MailServer::start();
    let app = app_sending_to(&server, &[]).await;
    let event = app.simple_event(10, 4).await;
    let (order, _) = paid_order(&app, &event, 1, "Ada", "ada@example.com").await;
    server.wait_for(1, 60).await;

    let api = app.api();
    let known = api.resend("ADA@example.com").await.unwrap();
    let unknown = api.resend("nobody@example.com").await.unwrap();
    assert_eq!(known.body, unknown.body, "the same answer either way");

    let messages = server.wait_for(2, 60).await;
    assert_eq!(messages[1]["rcpt_tos"], json!(["ada@example.com"]), "to the address the order was bought with");
    assert!(messages[1]["subject"].as_str().unwrap().contains("again"));
    assert_ne!(messages[1]["message_id"], messages[0]["message_id"], "a new message, not a duplicate");
    assert!(messages[1]["text"].as_str().unwrap().contains(&format!("#id={order}&secret=")));
    let kinds: Vec<String> = outbox_of(&app, order).await.into_iter().map(|r| r.1).collect();
    assert_eq!(kinds, ["order_paid", "resend"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.messages().await.len(), 2, "nothing went to the unknown address");

    // Bad input changes nothing.
    api.resend("not an address").await.expect_error(422, "invalid_email");
    // Without an address: only a raw request can leave it out.
    let missing = api.send_json(Method::POST, "/api/v1/orders/resend", Some(&json!({})), None).await;
    assert!(missing.status.is_client_error() && !missing.code().is_empty(), "{missing:?}");
    assert_eq!(count_where(&app, "kind = 'resend'").await, 1);
}

#[tokio::test]
async fn resend_is_limited_per_client_and_per_email() {
    let app = spawn_app_with(&[("NTS_MAIL_RESEND_PER_HOUR", "3"), ("NTS_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let ask = |client: &'static str, email: String| {
        let api = app.api().with_header("X-Forwarded-For", client);
        async move { api.resend(&email).await.map_or_else(|e| e.status, |r| r.http_status).as_u16() }
    };
    // One address from many clients.
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(ask(client, "same@example.com".into()).await, 202);
    }
    assert_eq!(ask("198.51.100.4", "SAME@example.com".into()).await, 429, "per e-mail address");
    // One client, many addresses.
    for i in 0..3 {
        assert_eq!(ask("203.0.113.9", format!("other{i}@example.com")).await, 202);
    }
    assert_eq!(ask("203.0.113.9", "other9@example.com".into()).await, 429, "per client");
}

#[tokio::test]
async fn a_buyer_name_cannot_add_headers_or_recipients() {
    let server = MailServer::start();
    let app = app_sending_to(&server, &[]).await;
    let event = app.simple_event(10, 4).await;
    // Control characters never get into a name.
    let request = HoldRequest {
        ticket_type_id: event.1,
        quantity: 1,
        name: "Eve\r\nBcc: mallory@evil.example".into(),
        email: "eve@example.com".into(),
    };
    app.api().create_hold(event.0, &request).await.expect_error(422, "validation_failed");
    // What does get in is only a display name.
    for name in
        ["Eve <mallory@evil.example>, Bcc: mallory@evil.example", "\"Eve\" Bcc: x@evil.example; To: y@evil.example"]
    {
        paid_order(&app, &event, 1, name, "eve@example.com").await;
    }
    let messages = server.wait_for(2, 60).await;
    for m in &messages {
        assert_eq!(m["rcpt_tos"], json!(["eve@example.com"]), "no other recipient");
        let names: Vec<String> =
            m["header_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_ascii_lowercase()).collect();
        assert!(!names.contains(&"bcc".to_owned()), "{names:?}");
        assert_eq!(names.iter().filter(|n| *n == "to").count(), 1, "{names:?}");
        assert!(m["headers"]["to"].as_str().unwrap().contains("<eve@example.com>"), "{}", m["headers"]["to"]);
    }
}

#[tokio::test]
async fn without_smtp_the_outbox_fills_and_the_admin_sees_it() {
    let app = spawn_app_with(&[]).await;
    let event = app.simple_event(10, 4).await;
    let (order, _) = paid_order(&app, &event, 1, "Ada", "ada@example.com").await;
    let api = app.api();
    let outbox = api.outbox("").await.unwrap();
    assert!(!outbox.smtp_configured);
    assert_eq!(outbox.counts.pending, 1);
    assert_eq!(outbox.rows[0].order_id, order);
    assert_eq!(outbox.rows[0].kind, MailKind::OrderPaid);
    // Without a credential: only a raw request can leave it out.
    api.send_json(Method::GET, "/api/v1/admin/mail", None, None).await.expect_error(401, "unauthorized");
    api.outbox("?limit=0").await.expect_error(422, "validation_failed");
    api.outbox("?status=lost").await.expect_error(422, "validation_failed");
}

#[tokio::test]
async fn a_failed_email_is_shown_and_retried_by_the_admin() {
    let server = MailServer::start();
    server.faults(json!({"refuse": true})).await;
    let app = app_sending_to(&server, &[("NTS_MAIL_MAX_ATTEMPTS", "2")]).await;
    let event = app.simple_event(10, 4).await;
    let (order, _) = paid_order(&app, &event, 1, "Ada", "ada@example.com").await;
    app.eventually(60, || async { outbox_of(&app, order).await[0].2 == "failed" }).await;
    let api = app.api();
    let outbox = api.outbox("?status=failed").await.unwrap();
    assert!(outbox.smtp_configured);
    assert_eq!(outbox.counts.failed, 1);
    let row = &outbox.rows[0];
    assert_eq!(row.attempts, 2);
    assert!(!row.last_error.as_deref().unwrap().is_empty());

    server.up().await;
    assert_eq!(api.retry_mail(row.id).await.unwrap().status, MailStatus::Pending);
    app.eventually(60, || async { outbox_of(&app, order).await[0].2 == "sent" }).await;
    assert_eq!(server.messages().await.len(), 1);
    api.retry_mail(row.id).await.expect_error(409, "mail_not_failed");
    api.retry_mail(Uuid::new_v4()).await.expect_error(404, "not_found");
}

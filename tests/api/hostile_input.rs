//! Malformed, oversized and unexpected requests get a precise 4xx JSON answer.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use nts_testkit::{spawn_app, TestApp, ADMIN_TOKEN};
use uuid::Uuid;

/// Sends `head` (and `body`) over a raw connection and answers the status and
/// the JSON body of the response, which must arrive within 5 s.
async fn raw(app: &TestApp, head: &str, body: &[u8]) -> (u16, Value) {
    let address = app.instances[0].address.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(address).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if let Some(end) = find(&answer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap());
                if length.is_some_and(|len| answer.len() >= end + 4 + len) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("an answer without sending the rest of the body");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        text.split_once("\r\n\r\n").map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    (status, body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn hold_body(tt: Uuid) -> Value {
    json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"})
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let (event, _) = app.simple_event(5, 1).await;
    let hold = uuid::Uuid::new_v4();
    // Announced as 10 MB, one byte sent: the answer comes at once, with or without
    // an Idempotency-Key, and whether or not the handler reads bodies at all.
    for (path, extra) in [
        (format!("/api/v1/events/{event}/holds"), ""),
        (format!("/api/v1/events/{event}/holds"), "Idempotency-Key: big-1\r\n"),
        (format!("/api/v1/holds/{hold}/checkout"), ""),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: 10000000\r\n\r\n"
        );
        let (status, body) = raw(&app, &head, b"{").await;
        assert_eq!(status, 413, "{path} {extra}: {body}");
        assert_eq!(body["code"], "payload_too_large");
    }
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused_at_the_limit() {
    let app = spawn_app().await;
    let (event, _) = app.simple_event(5, 1).await;
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    // 80 KiB in 1 KiB chunks and no final chunk: the server must stop at 64 KiB.
    let body = chunk.repeat(80);
    for extra in ["", "Idempotency-Key: chunky-1\r\n"] {
        let head = format!(
            "POST /api/v1/events/{event}/holds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Transfer-Encoding: chunked\r\n\r\n"
        );
        let (status, answer) = raw(&app, &head, body.as_bytes()).await;
        assert_eq!(status, 413, "{extra}: {answer}");
        assert_eq!(answer["code"], "payload_too_large");
    }
    // Within the limit, chunked bodies work as usual.
    let json = serde_json::to_string(&hold_body(app.simple_event(5, 1).await.1)).unwrap();
    let (status, _) = raw(
        &app,
        &format!("POST /api/v1/events/{event}/holds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"),
        format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len()).as_bytes(),
    )
    .await;
    assert_eq!(status, 422, "a ticket type of another event: read and validated");
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 1).await;
    let mut body = hold_body(tt);
    body["price_minor"] = json!(1);
    let answer = app.api().send_json(Method::POST, &format!("/api/v1/events/{event}/holds"), Some(&body), None).await;
    answer.expect_error(422, "validation_failed");
    assert!(answer.body["message"].as_str().unwrap().contains("price_minor"), "{}", answer.body);
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
}

#[tokio::test]
async fn deeply_nested_or_huge_values_are_refused_without_harm() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 1).await;
    let path = format!("/api/v1/events/{event}/holds");
    let deep = format!("{{\"name\": {}1{}}}", "[".repeat(20_000), "]".repeat(20_000));
    let answer = app.api().post_bytes(&path, Some("application/json"), Box::leak(deep.into_boxed_str())).await;
    assert!(answer.status == 400 || answer.status == 422, "{}: {}", answer.status, answer.body);
    let mut long = hold_body(tt);
    long["name"] = json!("n".repeat(201));
    app.api().send_json(Method::POST, &path, Some(&long), None).await.expect_error(422, "validation_failed");
    long["name"] = json!("Ada");
    long["email"] = json!(format!("{}@example.com", "e".repeat(250)));
    app.api().send_json(Method::POST, &path, Some(&long), None).await.expect_error(422, "validation_failed");
    let mut many = hold_body(tt);
    many["quantity"] = json!(2);
    app.api().send_json(Method::POST, &path, Some(&many), None).await.expect_error(422, "validation_failed");
    many["quantity"] = json!(1u64 << 63);
    app.api().send_json(Method::POST, &path, Some(&many), None).await.expect_error(422, "validation_failed");
    app.api().health().await.unwrap();
}

#[tokio::test]
async fn bodies_must_be_json() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 1).await;
    let path = format!("/api/v1/events/{event}/holds");
    let json = Box::leak(hold_body(tt).to_string().into_boxed_str());
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        app.api().post_bytes(&path, content_type, json).await.expect_error(415, "unsupported_content_type");
    }
    app.api().post_bytes(&path, Some("application/json"), "{\"name\": ").await.expect_error(400, "invalid_json");
    app.api().post_bytes(&path, Some("application/json; charset=utf-8"), json).await.expect(201);
    // A payment request that is not JSON is refused, not read as "no payment method".
    let checkout = app.checkout(event, tt, 1).await;
    let pay = format!("/api/v1/orders/{}/payments", checkout.order.id);
    let res = app
        .api()
        .raw(Method::POST, &pay)
        .bearer_auth(checkout.order.secret.as_deref().unwrap())
        .header("content-type", "application/json")
        .body("{\"payment_method\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405() {
    let app = spawn_app().await;
    let answer = app.api().send_json(Method::POST, "/api/v1/events", Some(&json!({})), None).await;
    answer.expect_error(405, "method_not_allowed");
    assert_eq!(answer.headers["allow"], "GET");
    let hold = format!("/api/v1/holds/{}", uuid::Uuid::new_v4());
    let answer = app.api().send_json(Method::PUT, &hold, None, None).await;
    answer.expect_error(405, "method_not_allowed");
    assert_eq!(answer.headers["allow"], "GET, DELETE");
    app.api()
        .send_json(Method::GET, &format!("{hold}/checkout"), None, None)
        .await
        .expect_error(405, "method_not_allowed");
    app.api().send_json(Method::GET, "/api/v1/holds", None, None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn values_that_would_upset_the_database_are_refused_first() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 2).await;
    let checkout = app.checkout(event, tt, 1).await;
    let order = checkout.order.id;
    let secret = checkout.order.secret.as_deref().unwrap();
    // A NUL byte cannot be stored in PostgreSQL text: it must never reach a query.
    app.api()
        .send_json(Method::GET, &format!("/api/v1/orders/{order}/tickets/abc%00def/qr"), None, Some(secret))
        .await
        .expect_error(404, "not_found");
    app.api()
        .send_json(
            Method::POST,
            &format!("/api/v1/orders/{order}/payments"),
            Some(&json!({"payment_method": "pm_\u{0}"})),
            Some(secret),
        )
        .await
        .expect_error(422, "validation_failed");
    // A start time whose UTC instant falls past year 9999.
    let event = json!({"name": "Late", "venue": "Hall", "starts_at": "9999-12-31T23:59:59-23:59", "currency": "GBP",
        "ticket_types": [{"name": "A", "price_minor": 1, "capacity": 1, "max_per_order": 1}]});
    app.api()
        .send_json(Method::POST, "/api/v1/admin/events", Some(&event), Some(ADMIN_TOKEN))
        .await
        .expect_error(422, "validation_failed");
    app.api().health().await.unwrap();
}

//! Rate limits, CORS, security headers, the admin token and stored secrets.

use futures_util::future::join_all;
use nts_testkit::process as binary;
use nts_testkit::wire::{HoldRequest, SimulatedOutcome};
use nts_testkit::{ada, spawn_app, spawn_app_with, Expect, TestDb, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn public_posts_are_rate_limited_per_client_with_retry_after() {
    let app = spawn_app_with(&[("NTS_RATE_LIMIT_PER_MINUTE", "1"), ("NTS_RATE_LIMIT_BURST", "3")]).await;
    let (event, tt) = app.simple_event(50, 1).await;
    let path = format!("/api/v1/events/{event}/holds");
    for _ in 0..3 {
        app.hold(event, tt, 1).await.unwrap();
    }
    let limited = app.hold(event, tt, 1).await.expect_error(429, "rate_limited");
    let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(app.sold_and_held(tt).await, (0, 3), "a refused request does nothing");
    // Reads have a limit of their own (off in tests unless asked for); the organiser has none.
    app.api().event(event).await.unwrap();
    app.create_event(&[("More", 100, 10, 2)]).await;
    // A client cannot dodge the limit by claiming another address: no proxy is trusted.
    let res = app
        .api()
        .raw(Method::POST, &path)
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = spawn_app_with(&[
        ("NTS_RATE_LIMIT_PER_MINUTE", "1"),
        ("NTS_RATE_LIMIT_BURST", "1"),
        ("NTS_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let (event, tt) = app.simple_event(50, 1).await;
    let body = HoldRequest { ticket_type_id: tt, quantity: 1, name: "Ada".into(), email: "ada@example.com".into() };
    let send = |client: &'static str| {
        let (api, body) = (app.api().with_header("x-forwarded-for", client), &body);
        async move { api.create_hold(event, body).await.map_or_else(|e| e.status, |r| r.http_status).as_u16() }
    };
    assert_eq!(send("198.51.100.7").await, 201);
    assert_eq!(send("198.51.100.7").await, 429);
    assert_eq!(send("198.51.100.8").await, 201, "another client behind the same proxy");
    // What the client itself wrote before our proxy's entry does not count.
    assert_eq!(send("203.0.113.1, 198.51.100.7").await, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bogus_reads_from_one_client_are_limited_and_never_starve_buyers_elsewhere() {
    let app = spawn_app_with(&[
        ("NTS_READ_RATE_LIMIT_PER_MINUTE", "1"),
        ("NTS_READ_RATE_LIMIT_BURST", "10"),
        ("NTS_RATE_LIMIT_PER_MINUTE", "60"),
        ("NTS_RATE_LIMIT_BURST", "10"),
        ("NTS_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let (event, tt) = app.simple_event(100, 1).await;
    let attacker = app.api().with_header("x-forwarded-for", "198.51.100.66");
    // Well-formed credentials of nothing, so that each would cost a query.
    let order_secret = "A".repeat(43);
    let device_token = format!("ntsdev_{}", "B".repeat(43));
    let bogus = (0..500).map(|i| {
        let (attacker, order_secret, device_token) = (&attacker, &order_secret, &device_token);
        async move {
            let answer = if i % 2 == 0 {
                attacker.order(Uuid::new_v4(), order_secret).await.map(|_| ())
            } else {
                attacker.gate_state(device_token).await.map(|_| ())
            };
            answer.expect_err("no such order or device").status.as_u16()
        }
    });
    let buyers = (0..20).map(|i| {
        let buyer = app.api().with_header("x-forwarded-for", &format!("203.0.113.{i}"));
        let email = format!("buyer{i}@example.com");
        let body = HoldRequest { ticket_type_id: tt, quantity: 1, name: "Ada".into(), email };
        async move { buyer.create_hold(event, &body).await.map_or_else(|e| e.status, |r| r.http_status).as_u16() }
    });
    let (bogus, buyers) = futures_util::future::join(join_all(bogus), join_all(buyers)).await;

    assert!(buyers.iter().all(|s| *s == 201), "every buyer elsewhere holds: {buyers:?}");
    let limited = bogus.iter().filter(|s| **s == 429).count();
    assert!(limited >= 500 - 11, "all but the burst (and a token a minute) are refused: {limited} of 500");
    assert!(bogus.iter().all(|s| [403, 404, 429].contains(s)), "never a 5xx: {bogus:?}");
    // Other clients' reads have their own bucket.
    app.api().with_header("x-forwarded-for", "203.0.113.200").event(event).await.unwrap();
}

#[tokio::test]
async fn pages_and_answers_carry_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/admin.html", "/docs/"] {
        let res = app.api().raw(Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe"), "{path}: scripts only from our origin: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    // Any answer, even to a path nobody routes.
    for path in ["/api/v1/events", "/api/v1/nothing", "/healthz"] {
        let answer = app.api().send_json(Method::GET, path, None, None).await;
        assert_eq!(answer.headers["x-content-type-options"], "nosniff", "{path}");
        assert!(answer.headers.get("access-control-allow-origin").is_none(), "CORS is off by default");
    }
    let preflight = app
        .api()
        .raw(Method::OPTIONS, "/api/v1/events")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn listed_origins_may_call_the_api_from_a_browser() {
    let app = spawn_app_with(&[("NTS_CORS_ORIGINS", "https://shop.example.com")]).await;
    let api = app.api();
    let preflight = |origin: &'static str| {
        api.raw(Method::OPTIONS, "/api/v1/events/x/holds")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, idempotency-key, authorization")
            .send()
    };
    let ok = preflight("https://shop.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example.com");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let get = api.raw(Method::GET, "/api/v1/events").header("origin", "https://shop.example.com").send().await.unwrap();
    assert_eq!(get.headers()["access-control-allow-origin"], "https://shop.example.com");
}

#[tokio::test]
async fn only_the_exact_admin_token_opens_the_admin_api() {
    let app = spawn_app().await;
    let mut last_byte = ADMIN_TOKEN.to_owned();
    last_byte.pop();
    last_byte.push('!');
    let near_misses = [
        last_byte,
        ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1].to_owned(),
        format!("{ADMIN_TOKEN}x"),
        ADMIN_TOKEN.to_uppercase(),
        format!(" {ADMIN_TOKEN}x"),
    ];
    for token in &near_misses {
        app.api().with_admin_token(token).admin_events().await.expect_error(403, "forbidden");
    }
    app.api().admin_events().await.unwrap();
}

#[test]
fn a_short_admin_token_stops_the_server_at_startup() {
    let db = TestDb::unborn();
    for token in ["short", &"x".repeat(31)] {
        let out = binary::command(&db.url, &[("NTS_ADMIN_TOKEN", token)]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("NTS_ADMIN_TOKEN") && stderr.contains("32"), "{stderr}");
        assert!(!stderr.contains(token), "the refused token is not echoed: {stderr}");
    }
}

#[tokio::test]
async fn a_database_dump_holds_no_buyer_secret() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 2).await;
    // As the pages do it: every write with an Idempotency-Key, so answers carrying secrets are stored.
    let api = app.api_on(0);
    let hold = api.with_key("k-hold").create_hold(event, &ada(tt, 2)).await.unwrap();
    let hold_secret = hold.secret.clone().unwrap();
    let checkout = api.with_key("k-checkout").checkout(hold.id, &hold_secret).await.unwrap();
    let order_secret = checkout.order.secret.clone().unwrap();
    api.with_key("k-pay")
        .confirm_simulated(checkout.payment.as_ref().unwrap().id, &order_secret, SimulatedOutcome::Succeeded)
        .await
        .expect_status(200);
    // A retry still gets the secret back: replays work from what is stored.
    let replay = api.with_key("k-checkout").checkout(hold.id, &hold_secret).await.unwrap();
    assert_eq!(replay.order.secret.as_deref(), Some(order_secret.as_str()));
    assert!(hold_secret.len() >= 22 && order_secret.len() >= 22, "at least 128 bits, base64url");

    let dump = std::process::Command::new("pg_dump").args(["--data-only", "--inserts", &app.db.url]).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("INSERT INTO public.orders"), "the dump has the data");
    assert!(dump.contains("INSERT INTO public.idempotency_keys"), "the stored answers are in the dump");
    for secret in [hold_secret.as_str(), order_secret.as_str(), "k-hold", "k-checkout"] {
        assert!(!dump.contains(secret), "{secret} is in the database dump");
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(&hex), "{secret} is in the database dump as bytes");
    }
    // And the stored hash does not open the order.
    let hash: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM orders").fetch_one(&app.pool).await.unwrap();
    let hash_hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    api.order(checkout.order.id, &hash_hex).await.expect_error(404, "not_found");
}

//! The database going away and coming back; stopping with SIGTERM.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nts::payments::simulated::SimulatedGateway;
use nts::startup::Application;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::binary::NtsProcess;
use crate::helpers::{config_for, TestDb, ADMIN_TOKEN};

const UP: u8 = 0;
/// Connections are reset and new ones refused, as when PostgreSQL is down.
const DOWN: u8 = 1;
/// Connections stay open but no byte gets through, as in a network partition.
const STALLED: u8 = 2;

/// A TCP proxy in front of PostgreSQL that the test can break.
struct DbProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    changed: watch::Sender<u8>,
}

impl DbProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(UP));
        let (changed, _) = watch::channel(UP);
        let (m, tx) = (mode.clone(), changed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                match m.load(Ordering::SeqCst) {
                    DOWN => drop(client),
                    mode => {
                        let upstream = upstream.clone();
                        let mut rx = tx.subscribe();
                        tokio::spawn(async move {
                            let Ok(server) = TcpStream::connect(&upstream).await else { return };
                            let (mut c, mut s) = (client, server);
                            if mode == STALLED {
                                // Hold both ends, pass nothing, until the test changes the mode.
                                let _ = rx.changed().await;
                                return;
                            }
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                                _ = async { while rx.changed().await.is_ok() { if *rx.borrow() != UP { break } } } => {}
                            }
                        });
                    }
                }
            }
        });
        DbProxy { port, mode, changed }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        let _ = self.changed.send(mode);
    }
}

/// `postgres://user@host:port/name?query` → (`host:port`, the same URL through `proxy_port`).
fn through_proxy(url: &str, proxy_port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, tail) = rest.split_once('/').unwrap();
    let (userinfo, hostport) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5432") };
    let at = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
    (hostport, format!("{scheme}://{at}127.0.0.1:{proxy_port}/{tail}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_unreachable_requests_fail_fast_and_service_resumes_by_itself() {
    let db = TestDb::new();
    let (upstream, _) = through_proxy(&db.url, 0);
    let proxy = DbProxy::start(upstream).await;
    let (_, url) = through_proxy(&db.url, proxy.port);

    let config = config_for(&url, &Default::default());
    let pool = nts::db::connect(&url, config.db_pool_size).await.unwrap();
    let gateway = Arc::new(SimulatedGateway::new(pool.clone(), config.simulated().cloned().unwrap_or_default()));
    let app = Application::build_with(config, pool, gateway).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    let body = json!({"name": "N", "venue": "V", "starts_at": "2099-01-01T20:00:00Z", "currency": "GBP",
        "ticket_types": [{"name": "A", "price_minor": 100, "capacity": 100, "max_per_order": 4}]});
    let event: serde_json::Value = client
        .post(format!("{base}/api/v1/admin/events"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (event_id, tt) =
        (event["id"].as_str().unwrap().to_owned(), event["ticket_types"][0]["id"].as_str().unwrap().to_owned());
    let hold_body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});

    for mode in [DOWN, STALLED] {
        proxy.set(mode);
        let requests = [
            client.get(format!("{base}/healthz")),
            client.get(format!("{base}/api/v1/events")),
            client.get(format!("{base}/api/v1/admin/events")).bearer_auth(ADMIN_TOKEN),
            client.post(format!("{base}/api/v1/events/{event_id}/holds")).json(&hold_body),
            // Through the idempotency middleware, which needs the database first.
            client
                .post(format!("{base}/api/v1/events/{event_id}/holds"))
                .header("Idempotency-Key", format!("k{mode}"))
                .json(&hold_body),
        ];
        for request in requests {
            let started = Instant::now();
            let res = request.send().await.expect("an answer, not a hang");
            let elapsed = started.elapsed();
            let status = res.status().as_u16();
            let retry_after = res.headers().get("retry-after").cloned();
            let body: serde_json::Value = res.json().await.unwrap();
            eprintln!("database {}: {status} in {elapsed:?}", if mode == DOWN { "down" } else { "stalled" });
            assert_eq!((status, body["code"].as_str()), (503, Some("database_unavailable")), "mode {mode}: {body}");
            assert!(retry_after.is_some());
            assert!(elapsed < Duration::from_secs(6), "mode {mode}: answered after {elapsed:?}");
        }
        proxy.set(UP);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health = client.get(format!("{base}/healthz")).send().await.unwrap().status();
            let hold = client
                .post(format!("{base}/api/v1/events/{event_id}/holds"))
                .json(&hold_body)
                .send()
                .await
                .unwrap()
                .status();
            if health == 200 && hold == 201 {
                break;
            }
            assert!(Instant::now() < deadline, "mode {mode}: not recovered ({health}, {hold})");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    handle.stop(false).await;
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_then_exits_cleanly() {
    let db = TestDb::new();
    // Every provider call takes 2 s, so a checkout is in flight when the signal comes.
    let mut nts = NtsProcess::start(&db.url, &[("NTS_SIM_SLOW_RATE", "1"), ("NTS_SIM_SLOW_MS", "2000")]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let body = json!({"name": "N", "venue": "V", "starts_at": "2099-01-01T20:00:00Z", "currency": "GBP",
        "ticket_types": [{"name": "A", "price_minor": 100, "capacity": 10, "max_per_order": 4}]});
    let event: serde_json::Value = client
        .post(nts.url("/api/v1/admin/events"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hold_body = json!({"ticket_type_id": event["ticket_types"][0]["id"], "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let hold: serde_json::Value = client
        .post(nts.url(&format!("/api/v1/events/{}/holds", event["id"].as_str().unwrap())))
        .json(&hold_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let checkout = client
        .post(nts.url(&format!("/api/v1/holds/{}/checkout", hold["id"].as_str().unwrap())))
        .bearer_auth(hold["secret"].as_str().unwrap())
        .json(&json!({}))
        .send();
    let in_flight = tokio::spawn(checkout);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    nts.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let late = fresh.get(nts.url("/api/v1/events")).send().await;
    assert!(late.is_err(), "a new connection after SIGTERM is not served: {late:?}");

    let res = in_flight.await.unwrap().expect("the in-flight checkout is answered");
    assert_eq!(res.status(), 201);
    let order: serde_json::Value = res.json().await.unwrap();
    assert_eq!(order["order"]["status"], "awaiting_payment");
    assert_eq!(nts.wait_exit(Duration::from_secs(20)), Some(0), "{}", nts.log());
    assert!(signalled.elapsed() < Duration::from_secs(15));
}

//! The database going away and coming back; stopping with SIGTERM.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nts::payments::simulated::SimulatedGateway;
use nts::startup::Application;
use nts_testkit::wire::{HoldRequest, NewEvent, NewTicketType, OrderStatus};
use nts_testkit::{config_for, ApiError, Client, NtsProcess, TestDb, ADMIN_TOKEN};
use time::macros::datetime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

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

/// An nts on a fresh database reached through a [`DbProxy`], serving; answers
/// the database (kept until the test ends), the proxy, a client and the server's handle.
async fn behind_a_proxy() -> (TestDb, DbProxy, Client, actix_web::dev::ServerHandle) {
    let db = TestDb::unborn();
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
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let api = Client::new(http, base, ADMIN_TOKEN);
    (db, proxy, api, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_credential_is_refused_without_the_database() {
    let (_db, proxy, api, handle) = behind_a_proxy().await;

    proxy.set(DOWN);
    let id = Uuid::new_v4();
    // A credential of the right shape is looked up: the database is down.
    let (secret, device) = ("A".repeat(43), format!("ntsdev_{}", "B".repeat(43)));
    assert_eq!(api.order(id, &secret).await.unwrap_err().status, 503);
    assert_eq!(api.gate_state(&device).await.unwrap_err().status, 503);
    // Any other shape is no credential of ours, refused before any query (so
    // bogus tokens cost no connection of the pool).
    for token in ["short", &"A".repeat(42), &"A".repeat(44), &format!("{}+", "A".repeat(42)), &"A".repeat(128)] {
        let (order, hold) = (api.order(id, token).await.unwrap_err(), api.hold(id, token).await.unwrap_err());
        assert_eq!((order.status.as_u16(), hold.status.as_u16()), (404, 404), "{token}: {order} / {hold}");
        let gate = api.gate_state(&format!("ntsdev_{token}")).await.unwrap_err();
        assert_eq!(gate.status, 403, "{token}: {gate}");
    }
    proxy.set(UP);
    handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_unreachable_requests_fail_fast_and_service_resumes_by_itself() {
    let (_db, proxy, api, handle) = behind_a_proxy().await;

    let event = api.create_event(&event_with_capacity(100)).await.unwrap();
    let (event_id, tt) = (event.id, event.ticket_types[0].id);
    let hold = ada(tt);

    for mode in [DOWN, STALLED] {
        proxy.set(mode);
        for which in 0..5 {
            let started = Instant::now();
            let error = refused(&api, which, event_id, &hold, mode).await;
            let elapsed = started.elapsed();
            eprintln!("database {}: {} in {elapsed:?}", if mode == DOWN { "down" } else { "stalled" }, error.status);
            assert_eq!(
                (error.status.as_u16(), error.code.as_str()),
                (503, "database_unavailable"),
                "mode {mode}: {error:?}"
            );
            assert!(error.headers.get("retry-after").is_some());
            assert!(elapsed < Duration::from_secs(6), "mode {mode}: answered after {elapsed:?}");
        }
        proxy.set(UP);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health = api.health().await.map(|r| r.http_status);
            let held = api.create_hold(event_id, &hold).await.map(|r| r.http_status);
            if health.is_ok() && held.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "mode {mode}: not recovered ({health:?}, {held:?})");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    handle.stop(false).await;
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_then_exits_cleanly() {
    let db = TestDb::unborn();
    // Every provider call takes 2 s, so a checkout is in flight when the signal comes.
    let mut nts = NtsProcess::start(&db.url, &[("NTS_SIM_SLOW_RATE", "1"), ("NTS_SIM_SLOW_MS", "2000")]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let api = Client::new(http, nts.url(""), ADMIN_TOKEN);
    let event = api.create_event(&event_with_capacity(10)).await.unwrap();
    let hold = api.create_hold(event.id, &ada(event.ticket_types[0].id)).await.unwrap();
    let checkout = {
        let (api, hold_id, secret) = (api.clone(), hold.id, hold.secret.clone().unwrap());
        async move { api.checkout(hold_id, &secret).await }
    };
    let in_flight = tokio::spawn(checkout);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    nts.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let late = Client::new(fresh, nts.url(""), ADMIN_TOKEN).events().await;
    assert!(
        late.as_ref().is_err_and(|e| e.code == "unreachable"),
        "a new connection after SIGTERM is not served: {late:?}"
    );

    let checkout = in_flight.await.unwrap().expect("the in-flight checkout is answered with its order");
    assert_eq!(checkout.order.status, OrderStatus::AwaitingPayment);
    assert_eq!(nts.wait_exit(Duration::from_secs(20)), Some(0), "{}", nts.log());
    assert!(signalled.elapsed() < Duration::from_secs(15));
}

fn event_with_capacity(capacity: i64) -> NewEvent {
    NewEvent {
        max_tickets_per_order: None,
        name: "N".into(),
        venue: "V".into(),
        starts_at: datetime!(2099-01-01 20:00 UTC),
        currency: "GBP".into(),
        ticket_types: vec![NewTicketType { name: "A".into(), price_minor: 100, capacity, max_per_order: 4 }],
    }
}

fn ada(tt: Uuid) -> HoldRequest {
    HoldRequest { ticket_type_id: tt, quantity: 1, name: "Ada".into(), email: "ada@example.com".into() }
}

/// Request `which` of five, which the database's absence must refuse.
async fn refused(api: &Client, which: usize, event: Uuid, hold: &HoldRequest, mode: u8) -> ApiError {
    let answer = match which {
        0 => api.health().await.map(drop),
        1 => api.events().await.map(drop),
        2 => api.admin_events().await.map(drop),
        3 => api.create_hold(event, hold).await.map(drop),
        // Through the idempotency middleware, which needs the database first.
        _ => api.with_key(&format!("k{mode}")).create_hold(event, hold).await.map(drop),
    };
    answer.expect_err("refused while the database is out of reach")
}

//! Spawns real nts servers on port 0 against a fresh PostgreSQL database per test.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use nts::config::Config;
use nts::payments::simulated::SimulatedGateway;
use nts::payments::PaymentGateway;
use nts::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";

/// `DATABASE_URL` (or the local default) with its database name replaced.
pub fn database_url(name: &str) -> String {
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (prefix, rest) = base.rsplit_once('/').expect("DATABASE_URL has a database name");
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let name = format!("nts_test_{}", Uuid::new_v4().simple());
        let url = database_url(&name);
        TestDb { name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort; the server pools are gone or are terminated by FORCE.
        let admin = database_url("postgres");
        let _ = std::process::Command::new("psql")
            .args([admin.as_str(), "-q", "-c", &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// One running nts instance.
pub struct Instance {
    pub address: String,
    pub handle: ServerHandle,
}

pub struct TestApp {
    pub db: Arc<TestDb>,
    pub pool: PgPool,
    pub client: reqwest::Client,
    pub instances: Vec<Instance>,
    pub settings: HashMap<String, String>,
}

/// A JSON answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.body);
        &self.body
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.body);
        assert_eq!(self.code(), code, "unexpected error body: {}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {}", self.body);
    }
}

pub fn config_for(url: &str, settings: &HashMap<String, String>) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("NTS_ADDRESS".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), url.to_owned()),
        ("NTS_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("NTS_DEMO".into(), "false".into()),
        ("NTS_RECONCILE_MS".into(), "200".into()),
        ("NTS_DB_POOL_SIZE".into(), "10".into()),
        // Tests send hundreds of requests from 127.0.0.1 (and reuse e-mail
        // addresses); the rate limit and hoarding tests turn these on.
        ("NTS_RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        ("NTS_MAX_UNPAID_PER_ADDRESS".into(), "0".into()),
        ("NTS_MAX_UNPAID_PER_EMAIL".into(), "0".into()),
    ]);
    vars.extend(settings.clone());
    // Simulated payments unless the test configures Stripe.
    if !vars.keys().any(|k| k.starts_with("NTS_STRIPE_")) {
        vars.entry("NTS_PAYMENTS".into()).or_insert_with(|| "simulated".into());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration is valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns one instance; `settings` override the environment (e.g. `("NTS_HOLD_SECONDS", "1")`).
pub async fn spawn_app_with(settings: &[(&str, &str)]) -> TestApp {
    let mut app = new_app(settings).await;
    app.start_instance().await;
    app
}

/// A fresh database and no instance yet.
pub async fn new_app(settings: &[(&str, &str)]) -> TestApp {
    let settings: HashMap<String, String> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let db = Arc::new(TestDb::new());
    let pool = nts::db::connect(&db.url, 5).await.expect("test database");
    TestApp {
        db,
        pool,
        client: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        instances: Vec::new(),
        settings,
    }
}

impl TestApp {
    /// Starts one more instance on the same database.
    pub async fn start_instance(&mut self) -> usize {
        self.start_instance_with(|config| {
            let pool = PgPool::connect_lazy(&config.database_url).expect("lazy pool");
            Arc::new(SimulatedGateway::new(pool, config.simulated().cloned().unwrap_or_default()))
        })
        .await
    }

    /// Starts one more instance with the payment gateway `make` builds.
    pub async fn start_instance_with(&mut self, make: impl FnOnce(&Config) -> Arc<dyn PaymentGateway>) -> usize {
        let config = config_for(&self.db.url, &self.settings);
        let pool = nts::db::connect(&self.db.url, config.db_pool_size).await.expect("connect");
        if config.demo {
            nts::admin::demo::seed_if_empty(&pool).await.expect("seed");
        }
        let gateway = make(&config);
        let app = Application::build_with(config, pool, gateway).expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        self.instances.push(Instance { address, handle });
        self.instances.len() - 1
    }

    /// Stops an instance gracefully.
    pub async fn stop_instance(&mut self, i: usize) {
        self.instances[i].handle.stop(true).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.instances.last().expect("an instance").address, path)
    }

    pub async fn call_on(
        &self,
        instance: usize,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
        key: Option<&str>,
    ) -> Answer {
        let url = format!("{}{}", self.instances[instance].address, path);
        let mut req = self.client.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, body, headers }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>, bearer: Option<&str>) -> Answer {
        self.call_on(self.instances.len() - 1, method, path, body, bearer, None).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, bearer).await
    }

    pub async fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), bearer).await
    }

    /// Sends raw bytes with a content type, for malformed-input tests.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &'static str) -> Answer {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.json().await.unwrap_or(Value::Null);
        Answer { status, body, headers }
    }

    /// Creates an event through the admin API; answers the event.
    pub async fn create_event(&self, ticket_types: &[(&str, i64, i64, i64)]) -> Value {
        let tts: Vec<Value> = ticket_types
            .iter()
            .map(|(name, price, capacity, max)| json!({"name": name, "price_minor": price, "capacity": capacity, "max_per_order": max}))
            .collect();
        let body = json!({
            "name": "Test night", "venue": "The Hall", "currency": "GBP",
            "starts_at": "2099-01-01T20:00:00Z", "ticket_types": tts,
        });
        self.post("/api/v1/admin/events", &body, Some(ADMIN_TOKEN)).await.expect(201).clone()
    }

    /// An event with one ticket type; answers (event id, ticket type id).
    pub async fn simple_event(&self, capacity: i64, max_per_order: i64) -> (String, String) {
        let e = self.create_event(&[("General", 999, capacity, max_per_order)]).await;
        (e["id"].as_str().unwrap().to_owned(), e["ticket_types"][0]["id"].as_str().unwrap().to_owned())
    }

    pub async fn hold(&self, event: &str, tt: &str, quantity: i64) -> Answer {
        let body =
            json!({"ticket_type_id": tt, "quantity": quantity, "name": "Ada Lovelace", "email": "ada@example.com"});
        self.post(&format!("/api/v1/events/{event}/holds"), &body, None).await
    }

    /// Hold + checkout; answers the checkout body (order with secret, payment).
    pub async fn checkout(&self, event: &str, tt: &str, quantity: i64) -> Value {
        let hold = self.hold(event, tt, quantity).await.expect(201).clone();
        let path = format!("/api/v1/holds/{}/checkout", hold["id"].as_str().unwrap());
        self.post(&path, &json!({}), hold["secret"].as_str()).await.expect(201).clone()
    }

    pub async fn confirm(&self, payment_id: &str, order_secret: &str, outcome: &str) -> Answer {
        let path = format!("/api/v1/payments/simulated/{payment_id}/confirm");
        self.post(&path, &json!({"outcome": outcome}), Some(order_secret)).await
    }

    pub async fn available(&self, event: &str) -> i64 {
        self.get(&format!("/api/v1/events/{event}"), None).await.expect(200)["ticket_types"][0]["available"]
            .as_i64()
            .unwrap()
    }

    /// (sold, held) counters of a ticket type, straight from the database.
    pub async fn counters(&self, tt: &str) -> (i32, i32) {
        sqlx::query_as("SELECT sold, held FROM ticket_types WHERE id = $1::uuid")
            .bind(tt)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until `check` holds, for at most `secs` seconds.
    pub async fn eventually<F, Fut>(&self, secs: u64, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !check().await {
            assert!(std::time::Instant::now() < deadline, "condition not reached within {secs} s");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

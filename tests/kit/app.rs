//! nts instances inside the test process, on port 0, on one fresh database.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use nts::config::Config;
use nts::payments::simulated::SimulatedGateway;
use nts::payments::PaymentGateway;
use nts::startup::Application;
use sqlx::PgPool;

use crate::client::Client;
use crate::db::TestDb;
use crate::{ADMIN_TOKEN, TICKET_KEY};

/// One running nts instance.
pub struct Instance {
    pub address: String,
    pub handle: ServerHandle,
}

pub struct TestApp {
    pub db: Arc<TestDb>,
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub instances: Vec<Instance>,
    pub settings: HashMap<String, String>,
}

/// The configuration of a test instance on `url`: `settings` override the test defaults.
pub fn config_for(url: &str, settings: &HashMap<String, String>) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("NTS_ADDRESS".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), url.to_owned()),
        ("NTS_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("NTS_TICKET_KEY".into(), TICKET_KEY.into()),
        ("NTS_DEMO".into(), "false".into()),
        ("NTS_RECONCILE_MS".into(), "200".into()),
        ("NTS_DB_POOL_SIZE".into(), "10".into()),
        // Tests send hundreds of requests from 127.0.0.1; the rate limit
        // and hoarding tests turn these on.
        ("NTS_RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        ("NTS_READ_RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        ("NTS_MAX_UNPAID_PER_ADDRESS".into(), "0".into()),
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
    let db = Arc::new(TestDb::create().await.expect("a fresh database"));
    let pool = db.pool(5).await.expect("test database");
    TestApp {
        db,
        pool,
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
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
        // What `Application::build` does before serving.
        nts::checkin::at_rest::prepare(&pool, &config.ticket_keys).await.expect("the ticket keys fit the database");
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

    /// The API of the latest instance.
    pub fn api(&self) -> Client {
        self.api_on(self.instances.len() - 1)
    }

    /// The API of instance `i`.
    pub fn api_on(&self, i: usize) -> Client {
        Client::new(self.http.clone(), self.instances[i].address.clone(), ADMIN_TOKEN)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.instances.last().expect("an instance").address, path)
    }

    /// (sold, held) counters of a ticket type, straight from the database.
    pub async fn sold_and_held(&self, ticket_type: uuid::Uuid) -> (i32, i32) {
        sqlx::query_as("SELECT sold, held FROM ticket_types WHERE id = $1")
            .bind(ticket_type)
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

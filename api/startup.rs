//! Building and running the application: pool, gateway, routes, reconciler.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use sqlx::PgPool;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{Config, Payments};
use crate::http::rate_limit::{self, ClientRateLimiter};
use crate::http::security_headers::{self, SecurityHeaders};
use crate::http::{body_limit, cors, error, fallback, idempotency, openapi, ops, scrape};
use crate::payments::checkouts::CheckoutBatcher;
use crate::payments::simulated::SimulatedGateway;
use crate::payments::stripe::StripeGateway;
use crate::payments::{reconciler, simulated_routes, webhook, PaymentGateway, PaymentService, Provider};
use crate::sales::event_pages::EventPages;
use crate::sales::hold_batcher::HoldBatcher;
use crate::state::{AppState, Limits};
use crate::{admin, checkin, db, instance, mail, metrics, sales, telemetry};

pub struct Application {
    port: u16,
    server: Server,
    stop_reconciler: tokio::sync::watch::Sender<bool>,
    reconciler: tokio::task::JoinHandle<()>,
    mail_sender: tokio::task::JoinHandle<()>,
    lease: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects (creating and migrating the database if needed), seeds the demo
    /// event, binds the listener and starts the reconciler.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect_with(&config.db_settings()).await?;
        checkin::at_rest::prepare(&pool, &config.ticket_keys).await?;
        if config.demo {
            admin::demo::seed_if_empty(&pool).await.context("seeding the demo event")?;
        }
        let gateway: Arc<dyn PaymentGateway> = match &config.payments {
            Payments::Stripe(stripe) => Arc::new(StripeGateway::new(stripe)?),
            Payments::Simulated(faults) => Arc::new(SimulatedGateway::new(pool.clone(), faults.clone())),
        };
        Self::build_with(config, pool, gateway)
    }

    pub fn build_with(config: Config, pool: PgPool, gateway: Arc<dyn PaymentGateway>) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(&config.address).with_context(|| format!("binding NTS_ADDRESS={}", config.address))?;
        let port = listener.local_addr()?.port();
        metrics::handle();
        let payments = PaymentService::new(pool.clone(), gateway, config.ticket_keys.clone());
        let (stop_reconciler, stop_rx) = tokio::sync::watch::channel(false);
        let reconciler = tokio::spawn(reconciler::run(payments.clone(), config.reconcile_interval, stop_rx.clone()));
        let mail_sender = tokio::spawn(mail::sender::run(
            pool.clone(),
            config.mail.clone(),
            config.ticket_keys.clone(),
            stop_rx.clone(),
        ));
        let instance = uuid::Uuid::new_v4();
        let lease = tokio::spawn(instance::keep_lease(pool.clone(), instance, stop_rx));
        let (holds, event_pages) =
            (HoldBatcher::new(pool.clone()).with_caps(config.hold_caps), EventPages::new(pool.clone()));
        let checkouts =
            CheckoutBatcher::new(payments.clone(), config.mail.link_key.clone(), config.order_duration.as_secs_f64());
        let state = web::Data::new(AppState {
            config,
            pool,
            payments,
            limits: Limits::default(),
            static_dir: static_dir(),
            holds,
            checkouts,
            event_pages,
            scrape_cache: metrics::ScrapeCache::default(),
            instance,
        });
        let server = run(listener, state)?;
        Ok(Self { port, server, stop_reconciler, reconciler, mail_sender, lease })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests, signal handlers).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM / SIGINT (in-flight requests finish), then stops the reconciler and the e-mail sender.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop_reconciler.send(true);
        let _ = self.reconciler.await;
        let _ = self.mail_sender.await;
        let _ = self.lease.await;
        result
    }
}

/// What pages must reach for Stripe.js: the origin it is loaded from (an
/// emulator's in tests) and Stripe's own API and 3-D Secure frames.
fn stripe_origins(js_url: &str) -> Vec<String> {
    let mut origins: Vec<String> =
        ["https://js.stripe.com", "https://api.stripe.com", "https://hooks.stripe.com"].map(String::from).into();
    if let Some((scheme, rest)) = js_url.split_once("://") {
        let host = rest.split('/').next().unwrap_or_default();
        let origin = format!("{scheme}://{host}");
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    origins
}

/// `NTS_STATIC_DIR`, else `static/` of the working directory, else of the source tree.
fn static_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("NTS_STATIC_DIR") {
        return dir.into();
    }
    let here = PathBuf::from("static");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../static"))
    }
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let static_dir = state.static_dir.clone();
    let body_limit = state.limits.body_bytes;
    let demo = state.config.demo;
    let simulated = state.payments.provider() == Provider::Simulated;
    let rate_limiter = web::Data::new(ClientRateLimiter::new(&state.config.edge));
    let resend_limits = web::Data::new(mail::resend::ResendLimits::new(state.config.mail.resend_per_hour));
    let provider_origins = state.config.stripe().map(|s| stripe_origins(&s.js_url)).unwrap_or_default();
    let security_headers =
        web::Data::new(SecurityHeaders::new(&provider_origins.iter().map(String::as_str).collect::<Vec<_>>()));
    let cors_origins = state.config.edge.cors_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(rate_limiter.clone())
            .app_data(resend_limits.clone())
            .app_data(security_headers.clone())
            .app_data(web::JsonConfig::default().limit(body_limit).error_handler(error::json_error_handler))
            .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
            .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
            .wrap(from_fn(body_limit::middleware))
            .wrap(from_fn(security_headers::middleware))
            .wrap(Compress::default())
            .wrap(from_fn(telemetry::middleware))
            .service(ops::healthz)
            .service(scrape::scrape)
            .service(
                web::scope("/api/v1")
                    .wrap(from_fn(idempotency::middleware))
                    .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                    .wrap(from_fn(rate_limit::middleware))
                    .wrap(cors::middleware(&cors_origins))
                    .configure(sales::routes)
                    .configure(crate::payments::orders::routes)
                    .configure(|cfg| admin::routes(cfg, demo))
                    .configure(checkin::routes)
                    .configure(mail::routes)
                    .configure(|cfg| {
                        cfg.service(ops::client_config);
                        if simulated {
                            cfg.service(simulated_routes::confirm);
                        } else {
                            cfg.service(webhook::receive);
                        }
                    }),
            )
            .service(web::redirect("/docs", "/docs/"))
            .service(SwaggerUi::new("/docs/{_:.*}").external_url_unchecked("/api/openapi.json", openapi::json()))
            .service(
                actix_files::Files::new("/", &static_dir)
                    .index_file("index.html")
                    .default_handler(web::to(fallback::not_found)),
            )
            .default_service(web::to(fallback::not_found))
    })
    .listen(listener)?
    .shutdown_timeout(10)
    // Signals are the binary's business (api/main.rs), so that they are
    // handled from the moment it says it is serving.
    .disable_signals()
    .run();
    Ok(server)
}

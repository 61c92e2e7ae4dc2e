//! `nts-torture`: the whole sale under fire, end to end, against real nts
//! processes on a fresh database. See `nts-torture --help` and settings.rs.
//!
//! Exit status: 0 every invariant held; 1 an invariant failed; 2 the run
//! itself could not be made (bad flags, no database, an instance would not
//! start, the planned PostgreSQL restart did not happen).

mod audit;
mod buyer;
mod chaos;
mod client;
mod cluster;
mod database;
mod helper_server;
mod mail;
mod monitor;
mod report;
mod settings;
mod stats;
mod stripe;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use buyer::Plan;
use client::Api;
use cluster::Cluster;
use nts_testkit::TestDb;
use settings::Settings;
use stats::Stats;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match settings::parse(std::env::args().skip(1).collect()) {
        Ok(Some(s)) => s,
        Ok(None) => {
            print!("{}", settings::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nts-torture: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        result = run(settings) => match result {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("nts-torture: {e:#}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("nts-torture: interrupted; stopping the instances");
            ExitCode::from(130)
        }
    }
}

/// Answers whether every invariant held.
async fn run(s: Settings) -> anyhow::Result<bool> {
    println!(
        "nts-torture: seed {} · profile {} · {} instances · {} buyers over {} s",
        s.seed,
        s.profile,
        s.instances,
        s.buyers,
        s.duration.as_secs()
    );
    let pg_cluster = match (&s.pg_cluster, s.pg_restart) {
        (_, false) => None,
        (Some(c), true) => Some(c.clone()),
        (None, true) => Some(cluster::find_pg_cluster()?),
    };
    anyhow::ensure!(
        s.nts.is_file(),
        "no nts binary at {} (build it with `cargo build -p nts`, or pass --nts)",
        s.nts.display()
    );
    let db = Arc::new(database::create(&s.postgres, s.seed, s.break_inventory_guard).await?);
    println!("  database {}{}", db.name, if s.break_inventory_guard { " (inventory CHECK dropped)" } else { "" });
    let result = sale(&s, &db, pg_cluster).await;
    if s.keep_db {
        db.keep();
        println!("kept database {} ({})", db.name, db.url);
    } else if let Err(e) = db.drop_now().await {
        eprintln!("nts-torture: could not drop database {}: {e:#}", db.name);
    }
    result
}

/// The run proper, on its fresh database.
async fn sale(s: &Settings, db: &Arc<TestDb>, pg_cluster: Option<String>) -> anyhow::Result<bool> {
    let admin_token = format!("torture-admin-{:032x}", rand::random::<u128>());
    let logs = std::env::temp_dir().join(format!("nts-torture-{}", db.name));
    std::fs::create_dir_all(&logs)?;
    let rig = match &s.stripe {
        Some(faults) => {
            let rig = stripe::StripeRig::start(&s.stripe_dir, &logs.join("stripe.log"))?;
            rig.configure("chaos", stripe::chaos(&s.faults, faults, false)).await?;
            if let Some(delivery) = stripe::webhook_delivery(faults.webhooks) {
                rig.configure("webhooks", delivery).await?;
            }
            rig.configure("ratelimit", serde_json::json!({"per_second": faults.account_rate_limit})).await?;
            println!(
                "  Stripe emulator {} behind the strict proxy {}; webhooks {}",
                rig.stripe_url,
                rig.proxy_url,
                faults.webhooks.name()
            );
            Some(Arc::new(rig))
        }
        None => None,
    };
    let mail_rig = match s.smtp {
        true => Some(mail::MailRig::start(&s.smtp_dir, &logs.join("smtp.log"))?),
        false => None,
    };
    let mut env = instance_env(s, db, &admin_token, rig.as_ref().map(|r| r.proxy_url.as_str()));
    if let Some(m) = &mail_rig {
        println!("  SMTP server on port {}", m.smtp_port);
        env.extend(m.env());
    }
    let cluster = Arc::new(Cluster::new(&s.nts, env, logs, s.instances)?);
    let webhooks = s.stripe.as_ref().is_some_and(|f| f.webhooks != settings::Webhooks::Off);
    if let (Some(rig), true) = (&rig, webhooks) {
        for (i, port) in cluster.ports().iter().enumerate() {
            rig.register_webhook(
                &format!("nts{i}"),
                &format!("http://127.0.0.1:{port}/api/v1/payments/stripe/webhook"),
            )
            .await?;
        }
    }
    for i in 0..cluster.len() {
        cluster.ensure_up(i).await?;
    }
    println!("  {} instances on ports {:?}; logs in {}", cluster.len(), cluster.ports(), cluster.logs().display());

    let stats = Arc::new(Stats::default());
    let api = Arc::new(Api::new(&cluster.ports(), s.client_timeout, stats.clone())?);
    let sale = Arc::new(buyer::create_sale(&api, &admin_token, s.buyers, s.seed).await?);
    let event_id: Uuid = sale.event_id.parse().context("the event id is not a UUID")?;
    for t in &sale.types {
        println!("  ticket type {:<8} capacity {:>5}, max {} per order", t.name, t.capacity, t.max_per_order);
    }

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let (stop, stop_rx) = watch::channel(false);
    let schedule = chaos::Schedule {
        seed: s.seed,
        kill_every: s.kill_every,
        pg_restart: pg_cluster.map(|c| (c, s.duration.mul_f64(rng.gen_range(0.3..0.7)))),
    };
    let pg_planned = schedule.pg_restart.is_some();
    let chaos = tokio::spawn(chaos::run(cluster.clone(), stats.clone(), schedule, stop_rx.clone()));
    let monitor = tokio::spawn(monitor::run(db.clone(), event_id, stats.clone(), stop_rx.clone()));
    let progress = tokio::spawn(progress(stats.clone(), cluster.clone(), s.buyers, started));
    let storms = match (&rig, &s.stripe) {
        (Some(rig), Some(faults)) => faults.storm_every.map(|every| {
            tokio::spawn(stripe::storms(
                rig.clone(),
                stripe::chaos(&s.faults, faults, false),
                stripe::chaos(&s.faults, faults, true),
                every,
                s.seed,
                stats.clone(),
                stop_rx.clone(),
            ))
        }),
        _ => None,
    };
    let plan = Arc::new(Plan {
        seed: s.seed,
        arrive_within: s.duration,
        hold_seconds: s.hold_seconds,
        order_seconds: s.order_seconds,
        stripe_decline_rate: s.stripe.as_ref().map(|_| s.faults.decline_rate),
    });
    let mut buyers = JoinSet::new();
    for n in 0..s.buyers {
        let (api, sale, plan, stats) = (api.clone(), sale.clone(), plan.clone(), stats.clone());
        buyers.spawn(async move { buyer::buy(n, &api, &sale, &plan, &stats).await });
    }
    while let Some(done) = buyers.join_next().await {
        done.context("a buyer task panicked")?;
    }
    let load = started.elapsed();
    let _ = stop.send(true);
    chaos.await?;
    monitor.await?;
    if let Some(storms) = storms {
        storms.await?;
    }
    for i in 0..cluster.len() {
        cluster.ensure_up(i).await?;
    }
    println!("  load done after {:.0} s; letting the reconciler settle everything", load.as_secs_f64());

    let pool = db.pool(2).await?;
    // The settling and the final checks see Stripe as it is, not through the faults.
    if let Some(rig) = &rig {
        rig.configure("chaos", serde_json::json!({})).await?;
    }
    let mut settled = audit::settle(&pool, s.settle).await;
    if let (Some(rig), Some(settings::Webhooks::Late)) = (&rig, s.stripe.as_ref().map(|f| f.webhooks)) {
        // Every late event reaches nts before the checks, which then see what it made of them.
        match rig.drain_webhooks(Duration::from_secs(400)).await {
            Some(took) => println!("  the last late webhook was delivered {:.0} s after settling", took.as_secs_f64()),
            None => println!("  late webhooks still undelivered after 400 s"),
        }
        settled = match (settled, audit::settle(&pool, s.settle).await) {
            (Some(first), Some(again)) => Some(first + again),
            _ => None,
        };
    }
    let money = match &rig {
        Some(rig) => Some(rig.money(&pool).await?),
        None => None,
    };
    let provider_audit = match &rig {
        Some(_) => Some(api.payments_audit(&admin_token).await?),
        None => None,
    };
    let mut audit = audit::audit(&pool, event_id, &stats, s.settle, money, provider_audit).await?;
    if mail_rig.is_some() {
        match mail::drain(&pool, s.settle).await {
            Some(took) => println!("  every e-mail sent {:.1} s after settling", took.as_secs_f64()),
            None => println!("  e-mails still waiting after {} s", s.settle.as_secs()),
        }
    }
    let (mail_checks, received) = mail::checks(&pool, mail_rig.as_ref()).await?;
    audit.checks.extend(mail_checks);
    if let Some((received, twice)) = received {
        println!("  e-mails received by the SMTP server: {received}, of them again after a SIGKILLed sender: {twice}");
    }
    progress.abort();
    pool.close().await;
    cluster.stop_all();
    report::print(&report::Run {
        settings: s,
        stats: &stats,
        audit: &audit,
        load,
        settled,
        log_problems: cluster.log_problems(),
        logs: cluster.logs().display().to_string(),
    });
    anyhow::ensure!(
        !pg_planned || stats.pg_restarts.get() == 1,
        "the planned PostgreSQL restart did not happen (see above); the run does not count"
    );
    Ok(audit.passed())
}

fn instance_env(s: &Settings, db: &TestDb, admin_token: &str, stripe_api: Option<&str>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.clone()),
        ("NTS_DEMO", "false".into()),
        ("NTS_ADMIN_TOKEN", admin_token.into()),
        ("NTS_DB_POOL_SIZE", "10".into()),
        // Every simulated buyer comes from 127.0.0.1: a per-address limit would throttle the whole crowd.
        ("NTS_RATE_LIMIT_PER_MINUTE", "0".into()),
        ("NTS_READ_RATE_LIMIT_PER_MINUTE", "0".into()),
        ("NTS_MAX_UNPAID_PER_ADDRESS", "0".into()),
        ("NTS_HOLD_SECONDS", s.hold_seconds.to_string()),
        ("NTS_ORDER_SECONDS", s.order_seconds.to_string()),
        ("NTS_RECONCILE_MS", s.reconcile_ms.to_string()),
        ("NO_COLOR", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let payments: Vec<(&str, String)> = match stripe_api {
        None => vec![
            ("NTS_PAYMENTS", "simulated".into()),
            ("NTS_SIM_DECLINE_RATE", s.faults.decline_rate.to_string()),
            ("NTS_SIM_LOST_RESPONSE_RATE", s.faults.lost_rate.to_string()),
            ("NTS_SIM_SLOW_RATE", s.faults.slow_rate.to_string()),
            ("NTS_SIM_SLOW_MS", s.faults.slow_ms.to_string()),
        ],
        Some(api) => vec![
            ("NTS_STRIPE_SECRET_KEY", "sk_test_torture".into()),
            ("NTS_TICKET_KEY", "torture-ticket-key-0123456789abcdef0123".into()),
            ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test_torture".into()),
            ("NTS_STRIPE_WEBHOOK_SECRET", stripe::WEBHOOK_SECRET.into()),
            ("NTS_STRIPE_API_BASE", api.into()),
            ("NTS_PUBLIC_URL", "http://shop.nts.torture".into()),
            // Longer than a buyer waits, shorter than the proxy's late answers.
            ("NTS_STRIPE_TIMEOUT_MS", (s.faults.slow_ms / 2).max(500).to_string()),
            ("NTS_STRIPE_LOOK_FOR_SECS", stripe::LOOK_FOR_SECS.to_string()),
        ],
    };
    env.extend(payments.into_iter().map(|(k, v)| (k.to_owned(), v)));
    if s.break_inventory_guard {
        env.push(("NTS_DEBUG_UNSAFE_SKIP_INVENTORY_GUARD".into(), "1".into()));
    }
    env
}

async fn progress(stats: Arc<Stats>, cluster: Arc<Cluster>, buyers: usize, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        println!(
            "  [{:>4.0}s] buyers done {}/{} · requests {} · holds {} · orders {} · paid {} · kills {} · pg restarts {} · \
             instances up {}/{} · retried 503s {} · 5xx {} · unexpected {}",
            started.elapsed().as_secs_f64(),
            stats.buyers_done.get(),
            buyers,
            stats.requests.get(),
            stats.holds.get(),
            stats.orders.get(),
            stats.paid.get(),
            stats.kills.get(),
            stats.pg_restarts.get(),
            cluster.up().len(),
            cluster.len(),
            stats.retried_503_total(),
            stats.bad_5xx.get(),
            stats.unexpected.get(),
        );
    }
}

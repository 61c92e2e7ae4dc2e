//! nts-bench: a flash sale against nts, with the one-hot-row baseline.
//!
//! Starts nts instances (or targets `--url`), creates an event with one ticket
//! type (three in mixed-lines mode), drives many keep-alive clients at it until it sells out, reports
//! throughput, latency, errors and the server's peak memory, then checks from
//! the API and the database that the seats taken are exactly the seats
//! acknowledged. Before that it runs pgbench with the minimal hold transaction
//! on one hot row (tests/bench/hot_row.sql) and compares. See BENCHMARKS.md.

mod baseline;
mod check;
mod db;
mod http;
mod load;
mod machine;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nts_testkit::wire::{NewEvent, NewTicketType};
use uuid::Uuid;

use crate::load::{Mode, Plan, Run, Tally};

const USAGE: &str = "\
nts-bench: a flash sale against nts, with the one-hot-row pgbench baseline

USAGE: nts-bench [OPTIONS]
  --mode M             holds | purchase | mixed, each optionally with +keys (a fresh
                       Idempotency-Key on every POST), or mixed-lines (holds of 2-3 of three
                       ticket types at once, always keyed), or several separated by commas [holds]
  --clients N          concurrent clients, one keep-alive connection each [256]
  --capacity N         seats of the one ticket type (of each type in mixed-lines) [10000]
  --quantity N         seats per hold (per line in mixed-lines) [1]
  --reads-per-hold N   event-page reads before each hold in mixed mode [3]
  --max-secs S         stop a mode after S seconds even if seats are left [120]
  --idempotency-keys   send a fresh Idempotency-Key with every POST in every mode
  --instances N        nts instances to start, clients spread over them [1]
  --nts PATH           the nts binary [next to this one]
  --env KEY=VALUE      extra environment for the instances (repeatable)
  --threads N          load generator threads [1]
  --url URL            drive a running server instead (needs --admin-token; --database-url
                       for the database checks, --server-pid for its peak RSS)
  --admin-token T      admin token of --url [$NTS_ADMIN_TOKEN]
  --server-pid PID     pid of the --url server
  --database-url URL   PostgreSQL: where fresh databases are made (the database name is
                       replaced), or with --url the server's own database
                       [$DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres]
  --hold-secs S        holds expire after S seconds, so that seats come back during the
                       run, as in a sale where buyers give up; the checks then count the
                       seats of expired holds as given back [holds outlive the run]
  --analyze-every S    while a mode runs, ANALYZE the tables autovacuum's rule picks (changed
                       by 50 rows + 10 %), after 0.1 s, 0.2 s, 0.4 s, ... and then every S
                       seconds, standing in for autovacuum, which this machine's PostgreSQL
                       may have off; 0: never [5]
  --baseline-secs S    seconds per pgbench run [10]
  --no-baseline        skip pgbench
  --keep-db            keep the databases of the run
  --smoke              a few seconds of everything, for CI: every mode, 8 clients,
                       capacity 150, 1 s baselines
";

struct Options {
    modes: Vec<Run>,
    clients: usize,
    capacity: i64,
    quantity: i64,
    reads_per_hold: u32,
    max_run: Duration,
    idempotency_keys: bool,
    instances: usize,
    nts: PathBuf,
    env: Vec<(String, String)>,
    threads: usize,
    url: Option<String>,
    admin_token: Option<String>,
    server_pid: Option<u32>,
    database_url: String,
    database_url_given: bool,
    analyze_every: Option<Duration>,
    /// `Some`: holds expire during the run.
    hold_secs: Option<u64>,
    baseline: Option<Duration>,
    baseline_clients: Vec<u32>,
    keep_db: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut o = Options {
        modes: vec![Run { mode: Mode::Holds, keyed: false }],
        clients: 256,
        capacity: 10_000,
        quantity: 1,
        reads_per_hold: 3,
        max_run: Duration::from_secs(120),
        idempotency_keys: false,
        instances: 1,
        nts: server::default_nts_path(),
        env: Vec::new(),
        threads: 1,
        url: None,
        admin_token: std::env::var("NTS_ADMIN_TOKEN").ok(),
        server_pid: None,
        database_url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        database_url_given: false,
        analyze_every: Some(Duration::from_secs(5)),
        hold_secs: None,
        baseline: Some(Duration::from_secs(10)),
        baseline_clients: vec![1, 16, 64],
        keep_db: false,
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => {
                o.modes = value()?
                    .split(',')
                    .map(|m| Run::parse(m.trim()).with_context(|| format!("unknown mode {m:?}")))
                    .collect::<anyhow::Result<_>>()?
            }
            "--clients" => o.clients = number(&flag, &value()?, 1, 10_000)?,
            "--capacity" => o.capacity = number(&flag, &value()?, 1, 1_000_000)?,
            "--quantity" => o.quantity = number(&flag, &value()?, 1, 100)?,
            "--reads-per-hold" => o.reads_per_hold = number(&flag, &value()?, 0, 1000)?,
            "--max-secs" => o.max_run = Duration::from_secs(number(&flag, &value()?, 1, 86_400)?),
            "--idempotency-keys" => o.idempotency_keys = true,
            "--instances" => o.instances = number(&flag, &value()?, 1, 64)?,
            "--nts" => o.nts = value()?.into(),
            "--env" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').with_context(|| format!("--env wants KEY=VALUE, got {kv:?}"))?;
                o.env.push((k.to_owned(), v.to_owned()));
            }
            "--threads" => o.threads = number(&flag, &value()?, 1, 64)?,
            "--url" => o.url = Some(value()?.trim_end_matches('/').to_owned()),
            "--admin-token" => o.admin_token = Some(value()?),
            "--server-pid" => o.server_pid = Some(number(&flag, &value()?, 1, u32::MAX)?),
            "--database-url" => {
                o.database_url = value()?;
                o.database_url_given = true;
            }
            "--analyze-every" => {
                let secs = number(&flag, &value()?, 0, 3600)?;
                o.analyze_every = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--hold-secs" => o.hold_secs = Some(number(&flag, &value()?, 1, 86_400)?),
            "--baseline-secs" => o.baseline = Some(Duration::from_secs(number(&flag, &value()?, 1, 3600)?)),
            "--no-baseline" => o.baseline = None,
            "--keep-db" => o.keep_db = true,
            "--smoke" => {
                o.modes = ["holds", "holds+keys", "purchase", "purchase+keys", "mixed", "mixed-lines"]
                    .map(|m| Run::parse(m).expect("a mode"))
                    .into();
                o.clients = 8;
                o.capacity = 150;
                o.max_run = Duration::from_secs(60);
                o.baseline = o.baseline.map(|_| Duration::from_secs(1));
                o.baseline_clients = vec![1, 4];
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    if o.url.is_some() && o.admin_token.is_none() {
        bail!("--url needs --admin-token (or NTS_ADMIN_TOKEN)");
    }
    Ok(o)
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    flag: &str,
    raw: &str,
    min: T,
    max: T,
) -> anyhow::Result<T> {
    match raw.parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => bail!("{flag} wants a whole number from {min} to {max}, got {raw:?}"),
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("nts-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("nts-bench: SOME CHECKS FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("nts-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; answers whether every check passed.
async fn run(o: Options) -> anyhow::Result<bool> {
    let work_dir = std::env::temp_dir().join(format!("nts-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)?;
    println!("nts-bench — {}", machine::describe());
    println!("load average before: {}", machine::load_average());

    let best_baseline = match o.baseline {
        Some(each) => {
            println!(
                "\nbaseline: pgbench, tests/bench/hot_row.sql (one hold per transaction on one hot row), {} s per run",
                each.as_secs()
            );
            let figures = baseline::run(&o.database_url, &o.baseline_clients, each, &work_dir).await?;
            for f in &figures {
                match &f.tps {
                    Ok(tps) => println!("  {:>3} clients: {tps:>9.0} holds/s", f.clients),
                    Err(why) => println!("  {:>3} clients: no figure: {why}", f.clients),
                }
            }
            let best = figures
                .iter()
                .filter_map(|f| f.tps.as_ref().ok())
                .copied()
                .fold(None, |b: Option<f64>, t| Some(b.map_or(t, |b| b.max(t))));
            match best {
                Some(best) => println!("  best: {best:.0} holds/s"),
                None => println!("  best: none"),
            }
            best
        }
        None => None,
    };

    let mut all_ok = true;
    let mut rows = Vec::new();
    for &run in &o.modes {
        let (ok, row) = run_mode(&o, run, best_baseline, &work_dir).await?;
        all_ok &= ok;
        rows.push(row);
    }
    println!("\n| mode | clients | instances | holds/s | purchases/s | p50 ms | p95 ms | p99 ms | max ms | errors | peak RSS MB | × best pgbench | checks |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(all_ok)
}

async fn run_mode(
    o: &Options,
    run: Run,
    best_baseline: Option<f64>,
    work_dir: &std::path::Path,
) -> anyhow::Result<(bool, String)> {
    println!(
        "\n== mode {}: {} clients, capacity {}, {} seat(s) per hold ==",
        run.label(),
        o.clients,
        o.capacity,
        o.quantity
    );
    // The target: its addresses, admin token, database (for checks), and our own instances.
    let admin_token;
    let mut scratch = None;
    let mut instances = Vec::new();
    let addrs: Vec<SocketAddr> = match &o.url {
        Some(url) => {
            admin_token = o.admin_token.clone().expect("checked in parse_args");
            let authority = url.strip_prefix("http://").context("--url must be http://host:port")?;
            vec![tokio::net::lookup_host(authority).await?.next().context("--url does not resolve")?]
        }
        None => {
            admin_token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            let db = db::ScratchDb::create(&o.database_url, run.mode.as_str()).await?;
            let mut env = vec![
                // Unless asked otherwise, holds outlive the run, so that "taken == acknowledged" is exact.
                ("NTS_HOLD_SECONDS".to_owned(), o.hold_secs.unwrap_or(3600).to_string()),
                // Every client comes from 127.0.0.1, standing in for thousands of buyers' addresses.
                ("NTS_RATE_LIMIT_PER_MINUTE".to_owned(), "0".to_owned()),
                ("NTS_READ_RATE_LIMIT_PER_MINUTE".to_owned(), "0".to_owned()),
            ];
            env.extend(o.env.iter().cloned());
            for i in 0..o.instances {
                match server::spawn(&o.nts, &db.url, &admin_token, &env, work_dir, i).await {
                    Ok(instance) => instances.push(instance),
                    Err(e) => {
                        instances.into_iter().for_each(server::Instance::stop);
                        db.drop_now().await;
                        return Err(e);
                    }
                }
            }
            let addrs = instances.iter().map(|i| i.addr).collect();
            scratch = Some(db);
            addrs
        }
    };
    let check_pool = match (&scratch, &o.url) {
        (Some(db), _) => Some(db.pool.clone()),
        (None, Some(_)) if o.database_url_given => {
            Some(sqlx::PgPool::connect(&o.database_url).await.context("connecting to --database-url")?)
        }
        _ => None,
    };

    let result = measure(o, run, &addrs, &admin_token, check_pool.as_ref(), &instances, best_baseline).await;

    instances.into_iter().for_each(server::Instance::stop);
    if let Some(db) = scratch {
        if o.keep_db {
            println!("kept database {}", db.name);
            db.keep();
        } else {
            db.drop_now().await;
        }
    }
    result
}

/// The bench event: one ticket type of `--capacity` seats, or in mixed-lines
/// mode three of them, each of `--capacity` seats. Answers its id and its types' ids.
async fn create_event(
    addr: SocketAddr,
    admin_token: &str,
    o: &Options,
    mode: Mode,
) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let api = nts_testkit::Client::new(reqwest::Client::new(), format!("http://{addr}"), admin_token);
    let names = ["General", "Balcony", "Gallery"];
    let event = api
        .create_event(&NewEvent {
            max_tickets_per_order: None,
            name: "nts-bench flash sale".into(),
            venue: "Bench Arena".into(),
            starts_at: time::OffsetDateTime::now_utc() + time::Duration::days(30),
            currency: "GBP".into(),
            ticket_types: names[..mode.ticket_types()]
                .iter()
                .zip([2500, 1800, 4200])
                .map(|(name, price_minor)| NewTicketType {
                    name: (*name).into(),
                    price_minor,
                    capacity: o.capacity,
                    max_per_order: o.quantity.max(10),
                })
                .collect(),
        })
        .await
        .context("creating the event")?;
    let types: Vec<Uuid> = event.ticket_types.iter().map(|t| t.id).collect();
    anyhow::ensure!(types.len() == mode.ticket_types(), "the event has {} ticket types", types.len());
    Ok((event.id, types))
}

async fn measure(
    o: &Options,
    run: Run,
    addrs: &[SocketAddr],
    admin_token: &str,
    check_pool: Option<&sqlx::PgPool>,
    instances: &[server::Instance],
    best_baseline: Option<f64>,
) -> anyhow::Result<(bool, String)> {
    let mode = run.mode;
    let (event_id, ticket_types) = create_event(addrs[0], admin_token, o, mode).await?;
    if let Some(pool) = check_pool {
        db::vacuum_analyze(pool).await?;
    }
    let server_pids: Vec<u32> = match o.server_pid {
        Some(pid) => vec![pid],
        None => instances.iter().map(server::Instance::pid).collect(),
    };
    let probe_before = machine::SpeedProbe::take();
    let plan = Arc::new(Plan {
        mode,
        event_id,
        ticket_types: ticket_types.clone(),
        quantity: o.quantity,
        reads_per_hold: o.reads_per_hold,
        idempotency_keys: o.idempotency_keys || run.keyed,
        deadline: Instant::now() + o.max_run,
    });
    let clients = load::connect(&plan, addrs, o.clients).await?;
    println!("load average at start: {}", machine::load_average());

    let cpu_before = machine::CpuSnapshot::take(&server_pids);
    let start = Instant::now();
    let tasks: Vec<_> = clients.into_iter().map(|c| tokio::spawn(c.run())).collect();
    let analyzer =
        check_pool.zip(o.analyze_every).map(|(pool, every)| tokio::spawn(db::analyze_every(pool.clone(), every)));
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    if let Some(analyzer) = analyzer {
        analyzer.abort();
    }
    let elapsed = load::elapsed_until(start, &tally);
    let answered: u64 = tally.answers.values().sum();
    let cpu = machine::CpuSnapshot::take(&server_pids).since(&cpu_before, elapsed, answered);
    let peak_rss: Option<u64> = server_pids.iter().filter_map(|&p| server::peak_rss(p)).max();
    println!("host speed probe (lower is faster): {probe_before} before; {} after", machine::SpeedProbe::take());

    let secs = elapsed.as_secs_f64().max(1e-9);
    let holds_per_s = tally.holds.len() as f64 / secs;
    let purchases_per_s = tally.paid_orders.len() as f64 / secs;
    println!("elapsed {:.2} s{}", secs, if tally.saw_sold_out { ", sold out" } else { ", not sold out (time limit)" });
    println!("holds: {} acknowledged, {holds_per_s:.0} holds/s", tally.holds.len());
    if mode == Mode::MixedLines {
        let seats: i64 = tally.seats.values().sum();
        println!(
            "seats in them: {seats}, {:.0} seats/s ({:.2} per hold; by type {})",
            seats as f64 / secs,
            seats as f64 / tally.holds.len().max(1) as f64,
            tally.seats.values().map(i64::to_string).collect::<Vec<_>>().join(" / ")
        );
    }
    if mode == Mode::Purchase {
        println!("purchases: {} paid, {purchases_per_s:.0} purchases/s", tally.paid_orders.len());
    }
    if mode == Mode::Mixed {
        println!(
            "event page reads: {}, {:.0} reads/s",
            tally.read_latency.len(),
            tally.read_latency.len() as f64 / secs
        );
    }
    let hold_p = load::percentiles(&mut tally.hold_latency);
    for (what, samples) in [
        ("hold", &mut tally.hold_latency),
        ("event read", &mut tally.read_latency),
        ("purchase (4 steps + order read)", &mut tally.purchase_latency),
    ] {
        if let Some(p) = load::percentiles(samples) {
            println!(
                "latency {what}: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                p.p50, p.p95, p.p99, p.max
            );
        }
    }
    println!("answers:");
    for ((status, code), n) in &tally.answers {
        println!("  {status} {code}: {n}");
    }
    if tally.errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors:");
        for (kind, (n, example)) in &tally.errors {
            println!("  {kind}: {n} (e.g. {})", example.chars().take(200).collect::<String>());
        }
    }
    match peak_rss {
        Some(rss) => println!("server peak RSS: {:.1} MB (VmHWM, largest instance)", rss as f64 / 1048576.0),
        None => println!("server peak RSS: unknown (no server pid)"),
    }
    println!("{cpu}");
    let ratio = best_baseline.filter(|b| *b > 0.0).map(|b| holds_per_s / b);
    if let Some(r) = ratio {
        println!("nts holds/s ÷ best pgbench hot-row figure: {r:.2}×");
    }

    let expect = check::Expect {
        mode,
        event_id,
        ticket_types: &ticket_types,
        quantity: o.quantity,
        holds_expire: o.hold_secs.is_some(),
        tally: &tally,
    };
    let mut checks = check::from_api(addrs[0], admin_token, &expect).await?;
    match check_pool {
        Some(pool) => checks.extend(check::from_database(pool, &expect).await?),
        None => println!("database checks skipped: no database (--database-url)"),
    }
    checks.extend(check::replays(addrs[0], &tally, 2000).await?);
    checks.push(check::Check { what: format!("no errors ({})", tally.error_count()), ok: tally.error_count() == 0 });
    println!("checks:");
    for c in &checks {
        println!("  {} {}", if c.ok { "ok    " } else { "FAILED" }, c.what);
    }
    let all_ok = checks.iter().all(|c| c.ok);
    let ms = |f: fn(&load::Percentiles) -> f64| hold_p.as_ref().map(|p| format!("{:.1}", f(p))).unwrap_or_default();
    let row = format!(
        "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        run.label(),
        o.clients,
        server_pids.len(),
        holds_per_s,
        if mode == Mode::Purchase { format!("{purchases_per_s:.0}") } else { "–".into() },
        ms(|p| p.p50),
        ms(|p| p.p95),
        ms(|p| p.p99),
        ms(|p| p.max),
        tally.error_count(),
        peak_rss.map(|r| format!("{:.1}", r as f64 / 1048576.0)).unwrap_or_else(|| "?".into()),
        ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "–".into()),
        if all_ok { "ok" } else { "FAILED" },
    );
    Ok((all_ok, row))
}

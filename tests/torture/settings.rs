//! The size and the faults of a run: a profile's defaults, then the flags.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
nts-torture: runs several nts processes on a fresh database, sells tickets to many
simulated buyers while killing instances, restarting PostgreSQL and making the
payment provider misbehave, then checks from the database that no seat was sold
twice and no buyer was charged twice. Exits 0 if every check holds, 1 if one
fails, 2 if the run itself could not be made.

  --profile small|large     defaults for the run (small: ~1 minute, CI; large: 5,000 buyers)
  --seed N                  drives the buyers' choices and the chaos schedule (default: random)
  --buyers N                simulated buyers
  --instances N             nts processes
  --duration SECS           buyers arrive and faults are injected during this window
  --kill-every SECS         mean time between SIGKILLs of an instance (0: never)
  --no-pg-restart           do not restart PostgreSQL during the run
  --pg-cluster VER/NAME     the cluster pg_ctlcluster restarts (default: the one in /etc/postgresql)
  --gateway simulated|stripe  the payment provider (default simulated); stripe runs localstripe behind the
                            strict proxy of tests/stripe (stored 500s, raw-body key comparison, 429s, lost
                            and late answers, duplicate and out-of-order webhooks); set it up with
                            tests/stripe/setup.sh
  --stripe-dir DIR          where emulator.py and its .venv are (default: tests/stripe)
  --webhooks on|off|late    stripe: webhooks delivered (twice, out of order, within 1.5 s), never (nts learns
                            everything by asking Stripe), or each 60-180 s late (the run waits for the last
                            one before its checks) (default on)
  --account-rate-limit N    stripe: Stripe's account-wide limit of calls per second, all instances together
                            (25: test mode, 100: live mode; 0: none) (default 25)
  --storm-every SECS        stripe: mean time between 429 storms, 2 s during which most calls are answered 429
                            (0: none) (default 10)
  --lock-timeout-rate F     stripe: fraction of calls answered 429 lock_timeout (another request held the object)
  --smtp                    the instances send their e-mails to a real SMTP server (tests/mail, aiosmtpd;
                            set it up with tests/mail/setup.sh): every paid order's e-mail must arrive
  --smtp-dir DIR            where server.py and its .venv are (default: tests/mail)
  --stored-error-rate F     stripe: fraction of calls answered 500 (stored under their key), half of them
                            after Stripe acted
  --rate-limit-rate F       stripe: fraction of calls answered 429
  --decline-rate F          fraction of confirmations the provider declines
  --lost-rate F             fraction of provider calls whose response is lost
  --slow-rate F             fraction of provider calls delayed by --slow-ms
  --slow-ms MS              provider delay (keep it above --client-timeout-ms)
  --client-timeout-ms MS    buyers' request timeout; they retry with the same Idempotency-Key
  --hold-seconds N          NTS_HOLD_SECONDS of the instances
  --order-seconds N         NTS_ORDER_SECONDS of the instances
  --reconcile-ms N          NTS_RECONCILE_MS of the instances
  --settle-seconds N        how long the reconciler gets to settle everything after the load
  --nts PATH                the nts binary (default: next to this executable)
  --postgres URL            PostgreSQL server, without a database (default: DATABASE_URL's server,
                            else postgres://postgres@127.0.0.1:5432)
  --keep-db                 keep the run's database and print its name
  --break-inventory-guard   DELIBERATELY BROKEN: drop the inventory CHECK and make an nts built with
                            `--features broken-oversell` skip the hold guard
                            (NTS_DEBUG_UNSAFE_SKIP_INVENTORY_GUARD=1); the run must fail
";

#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: String,
    pub seed: u64,
    pub buyers: usize,
    pub instances: usize,
    pub duration: Duration,
    pub kill_every: Option<Duration>,
    pub pg_restart: bool,
    pub pg_cluster: Option<String>,
    pub faults: Faults,
    pub stripe: Option<StripeFaults>,
    pub stripe_dir: PathBuf,
    /// `--smtp`: e-mails go to tests/mail's SMTP server and must all arrive.
    pub smtp: bool,
    pub smtp_dir: PathBuf,
    pub client_timeout: Duration,
    pub hold_seconds: u64,
    pub order_seconds: u64,
    pub reconcile_ms: u64,
    pub settle: Duration,
    pub nts: PathBuf,
    pub postgres: String,
    pub keep_db: bool,
    pub break_inventory_guard: bool,
}

/// `--gateway stripe`: what the proxy does besides losing and delaying answers.
#[derive(Debug, Clone)]
pub struct StripeFaults {
    pub stored_error_rate: f64,
    pub rate_limit_rate: f64,
    pub lock_timeout_rate: f64,
    pub webhooks: Webhooks,
    /// Stripe's account-wide calls per second (0: no limit).
    pub account_rate_limit: u32,
    pub storm_every: Option<Duration>,
}

/// `--webhooks`: how Stripe's events reach nts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhooks {
    /// Twice each, out of order, within 1.5 s.
    On,
    /// Never: no endpoint is registered.
    Off,
    /// Twice each, every delivery 60 to 180 s late.
    Late,
}

impl Webhooks {
    pub fn name(self) -> &'static str {
        match self {
            Webhooks::On => "on",
            Webhooks::Off => "off",
            Webhooks::Late => "late",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Faults {
    pub decline_rate: f64,
    pub lost_rate: f64,
    pub slow_rate: f64,
    pub slow_ms: u64,
}

const SWITCHES: [&str; 4] = ["no-pg-restart", "keep-db", "break-inventory-guard", "smtp"];

impl Settings {
    fn profile(name: &str) -> Result<Self, String> {
        let mut s = Settings {
            profile: name.to_owned(),
            seed: random_seed(),
            buyers: 300,
            instances: 3,
            duration: Duration::from_secs(25),
            kill_every: Some(Duration::from_secs(8)),
            pg_restart: true,
            pg_cluster: None,
            faults: Faults { decline_rate: 0.15, lost_rate: 0.1, slow_rate: 0.05, slow_ms: 2500 },
            stripe: None,
            stripe_dir: PathBuf::from("tests/stripe"),
            smtp: false,
            smtp_dir: PathBuf::from("tests/mail"),
            client_timeout: Duration::from_millis(1500),
            hold_seconds: 4,
            order_seconds: 8,
            reconcile_ms: 200,
            settle: Duration::from_secs(90),
            nts: default_nts(),
            postgres: std::env::var("DATABASE_URL")
                .ok()
                .and_then(|url| server_of(&url))
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into()),
            keep_db: false,
            break_inventory_guard: false,
        };
        match name {
            "small" => {}
            "large" => {
                s.buyers = 5000;
                s.duration = Duration::from_secs(150);
                s.kill_every = Some(Duration::from_secs(4));
                s.hold_seconds = 5;
                s.order_seconds = 10;
                s.settle = Duration::from_secs(180);
            }
            other => return Err(format!("--profile: expected small or large, got {other:?}")),
        }
        Ok(s)
    }
}

/// `None` for `--help`.
pub fn parse(args: Vec<String>) -> Result<Option<Settings>, String> {
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let Some(flag) = arg.strip_prefix("--") else { return Err(format!("unexpected argument {arg:?}")) };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.to_owned(), None),
        };
        if SWITCHES.contains(&name.as_str()) {
            if inline.is_some() {
                return Err(format!("--{name} takes no value"));
            }
            flags.push((name, String::new()));
        } else {
            let value = inline.or_else(|| it.next()).ok_or_else(|| format!("--{name} needs a value"))?;
            flags.push((name, value));
        }
    }
    let profile = flags.iter().rev().find(|(n, _)| n == "profile").map_or("small", |(_, v)| v.as_str());
    let mut s = Settings::profile(profile)?;
    let mut stripe = StripeFaults {
        stored_error_rate: 0.03,
        rate_limit_rate: 0.03,
        lock_timeout_rate: 0.01,
        webhooks: Webhooks::On,
        account_rate_limit: 25,
        storm_every: Some(Duration::from_secs(10)),
    };
    let mut settle_given = false;
    for (name, value) in &flags {
        let v = value.as_str();
        match name.as_str() {
            "profile" => {}
            "seed" => s.seed = number(name, v)?,
            "buyers" => s.buyers = number(name, v)?,
            "instances" => s.instances = number::<usize>(name, v)?.max(1),
            "duration" => s.duration = Duration::from_secs_f64(fraction(name, v, f64::MAX)?),
            "kill-every" => {
                let secs = fraction(name, v, f64::MAX)?;
                s.kill_every = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
            }
            "no-pg-restart" => s.pg_restart = false,
            "pg-cluster" => s.pg_cluster = Some(v.to_owned()),
            "gateway" => match v {
                "simulated" => s.stripe = None,
                "stripe" => s.stripe = Some(stripe.clone()),
                other => return Err(format!("--gateway: expected simulated or stripe, got {other:?}")),
            },
            "stripe-dir" => s.stripe_dir = PathBuf::from(v),
            "smtp" => s.smtp = true,
            "smtp-dir" => s.smtp_dir = PathBuf::from(v),
            "stored-error-rate" => stripe.stored_error_rate = fraction(name, v, 1.0)?,
            "rate-limit-rate" => stripe.rate_limit_rate = fraction(name, v, 1.0)?,
            "lock-timeout-rate" => stripe.lock_timeout_rate = fraction(name, v, 1.0)?,
            "webhooks" => {
                stripe.webhooks = match v {
                    "on" => Webhooks::On,
                    "off" => Webhooks::Off,
                    "late" => Webhooks::Late,
                    other => return Err(format!("--webhooks: expected on, off or late, got {other:?}")),
                }
            }
            "account-rate-limit" => stripe.account_rate_limit = number(name, v)?,
            "storm-every" => {
                let secs = fraction(name, v, f64::MAX)?;
                stripe.storm_every = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
            }
            "decline-rate" => s.faults.decline_rate = fraction(name, v, 1.0)?,
            "lost-rate" => s.faults.lost_rate = fraction(name, v, 1.0)?,
            "slow-rate" => s.faults.slow_rate = fraction(name, v, 1.0)?,
            "slow-ms" => s.faults.slow_ms = number(name, v)?,
            "client-timeout-ms" => s.client_timeout = Duration::from_millis(number::<u64>(name, v)?.max(1)),
            "hold-seconds" => s.hold_seconds = number(name, v)?,
            "order-seconds" => s.order_seconds = number(name, v)?,
            "reconcile-ms" => s.reconcile_ms = number(name, v)?,
            "settle-seconds" => {
                s.settle = Duration::from_secs(number(name, v)?);
                settle_given = true;
            }
            "nts" => s.nts = PathBuf::from(v),
            "postgres" => s.postgres = v.trim_end_matches('/').to_owned(),
            "keep-db" => s.keep_db = true,
            "break-inventory-guard" => s.break_inventory_guard = true,
            other => return Err(format!("unknown flag --{other} (see --help)")),
        }
    }
    if let Some(faults) = s.stripe.as_mut() {
        *faults = stripe;
        // An attempt whose creation Stripe answered with a stored 500 is looked
        // for until it is `LOOK_FOR_SECS` old, then at a tenth of its age:
        // the settling must outlast that.
        if !settle_given {
            s.settle = s.settle.max(Duration::from_secs(crate::stripe::LOOK_FOR_SECS + 120));
        }
    }
    Ok(Some(s))
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim().parse().map_err(|_| format!("--{name}: expected a whole number, got {v:?}"))
}

fn fraction(name: &str, v: &str, max: f64) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(f) if (0.0..=max).contains(&f) => Ok(f),
        _ => Err(format!("--{name}: expected a number from 0 to {max}, got {v:?}")),
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_000
}

/// `postgres://user@host:port/db?options` without `/db?options`.
fn server_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split('?').next()?.split_once("://")?;
    let (authority, _database) = rest.split_once('/')?;
    Some(format!("{scheme}://{authority}"))
}

fn default_nts() -> PathBuf {
    std::env::current_exe().map(|p| p.with_file_name("nts")).unwrap_or_else(|_| PathBuf::from("nts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Settings {
        parse(args.iter().map(|a| a.to_string()).collect()).unwrap().unwrap()
    }

    #[test]
    fn flags_override_the_profile_whatever_their_order() {
        let s = parse_ok(&["--buyers", "7", "--profile", "large", "--seed=42", "--kill-every", "0", "--no-pg-restart"]);
        assert_eq!((s.buyers, s.seed, s.instances), (7, 42, 3));
        assert_eq!(s.duration, Duration::from_secs(150));
        assert!(s.kill_every.is_none() && !s.pg_restart);
    }

    #[test]
    fn the_stripe_gateway_takes_its_fault_rates_in_any_order() {
        let s = parse_ok(&["--rate-limit-rate", "0.2", "--gateway", "stripe", "--stored-error-rate=0.1"]);
        let stripe = s.stripe.unwrap();
        assert_eq!((stripe.stored_error_rate, stripe.rate_limit_rate), (0.1, 0.2));
        assert!(parse_ok(&[]).stripe.is_none());
        assert!(parse(vec!["--gateway".into(), "paypal".into()]).unwrap_err().contains("--gateway"));
        assert!(parse(vec!["--webhooks".into(), "sometimes".into()]).unwrap_err().contains("--webhooks"));
        let s =
            parse_ok(&["--gateway", "stripe", "--webhooks", "late", "--storm-every", "0", "--account-rate-limit=100"]);
        let stripe = s.stripe.unwrap();
        assert_eq!((stripe.webhooks, stripe.storm_every, stripe.account_rate_limit), (Webhooks::Late, None, 100));
        assert!(s.settle >= Duration::from_secs(300));
    }

    #[test]
    fn the_server_is_the_database_url_without_its_database() {
        assert_eq!(server_of("postgres://u:p@h:5432/db?sslmode=disable").as_deref(), Some("postgres://u:p@h:5432"));
        assert_eq!(server_of("postgres://h:5432"), None);
    }

    #[test]
    fn bad_flags_are_named() {
        let err = |args: &[&str]| parse(args.iter().map(|a| a.to_string()).collect()).unwrap_err();
        assert!(err(&["--buyers", "many"]).contains("--buyers"));
        assert!(err(&["--lost-rate", "2"]).contains("--lost-rate"));
        assert!(err(&["--frobnicate"]).contains("--frobnicate"));
        assert!(err(&["--profile", "huge"]).contains("--profile"));
        assert!(err(&["--seed"]).contains("needs a value"));
    }
}

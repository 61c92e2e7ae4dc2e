//! Settings from the environment. Every error names its variable.

use std::time::Duration;

use rand::Rng;

#[derive(Clone)]
pub struct Config {
    pub address: String,
    pub database_url: String,
    pub db_pool_size: u32,
    /// `DATABASE_URL` is a pooler in transaction mode (PgBouncer).
    pub db_transaction_pooling: bool,
    /// Migrations need a session of their own: straight to PostgreSQL when `DATABASE_URL` is a pooler.
    pub migration_database_url: Option<String>,
    pub admin_token: AdminToken,
    pub hold_duration: Duration,
    pub order_duration: Duration,
    pub hold_caps: HoldCaps,
    /// The demo event and its reset call; only with simulated payments.
    pub demo: bool,
    pub edge: EdgeConfig,
    pub reconcile_interval: Duration,
    pub payments: Payments,
    /// Opens `GET /metrics`; without it that route answers 404.
    pub metrics_token: Option<crate::metrics::MetricsToken>,
    pub mail: MailSettings,
}

/// E-mail to buyers (`NTS_SMTP_URL`, `NTS_MAIL_*`). Without SMTP the outbox
/// still fills and nothing is sent. `Debug` never prints the SMTP password.
#[derive(Clone)]
pub struct MailSettings {
    /// For lettre: `smtp://` made STARTTLS-required unless `?tls=` says otherwise.
    pub smtp_url: Option<String>,
    pub from: Option<lettre::message::Mailbox>,
    /// Where buyers open the shop, without trailing `/` (`https://tickets.example.com`).
    pub public_url: Option<String>,
    /// Seals order secrets for the links in e-mails (`NTS_MAIL_KEY`, else derived from `NTS_ADMIN_TOKEN`).
    pub link_key: Option<crate::mail::links::LinkKey>,
    /// How long a sender owns a claimed message; a sender that died is replaced after it.
    pub lease: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// After this many failed attempts a message is `failed` until an admin retries it.
    pub max_attempts: u32,
    pub poll: Duration,
    /// Resend requests allowed per hour per client address and per e-mail address.
    pub resend_per_hour: u32,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &self.smtp_url.is_some())
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// How many unpaid holds and orders one buyer may have at once, so that one
/// client cannot take a sale off the market without paying. 0 turns a cap off.
#[derive(Clone, Copy, Debug)]
pub struct HoldCaps {
    /// Per client address (IPv6 per /64), as the rate limit sees it.
    pub per_address: u32,
    /// Per buyer e-mail address.
    pub per_email: u32,
}

/// How nts takes money. There is no default: a deployment that lost its Stripe
/// keys must not start selling tickets nobody pays for.
#[derive(Clone, Debug)]
pub enum Payments {
    Stripe(StripeSettings),
    /// No real money moves: only when asked for (`NTS_PAYMENTS=simulated` or `nts --demo`).
    Simulated(SimulatedFaults),
}

impl Config {
    pub fn db_settings(&self) -> crate::db::DbSettings {
        crate::db::DbSettings {
            url: self.database_url.clone(),
            pool_size: self.db_pool_size,
            transaction_pooling: self.db_transaction_pooling,
            migration_url: self.migration_database_url.clone(),
        }
    }

    pub fn stripe(&self) -> Option<&StripeSettings> {
        match &self.payments {
            Payments::Stripe(s) => Some(s),
            Payments::Simulated(_) => None,
        }
    }

    pub fn simulated(&self) -> Option<&SimulatedFaults> {
        match &self.payments {
            Payments::Simulated(f) => Some(f),
            Payments::Stripe(_) => None,
        }
    }
}

/// How to reach Stripe. `Debug` never prints the secrets.
#[derive(Clone)]
pub struct StripeSettings {
    pub secret_key: String,
    pub publishable_key: String,
    pub webhook_secret: String,
    /// Always ends with `/`.
    pub api_base: String,
    pub js_url: String,
    /// How long one call to Stripe may take before its outcome counts as unknown.
    pub timeout: Duration,
    /// The same for one page of a listing, which only background work (the
    /// reconciler's look-ups, the audit) asks for and which grows with the
    /// account's history.
    pub list_timeout: Duration,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("publishable_key", &self.publishable_key)
            .field("api_base", &self.api_base)
            .field("js_url", &self.js_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The admin bearer token; `Debug` never prints it.
#[derive(Clone)]
pub struct AdminToken {
    pub value: String,
    pub generated: bool,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Protection at the edge: per-client rate limits, which proxies to believe, CORS.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Public POSTs allowed per client address and minute; 0 turns rate limiting off.
    pub rate_limit_per_minute: u32,
    /// How many of them may come at once before the per-minute pace applies.
    pub rate_limit_burst: u32,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, reverse proxies).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins allowed to call the API from other sites; empty turns CORS off.
    pub cors_origins: Vec<String>,
}

/// Misbehaviour of the simulated provider, for torture runs. All off by default.
#[derive(Clone, Debug, Default)]
pub struct SimulatedFaults {
    /// Fraction of confirmations declined whatever the buyer chose.
    pub decline_rate: f64,
    /// Fraction of calls processed by the provider whose response is then lost.
    pub lost_response_rate: f64,
    /// Fraction of calls delayed by `slow_delay`.
    pub slow_rate: f64,
    pub slow_delay: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/nts";
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;
pub const MIN_METRICS_TOKEN_LEN: usize = 16;
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com/";
pub const DEFAULT_STRIPE_JS_URL: &str = "https://js.stripe.com/v3/";

/// The simulated provider's fault knobs: accepted only with simulated payments.
const SIMULATED_FAULTS: [&str; 4] =
    ["NTS_SIM_DECLINE_RATE", "NTS_SIM_LOST_RESPONSE_RATE", "NTS_SIM_SLOW_RATE", "NTS_SIM_SLOW_MS"];

impl Config {
    /// The environment; `demo` (the `--demo` flag) asks for simulated payments
    /// as `NTS_PAYMENTS=simulated` does.
    pub fn from_env(demo: bool) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| match std::env::var(name).ok() {
            None if demo && name == "NTS_PAYMENTS" => Some("simulated".into()),
            value => value,
        })
    }

    /// Reads settings through `lookup`, so tests can supply their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let admin_token = match get("NTS_ADMIN_TOKEN") {
            Some(value) if value.chars().count() < MIN_ADMIN_TOKEN_LEN => {
                return Err(ConfigError {
                    variable: "NTS_ADMIN_TOKEN",
                    problem: format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters long"),
                })
            }
            Some(value) => AdminToken { value, generated: false },
            None => AdminToken { value: crate::domain::secret::random_token(32), generated: true },
        };
        let payments = payments(get)?;
        let simulated = matches!(payments, Payments::Simulated(_));
        let demo = parse_bool(get, "NTS_DEMO", simulated)?;
        if demo && !simulated {
            return Err(ConfigError {
                variable: "NTS_DEMO",
                problem: "the demo event exists only with simulated payments (NTS_PAYMENTS=simulated)".into(),
            });
        }
        let db_transaction_pooling = parse_bool(get, "NTS_DB_TRANSACTION_POOLING", false)?;
        let migration_database_url = get("NTS_MIGRATION_DATABASE_URL");
        if db_transaction_pooling && migration_database_url.is_none() {
            return Err(ConfigError {
                variable: "NTS_MIGRATION_DATABASE_URL",
                problem: "required with NTS_DB_TRANSACTION_POOLING=true: migrations hold a session-level lock, so \
                          they need a direct connection to PostgreSQL, not through the pooler"
                    .into(),
            });
        }
        let mail = mail_settings(get, (!admin_token.generated).then_some(admin_token.value.as_str()))?;
        Ok(Config {
            address: get("NTS_ADDRESS").unwrap_or_else(|| "0.0.0.0:9000".into()),
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            db_pool_size: parse(get, "NTS_DB_POOL_SIZE", 16u32, 1..=1000)?,
            db_transaction_pooling,
            migration_database_url,
            admin_token,
            hold_duration: Duration::from_secs(parse(get, "NTS_HOLD_SECONDS", 300u64, 1..=86_400)?),
            order_duration: Duration::from_secs(parse(get, "NTS_ORDER_SECONDS", 900u64, 1..=86_400)?),
            hold_caps: HoldCaps {
                per_address: parse(get, "NTS_MAX_UNPAID_PER_ADDRESS", 40u32, 0..=1_000_000)?,
                per_email: parse(get, "NTS_MAX_UNPAID_PER_EMAIL", 4u32, 0..=1_000_000)?,
            },
            demo,
            edge: EdgeConfig {
                rate_limit_per_minute: parse(get, "NTS_RATE_LIMIT_PER_MINUTE", 1200u32, 0..=1_000_000)?,
                rate_limit_burst: parse(get, "NTS_RATE_LIMIT_BURST", 600u32, 1..=1_000_000)?,
                trusted_proxies: parse_list(get, "NTS_TRUSTED_PROXIES", parse_network)?,
                cors_origins: parse_list(get, "NTS_CORS_ORIGINS", parse_origin)?,
            },
            reconcile_interval: Duration::from_millis(parse(get, "NTS_RECONCILE_MS", 1000u64, 10..=3_600_000)?),
            payments,
            metrics_token: match get("NTS_METRICS_TOKEN") {
                Some(value) if value.trim().chars().count() < MIN_METRICS_TOKEN_LEN => {
                    return Err(ConfigError {
                        variable: "NTS_METRICS_TOKEN",
                        problem: format!("must be at least {MIN_METRICS_TOKEN_LEN} characters long"),
                    })
                }
                value => value.map(|v| crate::metrics::MetricsToken(v.trim().to_owned())),
            },
            mail,
        })
    }
}

/// Stripe when its keys are set; simulated payments only when asked for; otherwise nothing starts.
fn payments(get: impl Fn(&'static str) -> Option<String> + Copy) -> Result<Payments, ConfigError> {
    let mode = get("NTS_PAYMENTS").map(|m| m.trim().to_ascii_lowercase());
    let stripe = stripe_settings(get)?;
    let error = |variable, problem: &str| Err(ConfigError { variable, problem: problem.into() });
    match (mode.as_deref(), stripe) {
        (Some("simulated"), None) => Ok(Payments::Simulated(SimulatedFaults {
            decline_rate: parse_rate(get, "NTS_SIM_DECLINE_RATE")?,
            lost_response_rate: parse_rate(get, "NTS_SIM_LOST_RESPONSE_RATE")?,
            slow_rate: parse_rate(get, "NTS_SIM_SLOW_RATE")?,
            slow_delay: Duration::from_millis(parse(get, "NTS_SIM_SLOW_MS", 2000u64, 0..=600_000)?),
        })),
        (Some("simulated"), Some(_)) => error(
            "NTS_PAYMENTS",
            "simulated payments were asked for, but Stripe settings (NTS_STRIPE_*) are set too: choose one",
        ),
        (Some("stripe") | None, Some(stripe)) => match SIMULATED_FAULTS.into_iter().find(|v| get(v).is_some()) {
            Some(variable) => error(variable, "only the simulated provider has this setting (NTS_PAYMENTS=simulated)"),
            None => Ok(Payments::Stripe(stripe)),
        },
        (Some("stripe"), None) => error(
            "NTS_STRIPE_SECRET_KEY",
            "missing: Stripe needs NTS_STRIPE_SECRET_KEY, NTS_STRIPE_PUBLISHABLE_KEY and NTS_STRIPE_WEBHOOK_SECRET",
        ),
        (None, None) => error(
            "NTS_PAYMENTS",
            "no payment provider is configured. To take real payments set NTS_STRIPE_SECRET_KEY, \
             NTS_STRIPE_PUBLISHABLE_KEY and NTS_STRIPE_WEBHOOK_SECRET; for a demo in which no money moves \
             set NTS_PAYMENTS=simulated (or run `nts --demo`)",
        ),
        (Some(other), _) => Err(ConfigError {
            variable: "NTS_PAYMENTS",
            problem: format!("expected stripe or simulated, got {other:?}"),
        }),
    }
}

/// Stripe is meant when any of its settings is given, and then needs all three secrets.
fn stripe_settings(get: impl Fn(&'static str) -> Option<String> + Copy) -> Result<Option<StripeSettings>, ConfigError> {
    const ALL: [&str; 7] = [
        "NTS_STRIPE_SECRET_KEY",
        "NTS_STRIPE_PUBLISHABLE_KEY",
        "NTS_STRIPE_WEBHOOK_SECRET",
        "NTS_STRIPE_API_BASE",
        "NTS_STRIPE_JS_URL",
        "NTS_STRIPE_TIMEOUT_MS",
        "NTS_STRIPE_LIST_TIMEOUT_MS",
    ];
    if ALL.iter().all(|v| get(v).is_none()) {
        return Ok(None);
    }
    let required = |variable: &'static str, prefixes: &[&str]| -> Result<String, ConfigError> {
        let value = get(variable).map(|v| v.trim().to_owned()).ok_or_else(|| ConfigError {
            variable,
            problem: "missing: Stripe needs NTS_STRIPE_SECRET_KEY, NTS_STRIPE_PUBLISHABLE_KEY and NTS_STRIPE_WEBHOOK_SECRET together".into(),
        })?;
        if !prefixes.is_empty() && !prefixes.iter().any(|p| value.starts_with(p)) {
            return Err(ConfigError {
                variable,
                problem: format!("expected a key starting with {}", prefixes.join(" or ")),
            });
        }
        Ok(value)
    };
    let url = |variable: &'static str, default: &str| -> Result<String, ConfigError> {
        let value = get(variable).map(|v| v.trim().to_owned()).unwrap_or_else(|| default.to_owned());
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            return Err(ConfigError { variable, problem: format!("expected an http(s) URL, got {value:?}") });
        }
        Ok(value)
    };
    let mut api_base = url("NTS_STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE)?;
    if !api_base.ends_with('/') {
        api_base.push('/');
    }
    Ok(Some(StripeSettings {
        secret_key: required("NTS_STRIPE_SECRET_KEY", &["sk_", "rk_"])?,
        publishable_key: required("NTS_STRIPE_PUBLISHABLE_KEY", &["pk_"])?,
        webhook_secret: required("NTS_STRIPE_WEBHOOK_SECRET", &[])?,
        api_base,
        js_url: url("NTS_STRIPE_JS_URL", DEFAULT_STRIPE_JS_URL)?,
        timeout: Duration::from_millis(parse(get, "NTS_STRIPE_TIMEOUT_MS", 20_000u64, 100..=600_000)?),
        list_timeout: Duration::from_millis(parse(get, "NTS_STRIPE_LIST_TIMEOUT_MS", 60_000u64, 100..=600_000)?),
    }))
}

fn mail_settings(
    get: impl Fn(&'static str) -> Option<String> + Copy,
    admin_token: Option<&str>,
) -> Result<MailSettings, ConfigError> {
    let problem = |variable, problem: String| ConfigError { variable, problem };
    let smtp_url = get("NTS_SMTP_URL")
        .map(|raw| crate::mail::sender::smtp_url(raw.trim()).map_err(|p| problem("NTS_SMTP_URL", p)))
        .transpose()?;
    let from = get("NTS_MAIL_FROM")
        .map(|raw| {
            raw.trim().parse::<lettre::message::Mailbox>().map_err(|_| {
                problem(
                    "NTS_MAIL_FROM",
                    format!("expected an address such as Tickets <tickets@example.com>, got {raw:?}"),
                )
            })
        })
        .transpose()?;
    let public_url = get("NTS_PUBLIC_URL")
        .map(|raw| {
            let url = raw.trim().trim_end_matches('/').to_owned();
            match parse_origin(&url) {
                Ok(_) => Ok(url),
                Err(_) => Err(problem(
                    "NTS_PUBLIC_URL",
                    format!("expected the shop's origin such as https://tickets.example.com, got {raw:?}"),
                )),
            }
        })
        .transpose()?;
    if smtp_url.is_some() {
        for (variable, missing) in [("NTS_MAIL_FROM", from.is_none()), ("NTS_PUBLIC_URL", public_url.is_none())] {
            if missing {
                return Err(problem(
                    variable,
                    "missing: e-mail (NTS_SMTP_URL) needs NTS_MAIL_FROM and NTS_PUBLIC_URL".into(),
                ));
            }
        }
    }
    let link_key = match get("NTS_MAIL_KEY") {
        Some(key) if key.chars().count() < MIN_ADMIN_TOKEN_LEN => {
            return Err(problem("NTS_MAIL_KEY", format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters long")))
        }
        Some(key) => Some(crate::mail::links::LinkKey::from_secret(&key)),
        None => admin_token.map(crate::mail::links::LinkKey::from_secret),
    };
    let retry_first = Duration::from_millis(parse(get, "NTS_MAIL_RETRY_MS", 5_000u64, 10..=3_600_000)?);
    Ok(MailSettings {
        smtp_url,
        from,
        public_url,
        link_key,
        lease: Duration::from_secs(parse(get, "NTS_MAIL_LEASE_SECONDS", 120u64, 2..=86_400)?),
        retry_first,
        retry_max: Duration::from_millis(parse(get, "NTS_MAIL_RETRY_MAX_MS", 600_000u64, 10..=86_400_000)?)
            .max(retry_first),
        max_attempts: parse(get, "NTS_MAIL_MAX_ATTEMPTS", 12u32, 1..=1000)?,
        poll: Duration::from_millis(parse(get, "NTS_MAIL_POLL_MS", 1_000u64, 10..=600_000)?),
        resend_per_hour: parse(get, "NTS_MAIL_RESEND_PER_HOUR", 5u32, 0..=1_000_000)?,
    })
}

fn parse<T>(
    get: impl Fn(&'static str) -> Option<String>,
    variable: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(variable) else { return Ok(default) };
    match raw.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ConfigError {
            variable,
            problem: format!("expected a whole number from {} to {}, got {raw:?}", range.start(), range.end()),
        }),
    }
}

fn parse_rate(get: impl Fn(&'static str) -> Option<String>, variable: &'static str) -> Result<f64, ConfigError> {
    let Some(raw) = get(variable) else { return Ok(0.0) };
    match raw.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(ConfigError { variable, problem: format!("expected a fraction from 0 to 1, got {raw:?}") }),
    }
}

fn parse_bool(
    get: impl Fn(&'static str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(variable).as_deref().map(str::trim) {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError { variable, problem: format!("expected true or false, got {other:?}") }),
    }
}

/// A comma-separated list; every item must pass `item`.
fn parse_list<T>(
    get: impl Fn(&'static str) -> Option<String>,
    variable: &'static str,
    item: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let Some(raw) = get(variable) else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| item(s).map_err(|problem| ConfigError { variable, problem }))
        .collect()
}

/// An address (`10.0.0.7`) or a network (`10.0.0.0/8`).
fn parse_network(raw: &str) -> Result<ipnet::IpNet, String> {
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("expected IP addresses or networks such as 10.0.0.0/8, got {raw:?}"))
}

/// `scheme://host[:port]`, exactly as a browser sends it in `Origin`.
fn parse_origin(raw: &str) -> Result<String, String> {
    let problem =
        || format!("expected origins such as https://tickets.example.com (no path, no wildcard), got {raw:?}");
    let (scheme, rest) = raw.split_once("://").ok_or_else(problem)?;
    let host_ok =
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if matches!(scheme, "http" | "https") && host_ok {
        Ok(raw.to_owned())
    } else {
        Err(problem())
    }
}

impl SimulatedFaults {
    /// Rolls the dice for one provider call.
    pub fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && rand::thread_rng().gen_bool(rate.min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `vars` on top of simulated payments, the one choice that needs no secrets.
    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![("NTS_PAYMENTS", "simulated")];
        all.extend_from_slice(vars);
        exactly(&all)
    }

    fn exactly(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing_but_the_payment_mode() {
        let c = config(&[]).unwrap();
        assert_eq!(c.address, "0.0.0.0:9000");
        assert_eq!(c.hold_duration, Duration::from_secs(300));
        assert!(c.demo);
        assert!(c.admin_token.generated);
        assert!(c.admin_token.value.len() >= MIN_ADMIN_TOKEN_LEN);
        assert!(c.hold_caps.per_address > 0 && c.hold_caps.per_email > 0, "hoarding caps are on by default");
    }

    #[test]
    fn without_stripe_keys_or_an_explicit_choice_nothing_starts() {
        let err = exactly(&[]).err().unwrap();
        assert_eq!(err.variable, "NTS_PAYMENTS");
        for option in ["NTS_STRIPE_SECRET_KEY", "NTS_PAYMENTS=simulated", "--demo"] {
            assert!(err.problem.contains(option), "the message names {option}: {err}");
        }
        assert_eq!(exactly(&[("NTS_PAYMENTS", "stripe")]).err().unwrap().variable, "NTS_STRIPE_SECRET_KEY");
        assert_eq!(exactly(&[("NTS_PAYMENTS", "free")]).err().unwrap().variable, "NTS_PAYMENTS");
    }

    #[test]
    fn a_transaction_pooler_needs_a_direct_url_for_migrations_and_metrics_a_long_token() {
        let c = config(&[]).unwrap();
        assert!(!c.db_transaction_pooling && c.migration_database_url.is_none() && c.metrics_token.is_none());
        let err = config(&[("NTS_DB_TRANSACTION_POOLING", "true")]).err().unwrap();
        assert_eq!(err.variable, "NTS_MIGRATION_DATABASE_URL");
        let c = config(&[
            ("NTS_DB_TRANSACTION_POOLING", "true"),
            ("NTS_MIGRATION_DATABASE_URL", "postgres://db:5432/nts"),
            ("NTS_METRICS_TOKEN", "0123456789abcdef"),
        ])
        .unwrap();
        assert!(c.db_settings().transaction_pooling);
        assert_eq!(c.db_settings().migration_url.as_deref(), Some("postgres://db:5432/nts"));
        assert_eq!(c.metrics_token.unwrap().0, "0123456789abcdef");
        assert_eq!(config(&[("NTS_METRICS_TOKEN", "short")]).err().unwrap().variable, "NTS_METRICS_TOKEN");
        assert_eq!(
            config(&[("NTS_DB_TRANSACTION_POOLING", "maybe")]).err().unwrap().variable,
            "NTS_DB_TRANSACTION_POOLING"
        );
    }

    #[test]
    fn simulated_payments_and_stripe_keys_do_not_mix() {
        let mut vars = STRIPE.to_vec();
        vars.push(("NTS_PAYMENTS", "simulated"));
        assert_eq!(exactly(&vars).err().unwrap().variable, "NTS_PAYMENTS");
    }

    #[test]
    fn the_demo_and_the_fault_knobs_exist_only_with_simulated_payments() {
        let c = exactly(&STRIPE).unwrap();
        assert!(!c.demo && c.simulated().is_none() && c.stripe().is_some());
        let mut vars = STRIPE.to_vec();
        vars.push(("NTS_DEMO", "true"));
        assert_eq!(exactly(&vars).err().unwrap().variable, "NTS_DEMO");
        for variable in SIMULATED_FAULTS {
            let mut vars = STRIPE.to_vec();
            vars.push((variable, "0"));
            assert_eq!(exactly(&vars).err().unwrap().variable, variable);
        }
        let c = config(&[("NTS_SIM_DECLINE_RATE", "0.5"), ("NTS_DEMO", "false")]).unwrap();
        assert_eq!(c.simulated().unwrap().decline_rate, 0.5);
        assert!(!c.demo);
    }

    #[test]
    fn malformed_settings_name_their_variable() {
        let err = config(&[("NTS_HOLD_SECONDS", "soon")]).err().unwrap();
        assert_eq!(err.variable, "NTS_HOLD_SECONDS");
        let err = config(&[("NTS_DEMO", "maybe")]).err().unwrap();
        assert_eq!(err.variable, "NTS_DEMO");
        let err = config(&[("NTS_SIM_DECLINE_RATE", "2")]).err().unwrap();
        assert_eq!(err.variable, "NTS_SIM_DECLINE_RATE");
        let err = config(&[("NTS_MAX_UNPAID_PER_EMAIL", "-1")]).err().unwrap();
        assert_eq!(err.variable, "NTS_MAX_UNPAID_PER_EMAIL");
    }

    #[test]
    fn edge_settings_are_parsed_and_checked() {
        let c = config(&[]).unwrap();
        assert!(c.edge.rate_limit_per_minute > 0, "rate limiting is on by default");
        assert!(c.edge.trusted_proxies.is_empty() && c.edge.cors_origins.is_empty());
        let c = config(&[
            ("NTS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1"),
            ("NTS_CORS_ORIGINS", "https://shop.example.com,http://localhost:3000"),
            ("NTS_RATE_LIMIT_PER_MINUTE", "0"),
        ])
        .unwrap();
        assert_eq!(c.edge.trusted_proxies.len(), 3);
        assert_eq!(c.edge.cors_origins, ["https://shop.example.com", "http://localhost:3000"]);
        assert_eq!(c.edge.rate_limit_per_minute, 0);
        for (variable, value) in [
            ("NTS_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("NTS_TRUSTED_PROXIES", "proxy.local"),
            ("NTS_CORS_ORIGINS", "*"),
            ("NTS_CORS_ORIGINS", "https://example.com/path"),
            ("NTS_CORS_ORIGINS", "ftp://example.com"),
            ("NTS_RATE_LIMIT_BURST", "0"),
        ] {
            assert_eq!(config(&[(variable, value)]).err().map(|e| e.variable), Some(variable), "{variable}={value}");
        }
    }

    #[test]
    fn short_admin_token_is_refused() {
        let err = config(&[("NTS_ADMIN_TOKEN", "short")]).err().unwrap();
        assert_eq!(err.variable, "NTS_ADMIN_TOKEN");
        // Characters, not bytes: eleven three-byte characters are not a long token.
        assert!(config(&[("NTS_ADMIN_TOKEN", &"€".repeat(11))]).is_err());
        assert!(config(&[("NTS_ADMIN_TOKEN", &"x".repeat(31))]).is_err());
        assert!(config(&[("NTS_ADMIN_TOKEN", &"x".repeat(32))]).is_ok());
        assert!(!format!("{:?}", config(&[("NTS_ADMIN_TOKEN", &"x".repeat(40))]).unwrap().admin_token).contains("xxx"));
    }

    const STRIPE: [(&str, &str); 3] = [
        ("NTS_STRIPE_SECRET_KEY", "sk_test_secret"),
        ("NTS_STRIPE_PUBLISHABLE_KEY", "pk_test_public"),
        ("NTS_STRIPE_WEBHOOK_SECRET", "whsec_hook"),
    ];

    #[test]
    fn stripe_is_off_without_its_settings() {
        assert!(config(&[]).unwrap().stripe().is_none());
    }

    #[test]
    fn stripe_with_its_keys_uses_stripe_defaults() {
        let s = exactly(&STRIPE).unwrap().stripe().unwrap().clone();
        assert_eq!(s.api_base, DEFAULT_STRIPE_API_BASE);
        assert_eq!(s.js_url, DEFAULT_STRIPE_JS_URL);
        assert_eq!(s.timeout, Duration::from_secs(20));
        let shown = format!("{s:?}");
        assert!(!shown.contains("sk_test_secret") && !shown.contains("whsec_hook"), "{shown}");
    }

    #[test]
    fn the_api_base_gets_its_trailing_slash() {
        for base in ["http://127.0.0.1:12111", "http://127.0.0.1:12111/"] {
            let mut vars = STRIPE.to_vec();
            vars.push(("NTS_STRIPE_API_BASE", base));
            assert_eq!(exactly(&vars).unwrap().stripe().unwrap().api_base, "http://127.0.0.1:12111/");
        }
    }

    #[test]
    fn half_configured_stripe_names_what_is_missing() {
        for (i, (missing, _)) in STRIPE.iter().enumerate() {
            let mut vars = STRIPE.to_vec();
            vars.remove(i);
            assert_eq!(exactly(&vars).err().unwrap().variable, *missing);
        }
        let err = exactly(&[("NTS_STRIPE_API_BASE", "http://127.0.0.1:1")]).err().unwrap();
        assert_eq!(err.variable, "NTS_STRIPE_SECRET_KEY");
    }

    #[test]
    fn malformed_stripe_settings_name_their_variable() {
        let cases = [
            ("NTS_STRIPE_SECRET_KEY", "pk_test_swapped"),
            ("NTS_STRIPE_PUBLISHABLE_KEY", "sk_test_swapped"),
            ("NTS_STRIPE_API_BASE", "api.stripe.com"),
            ("NTS_STRIPE_JS_URL", "js.stripe.com/v3"),
            ("NTS_STRIPE_TIMEOUT_MS", "soon"),
        ];
        for (variable, value) in cases {
            let mut vars: Vec<(&str, &str)> = STRIPE.iter().filter(|(k, _)| *k != variable).copied().collect();
            vars.push((variable, value));
            assert_eq!(exactly(&vars).err().unwrap().variable, variable, "{variable}={value}");
        }
    }
}

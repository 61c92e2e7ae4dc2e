//! Settings from the environment. Every error names its variable.

use std::time::Duration;

mod mail;
mod parse;
mod payments;
#[cfg(test)]
mod tests;
mod tickets;

pub use mail::MailSettings;
pub use payments::{Payments, SimulatedFaults, StripeSettings, DEFAULT_STRIPE_API_BASE, DEFAULT_STRIPE_JS_URL};

use mail::mail_settings;
use parse::{parse, parse_bool, parse_list, parse_network, parse_origin, parse_secret};
use payments::payments;

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
    /// Where buyers open the shop, without trailing `/` (`https://tickets.example.com`,
    /// `NTS_PUBLIC_URL`): e-mail links, and where Stripe sends a buyer back after
    /// authenticating a payment. Never taken from a request's headers, which anyone can set.
    pub public_url: Option<String>,
    pub mail: MailSettings,
    /// Make ticket codes and seal the events' signing keys (`NTS_TICKET_KEY`, newest key first).
    pub ticket_keys: crate::checkin::ticket_keys::TicketKeys,
}

/// How many unpaid holds and orders may be had at once from one place, so
/// that one client cannot take a sale off the market without paying. 0 turns
/// a cap off. There is no cap per buyer e-mail: anyone can type anyone's
/// address, so such a cap locks its owner out and tells who has unpaid holds
/// (`NTS_MAX_UNPAID_PER_EMAIL` is refused, see `removed_settings`).
#[derive(Clone, Copy, Debug, Default)]
pub struct HoldCaps {
    /// Per client address (IPv6 per /64), as the rate limit sees it.
    pub per_address: u32,
    /// Per IPv6 /48 (all its /64s together): a site's or a provider's block, generous.
    pub per_ipv6_48: u32,
    /// Per IPv4 /24; off by default (carrier-grade NAT puts many buyers behind few addresses).
    pub per_ipv4_24: u32,
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
    /// Public API reads (GET, HEAD) allowed per client address and minute; 0 turns that limit off.
    pub read_rate_limit_per_minute: u32,
    pub read_rate_limit_burst: u32,
    /// An IPv6 /48 together may make this many times a client's requests
    /// (pace and burst, of each limit); 0 turns the aggregate off.
    pub rate_limit_ipv6_48_times: u32,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, reverse proxies).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins allowed to call the API from other sites; empty turns CORS off.
    pub cors_origins: Vec<String>,
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
        // Secrets are read as given (blank only when unset) so that whitespace is refused, not ignored.
        let raw = |name: &'static str| lookup(name).filter(|v| !v.is_empty());
        let admin_token = match parse_secret(raw, "NTS_ADMIN_TOKEN", MIN_ADMIN_TOKEN_LEN)? {
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
        let public_url = public_url(get)?;
        if public_url.is_none() && !simulated {
            return Err(ConfigError {
                variable: "NTS_PUBLIC_URL",
                problem: "missing: Stripe needs the shop's origin, such as https://tickets.example.com, to send \
                          buyers back to their order page after 3-D Secure"
                    .into(),
            });
        }
        let mail = mail_settings(get, raw, public_url.as_deref())?;
        let ticket_keys = tickets::ticket_keys(raw, simulated)?;
        removed_settings(get)?;
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
                per_ipv6_48: parse(get, "NTS_MAX_UNPAID_PER_IPV6_48", 1000u32, 0..=1_000_000)?,
                per_ipv4_24: parse(get, "NTS_MAX_UNPAID_PER_IPV4_24", 0u32, 0..=1_000_000)?,
            },
            demo,
            edge: EdgeConfig {
                rate_limit_per_minute: parse(get, "NTS_RATE_LIMIT_PER_MINUTE", 1200u32, 0..=1_000_000)?,
                rate_limit_burst: parse(get, "NTS_RATE_LIMIT_BURST", 600u32, 1..=1_000_000)?,
                read_rate_limit_per_minute: parse(get, "NTS_READ_RATE_LIMIT_PER_MINUTE", 6000u32, 0..=1_000_000)?,
                read_rate_limit_burst: parse(get, "NTS_READ_RATE_LIMIT_BURST", 2000u32, 1..=1_000_000)?,
                rate_limit_ipv6_48_times: parse(get, "NTS_RATE_LIMIT_IPV6_48_TIMES", 16u32, 0..=1_000_000)?,
                trusted_proxies: parse_list(get, "NTS_TRUSTED_PROXIES", parse_network)?,
                cors_origins: parse_list(get, "NTS_CORS_ORIGINS", parse_origin)?,
            },
            reconcile_interval: Duration::from_millis(parse(get, "NTS_RECONCILE_MS", 1000u64, 10..=3_600_000)?),
            payments,
            metrics_token: parse_secret(raw, "NTS_METRICS_TOKEN", MIN_METRICS_TOKEN_LEN)?
                .map(crate::metrics::MetricsToken),
            public_url,
            mail,
            ticket_keys,
        })
    }
}

/// Settings nts no longer has, refused so that nobody counts on them unawares.
fn removed_settings(get: impl Fn(&'static str) -> Option<String>) -> Result<(), ConfigError> {
    // 0 asked for what nts now does for everyone, so it is accepted.
    match get("NTS_MAX_UNPAID_PER_EMAIL") {
        Some(value) if value.trim() != "0" => Err(ConfigError {
            variable: "NTS_MAX_UNPAID_PER_EMAIL",
            problem: "removed: nobody proves an e-mail address is theirs, so a cap per address let anyone lock \
                      its owner out (holds made with it from elsewhere) and told whether it had unpaid holds, \
                      while a hoarder just types other addresses. Unpaid holds are capped per client address, \
                      IPv6 /48 and optionally IPv4 /24 instead (NTS_MAX_UNPAID_PER_ADDRESS, \
                      NTS_MAX_UNPAID_PER_IPV6_48, NTS_MAX_UNPAID_PER_IPV4_24); unset this variable"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// `NTS_PUBLIC_URL`: an origin, kept without its trailing `/`.
fn public_url(get: impl Fn(&'static str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(raw) = get("NTS_PUBLIC_URL") else { return Ok(None) };
    let url = raw.trim().trim_end_matches('/').to_owned();
    match parse_origin(&url) {
        Ok(_) => Ok(Some(url)),
        Err(_) => Err(ConfigError {
            variable: "NTS_PUBLIC_URL",
            problem: format!("expected the shop's origin such as https://tickets.example.com, got {raw:?}"),
        }),
    }
}

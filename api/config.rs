//! Settings from the environment. Every error names its variable.

use std::time::Duration;

use rand::Rng;

#[derive(Clone)]
pub struct Config {
    pub address: String,
    pub database_url: String,
    pub db_pool_size: u32,
    pub admin_token: AdminToken,
    pub hold_duration: Duration,
    pub order_duration: Duration,
    pub demo: bool,
    pub reconcile_interval: Duration,
    pub simulated: SimulatedFaults,
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

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let admin_token = match get("NTS_ADMIN_TOKEN") {
            Some(value) if value.len() < MIN_ADMIN_TOKEN_LEN => {
                return Err(ConfigError {
                    variable: "NTS_ADMIN_TOKEN",
                    problem: format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters long"),
                })
            }
            Some(value) => AdminToken { value, generated: false },
            None => AdminToken { value: crate::domain::secret::random_token(32), generated: true },
        };
        Ok(Config {
            address: get("NTS_ADDRESS").unwrap_or_else(|| "0.0.0.0:9000".into()),
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            db_pool_size: parse(get, "NTS_DB_POOL_SIZE", 16u32, 1..=1000)?,
            admin_token,
            hold_duration: Duration::from_secs(parse(get, "NTS_HOLD_SECONDS", 300u64, 1..=86_400)?),
            order_duration: Duration::from_secs(parse(get, "NTS_ORDER_SECONDS", 900u64, 1..=86_400)?),
            demo: parse_bool(get, "NTS_DEMO", true)?,
            reconcile_interval: Duration::from_millis(parse(get, "NTS_RECONCILE_MS", 1000u64, 10..=3_600_000)?),
            simulated: SimulatedFaults {
                decline_rate: parse_rate(get, "NTS_SIM_DECLINE_RATE")?,
                lost_response_rate: parse_rate(get, "NTS_SIM_LOST_RESPONSE_RATE")?,
                slow_rate: parse_rate(get, "NTS_SIM_SLOW_RATE")?,
                slow_delay: Duration::from_millis(parse(get, "NTS_SIM_SLOW_MS", 2000u64, 0..=600_000)?),
            },
        })
    }
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

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_environment() {
        let c = config(&[]).unwrap();
        assert_eq!(c.address, "0.0.0.0:9000");
        assert_eq!(c.hold_duration, Duration::from_secs(300));
        assert!(c.demo);
        assert!(c.admin_token.generated);
        assert!(c.admin_token.value.len() >= MIN_ADMIN_TOKEN_LEN);
    }

    #[test]
    fn malformed_settings_name_their_variable() {
        let err = config(&[("NTS_HOLD_SECONDS", "soon")]).err().unwrap();
        assert_eq!(err.variable, "NTS_HOLD_SECONDS");
        let err = config(&[("NTS_DEMO", "maybe")]).err().unwrap();
        assert_eq!(err.variable, "NTS_DEMO");
        let err = config(&[("NTS_SIM_DECLINE_RATE", "2")]).err().unwrap();
        assert_eq!(err.variable, "NTS_SIM_DECLINE_RATE");
    }

    #[test]
    fn short_admin_token_is_refused() {
        let err = config(&[("NTS_ADMIN_TOKEN", "short")]).err().unwrap();
        assert_eq!(err.variable, "NTS_ADMIN_TOKEN");
        assert!(!format!("{:?}", config(&[("NTS_ADMIN_TOKEN", &"x".repeat(40))]).unwrap().admin_token).contains("xxx"));
    }
}

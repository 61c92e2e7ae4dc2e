//! Reading one variable: numbers in a range, fractions, booleans, lists,
//! networks, origins. Every error names its variable.

use super::ConfigError;

pub(super) fn parse<T>(
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

pub(super) fn parse_rate(
    get: impl Fn(&'static str) -> Option<String>,
    variable: &'static str,
) -> Result<f64, ConfigError> {
    let Some(raw) = get(variable) else { return Ok(0.0) };
    match raw.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(ConfigError { variable, problem: format!("expected a fraction from 0 to 1, got {raw:?}") }),
    }
}

pub(super) fn parse_bool(
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
pub(super) fn parse_list<T>(
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

/// A secret (token, key) from `raw`, which gives `None` only for an unset or
/// empty variable. Surrounding whitespace (a secret file's trailing newline)
/// is dropped; whitespace alone or inside, or fewer than `min_chars`
/// characters, is refused.
pub(super) fn parse_secret(
    raw: impl Fn(&'static str) -> Option<String>,
    variable: &'static str,
    min_chars: usize,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = raw(variable) else { return Ok(None) };
    check_secret(value.trim(), min_chars)
        .map(|v| Some(v.to_owned()))
        .map_err(|problem| ConfigError { variable, problem })
}

/// One secret, already trimmed.
pub(super) fn check_secret(value: &str, min_chars: usize) -> Result<&str, String> {
    if value.is_empty() {
        Err("is empty (only whitespace)".into())
    } else if value.chars().any(char::is_whitespace) {
        Err("contains whitespace; a secret must be a single word".into())
    } else if value.chars().count() < min_chars {
        Err(format!("must be at least {min_chars} characters long"))
    } else {
        Ok(value)
    }
}

/// A list of secret keys, comma-separated, newest first (`NTS_MAIL_KEY`,
/// `NTS_TICKET_KEY`): each one checked as [`check_secret`].
pub(super) fn secret_list(variable: &'static str, list: &str, min_chars: usize) -> Result<Vec<String>, ConfigError> {
    list.trim()
        .split(',')
        .map(|key| check_secret(key.trim(), min_chars).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|problem| ConfigError { variable, problem: format!("each key {problem}") })
}

/// An address (`10.0.0.7`) or a network (`10.0.0.0/8`).
pub(super) fn parse_network(raw: &str) -> Result<ipnet::IpNet, String> {
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("expected IP addresses or networks such as 10.0.0.0/8, got {raw:?}"))
}

/// `scheme://host[:port]`, exactly as a browser sends it in `Origin`.
pub(super) fn parse_origin(raw: &str) -> Result<String, String> {
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

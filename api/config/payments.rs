//! How nts takes money: Stripe with its keys, or the simulated provider only when asked for.

use std::time::Duration;

use rand::Rng;

use super::parse::{parse, parse_rate};
use super::ConfigError;

/// How nts takes money. There is no default: a deployment that lost its Stripe
/// keys must not start selling tickets nobody pays for.
#[derive(Clone, Debug)]
pub enum Payments {
    Stripe(StripeSettings),
    /// No real money moves: only when asked for (`NTS_PAYMENTS=simulated` or `nts --demo`).
    Simulated(SimulatedFaults),
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
    /// How long one call to Stripe may take before its outcome counts as
    /// unknown; at most 60 s, which `payments::attempt::IN_FLIGHT_UNTIL` counts on.
    pub timeout: Duration,
    /// The same for one page of a listing, which only background work (the
    /// reconciler's look-ups, the audit) asks for and which grows with the
    /// account's history.
    pub list_timeout: Duration,
    /// How long an attempt whose PaymentIntent nts does not know is looked
    /// for before a listing without it fails the attempt
    /// (`NTS_STRIPE_LOOK_FOR_SECS`): 48 h, twice the time Stripe keeps a
    /// key's answer. Shorter only against a stand-in for Stripe.
    pub look_for: Duration,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("publishable_key", &self.publishable_key)
            .field("api_base", &self.api_base)
            .field("js_url", &self.js_url)
            .field("timeout", &self.timeout)
            .field("look_for", &self.look_for)
            .finish_non_exhaustive()
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

pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com/";
/// `StripeSettings::look_for`'s default and floor against Stripe itself.
const LOOK_FOR_SECS: u64 = 48 * 3600;
pub const DEFAULT_STRIPE_JS_URL: &str = "https://js.stripe.com/v3/";

/// The simulated provider's fault knobs: accepted only with simulated payments.
pub(super) const SIMULATED_FAULTS: [&str; 4] =
    ["NTS_SIM_DECLINE_RATE", "NTS_SIM_LOST_RESPONSE_RATE", "NTS_SIM_SLOW_RATE", "NTS_SIM_SLOW_MS"];

/// Stripe when its keys are set; simulated payments only when asked for; otherwise nothing starts.
pub(super) fn payments(get: impl Fn(&'static str) -> Option<String> + Copy) -> Result<Payments, ConfigError> {
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
    const ALL: [&str; 8] = [
        "NTS_STRIPE_SECRET_KEY",
        "NTS_STRIPE_PUBLISHABLE_KEY",
        "NTS_STRIPE_WEBHOOK_SECRET",
        "NTS_STRIPE_API_BASE",
        "NTS_STRIPE_JS_URL",
        "NTS_STRIPE_TIMEOUT_MS",
        "NTS_STRIPE_LIST_TIMEOUT_MS",
        "NTS_STRIPE_LOOK_FOR_SECS",
    ];
    if ALL.iter().all(|v| get(v).is_none()) {
        return Ok(None);
    }
    let required = |variable: &'static str, prefixes: &[&str]| -> Result<String, ConfigError> {
        let value = get(variable).map(|v| v.trim().to_owned()).ok_or_else(|| ConfigError {
            variable,
            problem: "missing: Stripe needs NTS_STRIPE_SECRET_KEY, NTS_STRIPE_PUBLISHABLE_KEY and NTS_STRIPE_WEBHOOK_SECRET together".into(),
        })?;
        if value.chars().any(char::is_whitespace) {
            return Err(ConfigError { variable, problem: "contains whitespace; a key must be a single word".into() });
        }
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
    let look_for = parse(get, "NTS_STRIPE_LOOK_FOR_SECS", LOOK_FOR_SECS, 300..=30 * 86_400)?;
    if look_for < LOOK_FOR_SECS && api_base == DEFAULT_STRIPE_API_BASE {
        return Err(ConfigError {
            variable: "NTS_STRIPE_LOOK_FOR_SECS",
            problem: format!(
                "below {LOOK_FOR_SECS} s (48 h) only against a stand-in for Stripe (NTS_STRIPE_API_BASE): Stripe keeps \
                 a key's answer for 24 h, and a PaymentIntent given up on sooner may still turn out charged"
            ),
        });
    }
    Ok(Some(StripeSettings {
        secret_key: required("NTS_STRIPE_SECRET_KEY", &["sk_", "rk_"])?,
        publishable_key: required("NTS_STRIPE_PUBLISHABLE_KEY", &["pk_"])?,
        webhook_secret: required("NTS_STRIPE_WEBHOOK_SECRET", &[])?,
        api_base,
        js_url: url("NTS_STRIPE_JS_URL", DEFAULT_STRIPE_JS_URL)?,
        timeout: Duration::from_millis(parse(get, "NTS_STRIPE_TIMEOUT_MS", 20_000u64, 100..=60_000)?),
        list_timeout: Duration::from_millis(parse(get, "NTS_STRIPE_LIST_TIMEOUT_MS", 60_000u64, 100..=600_000)?),
        look_for: Duration::from_secs(look_for),
    }))
}

impl SimulatedFaults {
    /// Rolls the dice for one provider call.
    pub fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && rand::thread_rng().gen_bool(rate.min(1.0))
    }
}

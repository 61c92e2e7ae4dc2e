//! `--gateway stripe`: the nts processes pay through localstripe behind the
//! strict fault proxy (tests/stripe/emulator.py: answers stored under the
//! idempotency key for 24 hours, 500s included, keys compared on the raw
//! body; refunds pending first; single-use PaymentMethods; webhooks delivered
//! twice, late and out of order, retried until answered, or minutes late, or
//! never). The proxy loses answers, answers late, stores 500s, answers 429
//! (rate_limit, lock_timeout) at random and in storms, and holds the whole
//! account to Stripe's rate limit. The money checks read Stripe's side
//! straight from localstripe, without the proxy.

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::settings::{Faults, StripeFaults, Webhooks};
use crate::stats::Stats;

pub const WEBHOOK_SECRET: &str = "whsec_nts_torture";

/// How long nts looks for the PaymentIntent of an attempt whose creation
/// went unanswered before a listing without it fails the attempt
/// (`NTS_STRIPE_LOOK_FOR_SECS`; 48 h against Stripe itself): short enough
/// that every such attempt ends within a run, so that none is left open.
pub const LOOK_FOR_SECS: u64 = 300;

/// Attempts nts gave up looking for: failed as never made by Stripe (a
/// refusal before it acted, or no PaymentIntent found after
/// [`LOOK_FOR_SECS`]), so no PaymentIntent is known for them. The checker
/// verifies each against Stripe itself.
pub const GIVEN_UP: &str =
    "provider = 'stripe' AND provider_ref IS NULL AND status = 'failed' AND failure_code = 'provider_error'";

/// How long a 429 storm lasts, and how much of the traffic it refuses.
const STORM: Duration = Duration::from_secs(2);
const STORM_RATE_LIMIT: f64 = 0.9;

/// The proxy's random faults, outside and inside a 429 storm.
pub fn chaos(faults: &Faults, stripe: &StripeFaults, storm: bool) -> Value {
    json!({
        "lose": faults.lost_rate, "timeout": faults.slow_rate, "seconds": faults.slow_ms as f64 / 1000.0,
        "error": stripe.stored_error_rate / 2.0, "error_after": stripe.stored_error_rate / 2.0,
        "rate_limit": if storm { STORM_RATE_LIMIT } else { stripe.rate_limit_rate },
        "lock_timeout": stripe.lock_timeout_rate,
    })
}

/// How each mode delivers Stripe's events (`None`: no endpoint registered).
pub fn webhook_delivery(mode: Webhooks) -> Option<Value> {
    match mode {
        Webhooks::On => Some(json!({"duplicate": true, "min_delay_ms": 0, "max_delay_ms": 1500})),
        Webhooks::Late => Some(json!({"duplicate": true, "min_delay_ms": 60_000, "max_delay_ms": 180_000})),
        Webhooks::Off => None,
    }
}

/// 429 storms until `stop`: every ~`every` (from the seed), most calls are
/// answered 429 `rate_limit` for [`STORM`].
pub async fn storms(
    rig: Arc<StripeRig>,
    base: Value,
    storm: Value,
    every: Duration,
    seed: u64,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0429_5701_2A);
    loop {
        let calm = every.mul_f64(rng.gen_range(0.5..1.5));
        tokio::select! {
            _ = tokio::time::sleep(calm) => {}
            _ = stop.changed() => return,
        }
        if rig.configure("chaos", storm.clone()).await.is_ok() {
            stats.storms.bump();
        }
        tokio::select! {
            _ = tokio::time::sleep(STORM) => {}
            _ = stop.changed() => {}
        }
        if let Err(e) = rig.configure("chaos", base.clone()).await {
            eprintln!("  ! ending a 429 storm: {e:#}");
        }
        if *stop.borrow() {
            return;
        }
    }
}

pub struct StripeRig {
    child: Child,
    pub stripe_url: String,
    pub proxy_url: String,
    http: reqwest::Client,
}

/// Stripe's side, as the checks need it.
pub struct Money {
    pub double_charges: i64,
    pub charges_without_paid_order: i64,
    pub paid_without_charge: i64,
    pub wrong_amounts: i64,
    pub payments_disagree: i64,
    /// PaymentIntent statuses (and refunds) at Stripe, for the report.
    pub intents: Vec<(String, i64)>,
    /// Attempts given up on (see [`GIVEN_UP`]), and those of them Stripe
    /// has a PaymentIntent for after all (each one a failure).
    pub given_up: i64,
    pub given_up_at_stripe: i64,
}

impl StripeRig {
    /// Starts the emulator and the proxy from `dir` (tests/stripe, set up by its setup.sh).
    pub fn start(dir: &Path, log: &Path) -> anyhow::Result<Self> {
        let (child, ports) = crate::helper_server::start(dir, "--stripe-dir", "emulator.py", log)?;
        Ok(StripeRig {
            child,
            stripe_url: format!("http://127.0.0.1:{}", ports["stripe"]),
            proxy_url: format!("http://127.0.0.1:{}", ports["proxy"]),
            http: reqwest::Client::new(),
        })
    }

    /// `POST /_proxy/{what}`: "chaos", "webhooks", "refunds".
    pub async fn configure(&self, what: &str, spec: Value) -> anyhow::Result<()> {
        let res = self.http.post(format!("{}/_proxy/{what}", self.proxy_url)).json(&spec).send().await?;
        anyhow::ensure!(res.status().is_success(), "configuring the proxy's {what}: {}", res.status());
        Ok(())
    }

    /// Deliveries of webhooks still under way (waiting, or being retried).
    pub async fn webhooks_pending(&self) -> anyhow::Result<i64> {
        let state: Value = self.http.get(format!("{}/_proxy/webhooks", self.proxy_url)).send().await?.json().await?;
        state["pending"].as_i64().ok_or_else(|| anyhow::anyhow!("the emulator did not say what is pending: {state}"))
    }

    /// Waits until every webhook delivery is over; answers how long that took, or `None` at the timeout.
    pub async fn drain_webhooks(&self, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut last_print = Instant::now();
        loop {
            match self.webhooks_pending().await {
                Ok(0) => return Some(started.elapsed()),
                Ok(n) if last_print.elapsed() >= Duration::from_secs(15) => {
                    println!("  waiting for {n} late webhook deliveries");
                    last_print = Instant::now();
                }
                Ok(_) => {}
                Err(e) => println!("  cannot ask the emulator about its webhooks ({e:#})"),
            }
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub async fn register_webhook(&self, id: &str, url: &str) -> anyhow::Result<()> {
        let res = self
            .http
            .post(format!("{}/_config/webhooks/{id}", self.stripe_url))
            .form(&[("url", url), ("secret", WEBHOOK_SECRET)])
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "registering a webhook: {}", res.status());
        Ok(())
    }

    async fn list_all(&self, what: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/{what}?limit=100", self.stripe_url);
            if let Some(a) = &after {
                url.push_str(&format!("&starting_after={a}"));
            }
            let page: Value = self.http.get(url).bearer_auth("sk_test_torture").send().await?.json().await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            after = data.last().and_then(|o| o["id"].as_str()).map(str::to_owned);
            all.extend(data);
            if page["has_more"] != json!(true) || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Compares Stripe's PaymentIntents and refunds with nts's orders and payments.
    pub async fn money(&self, pool: &PgPool) -> anyhow::Result<Money> {
        let intents = self.list_all("payment_intents").await?;
        let refunds = self.list_all("refunds").await?;
        let mut refunded: HashMap<String, i64> = HashMap::new();
        for r in refunds.iter().filter(|r| r["status"] == "succeeded") {
            if let Some(pi) = r["payment_intent"].as_str() {
                *refunded.entry(pi.to_owned()).or_default() += r["amount"].as_i64().unwrap_or(0);
            }
        }
        struct Pi {
            order: Option<Uuid>,
            payment: Option<Uuid>,
            amount: i64,
            charged: bool,
            refunded: bool,
            status: String,
        }
        let pis: HashMap<String, Pi> = intents
            .iter()
            .map(|pi| {
                let id = pi["id"].as_str().unwrap_or_default().to_owned();
                let amount = pi["amount"].as_i64().unwrap_or(0);
                let succeeded = pi["status"] == "succeeded";
                let back = refunded.get(&id).copied().unwrap_or(0) >= amount;
                let meta = |k: &str| pi["metadata"][k].as_str().and_then(|v| v.parse().ok());
                let status = pi["status"].as_str().unwrap_or_default().to_owned();
                (
                    id,
                    Pi {
                        order: meta("nts_order_id"),
                        payment: meta("nts_payment_id"),
                        amount,
                        charged: succeeded && !back,
                        refunded: succeeded && back,
                        status,
                    },
                )
            })
            .collect();
        let orders: HashMap<Uuid, (String, i64)> =
            sqlx::query_as::<_, (Uuid, String, i64)>("SELECT id, status::text, amount_minor FROM orders")
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|(id, status, amount)| (id, (status, amount)))
                .collect();
        let mut charges_per_order: HashMap<Uuid, i64> = HashMap::new();
        let (mut without_paid, mut wrong_amounts) = (0, 0);
        for pi in pis.values() {
            let order = pi.order.and_then(|o| orders.get(&o));
            if pi.charged {
                *charges_per_order.entry(pi.order.unwrap_or_default()).or_default() += 1;
                if order.is_none_or(|(status, _)| status != "paid") {
                    without_paid += 1;
                }
            }
            if order.is_some_and(|(_, amount)| *amount != pi.amount) {
                wrong_amounts += 1;
            }
        }
        let double_charges = charges_per_order.values().map(|n| (n - 1).max(0)).sum();
        let paid_without_charge =
            orders.iter().filter(|(id, (status, _))| status == "paid" && !charges_per_order.contains_key(id)).count()
                as i64;
        let by_payment: HashMap<Uuid, &Pi> = pis.values().filter_map(|pi| Some((pi.payment?, pi))).collect();
        let payments = sqlx::query_as::<_, (Uuid, String, Option<String>)>(
            "SELECT id, status::text, provider_ref FROM payments WHERE provider = 'stripe'",
        )
        .fetch_all(pool)
        .await?;
        let given_up: Vec<Uuid> =
            sqlx::query_scalar(&format!("SELECT id FROM payments WHERE {GIVEN_UP}")).fetch_all(pool).await?;
        let given_up_at_stripe = given_up.iter().filter(|id| by_payment.contains_key(id)).count() as i64;
        let payments_disagree = payments
            .iter()
            .filter(|(id, status, provider_ref)| {
                let pi = provider_ref.as_ref().and_then(|r| pis.get(r)).or_else(|| by_payment.get(id).copied());
                let ok = match status.as_str() {
                    "succeeded" => pi.is_some_and(|p| p.charged),
                    "refunded" => pi.is_some_and(|p| p.refunded),
                    "failed" | "canceled" => pi.is_none_or(|p| !p.charged && !p.refunded),
                    _ => false,
                };
                !ok
            })
            .count() as i64;
        let mut counts: HashMap<String, i64> = HashMap::new();
        for pi in pis.values() {
            let label = if pi.refunded { format!("{}, refunded", pi.status) } else { pi.status.clone() };
            *counts.entry(label).or_default() += 1;
        }
        let mut intents: Vec<(String, i64)> = counts.into_iter().collect();
        intents.sort();
        Ok(Money {
            double_charges,
            charges_without_paid_order: without_paid,
            paid_without_charge,
            wrong_amounts,
            payments_disagree,
            intents,
            given_up: given_up.len() as i64,
            given_up_at_stripe,
        })
    }
}

impl Drop for StripeRig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

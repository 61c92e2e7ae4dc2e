//! `--gateway stripe`: the nts processes pay through localstripe behind the
//! strict fault proxy (tests/stripe/emulator.py: answers stored under the
//! idempotency key for 24 hours, 500s included, keys compared on the raw
//! body; refunds pending first; webhooks delivered twice, late and out of
//! order, retried until answered). The proxy loses answers, answers late,
//! stores 500s and answers 429 at random. The money checks read Stripe's side
//! straight from localstripe, without the proxy.

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

pub const WEBHOOK_SECRET: &str = "whsec_nts_torture";

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
        })
    }
}

impl Drop for StripeRig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

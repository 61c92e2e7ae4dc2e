//! The buyers' HTTP client: behaves like a browser behind a load balancer.
//!
//! Retry policy, which decides what counts as a 5xx violation:
//! - no answer (timeout, refused or reset connection, truncated body): retried
//!   at once on another instance with the same `Idempotency-Key`;
//! - 503 with `Retry-After` (database or provider unavailable): retried after
//!   the advertised delay and counted as a *retried 503*, unless the same call
//!   is still answered 503 after [`UNAVAILABLE_BUDGET`], which is a violation;
//! - any other 5xx (500, 502, 504, a 503 without `Retry-After`): a violation,
//!   then retried like a lost answer (the server does not store 5xx answers
//!   under an idempotency key, so a retry runs the request again);
//! - 409 `idempotency_key_in_use` (the first request with the key is still
//!   running, or died with its instance): retried after a short pause;
//! - every other answer goes back to the buyer.
//!
//! A call gives up after [`PATIENCE`]; a buyer whose call gave up walks away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::Rng;
use reqwest::header::RETRY_AFTER;
use reqwest::Method;
use serde_json::Value;

use crate::stats::Stats;

/// The server takes over a key whose request died with its instance once that
/// instance's lease runs out (about 2 s); with kills every few seconds the
/// request that takes over can die too, and a slow provider call keeps its key in use.
const PATIENCE: Duration = Duration::from_secs(150);
/// How long a call may keep getting 503s before that counts as a failure.
pub const UNAVAILABLE_BUDGET: Duration = Duration::from_secs(30);

pub struct Api {
    http: reqwest::Client,
    bases: Vec<String>,
    stats: Arc<Stats>,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub code: String,
    pub body: Value,
}

impl Answer {
    pub fn is(&self, status: u16, code: &str) -> bool {
        self.status == status && self.code == code
    }

    pub fn str(&self, pointer: &str) -> Option<&str> {
        self.body.pointer(pointer).and_then(Value::as_str)
    }
}

/// One request as the buyer means it; retries resend it unchanged.
pub struct Request<'a> {
    pub method: Method,
    pub path: String,
    pub bearer: Option<&'a str>,
    pub key: Option<String>,
    pub body: Option<Value>,
}

impl<'a> Request<'a> {
    pub fn get(path: String, bearer: Option<&'a str>) -> Self {
        Request { method: Method::GET, path, bearer, key: None, body: None }
    }

    pub fn delete(path: String, bearer: &'a str) -> Self {
        Request { method: Method::DELETE, path, bearer: Some(bearer), key: None, body: None }
    }

    pub fn post(path: String, bearer: Option<&'a str>, key: String, body: Option<Value>) -> Self {
        Request { method: Method::POST, path, bearer, key: Some(key), body }
    }
}

impl Api {
    pub fn new(ports: &[u16], timeout: Duration, stats: Arc<Stats>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500).min(timeout))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        let bases = ports.iter().map(|p| format!("http://127.0.0.1:{p}/api/v1")).collect();
        Ok(Api { http, bases, stats })
    }

    /// `GET /admin/payments/audit` on the first instance: nts's own comparison
    /// with the provider. Answers the number of mismatches and what they are.
    pub async fn payments_audit(&self, admin_token: &str) -> anyhow::Result<(i64, String)> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let api = nts_testkit::Client::new(http, self.bases[0].trim_end_matches("/api/v1"), admin_token);
        let report = api.payments_audit().await.context("the payments audit")?;
        let kinds: Vec<String> = report
            .mismatches
            .iter()
            .take(5)
            .map(|m| format!("{} {:?}", serde_json::to_string(&m.kind).unwrap_or_default(), m.detail))
            .collect();
        Ok((report.mismatches.len() as i64, kinds.join("; ")))
    }

    /// Sends `req` to random instances until it gets an answer the buyer must
    /// act on; `None` if it never did within the client's patience.
    pub async fn call(&self, rng: &mut StdRng, req: &Request<'_>) -> Option<Answer> {
        let started = Instant::now();
        let mut unavailable_since: Option<Instant> = None;
        let mut failed_on: Option<usize> = None;
        let mut first = true;
        loop {
            if started.elapsed() > PATIENCE {
                self.stats.gave_up.bump();
                self.stats.sample(format!("gave up after {}s: {} {}", PATIENCE.as_secs(), req.method, req.path));
                return None;
            }
            let instance = self.pick(rng, failed_on);
            if !first && req.key.is_some() {
                self.stats.same_key_retries.bump();
            }
            first = false;
            self.stats.requests.bump();
            let answer = match self.send(instance, req).await {
                Ok(a) => a,
                Err(e) => {
                    if e.is_timeout() {
                        self.stats.timeouts.bump();
                    } else {
                        self.stats.connection_errors.bump();
                    }
                    failed_on = Some(instance);
                    pause(rng, 20..200).await;
                    continue;
                }
            };
            let (answer, retry_after, replayed) = answer;
            if replayed {
                self.stats.replays.bump();
            }
            if answer.status == 503 && retry_after.is_some() {
                let since = *unavailable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > UNAVAILABLE_BUDGET {
                    self.stats.bad_5xx.bump();
                    self.stats.sample(format!(
                        "still 503 after {}s: {} {} -> {}",
                        UNAVAILABLE_BUDGET.as_secs(),
                        req.method,
                        req.path,
                        answer.body
                    ));
                    unavailable_since = None;
                } else {
                    self.stats.retried_503(&answer.code);
                }
                failed_on = Some(instance);
                let wait = retry_after.unwrap_or(1).clamp(1, 5);
                tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(rng.gen_range(0..300))).await;
                continue;
            }
            unavailable_since = None;
            if answer.status >= 500 {
                self.stats.bad_5xx.bump();
                self.stats.sample(format!("{} {} {} -> {}", answer.status, req.method, req.path, answer.body));
                failed_on = Some(instance);
                pause(rng, 100..500).await;
                continue;
            }
            if answer.is(409, "idempotency_key_in_use") {
                self.stats.key_in_use.bump();
                pause(rng, 300..900).await;
                continue;
            }
            self.stats.took(started.elapsed(), || {
                format!("{} {} -> {} {}", req.method, req.path, answer.status, answer.code)
            });
            return Some(answer);
        }
    }

    fn pick(&self, rng: &mut StdRng, avoid: Option<usize>) -> usize {
        let n = self.bases.len();
        match avoid {
            Some(bad) if n > 1 => (bad + rng.gen_range(1..n)) % n,
            _ => rng.gen_range(0..n),
        }
    }

    /// One HTTP exchange: the answer, its `Retry-After` seconds, whether it was a replay.
    async fn send(&self, instance: usize, req: &Request<'_>) -> reqwest::Result<(Answer, Option<u64>, bool)> {
        let mut r = self.http.request(req.method.clone(), format!("{}{}", self.bases[instance], req.path));
        if let Some(b) = req.bearer {
            r = r.bearer_auth(b);
        }
        if let Some(k) = &req.key {
            r = r.header("Idempotency-Key", k);
        }
        if let Some(b) = &req.body {
            r = r.json(b);
        }
        let res = r.send().await?;
        let status = res.status().as_u16();
        let retry_after = res.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse().ok());
        let replayed = res.headers().contains_key("idempotent-replayed");
        let body: Value = serde_json::from_slice(&res.bytes().await?).unwrap_or(Value::Null);
        let code = body.get("code").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok((Answer { status, code, body }, retry_after, replayed))
    }
}

pub async fn pause(rng: &mut StdRng, millis: std::ops::Range<u64>) {
    tokio::time::sleep(Duration::from_millis(rng.gen_range(millis))).await;
}

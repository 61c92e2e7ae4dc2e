//! The virtual clients: each one loops over its mode's steps on its own
//! keep-alive connection until the ticket type is sold out or time is up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::http::{Conn, Reply};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Holds of `quantity` until sold out.
    Holds,
    /// Hold → checkout → simulated confirm → order paid, until sold out.
    Purchase,
    /// `reads_per_hold` reads of the event page, then a hold, until sold out.
    Mixed,
    /// Holds of 2–3 ticket types at once (`{"lines": [...]}`, `quantity` seats
    /// of each), always with a fresh `Idempotency-Key`, until one is sold out.
    MixedLines,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "holds" => Some(Mode::Holds),
            "purchase" => Some(Mode::Purchase),
            "mixed" => Some(Mode::Mixed),
            "mixed-lines" => Some(Mode::MixedLines),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Holds => "holds",
            Mode::Purchase => "purchase",
            Mode::Mixed => "mixed",
            Mode::MixedLines => "mixed-lines",
        }
    }

    /// How many ticket types the bench event has in this mode.
    pub fn ticket_types(self) -> usize {
        match self {
            Mode::MixedLines => 3,
            _ => 1,
        }
    }
}

/// A mode, with or without a fresh `Idempotency-Key` on every POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub mode: Mode,
    pub keyed: bool,
}

impl Run {
    /// `holds`, `purchase`, `mixed`, each optionally with `+keys`; `mixed-lines`
    /// (always keyed, `mixed-lines+keys` is the same).
    pub fn parse(s: &str) -> Option<Self> {
        let run = match s.strip_suffix("+keys") {
            Some(m) => Mode::parse(m).map(|mode| Run { mode, keyed: true }),
            None => Mode::parse(s).map(|mode| Run { mode, keyed: false }),
        }?;
        Some(Run { keyed: run.keyed || run.mode == Mode::MixedLines, ..run })
    }

    pub fn label(self) -> String {
        let keys = if self.keyed && self.mode != Mode::MixedLines { "+keys" } else { "" };
        format!("{}{keys}", self.mode.as_str())
    }
}

/// A keyed POST and the answer it got, to be replayed after the run.
pub struct KeyedAnswer {
    pub path: String,
    pub bearer: Option<String>,
    pub key: String,
    pub body: Option<Bytes>,
    pub status: StatusCode,
    pub answer: Bytes,
}

pub struct Plan {
    pub mode: Mode,
    pub event_id: Uuid,
    /// The event's ticket types, in order; the single-type modes hold the first.
    pub ticket_types: Vec<Uuid>,
    pub quantity: i64,
    pub reads_per_hold: u32,
    /// Send a fresh `Idempotency-Key` with every POST, as the pages do.
    pub idempotency_keys: bool,
    /// Stop here even if seats are left.
    pub deadline: Instant,
}

/// What one client saw.
#[derive(Default)]
pub struct Tally {
    /// Holds the server acknowledged (201), by id.
    pub holds: Vec<Uuid>,
    /// Seats in the acknowledged holds, by ticket type.
    pub seats: BTreeMap<Uuid, i64>,
    /// Ticket types a `sold_out` answer named (its `lines`, or the one type held).
    pub sold_out_types: BTreeSet<Uuid>,
    /// Orders the server reported paid.
    pub paid_orders: Vec<Uuid>,
    pub hold_latency: Vec<u32>,
    pub read_latency: Vec<u32>,
    pub purchase_latency: Vec<u32>,
    /// Every answer by status and error code (`""` for successes).
    pub answers: BTreeMap<(u16, String), u64>,
    /// Answers that should not happen (5xx, unexpected 4xx, broken connections), with an example each.
    pub errors: BTreeMap<String, (u64, String)>,
    pub saw_sold_out: bool,
    pub finished: Option<Instant>,
    /// Keyed POSTs that got an answer (not a 5xx), with it.
    pub keyed: Vec<KeyedAnswer>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.holds.extend(other.holds);
        for (t, n) in other.seats {
            *self.seats.entry(t).or_default() += n;
        }
        self.sold_out_types.extend(other.sold_out_types);
        self.paid_orders.extend(other.paid_orders);
        self.hold_latency.extend(other.hold_latency);
        self.read_latency.extend(other.read_latency);
        self.purchase_latency.extend(other.purchase_latency);
        for (k, n) in other.answers {
            *self.answers.entry(k).or_default() += n;
        }
        for (k, (n, example)) in other.errors {
            self.errors.entry(k).or_insert((0, example)).0 += n;
        }
        self.saw_sold_out |= other.saw_sold_out;
        self.keyed.extend(other.keyed);
        self.finished = self.finished.max(other.finished);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }
}

#[derive(Deserialize)]
struct Created {
    id: Uuid,
    secret: Option<String>,
}

#[derive(Deserialize)]
struct Checkout {
    order: Created,
    payment: Option<Created>,
}

#[derive(Deserialize)]
struct Status {
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
}

/// A 409 `sold_out` answer to a hold: the lines that did not fit.
#[derive(Deserialize)]
struct SoldOut {
    #[serde(default)]
    lines: Option<Vec<SoldOutLine>>,
}

#[derive(Deserialize)]
struct SoldOutLine {
    ticket_type_id: Uuid,
    requested: i64,
    available: i64,
}

/// One step's outcome.
enum Step<T> {
    Ok(T),
    SoldOut,
    Failed,
}

/// A hold request body, prepared once, and the seats it asks for by type.
struct HoldBody {
    body: Bytes,
    lines: Vec<(Uuid, i64)>,
}

/// A connected client, ready to start.
pub struct Client {
    conn: Conn,
    /// The hold bodies this client sends in turn (one, except in mixed-lines mode).
    hold_bodies: Vec<HoldBody>,
    next_body: usize,
    tally: Tally,
    plan: Arc<Plan>,
}

/// The hold bodies of client `i`: one single-type body, or in mixed-lines mode
/// every set of 2 or 3 of the event's first three types (each type in three of
/// the four, so they sell out together), the lines in an order of the client's
/// own, starting at a different set per client.
fn hold_bodies(plan: &Plan, i: usize) -> anyhow::Result<Vec<HoldBody>> {
    let buyer = |lines: &[(Uuid, i64)]| -> anyhow::Result<HoldBody> {
        let body = match (plan.mode, lines) {
            (Mode::MixedLines, _) => serde_json::json!({
                "lines": lines.iter().map(|(t, q)| serde_json::json!({"ticket_type_id": t, "quantity": q}))
                    .collect::<Vec<_>>(),
                "name": format!("Bench Buyer {i}"),
                "email": format!("buyer{i}@example.com"),
            }),
            (_, [(t, q)]) => serde_json::json!({
                "ticket_type_id": t,
                "quantity": q,
                "name": format!("Bench Buyer {i}"),
                "email": format!("buyer{i}@example.com"),
            }),
            _ => anyhow::bail!("a single-type mode with {} lines", lines.len()),
        };
        Ok(HoldBody { body: serde_json::to_vec(&body)?.into(), lines: lines.to_vec() })
    };
    let q = plan.quantity;
    match (plan.mode, plan.ticket_types.as_slice()) {
        (Mode::MixedLines, [a, b, c, ..]) => {
            let sets = [vec![*a, *b], vec![*a, *c], vec![*b, *c], vec![*a, *b, *c]];
            (0..sets.len())
                .map(|k| {
                    let mut set = sets[(i + k) % sets.len()].clone();
                    let turn = i % set.len();
                    set.rotate_left(turn);
                    buyer(&set.into_iter().map(|t| (t, q)).collect::<Vec<_>>())
                })
                .collect()
        }
        (Mode::MixedLines, types) => anyhow::bail!("mixed-lines needs 3 ticket types, the event has {}", types.len()),
        (_, [first, ..]) => Ok(vec![buyer(&[(*first, q)])?]),
        (_, []) => anyhow::bail!("the event has no ticket type"),
    }
}

/// Connects `clients` clients, spread over `addrs` in turn.
pub async fn connect(plan: &Arc<Plan>, addrs: &[SocketAddr], clients: usize) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut conn = Conn::new(addrs[i % addrs.len()]);
        conn.connect().await?;
        out.push(Client {
            conn,
            hold_bodies: hold_bodies(plan, i)?,
            next_body: 0,
            tally: Tally::default(),
            plan: plan.clone(),
        });
    }
    Ok(out)
}

/// Consecutive failures after which a client gives up (the server is down, say).
const MAX_CONSECUTIVE_FAILURES: u32 = 100;

impl Client {
    pub async fn run(mut self) -> Tally {
        let plan = self.plan.clone();
        let event_path = format!("/api/v1/events/{}", plan.event_id);
        let hold_path = format!("{event_path}/holds");
        let mut failures = 0;
        while Instant::now() < plan.deadline && failures < MAX_CONSECUTIVE_FAILURES {
            if plan.mode == Mode::Mixed {
                for _ in 0..plan.reads_per_hold {
                    let t = Instant::now();
                    let ok = self
                        .call::<serde::de::IgnoredAny>(Method::GET, &event_path, None, None, StatusCode::OK)
                        .await
                        .is_some();
                    self.tally.read_latency.push(micros(t));
                    if !ok {
                        failures += 1;
                    }
                }
            }
            let started = Instant::now();
            let hold = self.hold(&hold_path).await;
            self.tally.hold_latency.push(micros(started));
            let hold = match hold {
                Step::Ok(h) => h,
                Step::SoldOut => {
                    self.tally.saw_sold_out = true;
                    break;
                }
                Step::Failed => {
                    failures += 1;
                    continue;
                }
            };
            self.tally.holds.push(hold.id);
            for &(t, q) in &self.hold_bodies[self.next_body].lines {
                *self.tally.seats.entry(t).or_default() += q;
            }
            self.next_body = (self.next_body + 1) % self.hold_bodies.len();
            if plan.mode == Mode::Purchase {
                match self.purchase(hold).await {
                    Some(order) => {
                        self.tally.paid_orders.push(order);
                        self.tally.purchase_latency.push(micros(started));
                    }
                    None => {
                        failures += 1;
                        continue;
                    }
                }
            }
            failures = 0;
        }
        self.tally.finished = Some(Instant::now());
        self.tally
    }

    async fn hold(&mut self, path: &str) -> Step<Created> {
        let body = self.hold_bodies[self.next_body].body.clone();
        let Some((status, bytes)) = self.raw(Method::POST, path, None, Some(body)).await else { return Step::Failed };
        match status {
            StatusCode::CREATED => match serde_json::from_slice::<Created>(&bytes) {
                Ok(c) => Step::Ok(c),
                Err(e) => {
                    self.error("201 hold without an id".into(), e.to_string());
                    Step::Failed
                }
            },
            StatusCode::CONFLICT if error_code(&bytes) == "sold_out" => self.sold_out(&bytes),
            _ => {
                self.unexpected(status, &bytes);
                Step::Failed
            }
        }
    }

    /// A `sold_out` answer must name only lines of the request, each with what
    /// was asked and fewer seats available; a multi-line request's must name some.
    fn sold_out(&mut self, bytes: &Bytes) -> Step<Created> {
        let sent = self.hold_bodies[self.next_body].lines.clone();
        let named = match serde_json::from_slice::<SoldOut>(bytes) {
            Ok(SoldOut { lines: Some(lines) }) => lines,
            Ok(SoldOut { lines: None }) if sent.len() == 1 => {
                self.tally.sold_out_types.insert(sent[0].0);
                return Step::SoldOut;
            }
            _ => {
                self.error("409 sold_out without its lines".into(), String::from_utf8_lossy(bytes).into_owned());
                return Step::Failed;
            }
        };
        let fits = |l: &SoldOutLine| {
            sent.iter().any(|&(t, q)| t == l.ticket_type_id && q == l.requested)
                && (0..l.requested).contains(&l.available)
        };
        if named.is_empty() || !named.iter().all(fits) {
            self.error("409 sold_out naming wrong lines".into(), String::from_utf8_lossy(bytes).into_owned());
            return Step::Failed;
        }
        self.tally.sold_out_types.extend(named.iter().map(|l| l.ticket_type_id));
        Step::SoldOut
    }

    /// Checkout, pay with the simulated provider, and see the order paid.
    async fn purchase(&mut self, hold: Created) -> Option<Uuid> {
        let hold_secret = hold.secret?;
        let path = format!("/api/v1/holds/{}/checkout", hold.id);
        let checkout: Checkout = self.call(Method::POST, &path, Some(&hold_secret), None, StatusCode::CREATED).await?;
        let order_secret = checkout.order.secret?;
        let order_path = format!("/api/v1/orders/{}", checkout.order.id);
        let payment = match checkout.payment {
            Some(p) => p,
            None => {
                let path = format!("{order_path}/payments");
                self.call(
                    Method::POST,
                    &path,
                    Some(&order_secret),
                    Some(Bytes::from_static(b"{}")),
                    StatusCode::CREATED,
                )
                .await?
            }
        };
        let path = format!("/api/v1/payments/simulated/{}/confirm", payment.id);
        let succeeded = Bytes::from_static(br#"{"outcome":"succeeded"}"#);
        let _: Status = self.call(Method::POST, &path, Some(&order_secret), Some(succeeded), StatusCode::OK).await?;
        let order: Status = self.call(Method::GET, &order_path, Some(&order_secret), None, StatusCode::OK).await?;
        if order.status != "paid" {
            self.error(format!("order {} after a successful payment", order.status), order_path);
            return None;
        }
        Some(checkout.order.id)
    }

    /// A request whose only good answer is `expect` with a JSON body of type `T`.
    async fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Bytes>,
        expect: StatusCode,
    ) -> Option<T> {
        let (status, bytes) = self.raw(method, path, bearer, body).await?;
        if status != expect {
            self.unexpected(status, &bytes);
            return None;
        }
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(format!("{status} with an unreadable body"), e.to_string());
                None
            }
        }
    }

    async fn raw(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Bytes>,
    ) -> Option<(StatusCode, Bytes)> {
        let key = (self.plan.idempotency_keys && method == Method::POST).then(|| Uuid::new_v4().to_string());
        let extra = key.as_deref().map(|k| ("Idempotency-Key", k));
        match self.conn.send(method, path, bearer, extra, body.clone()).await {
            Reply::Answer { status, body: answer } => {
                let code = if status.is_success() { String::new() } else { error_code(&answer) };
                *self.tally.answers.entry((status.as_u16(), code)).or_default() += 1;
                if let Some(key) = key.filter(|_| !status.is_server_error()) {
                    self.tally.keyed.push(KeyedAnswer {
                        path: path.to_owned(),
                        bearer: bearer.map(str::to_owned),
                        key,
                        body,
                        status,
                        answer: answer.clone(),
                    });
                }
                Some((status, answer))
            }
            Reply::Failed(why) => {
                self.error("no answer".into(), why);
                None
            }
        }
    }

    fn unexpected(&mut self, status: StatusCode, body: &[u8]) {
        self.error(format!("{} {}", status.as_u16(), error_code(body)), String::from_utf8_lossy(body).into_owned());
    }

    fn error(&mut self, kind: String, example: String) {
        self.tally.errors.entry(kind).or_insert((0, example)).0 += 1;
    }
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).map(|e| e.code).unwrap_or_default()
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u32::MAX as u128) as u32
}

/// Sorted latencies in microseconds → p50, p95, p99, max (milliseconds).
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn percentiles(samples: &mut [u32]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        f64::from(samples[i]) / 1000.0
    };
    Some(Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99), max: at(1.0) })
}

pub fn elapsed_until(start: Instant, tally: &Tally) -> Duration {
    tally.finished.map(|f| f.duration_since(start)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_lines_is_always_keyed_and_holds_two_or_three_types() {
        let run = Run::parse("mixed-lines").unwrap();
        assert!(run.keyed && run.mode == Mode::MixedLines && run.label() == "mixed-lines");
        assert_eq!(Run::parse("mixed-lines+keys"), Some(run));
        assert!(!Run::parse("mixed").unwrap().keyed);
        let types: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let plan = Plan {
            mode: Mode::MixedLines,
            event_id: Uuid::new_v4(),
            ticket_types: types.clone(),
            quantity: 2,
            reads_per_hold: 0,
            idempotency_keys: true,
            deadline: Instant::now(),
        };
        let bodies = hold_bodies(&plan, 5).unwrap();
        assert_eq!(bodies.len(), 4);
        for t in &types {
            // Each type in three of the four sets, so the types sell out together.
            assert_eq!(bodies.iter().filter(|b| b.lines.iter().any(|(id, q)| id == t && *q == 2)).count(), 3);
        }
        let json: serde_json::Value = serde_json::from_slice(&bodies[0].body).unwrap();
        assert_eq!(json["lines"].as_array().unwrap().len(), bodies[0].lines.len());
        let single = hold_bodies(&Plan { mode: Mode::Holds, ..plan }, 0).unwrap();
        assert_eq!(single[0].lines, vec![(types[0], 2)]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let p = percentiles(&mut samples).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert!(percentiles(&mut []).is_none());
    }
}

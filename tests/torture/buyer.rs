//! One simulated buyer: a script of choices drawn from its own seeded random
//! generator, played against the public API only. Buyers hold (sometimes more
//! than is left), abandon, release, check out, pay, get declined and try
//! again, double-click, and poll their order until it is final.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::client::{pause, Answer, Api, Request};
use crate::stats::Stats;

/// The event under sale, as created through the admin API.
pub struct Sale {
    pub event_id: String,
    pub types: Vec<TicketType>,
}

pub struct TicketType {
    pub id: String,
    pub name: String,
    pub capacity: i64,
    pub max_per_order: i64,
    /// How many buyers in a hundred come for this type.
    pub weight: u32,
}

/// Timing shared by all buyers.
pub struct Plan {
    pub seed: u64,
    pub arrive_within: Duration,
    pub hold_seconds: u64,
    pub order_seconds: u64,
    /// Under Stripe: how often a buyer's card is declined (the buyer picks it).
    pub stripe_decline_rate: Option<f64>,
}

struct Hold {
    id: String,
    secret: String,
}

struct Order {
    id: String,
    secret: String,
    quantity: usize,
    payment_id: Option<String>,
}

struct Buyer<'a> {
    n: usize,
    rng: StdRng,
    api: &'a Api,
    stats: &'a Stats,
    plan: &'a Plan,
    requests: u32,
}

pub async fn buy(n: usize, api: &Api, sale: &Sale, plan: &Plan, stats: &Stats) {
    let rng = StdRng::seed_from_u64(plan.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut buyer = Buyer { n, rng, api, stats, plan, requests: 0 };
    let arrival = buyer.rng.gen_range(0..plan.arrive_within.as_millis().max(1) as u64);
    tokio::time::sleep(Duration::from_millis(arrival)).await;
    buyer.run(sale).await;
    stats.buyers_done.bump();
}

impl Buyer<'_> {
    async fn run(&mut self, sale: &Sale) {
        let Some(hold) = self.hold(sale).await else { return };
        let choice: f64 = self.rng.gen();
        if choice < 0.12 {
            self.stats.abandoned_holds.bump();
            return;
        }
        if choice < 0.22 {
            pause(&mut self.rng, 0..1000).await;
            self.release(&hold).await;
            return;
        }
        let late = self.rng.gen_bool(0.05);
        if late {
            // Dawdles past the hold's deadline (counted from the answer, so surely past it).
            tokio::time::sleep(Duration::from_millis(self.plan.hold_seconds * 1000 + 1500)).await;
        } else {
            pause(&mut self.rng, 0..1500).await;
        }
        let Some(order) = self.checkout(&hold, late).await else { return };
        if self.rng.gen_bool(0.05) {
            self.stats.abandoned_orders.bump();
            return;
        }
        if self.rng.gen_bool(0.05) {
            // Pays at the last moment, racing the order's expiry.
            let deadline = self.plan.order_seconds * 1000;
            tokio::time::sleep(Duration::from_millis(
                self.rng.gen_range(deadline.saturating_sub(1000)..deadline + 1000),
            ))
            .await;
        }
        self.pay(&order).await;
        self.wait_until_final(&order).await;
    }

    /// A fresh Idempotency-Key for one user action; retries of it reuse it.
    fn key(&mut self, action: &str) -> String {
        self.requests += 1;
        format!("torture-{}-{}-{}-{action}", self.plan.seed, self.n, self.requests)
    }

    fn unexpected(&self, step: &str, a: &Answer) {
        self.stats.unexpected.bump();
        self.stats.sample(format!("unexpected answer to {step}: {} {}", a.status, a.body));
    }

    async fn call(&mut self, req: Request<'_>) -> Option<Answer> {
        self.api.call(&mut self.rng, &req).await
    }

    fn pick_type<'s>(&mut self, sale: &'s Sale, not: Option<&str>) -> &'s TicketType {
        let candidates: Vec<&TicketType> = sale.types.iter().filter(|t| Some(t.id.as_str()) != not).collect();
        candidates.choose_weighted(&mut self.rng, |t| t.weight).map_or(&sale.types[0], |t| *t)
    }

    async fn available(&mut self, sale: &Sale, type_id: &str) -> Option<i64> {
        let a = self.call(Request::get(format!("/events/{}", sale.event_id), None)).await?;
        if a.status != 200 {
            self.unexpected("GET event", &a);
            return None;
        }
        let types = a.body.get("ticket_types")?.as_array()?;
        types.iter().find(|t| t["id"] == type_id)?.get("available")?.as_i64()
    }

    async fn hold(&mut self, sale: &Sale) -> Option<Hold> {
        let mut tt = self.pick_type(sale, None);
        for last_try in [false, false, false, true] {
            let available = if self.rng.gen_bool(0.8) { self.available(sale, &tt.id).await } else { None };
            let max = tt.max_per_order;
            let quantity = match available {
                _ if self.rng.gen_bool(0.02) => max + 1,
                Some(left) if self.rng.gen_bool(0.25) => (left + self.rng.gen_range(1..=2)).min(max),
                _ => self.rng.gen_range(1..=max.min(4)),
            };
            let body = json!({
                "ticket_type_id": tt.id,
                "quantity": quantity,
                "name": format!("Buyer {}", self.n),
                "email": format!("buyer{}@torture.test", self.n),
            });
            let key = self.key("hold");
            let a = self.call(Request::post(format!("/events/{}/holds", sale.event_id), None, key, Some(body))).await?;
            match a.status {
                201 => {
                    self.stats.holds.bump();
                    return Some(Hold { id: a.str("/id")?.to_owned(), secret: a.str("/secret")?.to_owned() });
                }
                409 if a.code == "sold_out" => {
                    self.stats.sold_out.bump();
                    if last_try || self.rng.gen_bool(0.3) {
                        return None;
                    }
                    // Waits for seats to come back (holds expire, orders go unpaid), maybe for another type.
                    pause(&mut self.rng, 500..3000).await;
                    if self.rng.gen_bool(0.5) {
                        tt = self.pick_type(sale, Some(&tt.id));
                    }
                }
                422 if quantity > max => {
                    self.stats.too_many.bump();
                    return None;
                }
                _ => {
                    self.unexpected("hold", &a);
                    return None;
                }
            }
        }
        None
    }

    async fn release(&mut self, hold: &Hold) {
        let Some(a) = self.call(Request::delete(format!("/holds/{}", hold.id), &hold.secret)).await else { return };
        match (a.status, a.code.as_str()) {
            // A retried release finds its own work done.
            (200, _) | (409, "hold_released") => self.stats.released.bump(),
            (409, "hold_expired") => {}
            _ => self.unexpected("release", &a),
        }
    }

    async fn checkout(&mut self, hold: &Hold, late: bool) -> Option<Order> {
        let key = self.key("checkout");
        let a = self.call(Request::post(format!("/holds/{}/checkout", hold.id), Some(&hold.secret), key, None)).await?;
        match (a.status, a.code.as_str()) {
            (201, _) if late => {
                self.unexpected("checkout after the hold's deadline", &a);
                None
            }
            (201, _) => {
                self.stats.orders.bump();
                Some(Order {
                    id: a.str("/order/id")?.to_owned(),
                    secret: a.str("/order/secret")?.to_owned(),
                    quantity: a.body.pointer("/order/quantity")?.as_u64()? as usize,
                    payment_id: a.str("/payment/id").map(str::to_owned),
                })
            }
            (409, "hold_expired" | "hold_released") => {
                self.stats.checkout_refused.bump();
                None
            }
            _ => {
                self.unexpected("checkout", &a);
                None
            }
        }
    }

    /// Under Stripe: each attempt carries a card, confirmed at once; a
    /// declined card is followed by another, sometimes double-clicked.
    async fn pay_stripe(&mut self, order: &Order, decline_rate: f64) {
        for attempt in 0..4 {
            pause(&mut self.rng, 0..800).await;
            let card = if self.rng.gen_bool(decline_rate) { "pm_card_chargeCustomerFail" } else { "pm_card_visa" };
            let req = Request::post(
                format!("/orders/{}/payments", order.id),
                Some(&order.secret),
                self.key("pay"),
                Some(json!({ "payment_method": card })),
            );
            let a = if self.rng.gen_bool(0.05) {
                let mut other = StdRng::seed_from_u64(self.rng.gen());
                let (a, b) = tokio::join!(self.api.call(&mut self.rng, &req), self.api.call(&mut other, &req));
                if let (Some(a), Some(b)) = (&a, &b) {
                    if a.status != b.status && ![a.status, b.status].contains(&409) {
                        self.unexpected("double-clicked payment (answers differ)", b);
                    }
                }
                a
            } else {
                self.api.call(&mut self.rng, &req).await
            };
            let Some(a) = a else { return };
            match (a.status, a.code.as_str(), a.str("/status").unwrap_or_default()) {
                (201, _, "succeeded") => {
                    self.stats.seen_paid(uuid(&order.id));
                    return;
                }
                (201, _, "processing" | "requires_action") => {
                    self.stats.pending.bump();
                    return;
                }
                (402, _, _) => {
                    self.stats.declined.bump();
                    if attempt == 3 || self.rng.gen_bool(0.15) {
                        return;
                    }
                }
                (409, "payment_in_progress", _) => pause(&mut self.rng, 500..2000).await,
                (
                    409,
                    "order_already_paid" | "order_expired" | "order_not_awaiting_payment" | "payment_canceled",
                    _,
                ) => return,
                _ => {
                    self.unexpected("Stripe payment", &a);
                    return;
                }
            }
        }
    }

    async fn pay(&mut self, order: &Order) {
        if let Some(rate) = self.plan.stripe_decline_rate {
            return self.pay_stripe(order, rate).await;
        }
        let mut payment_id = order.payment_id.clone();
        for attempt in 0..4 {
            let pid = match payment_id.take() {
                Some(p) => p,
                None => match self.new_attempt(order).await {
                    Some(p) => p,
                    None => return,
                },
            };
            pause(&mut self.rng, 0..800).await;
            let outcome = if self.rng.gen_bool(0.1) { "declined" } else { "succeeded" };
            let req = Request::post(
                format!("/payments/simulated/{pid}/confirm"),
                Some(&order.secret),
                self.key("confirm"),
                Some(json!({ "outcome": outcome })),
            );
            let a = if self.rng.gen_bool(0.05) {
                // A double click: the same confirmation twice at once, maybe on two instances.
                let mut other = StdRng::seed_from_u64(self.rng.gen());
                let (a, b) = tokio::join!(self.api.call(&mut self.rng, &req), self.api.call(&mut other, &req));
                if let (Some(a), Some(b)) = (&a, &b) {
                    if a.status != b.status {
                        self.unexpected("double-clicked confirm (answers differ)", b);
                    }
                }
                a
            } else {
                self.api.call(&mut self.rng, &req).await
            };
            let Some(a) = a else { return };
            match (a.status, a.code.as_str()) {
                (200, _) => {
                    self.stats.seen_paid(uuid(&order.id));
                    if self.rng.gen_bool(0.05) {
                        self.pay_again(order).await;
                    }
                    return;
                }
                (202, _) => {
                    self.stats.pending.bump();
                    if attempt == 3 || !self.rng.gen_bool(0.3) {
                        return;
                    }
                    // Impatient: starts a new attempt while the last one's outcome is unknown.
                    pause(&mut self.rng, 200..2000).await;
                }
                (402, _) => {
                    self.stats.declined.bump();
                    if attempt == 3 || self.rng.gen_bool(0.15) {
                        return;
                    }
                }
                (409, "payment_not_open" | "payment_canceled" | "order_not_awaiting_payment") => return,
                _ => {
                    self.unexpected("confirm", &a);
                    return;
                }
            }
        }
    }

    /// Presses "pay" once more on a paid order: must be refused.
    async fn pay_again(&mut self, order: &Order) {
        let key = self.key("pay-again");
        let req = Request::post(format!("/orders/{}/payments", order.id), Some(&order.secret), key, Some(json!({})));
        let Some(a) = self.call(req).await else { return };
        if !(a.is(409, "order_already_paid") || a.is(409, "order_not_awaiting_payment")) {
            self.unexpected("new payment attempt on a paid order", &a);
        }
    }

    async fn new_attempt(&mut self, order: &Order) -> Option<String> {
        let key = self.key("new-attempt");
        let a = self
            .call(Request::post(format!("/orders/{}/payments", order.id), Some(&order.secret), key, Some(json!({}))))
            .await?;
        match (a.status, a.code.as_str()) {
            (201, _) => {
                self.stats.new_attempts.bump();
                a.str("/id").map(str::to_owned)
            }
            (409, "order_already_paid" | "order_expired" | "order_not_awaiting_payment" | "payment_in_progress") => {
                None
            }
            _ => {
                self.unexpected("new payment attempt", &a);
                None
            }
        }
    }

    async fn wait_until_final(&mut self, order: &Order) {
        let deadline = Instant::now() + Duration::from_secs(self.plan.order_seconds + 40);
        loop {
            let Some(a) = self.call(Request::get(format!("/orders/{}", order.id), Some(&order.secret))).await else {
                return;
            };
            if a.status != 200 {
                self.unexpected("GET order", &a);
                return;
            }
            match a.str("/status").unwrap_or_default() {
                "paid" => {
                    self.stats.paid.bump();
                    self.stats.seen_paid(uuid(&order.id));
                    let tickets = a.body.get("tickets").and_then(Value::as_array).map_or(0, Vec::len);
                    if tickets != order.quantity {
                        self.unexpected("GET paid order (ticket count)", &a);
                    }
                    return;
                }
                "awaiting_payment" if Instant::now() < deadline => pause(&mut self.rng, 300..700).await,
                "awaiting_payment" => {
                    self.stats.poll_timeouts.bump();
                    return;
                }
                "expired" | "canceled" | "refunded" => {
                    self.stats.unpaid.bump();
                    return;
                }
                _ => {
                    self.unexpected("GET order (status)", &a);
                    return;
                }
            }
        }
    }
}

fn uuid(id: &str) -> uuid::Uuid {
    id.parse().unwrap_or_default()
}

/// Creates the event: three ticket types whose seats add up to well below
/// what the buyers will ask for.
pub async fn create_sale(api: &Api, admin_token: &str, buyers: usize, seed: u64) -> anyhow::Result<Sale> {
    let seats = (buyers as i64 * 3 / 4).max(12);
    let tiers = [("Floor", 4500, 50, 4, 50u32), ("Balcony", 3000, 30, 6, 30), ("VIP", 12000, 20, 2, 20)];
    let starts_at = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)?;
    let body = json!({
        "name": format!("Torture test {seed}"),
        "venue": "The Naive Theatre",
        "starts_at": starts_at,
        "currency": "EUR",
        "ticket_types": tiers.iter().map(|(name, price, share, max, _)| json!({
            "name": name, "price_minor": price, "capacity": (seats * share / 100).max(1), "max_per_order": max,
        })).collect::<Vec<_>>(),
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let req = Request::post("/admin/events".into(), Some(admin_token), format!("torture-{seed}-event"), Some(body));
    let a = api.call(&mut rng, &req).await.ok_or_else(|| anyhow::anyhow!("creating the event: no answer"))?;
    anyhow::ensure!(a.status == 201, "creating the event: {} {}", a.status, a.body);
    let event_id = a.str("/id").ok_or_else(|| anyhow::anyhow!("creating the event: no id in {}", a.body))?.to_owned();
    let types = a.body["ticket_types"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(tiers)
        .map(|(t, tier)| TicketType {
            id: t["id"].as_str().unwrap_or_default().to_owned(),
            name: t["name"].as_str().unwrap_or_default().to_owned(),
            capacity: t["capacity"].as_i64().unwrap_or_default(),
            max_per_order: t["max_per_order"].as_i64().unwrap_or(1),
            weight: tier.4,
        })
        .collect();
    Ok(Sale { event_id, types })
}

//! One simulated buyer: a script of choices drawn from its own seeded random
//! generator, played against the public API only. Buyers hold (sometimes more
//! than is left, sometimes several ticket types at once), abandon, release,
//! check out, pay, get declined and try again, double-click, and poll their
//! order until it is final.

use std::collections::HashMap;
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
    /// The event's cap on the seats of one order, all types together.
    pub max_tickets_per_order: Option<i64>,
}

impl Sale {
    fn ticket_type(&self, id: &str) -> Option<&TicketType> {
        self.types.iter().find(|t| t.id == id)
    }
}

pub struct TicketType {
    pub id: String,
    pub name: String,
    pub price_minor: i64,
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

/// One line of a hold or an order: seats of one ticket type.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    ticket_type_id: String,
    quantity: i64,
}

/// How a buyer asks for seats; drawn once per buyer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// 2–3 ticket types in one `{"lines": [...]}` hold.
    Several,
    /// One ticket type, as one line of `lines`.
    OneLine,
    /// One ticket type, with the pre-carts body (`ticket_type_id`, `quantity`).
    OldBody,
}

/// One hold request as sent.
struct Ask {
    lines: Vec<Line>,
    old_body: bool,
}

impl Ask {
    fn seats(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }

    /// Whether the request breaks a per-line or the per-order limit (a 422 is due).
    fn over_limits(&self, sale: &Sale) -> bool {
        let line_over = self.lines.iter().any(|l| {
            l.quantity < 1 || sale.ticket_type(&l.ticket_type_id).is_none_or(|t| l.quantity > t.max_per_order)
        });
        line_over || sale.max_tickets_per_order.is_some_and(|max| self.seats() > max)
    }
}

struct Hold {
    id: String,
    secret: String,
    lines: Vec<Line>,
}

struct Order {
    id: String,
    secret: String,
    lines: Vec<Line>,
    payment_id: Option<String>,
}

struct Buyer<'a> {
    n: usize,
    rng: StdRng,
    api: &'a Api,
    stats: &'a Stats,
    plan: &'a Plan,
    sale: &'a Sale,
    requests: u32,
}

pub async fn buy(n: usize, api: &Api, sale: &Sale, plan: &Plan, stats: &Stats) {
    let rng = StdRng::seed_from_u64(plan.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut buyer = Buyer { n, rng, api, stats, plan, sale, requests: 0 };
    let arrival = buyer.rng.gen_range(0..plan.arrive_within.as_millis().max(1) as u64);
    tokio::time::sleep(Duration::from_millis(arrival)).await;
    buyer.run().await;
    stats.buyers_done.bump();
}

impl<'a> Buyer<'a> {
    async fn run(&mut self) {
        let Some(hold) = self.hold().await else { return };
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

    /// `n` different ticket types, weighted by how many buyers come for each,
    /// avoiding those in `avoid` while others are left.
    fn pick_types(&mut self, n: usize, avoid: &[String]) -> Vec<&'a TicketType> {
        let sale = self.sale;
        let mut chosen: Vec<&TicketType> = Vec::new();
        while chosen.len() < n {
            let fresh: Vec<&TicketType> = sale.types.iter().filter(|t| !chosen.iter().any(|c| c.id == t.id)).collect();
            let preferred: Vec<&TicketType> = fresh.iter().copied().filter(|t| !avoid.contains(&t.id)).collect();
            let pool = if preferred.is_empty() { &fresh } else { &preferred };
            match pool.choose_weighted(&mut self.rng, |t| t.weight) {
                Ok(t) => chosen.push(*t),
                Err(_) => break,
            }
        }
        chosen
    }

    /// Seats available per ticket type, from the public event page.
    async fn available(&mut self) -> Option<HashMap<String, i64>> {
        let a = self.call(Request::get(format!("/events/{}", self.sale.event_id), None)).await?;
        if a.status != 200 {
            self.unexpected("GET event", &a);
            return None;
        }
        let types = a.body.get("ticket_types")?.as_array()?;
        Some(types.iter().filter_map(|t| Some((t["id"].as_str()?.to_owned(), t["available"].as_i64()?))).collect())
    }

    /// A fresh request in the buyer's style: quantities mostly small, sometimes
    /// just over what is left (to meet `sold_out`), rarely over a limit (to meet 422).
    async fn ask(&mut self, style: Style, avoid: &[String]) -> Ask {
        let n = match style {
            Style::Several => self.rng.gen_range(2..=3),
            Style::OneLine | Style::OldBody => 1,
        };
        let types = self.pick_types(n, avoid);
        let available = if self.rng.gen_bool(0.8) { self.available().await } else { None };
        let over_order_max = n > 1 && self.rng.gen_bool(0.03);
        let mut lines = Vec::new();
        for tt in types {
            let max = tt.max_per_order;
            let left = available.as_ref().and_then(|a| a.get(&tt.id).copied());
            let quantity = match left {
                _ if self.rng.gen_bool(0.02 / n as f64) => max + 1,
                _ if over_order_max => max,
                Some(left) if self.rng.gen_bool(0.25 / n as f64) => (left + self.rng.gen_range(1..=2)).min(max),
                _ => self.rng.gen_range(1..=max.min(if n > 1 { 3 } else { 4 })),
            };
            lines.push(Line { ticket_type_id: tt.id.clone(), quantity });
        }
        Ask { lines, old_body: style == Style::OldBody }
    }

    async fn hold(&mut self) -> Option<Hold> {
        let sale = self.sale;
        let style = match self.rng.gen_range(0..4) {
            0 | 1 => Style::Several,
            2 => Style::OneLine,
            _ => Style::OldBody,
        };
        let mut ask = self.ask(style, &[]).await;
        for last_try in [false, false, false, true] {
            let mut body = match (&ask.lines[..], ask.old_body) {
                ([line], true) => json!({ "ticket_type_id": line.ticket_type_id, "quantity": line.quantity }),
                (lines, _) => json!({ "lines": lines.iter().map(|l| json!({
                    "ticket_type_id": l.ticket_type_id, "quantity": l.quantity,
                })).collect::<Vec<_>>() }),
            };
            body["name"] = json!(format!("Buyer {}", self.n));
            body["email"] = json!(format!("buyer{}@torture.test", self.n));
            let over_limits = ask.over_limits(sale);
            let key = self.key("hold");
            let a = self.call(Request::post(format!("/events/{}/holds", sale.event_id), None, key, Some(body))).await?;
            match a.status {
                201 => {
                    self.stats.holds.bump();
                    if over_limits {
                        self.unexpected("hold over a per-line or per-order limit", &a);
                        return None;
                    }
                    if let Err(why) = check_lines(&a.body, &ask.lines, sale) {
                        self.unexpected(&format!("hold ({why})"), &a);
                    }
                    match ask.lines.len() {
                        1 if ask.old_body => self.stats.holds_old_body.bump(),
                        1 => {}
                        _ => self.stats.holds_several_types.bump(),
                    }
                    return Some(Hold {
                        id: a.str("/id")?.to_owned(),
                        secret: a.str("/secret")?.to_owned(),
                        lines: ask.lines,
                    });
                }
                409 if a.code == "sold_out" => {
                    self.stats.sold_out.bump();
                    let refused = match sold_out_lines(&a.body, &ask) {
                        Ok(refused) => refused,
                        Err(why) => {
                            self.unexpected(&format!("hold ({why})"), &a);
                            return None;
                        }
                    };
                    if ask.lines.len() > 1 {
                        self.stats.sold_out_several_types.bump();
                    }
                    if last_try || self.rng.gen_bool(0.3) {
                        return None;
                    }
                    // Waits for seats to come back (holds expire, orders go unpaid), then asks
                    // for what was left of the refused types, or for other types.
                    pause(&mut self.rng, 500..3000).await;
                    let shrunk: Vec<Line> = ask
                        .lines
                        .iter()
                        .filter_map(|l| match refused.iter().find(|(t, _)| *t == l.ticket_type_id) {
                            Some((_, Some(available))) => (*available > 0)
                                .then(|| Line { ticket_type_id: l.ticket_type_id.clone(), quantity: *available }),
                            Some((_, None)) => None,
                            None => Some(l.clone()),
                        })
                        .collect();
                    if !shrunk.is_empty() && self.rng.gen_bool(0.5) {
                        ask.lines = shrunk;
                    } else if self.rng.gen_bool(0.5) {
                        let avoid: Vec<String> = refused.into_iter().map(|(t, _)| t).collect();
                        ask = self.ask(style, &avoid).await;
                    }
                }
                422 if over_limits && a.code == "validation_failed" => {
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
                if let Err(why) = check_lines(&a.body["order"], &hold.lines, self.sale) {
                    self.unexpected(&format!("checkout: the order's {why}"), &a);
                }
                Some(Order {
                    id: a.str("/order/id")?.to_owned(),
                    secret: a.str("/order/secret")?.to_owned(),
                    lines: hold.lines.clone(),
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
                    if let Err(why) = check_lines(&a.body, &order.lines, self.sale) {
                        self.unexpected(&format!("GET paid order ({why})"), &a);
                    } else if let Err(why) = check_tickets(&a.body, &order.lines, self.sale) {
                        self.unexpected(&format!("GET paid order ({why})"), &a);
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

/// A hold or order view against the lines asked for: `lines` in request
/// order with each type's name, price and amount; `quantity` and
/// `amount_minor` their sums; the deprecated `ticket_type_id` and
/// `ticket_type_name` set for one line, null for several.
fn check_lines(view: &Value, asked: &[Line], sale: &Sale) -> Result<(), String> {
    let lines = view.get("lines").and_then(Value::as_array).ok_or("no lines")?;
    if lines.len() != asked.len() {
        return Err(format!("{} lines for {} asked", lines.len(), asked.len()));
    }
    let (mut quantity, mut amount) = (0, 0);
    for (got, want) in lines.iter().zip(asked) {
        let tt = sale.ticket_type(&want.ticket_type_id).ok_or("a ticket type not of the sale")?;
        let expected = json!({
            "ticket_type_id": tt.id,
            "ticket_type_name": tt.name,
            "quantity": want.quantity,
            "unit_price_minor": tt.price_minor,
            "amount_minor": tt.price_minor * want.quantity,
        });
        if *got != expected {
            return Err(format!("line {got} instead of {expected}"));
        }
        quantity += want.quantity;
        amount += tt.price_minor * want.quantity;
    }
    if view["quantity"] != json!(quantity) || view["amount_minor"] != json!(amount) {
        return Err(format!("quantity/amount_minor not the sums of the lines ({quantity}, {amount})"));
    }
    let (id, name) = match asked {
        [one] => (json!(one.ticket_type_id), json!(sale.ticket_type(&one.ticket_type_id).map(|t| &t.name))),
        _ => (Value::Null, Value::Null),
    };
    if view.get("ticket_type_id") != Some(&id) || view.get("ticket_type_name") != Some(&name) {
        return Err(format!("deprecated ticket_type_id/ticket_type_name not {id}/{name}"));
    }
    Ok(())
}

/// A paid order's tickets: per line exactly its quantity of that type, each
/// ticket naming its type.
fn check_tickets(view: &Value, lines: &[Line], sale: &Sale) -> Result<(), String> {
    let tickets = view.get("tickets").and_then(Value::as_array).ok_or("no tickets")?;
    let mut by_type: HashMap<&str, i64> = HashMap::new();
    for t in tickets {
        let id = t["ticket_type_id"].as_str().ok_or("a ticket without ticket_type_id")?;
        let tt = sale.ticket_type(id).ok_or("a ticket of a type not of the sale")?;
        if t["ticket_type_name"] != json!(tt.name) {
            return Err(format!("ticket_type_name {} for {}", t["ticket_type_name"], tt.name));
        }
        *by_type.entry(id).or_default() += 1;
    }
    let wanted: HashMap<&str, i64> = lines.iter().map(|l| (l.ticket_type_id.as_str(), l.quantity)).collect();
    if by_type != wanted {
        return Err(format!("tickets by type {by_type:?}, lines {wanted:?}"));
    }
    Ok(())
}

/// A 409 `sold_out` against the request: `lines` names only lines of it, each
/// with what was asked and fewer seats available. Answers the refused types
/// with their `available` (unknown for an old-style body answered without `lines`).
fn sold_out_lines(body: &Value, ask: &Ask) -> Result<Vec<(String, Option<i64>)>, String> {
    let Some(lines) = body.get("lines").and_then(Value::as_array) else {
        return match &ask.lines[..] {
            [one] if ask.old_body => Ok(vec![(one.ticket_type_id.clone(), None)]),
            _ => Err("sold_out without lines".into()),
        };
    };
    let mut refused: Vec<(String, Option<i64>)> = Vec::new();
    for l in lines {
        let (Some(id), Some(requested), Some(available)) =
            (l["ticket_type_id"].as_str(), l["requested"].as_i64(), l["available"].as_i64())
        else {
            return Err(format!("sold_out line {l} incomplete"));
        };
        let asked = ask.lines.iter().find(|a| a.ticket_type_id == id);
        if asked.is_none_or(|a| a.quantity != requested) || !(0..requested).contains(&available) {
            return Err(format!("sold_out line {l} not a refused line of the request"));
        }
        if refused.iter().any(|(t, _)| t == id) {
            return Err(format!("sold_out names {id} twice"));
        }
        refused.push((id.to_owned(), Some(available)));
    }
    if refused.is_empty() {
        return Err("sold_out with no lines".into());
    }
    Ok(refused)
}

/// Creates the event: three ticket types whose seats add up to well below
/// what the buyers will ask for, and a cap on the seats of one order that
/// some multi-type holds break.
/// Below the sum of the types' `max_per_order` (4 + 6 + 2), above what a
/// buyer usually asks for (at most 3 per line).
const MAX_TICKETS_PER_ORDER: i64 = 8;

pub async fn create_sale(api: &Api, admin_token: &str, buyers: usize, seed: u64) -> anyhow::Result<Sale> {
    // A single-type buyer asks for ~2.3 seats, one of several types for ~5: about
    // 3.7 a buyer, three times these seats, as when every buyer held one type.
    let seats = (buyers as i64 * 5 / 4).max(12);
    let tiers = [("Floor", 4500, 50, 4, 50u32), ("Balcony", 3000, 30, 6, 30), ("VIP", 12000, 20, 2, 20)];
    let starts_at = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)?;
    let body = json!({
        "name": format!("Torture test {seed}"),
        "venue": "The Naive Theatre",
        "starts_at": starts_at,
        "currency": "EUR",
        "max_tickets_per_order": MAX_TICKETS_PER_ORDER,
        "ticket_types": tiers.iter().map(|(name, price, share, max, _)| json!({
            "name": name, "price_minor": price, "capacity": (seats * share / 100).max(1), "max_per_order": max,
        })).collect::<Vec<_>>(),
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let req = Request::post("/admin/events".into(), Some(admin_token), format!("torture-{seed}-event"), Some(body));
    let a = api.call(&mut rng, &req).await.ok_or_else(|| anyhow::anyhow!("creating the event: no answer"))?;
    anyhow::ensure!(a.status == 201, "creating the event: {} {}", a.status, a.body);
    let event_id = a.str("/id").ok_or_else(|| anyhow::anyhow!("creating the event: no id in {}", a.body))?.to_owned();
    let types: Vec<TicketType> = a.body["ticket_types"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(tiers)
        .map(|(t, tier)| TicketType {
            id: t["id"].as_str().unwrap_or_default().to_owned(),
            name: t["name"].as_str().unwrap_or_default().to_owned(),
            price_minor: t["price_minor"].as_i64().unwrap_or(-1),
            capacity: t["capacity"].as_i64().unwrap_or_default(),
            max_per_order: t["max_per_order"].as_i64().unwrap_or(1),
            weight: tier.4,
        })
        .collect();
    anyhow::ensure!(
        types.len() >= 3 && types.iter().all(|t| !t.id.is_empty() && t.price_minor >= 0),
        "creating the event: expected 3 ticket types with ids and prices in {}",
        a.body
    );
    // The public event view shows the cap.
    let view = api
        .call(&mut rng, &Request::get(format!("/events/{event_id}"), None))
        .await
        .ok_or_else(|| anyhow::anyhow!("reading the event: no answer"))?;
    let max_tickets_per_order = view.body["max_tickets_per_order"].as_i64();
    anyhow::ensure!(
        view.status == 200 && max_tickets_per_order == Some(MAX_TICKETS_PER_ORDER),
        "the event's public view: max_tickets_per_order {} instead of {MAX_TICKETS_PER_ORDER} ({})",
        view.body["max_tickets_per_order"],
        view.status
    );
    Ok(Sale { event_id, types, max_tickets_per_order })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale() -> Sale {
        let tt = |id: &str, price_minor, max_per_order| TicketType {
            id: id.into(),
            name: id.to_uppercase(),
            price_minor,
            capacity: 10,
            max_per_order,
            weight: 1,
        };
        Sale { event_id: "e".into(), types: vec![tt("a", 100, 4), tt("b", 250, 2)], max_tickets_per_order: Some(5) }
    }

    fn line(t: &str, quantity: i64) -> Line {
        Line { ticket_type_id: t.into(), quantity }
    }

    #[test]
    fn limits_are_per_line_and_per_order() {
        let ask = |lines| Ask { lines, old_body: false };
        assert!(!ask(vec![line("a", 3), line("b", 2)]).over_limits(&sale()));
        assert!(ask(vec![line("a", 4), line("b", 2)]).over_limits(&sale()));
        assert!(ask(vec![line("b", 3)]).over_limits(&sale()));
    }

    #[test]
    fn views_must_carry_their_lines_and_sums() {
        let good = json!({
            "quantity": 3, "amount_minor": 450, "ticket_type_id": null, "ticket_type_name": null,
            "lines": [
                {"ticket_type_id": "b", "ticket_type_name": "B", "quantity": 1, "unit_price_minor": 250, "amount_minor": 250},
                {"ticket_type_id": "a", "ticket_type_name": "A", "quantity": 2, "unit_price_minor": 100, "amount_minor": 200},
            ],
        });
        let asked = [line("b", 1), line("a", 2)];
        assert_eq!(check_lines(&good, &asked, &sale()), Ok(()));
        let mut wrong_order = asked.clone();
        wrong_order.reverse();
        assert!(check_lines(&good, &wrong_order, &sale()).is_err());
        let mut deprecated_set = good.clone();
        deprecated_set["ticket_type_id"] = json!("b");
        assert!(check_lines(&deprecated_set, &asked, &sale()).is_err());
        let tickets = json!({"tickets": [
            {"ticket_type_id": "a", "ticket_type_name": "A"}, {"ticket_type_id": "b", "ticket_type_name": "B"},
            {"ticket_type_id": "a", "ticket_type_name": "A"},
        ]});
        assert_eq!(check_tickets(&tickets, &asked, &sale()), Ok(()));
        assert!(check_tickets(&tickets, &[line("a", 3)], &sale()).is_err());
    }

    #[test]
    fn sold_out_names_only_refused_lines_of_the_request() {
        let ask = Ask { lines: vec![line("a", 3), line("b", 2)], old_body: false };
        let refused = |lines: Value| sold_out_lines(&json!({"code": "sold_out", "lines": lines}), &ask);
        assert_eq!(
            refused(json!([{"ticket_type_id": "b", "requested": 2, "available": 1}])),
            Ok(vec![("b".into(), Some(1))])
        );
        assert!(refused(json!([{"ticket_type_id": "b", "requested": 2, "available": 2}])).is_err());
        assert!(refused(json!([{"ticket_type_id": "a", "requested": 1, "available": 0}])).is_err());
        assert!(refused(json!([{"ticket_type_id": "c", "requested": 2, "available": 0}])).is_err());
        assert!(refused(json!([])).is_err());
        assert!(sold_out_lines(&json!({"code": "sold_out"}), &ask).is_err());
        let old = Ask { lines: vec![line("a", 1)], old_body: true };
        assert_eq!(sold_out_lines(&json!({"code": "sold_out"}), &old), Ok(vec![("a".into(), None)]));
    }
}

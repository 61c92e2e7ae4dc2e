//! The verdict, from the rows: nts's own tables and the simulated provider's
//! ledger (`simulated_intents`), read after the reconciler has settled
//! everything. The buyers' counters only add what the database cannot know
//! (what a buyer was told, and the HTTP answers).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::stats::{Counter, Stats};

pub struct TypeLine {
    pub name: String,
    pub capacity: i64,
    /// The `sold` and `held` counters of `ticket_types`.
    pub sold: i64,
    pub held: i64,
    pub tickets: i64,
    /// Seats of this type in the lines of paid (and refunded) orders.
    pub sold_rows: i64,
    /// Seats of this type in the lines of active holds and unpaid orders.
    pub live_rows: i64,
}

impl TypeLine {
    /// Seats promised beyond capacity, by the rows or by the counters.
    pub fn oversold(&self) -> i64 {
        let by_rows = self.tickets.max(self.sold_rows) + self.live_rows;
        let by_counters = self.sold + self.held;
        (by_rows.max(by_counters) - self.capacity).max(0)
    }

    pub fn counter_drift(&self) -> i64 {
        (self.sold - self.sold_rows).abs() + (self.held - self.live_rows).abs()
    }
}

pub struct Check {
    pub name: String,
    pub value: i64,
    pub detail: String,
}

fn check(name: impl Into<String>, value: i64) -> Check {
    Check { name: name.into(), value, detail: String::new() }
}

pub struct Audit {
    pub types: Vec<TypeLine>,
    pub holds: Vec<(String, i64)>,
    pub orders: Vec<(String, i64)>,
    pub payments: Vec<(String, i64)>,
    pub intents: Vec<(String, i64)>,
    /// `--gateway stripe`: attempts failed as never made by Stripe, each verified against Stripe.
    pub given_up: Option<i64>,
    pub checks: Vec<Check>,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.value == 0)
    }
}

/// A seat check counts the worse of the end state and the worst moment the
/// monitor saw while the sale ran.
fn worst_of(name: &str, at_end: i64, peak: &Counter, stats: &Stats) -> Check {
    let peak = peak.get() as i64;
    Check {
        name: name.into(),
        value: at_end.max(peak),
        detail: format!(
            "at the end {at_end}, worst of {} samples during the run {peak}",
            stats.inventory_samples.get()
        ),
    }
}

/// Seats, money and steps still in flight: live holds, unpaid orders, open
/// payments (an indeterminate attempt among them: a run ends with none).
pub async fn unsettled(pool: &PgPool) -> Result<(i64, i64, i64), sqlx::Error> {
    open_rows(pool).await
}

async fn open_rows(pool: &PgPool) -> Result<(i64, i64, i64), sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT (SELECT COUNT(*) FROM holds WHERE status = 'active') AS "holds!",
                  (SELECT COUNT(*) FROM orders WHERE status = 'awaiting_payment') AS "orders!",
                  (SELECT COUNT(*) FROM payments
                   WHERE status IN ('created', 'processing', 'requires_action', 'refund_pending')) AS "payments!""#
    )
    .fetch_one(pool)
    .await?;
    Ok((r.holds, r.orders, r.payments))
}

/// Waits until nothing is in flight; answers how long that took, or `None` at the timeout.
pub async fn settle(pool: &PgPool, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        match unsettled(pool).await {
            Ok((0, 0, 0)) => return Some(started.elapsed()),
            Ok((h, o, p)) if last_print.elapsed() >= Duration::from_secs(5) => {
                println!("  settling: {h} active holds, {o} unpaid orders, {p} open payments");
                last_print = Instant::now();
            }
            Ok(_) => {}
            Err(e) => println!("  settling: cannot read the database yet ({e})"),
        }
        if started.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The inventory of each ticket type, by counters and by rows (the hold lines
/// of live holds and of orders), in one snapshot: in a correct system the two
/// agree and stay within capacity at every commit.
pub async fn type_lines(pool: &PgPool, event_id: Uuid) -> Result<Vec<TypeLine>, sqlx::Error> {
    sqlx::query_as!(
        TypeLine,
        r#"SELECT t.name, t.capacity::bigint AS "capacity!", t.sold::bigint AS "sold!", t.held::bigint AS "held!",
                  (SELECT COUNT(*) FROM tickets k WHERE k.ticket_type_id = t.id) AS "tickets!",
                  (SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN orders o ON o.hold_id = l.hold_id
                   WHERE l.ticket_type_id = t.id AND o.status IN ('paid', 'refunded'))::bigint AS "sold_rows!",
                  ((SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN holds h ON h.id = l.hold_id
                    WHERE l.ticket_type_id = t.id AND h.status = 'active')
                   + (SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN orders o ON o.hold_id = l.hold_id
                      WHERE l.ticket_type_id = t.id AND o.status = 'awaiting_payment'))::bigint AS "live_rows!"
           FROM ticket_types t WHERE t.event_id = $1 ORDER BY t.position"#,
        event_id
    )
    .fetch_all(pool)
    .await
}

/// Stripe's side of the money checks (`--gateway stripe`), and nts's own
/// payments audit (mismatches, what they are).
pub async fn audit(
    pool: &PgPool,
    event_id: Uuid,
    stats: &Stats,
    settle_timeout: Duration,
    stripe: Option<crate::stripe::Money>,
    provider_audit: Option<(i64, String)>,
) -> Result<Audit, sqlx::Error> {
    let types = type_lines(pool, event_id).await?;
    let pairs = |rows: Vec<(Option<String>, Option<i64>)>| -> Vec<(String, i64)> {
        rows.into_iter().map(|(s, n)| (s.unwrap_or_default(), n.unwrap_or_default())).collect()
    };
    let holds = pairs(
        sqlx::query!("SELECT status::text, COUNT(*) FROM holds GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.status, r.count))
            .collect(),
    );
    let orders = pairs(
        sqlx::query!("SELECT status::text, COUNT(*) FROM orders GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.status, r.count))
            .collect(),
    );
    let payments = pairs(
        sqlx::query!("SELECT status::text, COUNT(*) FROM payments GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.status, r.count))
            .collect(),
    );
    let simulated_intents = pairs(
        sqlx::query!(
            r#"SELECT status || CASE WHEN refunded THEN ', refunded' ELSE '' END AS "status", COUNT(*)
               FROM simulated_intents GROUP BY 1 ORDER BY 1"#
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.status, r.count))
        .collect(),
    );

    let mut money = sqlx::query!(
        r#"WITH charged AS (SELECT * FROM simulated_intents WHERE status = 'succeeded' AND NOT refunded)
           SELECT
             (SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM charged GROUP BY order_id) c
              WHERE n > 1)::bigint AS "double_charges!",
             (SELECT COUNT(*) FROM charged c LEFT JOIN orders o ON o.id = c.order_id
              WHERE o.status IS DISTINCT FROM 'paid') AS "charges_without_paid_order!",
             (SELECT COUNT(*) FROM orders o WHERE o.status = 'paid'
              AND NOT EXISTS (SELECT 1 FROM charged c WHERE c.order_id = o.id)) AS "paid_without_charge!",
             ((SELECT COUNT(*) FROM simulated_intents i JOIN orders o ON o.id = i.order_id
               WHERE i.amount_minor <> o.amount_minor OR i.currency <> o.currency)
              + (SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id
                 WHERE p.amount_minor <> o.amount_minor OR p.currency <> o.currency))::bigint AS "wrong_amounts!",
             (SELECT COUNT(*) FROM orders o
              WHERE (SELECT COUNT(*) FROM tickets k WHERE k.order_id = o.id)
                    <> CASE WHEN o.status IN ('paid', 'refunded') THEN o.quantity ELSE 0 END) AS "orders_wrong_tickets!",
             (SELECT COUNT(*) FROM payments p LEFT JOIN simulated_intents i ON i.payment_id = p.id
              WHERE p.status IN ('succeeded', 'refunded', 'failed', 'canceled')
                AND NOT COALESCE(CASE p.status
                      WHEN 'succeeded' THEN i.status = 'succeeded' AND NOT i.refunded
                      WHEN 'refunded' THEN i.status = 'succeeded' AND i.refunded
                      WHEN 'failed' THEN i.status = 'declined'
                      ELSE i.id IS NULL OR i.status = 'canceled' END, FALSE)) AS "payments_disagree!""#
    )
    .fetch_one(pool)
    .await?;
    let given_up = stripe.as_ref().map(|m| m.given_up);
    let given_up_at_stripe = stripe.as_ref().map(|m| m.given_up_at_stripe);
    let intents = match &stripe {
        Some(m) => {
            money.double_charges = m.double_charges;
            money.charges_without_paid_order = m.charges_without_paid_order;
            money.paid_without_charge = m.paid_without_charge;
            money.wrong_amounts = m.wrong_amounts;
            money.payments_disagree = m.payments_disagree;
            m.intents.clone()
        }
        None => simulated_intents,
    };

    // The lines: every hold has some, at its type's price, within the limits;
    // holds and orders carry their lines' sums; a paid order has per line
    // exactly that many tickets of that type, and no other ticket.
    let lines = sqlx::query!(
        r#"WITH totals AS (
             SELECT l.hold_id, COUNT(*) AS lines, SUM(l.quantity)::bigint AS quantity,
                    SUM(l.quantity::bigint * l.unit_price_minor)::bigint AS amount
             FROM hold_lines l GROUP BY l.hold_id)
           SELECT
             (SELECT COUNT(*) FROM holds h WHERE NOT EXISTS (SELECT 1 FROM totals s WHERE s.hold_id = h.id))
               AS "holds_without_lines!",
             (SELECT COUNT(*) FROM hold_lines l JOIN holds h ON h.id = l.hold_id
              JOIN ticket_types t ON t.id = l.ticket_type_id
              WHERE t.event_id <> h.event_id OR l.unit_price_minor <> t.price_minor
                 OR l.quantity < 1 OR l.quantity > t.max_per_order) AS "lines_wrong!",
             (SELECT COUNT(*) FROM holds h JOIN totals s ON s.hold_id = h.id JOIN events e ON e.id = h.event_id
              WHERE s.quantity > e.max_tickets_per_order) AS "holds_over_order_max!",
             (SELECT COUNT(*) FROM holds h JOIN totals s ON s.hold_id = h.id
              WHERE h.quantity <> s.quantity OR h.amount_minor <> s.amount) AS "holds_wrong_totals!",
             (SELECT COUNT(*) FROM orders o LEFT JOIN totals s ON s.hold_id = o.hold_id
              WHERE o.quantity IS DISTINCT FROM s.quantity OR o.amount_minor IS DISTINCT FROM s.amount)
               AS "orders_wrong_totals!",
             (SELECT COUNT(*) FROM orders o JOIN hold_lines l ON l.hold_id = o.hold_id
              WHERE (SELECT COUNT(*) FROM tickets k WHERE k.order_id = o.id AND k.ticket_type_id = l.ticket_type_id)
                    <> CASE WHEN o.status IN ('paid', 'refunded') THEN l.quantity ELSE 0 END)
               AS "order_lines_wrong_tickets!",
             (SELECT COUNT(*) FROM tickets k JOIN orders o ON o.id = k.order_id
              WHERE NOT EXISTS (SELECT 1 FROM hold_lines l
                                WHERE l.hold_id = o.hold_id AND l.ticket_type_id = k.ticket_type_id))
               AS "tickets_of_no_line!",
             (SELECT COUNT(*) FROM totals WHERE lines > 1) AS "holds_several_types!",
             (SELECT COUNT(*) FROM orders o JOIN totals s ON s.hold_id = o.hold_id
              WHERE o.status = 'paid' AND s.lines > 1) AS "paid_several_types!""#
    )
    .fetch_one(pool)
    .await?;

    let seen_paid: Vec<Uuid> = stats.seen_paid.lock().unwrap().clone();
    let paid_answers_broken = sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "n!" FROM orders WHERE id = ANY($1) AND status <> 'paid'"#,
        &seen_paid
    )
    .fetch_one(pool)
    .await?;
    let (h, o, p) = unsettled(pool).await?;
    let count = |pairs: &[(String, i64)]| pairs.iter().map(|(_, n)| n).sum::<i64>();
    // Each buyer checks out once, with one Idempotency-Key: an order its buyer
    // was never answered with is a checkout whose answer was lost (a crash, a
    // 5xx after the commit) and whose retry was not given the same order.
    let orders_lost = count(&orders) - stats.orders.get() as i64;

    let sum = |f: fn(&TypeLine) -> i64| types.iter().map(f).sum::<i64>();
    let tickets_vs_sold = sum(|t| (t.tickets - t.sold).abs()) + money.orders_wrong_tickets;
    let mut checks = vec![
        worst_of("oversold seats", sum(TypeLine::oversold), &stats.peak_oversold, stats),
        worst_of("inventory counters ≠ rows", sum(TypeLine::counter_drift), &stats.peak_drift, stats),
        check("double charges", money.double_charges),
        check("charges without a paid order", money.charges_without_paid_order),
        check("paid orders without a charge", money.paid_without_charge),
        check("charge amount ≠ order amount", money.wrong_amounts),
        check("tickets issued ≠ seats sold", tickets_vs_sold),
        check(
            "holds/orders ≠ their lines",
            lines.holds_without_lines
                + lines.lines_wrong
                + lines.holds_over_order_max
                + lines.holds_wrong_totals
                + lines.orders_wrong_totals,
        ),
        check("paid orders' tickets ≠ their lines", lines.order_lines_wrong_tickets + lines.tickets_of_no_line),
        Check {
            name: "no paid order of several types".into(),
            value: i64::from(lines.paid_several_types == 0),
            detail: format!(
                "paid orders of several types {}, holds of several types {}",
                lines.paid_several_types, lines.holds_several_types
            ),
        },
        check("payments ≠ provider records", money.payments_disagree),
        check("buyers told paid, order not paid", paid_answers_broken),
        check("orders their buyer never got", orders_lost),
        check(format!("unsettled after {} s", settle_timeout.as_secs()), h + o + p),
        check("unexpected answers", stats.unexpected.get() as i64),
        check("5xx answers", stats.bad_5xx.get() as i64),
    ];
    if let Some(found) = given_up_at_stripe {
        checks.push(check("given up on, yet found at Stripe", found));
    }
    if let Some((mismatches, what)) = provider_audit {
        checks.push(Check { name: "payments audit mismatches".into(), value: mismatches, detail: what });
    }
    Ok(Audit { types, holds, orders, payments, intents, given_up, checks })
}

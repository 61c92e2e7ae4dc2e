//! After the run: the seats the server says are taken must be exactly the
//! seats it acknowledged, type by type, seen from the admin API and from the
//! database, and never more than the capacity.

use std::collections::HashSet;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::http::{Conn, Reply};
use crate::load::{Mode, Tally};

pub struct Expect<'a> {
    pub mode: Mode,
    pub event_id: Uuid,
    /// The event's ticket types, in order.
    pub ticket_types: &'a [Uuid],
    pub quantity: i64,
    /// Holds expire during the run (`--hold-secs`): their seats come back.
    pub holds_expire: bool,
    pub tally: &'a Tally,
}

impl Expect<'_> {
    /// Seats of `ticket_type` in the acknowledged holds.
    fn acknowledged(&self, ticket_type: Uuid) -> i64 {
        self.tally.seats.get(&ticket_type).copied().unwrap_or_default()
    }

    /// How a check names a ticket type: nothing when the event has one.
    fn label(&self, ticket_type: Uuid) -> String {
        match self.ticket_types.iter().position(|t| *t == ticket_type) {
            Some(_) if self.ticket_types.len() == 1 => String::new(),
            Some(i) => format!(" [type {}/{}]", i + 1, self.ticket_types.len()),
            None => format!(" [type {ticket_type}]"),
        }
    }
}

/// One line of the verdict.
pub struct Check {
    pub what: String,
    pub ok: bool,
}

fn check(what: impl Into<String>, ok: bool) -> Check {
    Check { what: what.into(), ok }
}

#[derive(Deserialize)]
struct AdminEvent {
    id: Uuid,
    ticket_types: Vec<AdminTicketType>,
}

#[derive(Deserialize)]
struct AdminTicketType {
    id: Uuid,
    capacity: i64,
    sold: i64,
    held: i64,
    available: i64,
}

pub async fn from_api(addr: SocketAddr, admin_token: &str, e: &Expect<'_>) -> anyhow::Result<Vec<Check>> {
    let mut conn = Conn::new(addr);
    let body = match conn.send(Method::GET, "/api/v1/admin/events", Some(admin_token), None, None).await {
        Reply::Answer { status: StatusCode::OK, body } => body,
        Reply::Answer { status, body } => {
            bail!("GET /api/v1/admin/events: {status} {}", String::from_utf8_lossy(&body))
        }
        Reply::Failed(why) => bail!("GET /api/v1/admin/events: {why}"),
    };
    let events: Vec<AdminEvent> = serde_json::from_slice(&body).context("reading the admin events")?;
    let event =
        events.iter().find(|ev| ev.id == e.event_id).context("the bench event is missing from the admin API")?;
    let mut checks = Vec::new();
    for &id in e.ticket_types {
        let tt = event.ticket_types.iter().find(|t| t.id == id).context("a bench ticket type is missing")?;
        let (label, acknowledged) = (e.label(id), e.acknowledged(id));
        // With expiries only the database can tell which acknowledged seats came back.
        let (relation, holds) = match e.holds_expire {
            false => ("==", tt.sold + tt.held == acknowledged),
            true => ("<=", tt.sold + tt.held <= acknowledged),
        };
        checks.push(check(
            format!(
                "API{label}: seats taken (sold {} + held {}) {relation} seats in acknowledged holds ({acknowledged})",
                tt.sold, tt.held
            ),
            holds,
        ));
        checks.push(check(
            format!("API{label}: not oversold (sold + held = {} <= capacity {})", tt.sold + tt.held, tt.capacity),
            tt.sold + tt.held <= tt.capacity,
        ));
        if e.tally.sold_out_types.contains(&id) {
            checks.push(check(
                format!("API{label}: sold_out was true (available {} < quantity {})", tt.available, e.quantity),
                tt.available < e.quantity,
            ));
        }
    }
    checks.push(check(
        format!("API: every ticket type a sold_out named is the event's ({})", e.tally.sold_out_types.len()),
        e.tally.sold_out_types.iter().all(|t| e.ticket_types.contains(t)),
    ));
    if e.mode == Mode::Purchase {
        let tt = event.ticket_types.iter().find(|t| t.id == e.ticket_types[0]).context("no ticket type")?;
        let paid = e.tally.paid_orders.len() as i64 * e.quantity;
        checks.push(check(format!("API: sold {} == seats in paid orders ({paid})", tt.sold), tt.sold == paid));
    }
    Ok(checks)
}

pub async fn from_database(pool: &PgPool, e: &Expect<'_>) -> anyhow::Result<Vec<Check>> {
    // Seats by ticket type, from the hold lines: of live holds, of unpaid and of paid orders.
    let types = sqlx::query!(
        r#"SELECT t.id, t.capacity, t.sold, t.held,
             (SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN holds h ON h.id = l.hold_id
              WHERE l.ticket_type_id = t.id AND h.status = 'active')::bigint AS "active_holds!",
             (SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN orders o ON o.hold_id = l.hold_id
              WHERE l.ticket_type_id = t.id AND o.status = 'awaiting_payment')::bigint AS "unpaid!",
             (SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN orders o ON o.hold_id = l.hold_id
              WHERE l.ticket_type_id = t.id AND o.status = 'paid')::bigint AS "paid!",
             (SELECT COUNT(*) FROM tickets k WHERE k.ticket_type_id = t.id) AS "tickets!",
             (SELECT COALESCE(SUM(l.quantity), 0) FROM hold_lines l JOIN holds h ON h.id = l.hold_id
              WHERE l.ticket_type_id = t.id AND h.status IN ('expired', 'released'))::bigint AS "given_back!"
           FROM ticket_types t WHERE t.event_id = $1 ORDER BY t.position"#,
        e.event_id
    )
    .fetch_all(pool)
    .await?;
    let mut checks = Vec::new();
    for &id in e.ticket_types {
        let rows = types.iter().find(|t| t.id == id).context("a bench ticket type is missing from the database")?;
        let (label, acknowledged) = (e.label(id), e.acknowledged(id));
        let (sold, held) = (i64::from(rows.sold), i64::from(rows.held));
        let (given_back, expired) = match e.holds_expire {
            true => (rows.given_back, format!(" + given back {}", rows.given_back)),
            false => (0, String::new()),
        };
        checks.extend([
            check(
                format!(
                    "DB{label}: seats taken (sold {sold} + held {held}{expired}) == seats in acknowledged holds \
                     ({acknowledged})"
                ),
                sold + held + given_back == acknowledged,
            ),
            check(
                format!("DB{label}: not oversold (sold + held = {} <= capacity {})", sold + held, rows.capacity),
                sold + held <= i64::from(rows.capacity),
            ),
            check(
                format!(
                    "DB{label}: counters match the hold lines (held {held} == active holds {} + unpaid orders {}; \
                     sold {sold} == paid orders {})",
                    rows.active_holds, rows.unpaid, rows.paid
                ),
                held == rows.active_holds + rows.unpaid && sold == rows.paid,
            ),
            check(format!("DB{label}: one ticket per seat sold ({} tickets)", rows.tickets), rows.tickets == sold),
        ]);
    }

    let stored: HashSet<Uuid> = sqlx::query_scalar!("SELECT id FROM holds WHERE event_id = $1", e.event_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    let acked: HashSet<Uuid> = e.tally.holds.iter().copied().collect();
    let missing = acked.difference(&stored).count();
    let unacknowledged = stored.difference(&acked).count();
    checks.push(check(
        format!(
            "DB: every acknowledged hold is stored ({missing} missing) and no other ({unacknowledged} unacknowledged)"
        ),
        missing == 0 && unacknowledged == 0 && acked.len() == e.tally.holds.len(),
    ));
    if e.mode == Mode::Purchase {
        let paid: HashSet<Uuid> =
            sqlx::query_scalar!("SELECT id FROM orders WHERE event_id = $1 AND status = 'paid'", e.event_id)
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect();
        let acked: HashSet<Uuid> = e.tally.paid_orders.iter().copied().collect();
        checks.push(check(
            format!("DB: paid orders == orders seen paid ({} vs {})", paid.len(), acked.len()),
            paid == acked,
        ));
    }
    Ok(checks)
}

/// Replays keyed requests of the run (all of them, or an even sample of
/// `at_most`) with their keys: each must get the very answer it got first.
pub async fn replays(addr: SocketAddr, tally: &Tally, at_most: usize) -> anyhow::Result<Vec<Check>> {
    if tally.keyed.is_empty() {
        return Ok(Vec::new());
    }
    let step = tally.keyed.len().div_ceil(at_most).max(1);
    let mut conn = Conn::new(addr);
    conn.connect().await?;
    let (mut replayed, mut differ, mut example) = (0, 0, String::new());
    for k in tally.keyed.iter().step_by(step) {
        let extra = Some(("Idempotency-Key", k.key.as_str()));
        let same = match conn.send(Method::POST, &k.path, k.bearer.as_deref(), extra, k.body.clone()).await {
            Reply::Answer { status, body } => {
                let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
                status == k.status && json(&body).is_some() && json(&body) == json(&k.answer)
            }
            Reply::Failed(why) => bail!("replaying {}: {why}", k.path),
        };
        replayed += 1;
        if !same {
            differ += 1;
            example = k.path.clone();
        }
    }
    Ok(vec![
        check(format!("keyed answers replayed: {replayed} of {}", tally.keyed.len()), replayed > 0),
        check(
            format!(
                "no key answered twice differently ({differ}{})",
                if example.is_empty() { String::new() } else { format!(", e.g. {example}") }
            ),
            differ == 0,
        ),
    ])
}

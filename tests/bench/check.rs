//! After the run: the seats the server says are taken must be exactly the
//! seats it acknowledged, seen from the admin API and from the database, and
//! never more than the capacity.

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
    pub ticket_type_id: Uuid,
    pub quantity: i64,
    pub tally: &'a Tally,
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
    let tt = events
        .iter()
        .filter(|ev| ev.id == e.event_id)
        .flat_map(|ev| &ev.ticket_types)
        .find(|t| t.id == e.ticket_type_id)
        .context("the bench event is missing from the admin API")?;
    let acknowledged = e.tally.holds.len() as i64 * e.quantity;
    let mut checks = vec![
        check(
            format!(
                "API: seats taken (sold {} + held {}) == seats in acknowledged holds ({acknowledged})",
                tt.sold, tt.held
            ),
            tt.sold + tt.held == acknowledged,
        ),
        check(
            format!("API: not oversold (sold + held = {} <= capacity {})", tt.sold + tt.held, tt.capacity),
            tt.sold + tt.held <= tt.capacity,
        ),
    ];
    if e.tally.saw_sold_out {
        checks.push(check(
            format!("API: sold_out was true (available {} < quantity {})", tt.available, e.quantity),
            tt.available < e.quantity,
        ));
    }
    if e.mode == Mode::Purchase {
        let paid = e.tally.paid_orders.len() as i64 * e.quantity;
        checks.push(check(format!("API: sold {} == seats in paid orders ({paid})", tt.sold), tt.sold == paid));
    }
    Ok(checks)
}

pub async fn from_database(pool: &PgPool, e: &Expect<'_>) -> anyhow::Result<Vec<Check>> {
    let tt = sqlx::query!("SELECT capacity, sold, held FROM ticket_types WHERE id = $1", e.ticket_type_id)
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query!(
        r#"SELECT
             (SELECT COALESCE(SUM(l.quantity), 0) FROM holds h JOIN hold_lines l ON l.hold_id = h.id
               WHERE l.ticket_type_id = $1 AND h.status = 'active') AS "active_holds!",
             (SELECT COALESCE(SUM(l.quantity), 0) FROM orders o JOIN hold_lines l ON l.hold_id = o.hold_id
               WHERE l.ticket_type_id = $1 AND o.status = 'awaiting_payment') AS "unpaid!",
             (SELECT COALESCE(SUM(l.quantity), 0) FROM orders o JOIN hold_lines l ON l.hold_id = o.hold_id
               WHERE l.ticket_type_id = $1 AND o.status = 'paid') AS "paid!",
             (SELECT COUNT(*) FROM tickets WHERE ticket_type_id = $1) AS "tickets!""#,
        e.ticket_type_id
    )
    .fetch_one(pool)
    .await?;
    let (sold, held) = (i64::from(tt.sold), i64::from(tt.held));
    let acknowledged = e.tally.holds.len() as i64 * e.quantity;
    let mut checks = vec![
        check(
            format!("DB: seats taken (sold {sold} + held {held}) == seats in acknowledged holds ({acknowledged})"),
            sold + held == acknowledged,
        ),
        check(format!("DB: not oversold (sold + held = {} <= capacity {})", sold + held, tt.capacity), sold + held <= i64::from(tt.capacity)),
        check(
            format!(
                "DB: counters match the rows (held {held} == active holds {} + unpaid orders {}; sold {sold} == paid orders {})",
                rows.active_holds, rows.unpaid, rows.paid
            ),
            held == rows.active_holds + rows.unpaid && sold == rows.paid,
        ),
        check(format!("DB: one ticket per seat sold ({} tickets)", rows.tickets), rows.tickets == sold),
    ];

    let stored: HashSet<Uuid> =
        sqlx::query_scalar!("SELECT hold_id FROM hold_lines WHERE ticket_type_id = $1", e.ticket_type_id)
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
        let paid: HashSet<Uuid> = sqlx::query_scalar!(
            "SELECT o.id FROM orders o JOIN hold_lines l ON l.hold_id = o.hold_id
             WHERE l.ticket_type_id = $1 AND o.status = 'paid'",
            e.ticket_type_id
        )
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

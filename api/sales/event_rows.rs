//! The public view of events, read from one row per ticket type: shared by
//! the event pages, the event list and the organiser's views.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::views::{EventView, TicketTypeView};
use crate::domain::status::HoldStatus;

/// One row per ticket type, joined with its event. `available` counts holds
/// whose deadline passed as free even before the sweeper has expired them.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub event_id: Uuid,
    pub event_name: String,
    pub venue: String,
    pub starts_at: OffsetDateTime,
    pub currency: String,
    pub max_tickets_per_order: Option<i32>,
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub capacity: i32,
    pub max_per_order: i32,
    pub sold: i32,
    pub available: i32,
}

/// Ticket types of one event (`event_id`), or of all events starting after `after`.
pub(crate) async fn fetch_rows(
    db: impl PgExecutor<'_>,
    event_id: Option<Uuid>,
    after: Option<OffsetDateTime>,
) -> Result<Vec<EventRow>, sqlx::Error> {
    // Planned at every execution (reads of one page are coalesced, so this is
    // cheap): a plan cached when `holds` was small is a sequential scan kept as
    // the table grows, and one cached at any size cannot use the partial
    // indexes on active holds, since the status is a parameter.
    sqlx::query_as::<_, EventRow>(
        "SELECT e.id AS event_id, e.name AS event_name, e.venue, e.starts_at, e.currency,
                e.max_tickets_per_order, t.id, t.name, t.price_minor, t.capacity, t.max_per_order, t.sold,
                (t.capacity - t.sold - t.held + COALESCE(
                    (SELECT SUM(l.quantity) FROM holds h JOIN hold_lines l ON l.hold_id = h.id
                      WHERE h.event_id = e.id AND l.ticket_type_id = t.id AND h.status = $3
                        AND h.expires_at <= now()), 0)
                )::int AS available
         FROM events e JOIN ticket_types t ON t.event_id = e.id
         WHERE ($1::uuid IS NULL OR e.id = $1) AND ($2::timestamptz IS NULL OR e.starts_at > $2)
         ORDER BY e.starts_at, e.id, t.position",
    )
    .bind(event_id)
    .bind(after)
    .bind(HoldStatus::Active)
    .persistent(false)
    .fetch_all(db)
    .await
}

/// Groups consecutive rows of the same event.
pub(crate) fn group<T>(rows: Vec<EventRow>, mut make: impl FnMut(&[EventRow]) -> T) -> Vec<T> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        if i == rows.len() || rows[i].event_id != rows[start].event_id {
            out.push(make(&rows[start..i]));
            start = i;
        }
    }
    out
}

pub(crate) fn ticket_type_view(r: &EventRow) -> TicketTypeView {
    TicketTypeView {
        id: r.id,
        name: r.name.clone(),
        price_minor: r.price_minor,
        currency: r.currency.clone(),
        capacity: r.capacity,
        available: r.available.max(0),
        max_per_order: r.max_per_order,
    }
}

pub(crate) fn event_view(rows: &[EventRow]) -> EventView {
    let first = &rows[0];
    EventView {
        id: first.event_id,
        name: first.event_name.clone(),
        venue: first.venue.clone(),
        starts_at: first.starts_at,
        currency: first.currency.clone(),
        max_tickets_per_order: first.max_tickets_per_order,
        ticket_types: rows.iter().map(ticket_type_view).collect(),
    }
}

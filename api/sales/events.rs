//! Public reads of events with exact availability.

use actix_web::http::header::ContentType;
use actix_web::{get, web, HttpResponse};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::event_pages::Page;
use super::views::{EventView, TicketTypeView};
use crate::domain::status::HoldStatus;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// One row per ticket type, joined with its event. `available` counts holds
/// whose deadline passed as free even before the sweeper has expired them.
pub(crate) struct EventRow {
    pub event_id: Uuid,
    pub event_name: String,
    pub venue: String,
    pub starts_at: OffsetDateTime,
    pub currency: String,
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
    sqlx::query_as!(
        EventRow,
        r#"SELECT e.id AS event_id, e.name AS event_name, e.venue, e.starts_at, e.currency AS "currency!",
                  t.id, t.name, t.price_minor, t.capacity, t.max_per_order, t.sold,
                  (t.capacity - t.sold - t.held + COALESCE(
                      (SELECT SUM(h.quantity) FROM holds h
                        WHERE h.ticket_type_id = t.id AND h.status = $3 AND h.expires_at <= now()), 0)
                  )::int AS "available!"
           FROM events e JOIN ticket_types t ON t.event_id = e.id
           WHERE ($1::uuid IS NULL OR e.id = $1) AND ($2::timestamptz IS NULL OR e.starts_at > $2)
           ORDER BY e.starts_at, e.id, t.position"#,
        event_id,
        after,
        HoldStatus::Active as HoldStatus,
    )
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
        ticket_types: rows.iter().map(ticket_type_view).collect(),
    }
}

/// Upcoming events, soonest first.
#[utoipa::path(
    tag = "events",
    responses((status = 200, description = "Upcoming events with live availability", body = [EventView]))
)]
#[get("/events")]
pub async fn list_events(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let rows = fetch_rows(&state.pool, None, Some(OffsetDateTime::now_utc())).await?;
    Ok(HttpResponse::Ok().json(group(rows, event_view)))
}

/// One event with its ticket types and live availability.
#[utoipa::path(
    tag = "events",
    params(("event_id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event", body = EventView),
        (status = 404, description = "No such event", body = ErrorBody),
    )
)]
#[get("/events/{event_id}")]
pub async fn get_event(state: web::Data<AppState>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let event_id = path.into_inner();
    match state.event_pages.read(event_id).await {
        Page::Found(json) => return Ok(HttpResponse::Ok().content_type(ContentType::json()).body(json)),
        Page::NotFound => return Err(ApiError::NotFound("no such event")),
        Page::Unavailable { code, message } => return Err(ApiError::Unavailable { code, message }),
        Page::Failed => {}
    }
    let rows = fetch_rows(&state.pool, Some(event_id), None).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound("no such event"));
    }
    Ok(HttpResponse::Ok().json(event_view(&rows)))
}

//! Public reads of events with exact availability.

use actix_web::http::header::ContentType;
use actix_web::{get, web, HttpResponse};
use time::OffsetDateTime;
use uuid::Uuid;

use super::event_pages::Page;
use super::event_rows::{event_view, fetch_rows, group};
use super::views::EventView;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

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

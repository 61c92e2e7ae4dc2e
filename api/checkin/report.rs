//! The organiser's view of the door: counts per ticket type, double entries
//! found when offline gates uploaded their scans, and undoing a check-in.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::devices::require_event;
use super::scans::{Admission, CheckinOutcome};
use super::ticket_keys::{code_hash, StoredCode};
use crate::caller::Admin;
use crate::domain::secret::is_ticket_code;
use crate::domain::status::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketTypeCheckins {
    pub id: Uuid,
    pub name: String,
    /// Valid tickets (of paid orders).
    pub sold: i64,
    pub checked_in: i64,
}

/// A ticket an offline gate let in although it was already in (`double_entry`) or no longer valid (`invalid_entry`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DoubleEntry {
    /// The offline scan's id.
    pub id: Uuid,
    pub kind: CheckinOutcome,
    pub ticket: String,
    pub name: String,
    pub ticket_type: String,
    pub device_id: Uuid,
    pub device: String,
    /// When the offline gate let the holder in (its clock).
    #[serde(with = "time::serde::rfc3339")]
    pub scanned_at: OffsetDateTime,
    /// When the scan reached the server.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// For `double_entry`: the admission it doubled.
    pub first: Option<Admission>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinReport {
    pub sold: i64,
    pub checked_in: i64,
    pub ticket_types: Vec<TicketTypeCheckins>,
    /// Oldest first.
    pub double_entries: Vec<DoubleEntry>,
}

/// Check-in counts per ticket type and the double entries of an event.
#[utoipa::path(
    tag = "checkin",
    params(("event_id" = Uuid, Path, description = "Event id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Counts and double entries", body = CheckinReport),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    )
)]
#[get("/admin/events/{event_id}/checkins")]
pub async fn checkin_report(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let event_id = path.into_inner();
    require_event(&state, event_id).await?;
    let ticket_types = sqlx::query_as!(
        TicketTypeCheckins,
        r#"SELECT tt.id, tt.name,
                  COUNT(t.id) FILTER (WHERE o.status = $2) AS "sold!",
                  COUNT(s.id) AS "checked_in!"
           FROM ticket_types tt
           LEFT JOIN tickets t ON t.ticket_type_id = tt.id
           LEFT JOIN orders o ON o.id = t.order_id
           LEFT JOIN checkin_scans s ON s.event_id = t.event_id AND s.ticket_id = t.id
                                     AND s.outcome = 'admitted' AND s.undone_at IS NULL
           WHERE tt.event_id = $1
           GROUP BY tt.id ORDER BY tt.position"#,
        event_id,
        OrderStatus::Paid as OrderStatus,
    )
    .fetch_all(&state.pool)
    .await?;
    let rows = sqlx::query!(
        r#"SELECT s.id, s.outcome AS "outcome: CheckinOutcome", t.id AS ticket_id, t.key_id, t.sealed_code,
                  t.legacy_code, o.buyer_name, tt.name AS ticket_type,
                  s.device_id, d.name AS device, s.scanned_at, s.recorded_at,
                  a.id AS "a_id?", a.scanned_at AS "a_at?", a.device_id AS "a_device_id?",
                  ad.name AS "a_device?", a.offline AS "a_offline?"
           FROM checkin_scans s
           JOIN checkin_devices d ON d.id = s.device_id
           JOIN tickets t ON t.event_id = s.event_id AND t.id = s.ticket_id
           JOIN orders o ON o.id = t.order_id
           JOIN ticket_types tt ON tt.id = t.ticket_type_id
           LEFT JOIN checkin_scans a ON a.id = s.admission_id
           LEFT JOIN checkin_devices ad ON ad.id = a.device_id
           WHERE s.event_id = $1 AND s.outcome IN ('double_entry', 'invalid_entry')
           ORDER BY s.scanned_at, s.id"#,
        event_id
    )
    .fetch_all(&state.pool)
    .await?;
    let keys = &state.config.ticket_keys;
    let double_entries = rows
        .into_iter()
        .map(|r| {
            Ok(DoubleEntry {
                id: r.id,
                kind: r.outcome,
                ticket: keys.require_code(&StoredCode {
                    event_id,
                    ticket_id: r.ticket_id,
                    key_id: r.key_id.as_deref(),
                    sealed_code: r.sealed_code.as_deref(),
                    legacy_code: r.legacy_code.as_deref(),
                })?,
                name: r.buyer_name,
                ticket_type: r.ticket_type,
                device_id: r.device_id,
                device: r.device,
                scanned_at: r.scanned_at,
                recorded_at: r.recorded_at,
                first: match (r.a_id, r.a_at, r.a_device_id, r.a_device, r.a_offline) {
                    (Some(id), Some(checked_in_at), Some(device_id), Some(device), Some(offline)) => {
                        Some(Admission { id, checked_in_at, device_id, device, offline })
                    }
                    _ => None,
                },
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(HttpResponse::Ok().json(CheckinReport {
        sold: ticket_types.iter().map(|t| t.sold).sum(),
        checked_in: ticket_types.iter().map(|t| t.checked_in).sum(),
        ticket_types,
        double_entries,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoCheckin {
    /// Who undoes it (recorded); `organiser` if left out.
    #[schema(min_length = 1, max_length = 100)]
    pub by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UndoneCheckin {
    /// The admission's id.
    pub id: Uuid,
    pub ticket: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
    pub device: String,
    #[serde(with = "time::serde::rfc3339")]
    pub undone_at: OffsetDateTime,
    pub undone_by: String,
}

/// Undo a ticket's check-in (a mistake at the door): the ticket can be checked in again. Who and when are recorded.
#[utoipa::path(
    tag = "checkin",
    params(
        ("event_id" = Uuid, Path, description = "Event id"),
        ("ticket" = String, Path, description = "Ticket code"),
    ),
    request_body = UndoCheckin,
    security(("admin" = [])),
    responses(
        (status = 200, description = "Undone", body = UndoneCheckin),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such ticket of this event", body = ErrorBody),
        (status = 409, description = format!("`{}`: the ticket is not in", ErrorCode::NotCheckedIn), body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
#[post("/admin/events/{event_id}/checkins/{ticket}/undo")]
pub async fn undo_checkin(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(Uuid, String)>,
    body: web::Json<UndoCheckin>,
) -> ApiResult<HttpResponse> {
    let (event_id, ticket) = path.into_inner();
    let by = match body.by.as_deref().map(str::trim) {
        None => "organiser".to_owned(),
        Some(by) if !by.is_empty() && by.chars().count() <= 100 && !by.chars().any(char::is_control) => by.to_owned(),
        Some(_) => return Err(ApiError::validation("by must be 1 to 100 characters without control characters")),
    };
    if !is_ticket_code(&ticket) {
        return Err(ApiError::NotFound("no such ticket"));
    }
    let undone = sqlx::query_as!(
        UndoneCheckin,
        r#"UPDATE checkin_scans s SET undone_at = now(), undone_by = $3
           FROM checkin_devices d, tickets t
           WHERE d.id = s.device_id AND s.event_id = $1 AND t.event_id = s.event_id AND t.id = s.ticket_id
             AND t.code_hash = $2 AND s.outcome = 'admitted' AND s.undone_at IS NULL
           RETURNING s.id, $4::text AS "ticket!", s.scanned_at AS checked_in_at, d.name AS device,
                     s.undone_at AS "undone_at!", s.undone_by AS "undone_by!""#,
        event_id,
        code_hash(&ticket),
        by,
        ticket
    )
    .fetch_optional(&state.pool)
    .await?;
    if let Some(undone) = undone {
        tracing::info!(%event_id, admission = %undone.id, "check-in undone");
        return Ok(HttpResponse::Ok().json(undone));
    }
    let exists = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM tickets WHERE code_hash = $1 AND event_id = $2)",
        code_hash(&ticket),
        event_id
    )
    .fetch_one(&state.pool)
    .await?;
    if exists != Some(true) {
        return Err(ApiError::NotFound("no such ticket"));
    }
    Err(ApiError::conflict(ErrorCode::NotCheckedIn, "this ticket is not checked in"))
}

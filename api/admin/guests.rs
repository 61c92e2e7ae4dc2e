//! The guest list: who paid, with their ticket codes. JSON or CSV.

use std::collections::HashMap;

use actix_web::{get, http::header, web, HttpResponse};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::caller::Admin;
use crate::checkin::ticket_keys::StoredCode;
use crate::domain::status::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Guest {
    pub order_id: Uuid,
    pub name: String,
    pub email: String,
    /// Ticket codes, in the order's order.
    pub tickets: Vec<String>,
    /// The ticket type of each of `tickets`, in the same order.
    pub ticket_types: Vec<String>,
    /// The tickets that are in: when and through which check-in device.
    pub checked_in: Vec<GuestCheckin>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GuestCheckin {
    pub ticket: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
    pub device: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GuestQuery {
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<GuestFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuestFormat {
    Json,
    Csv,
}

/// Paid attendees of an event, with their check-ins.
#[utoipa::path(
    tag = "admin",
    params(("event_id" = Uuid, Path, description = "Event id"), GuestQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Guests (or CSV with `format=csv`: one row per ticket)",
         content((Vec<Guest> = "application/json"), (String = "text/csv"))),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    )
)]
#[get("/admin/events/{event_id}/guests")]
pub async fn guest_list(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<Uuid>,
    query: web::Query<GuestQuery>,
) -> ApiResult<HttpResponse> {
    let event_id = path.into_inner();
    crate::checkin::devices::require_event(&state, event_id).await?;
    let rows = sqlx::query!(
        r#"SELECT o.id AS order_id, o.buyer_name AS name, o.buyer_email AS email,
                  COALESCE(array_agg(k.id ORDER BY k.position) FILTER (WHERE k.id IS NOT NULL), '{}') AS "tickets!",
                  COALESCE(array_agg(t.name ORDER BY k.position) FILTER (WHERE k.id IS NOT NULL), '{}') AS "ticket_types!"
           FROM orders o
           LEFT JOIN tickets k ON k.order_id = o.id
           LEFT JOIN ticket_types t ON t.id = k.ticket_type_id
           WHERE o.event_id = $1 AND o.status = $2
           GROUP BY o.id
           ORDER BY o.paid_at, o.id"#,
        event_id,
        OrderStatus::Paid as OrderStatus,
    )
    .fetch_all(&state.pool)
    .await?;
    // The codes are not stored: each is derived again (or opened) with the ticket keys.
    let keys = &state.config.ticket_keys;
    let codes: HashMap<Uuid, String> =
        sqlx::query!("SELECT id, key_id, sealed_code, legacy_code FROM tickets WHERE event_id = $1", event_id)
            .fetch_all(&state.pool)
            .await?
            .into_iter()
            .map(|t| {
                let code = keys.require_code(&StoredCode {
                    event_id,
                    ticket_id: t.id,
                    key_id: t.key_id.as_deref(),
                    sealed_code: t.sealed_code.as_deref(),
                    legacy_code: t.legacy_code.as_deref(),
                })?;
                Ok((t.id, code))
            })
            .collect::<Result<_, sqlx::Error>>()?;
    let code = |id: &Uuid| codes.get(id).cloned().unwrap_or_default();
    let mut checkins: HashMap<Uuid, GuestCheckin> = sqlx::query!(
        r#"SELECT s.ticket_id, s.scanned_at AS checked_in_at, d.name AS device
           FROM checkin_scans s JOIN checkin_devices d ON d.id = s.device_id
           WHERE s.event_id = $1 AND s.outcome = 'admitted' AND s.undone_at IS NULL"#,
        event_id
    )
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .map(|c| {
        (c.ticket_id, GuestCheckin { ticket: code(&c.ticket_id), checked_in_at: c.checked_in_at, device: c.device })
    })
    .collect();
    let guests: Vec<Guest> = rows
        .into_iter()
        .map(|r| Guest {
            checked_in: r.tickets.iter().filter_map(|t| checkins.remove(t)).collect(),
            order_id: r.order_id,
            name: r.name,
            email: r.email,
            tickets: r.tickets.iter().map(code).collect(),
            ticket_types: r.ticket_types,
        })
        .collect();
    if query.format != Some(GuestFormat::Csv) {
        return Ok(HttpResponse::Ok().json(guests));
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
        out.write_record([
            "order_id",
            "name",
            "email",
            "ticket_type",
            "ticket_code",
            "checked_in_at",
            "checkin_device",
        ])?;
        for g in &guests {
            for (code, ticket_type) in g.tickets.iter().zip(&g.ticket_types) {
                let order_id = g.order_id.to_string();
                let checkin = g.checked_in.iter().find(|c| &c.ticket == code);
                let at = checkin.and_then(|c| c.checked_in_at.format(&Rfc3339).ok()).unwrap_or_default();
                let device = checkin.map(|c| csv_safe(&c.device)).unwrap_or_default();
                out.write_record([
                    order_id.as_str(),
                    &csv_safe(&g.name),
                    &csv_safe(&g.email),
                    &csv_safe(ticket_type),
                    code,
                    &at,
                    &device,
                ])?;
            }
        }
        out.flush()?;
        Ok(())
    };
    write(&mut out).map_err(|e| ApiError::Internal(e.into()))?;
    let body = out.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"guests-{event_id}.csv\"")))
        .body(body))
}

/// Spreadsheets run cells starting with these as formulas; a buyer's name must stay text.
fn csv_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(super::csv_safe("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(super::csv_safe("Ada"), "Ada");
    }
}

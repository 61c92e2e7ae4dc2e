//! The scanner's API, called with a device token: check a ticket in, upload
//! the scans an offline gate made, and fetch what a gate needs to check
//! tickets without the server.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::codes::{encode_key, EventKey, ScannedCode};
use super::devices::{Device, UploadingDevice, REVOKED_UPLOAD_WINDOW};
use super::offline_time::{BadTime, OfflineTime, CLOCK_SKEW};
use super::scans::{record, Admission, CheckinOutcome, NotRecorded, Scan};
use super::ticket_keys::StoredCode;
use crate::domain::status::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::REPLAYED_HEADER;
use crate::state::AppState;

pub const MAX_OFFLINE_BATCH: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheckin {
    /// What the scanner read: a ticket's signed code from its QR (`<ticket>.<signature>`), or a bare ticket code
    /// (accepted only for tickets issued before codes were derived from a server key).
    #[schema(max_length = 200)]
    pub code: String,
    /// Chosen by the device for this scan; sending it again replays the first answer.
    pub scan_id: Uuid,
}

/// A ticket let in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinView {
    /// The admission's id.
    pub id: Uuid,
    /// The ticket code.
    pub ticket: String,
    /// The buyer's name.
    pub name: String,
    pub ticket_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
    /// The device's name.
    pub device: String,
    pub offline: bool,
}

/// A ticket refused at the door: `already_checked_in` (with the admission) or `ticket_not_valid`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinRefusal {
    pub code: String,
    pub message: String,
    pub ticket: String,
    pub name: String,
    pub ticket_type: String,
    /// For `already_checked_in`: when and by which device the ticket went in.
    pub checked_in: Option<Admission>,
}

impl From<NotRecorded> for ApiError {
    fn from(e: NotRecorded) -> Self {
        match e {
            NotRecorded::UnknownTicket => ApiError::NotFoundCode {
                code: ErrorCode::UnknownTicket,
                message: "no ticket has this code (or its signature is not valid)",
            },
            NotRecorded::SignedCodeRequired => ApiError::Validation {
                code: ErrorCode::SignedCodeRequired,
                message: "this ticket is only accepted with its signature: scan its QR code".into(),
            },
            NotRecorded::OtherEvent => {
                ApiError::Validation { code: ErrorCode::OtherEvent, message: "this ticket is for another event".into() }
            }
            NotRecorded::ScanIdReused => ApiError::Validation {
                code: ErrorCode::ScanIdReused,
                message: "this device already sent this scan_id for another ticket".into(),
            },
            NotRecorded::Contended => ApiError::Unavailable {
                code: ErrorCode::CheckinContended,
                message: "the ticket's check-in changed while it was scanned; scan again".into(),
            },
            NotRecorded::Database(e) => e.into(),
        }
    }
}

fn checkin_view(scan: &Scan) -> CheckinView {
    CheckinView {
        id: scan.id,
        ticket: scan.ticket.clone(),
        name: scan.name.clone(),
        ticket_type: scan.ticket_type.clone(),
        checked_in_at: scan.scanned_at,
        device: scan.device.clone(),
        offline: scan.offline,
    }
}

fn refusal(scan: &Scan) -> CheckinRefusal {
    let (code, message) = match (scan.outcome, &scan.admission) {
        (CheckinOutcome::AlreadyCheckedIn | CheckinOutcome::DoubleEntry, Some(a)) => (
            ErrorCode::AlreadyCheckedIn,
            format!(
                "already checked in at {} by {}",
                a.checked_in_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                a.device
            ),
        ),
        (CheckinOutcome::TicketDisputed, _) => (
            ErrorCode::TicketNotValid,
            "this ticket's payment is disputed (charged back); the organiser refuses disputed orders at the door"
                .to_owned(),
        ),
        _ => (
            ErrorCode::TicketNotValid,
            "this ticket is no longer valid (its order was refunded or canceled)".to_owned(),
        ),
    };
    CheckinRefusal {
        code: code.as_str().to_owned(),
        message,
        ticket: scan.ticket.clone(),
        name: scan.name.clone(),
        ticket_type: scan.ticket_type.clone(),
        checked_in: scan.admission.clone(),
    }
}

/// Check a ticket in at the door.
///
/// Exactly once: of any number of gates scanning one ticket at once, one is answered 201 and the others 409
/// `already_checked_in`. A retry with the same `scan_id` replays the first answer (`Idempotent-Replayed: true`).
#[utoipa::path(
    tag = "checkin",
    request_body = NewCheckin,
    security(("device" = [])),
    responses(
        (status = 201, description = "Admitted", body = CheckinView),
        (status = 401, description = "No device token", body = ErrorBody),
        (status = 403, description = format!("Not a valid device token, or `{}`: a revoked one", ErrorCode::DeviceRevoked), body = ErrorBody),
        (status = 404, description = format!("`{}`: no such ticket, or a forged code", ErrorCode::UnknownTicket), body = ErrorBody),
        (status = 409, description = format!("`{}` (with when and by which device) or `{}` \
                                      (refunded or canceled)", ErrorCode::AlreadyCheckedIn, ErrorCode::TicketNotValid), body = CheckinRefusal),
        (status = 422, description = format!("`{}`, `{}`, `{}` (a bare code of a ticket that must be shown signed) \
                                      or an invalid body", ErrorCode::OtherEvent, ErrorCode::ScanIdReused, ErrorCode::SignedCodeRequired), body = ErrorBody),
    )
)]
#[post("/checkins")]
pub async fn check_in(
    state: web::Data<AppState>,
    device: Device,
    body: web::Json<NewCheckin>,
) -> ApiResult<HttpResponse> {
    let code = ScannedCode::parse(&body.code).ok_or(NotRecorded::UnknownTicket)?;
    let scan = record(&state.pool, &device, body.scan_id, &code, None).await?;
    let mut res = match scan.outcome {
        CheckinOutcome::Admitted => HttpResponse::Created(),
        _ => HttpResponse::Conflict(),
    };
    if scan.replayed {
        res.insert_header((REPLAYED_HEADER, "true"));
    }
    Ok(match scan.outcome {
        CheckinOutcome::Admitted => res.json(checkin_view(&scan)),
        _ => res.json(refusal(&scan)),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineScan {
    #[schema(max_length = 200)]
    pub code: String,
    pub scan_id: Uuid,
    /// When the offline gate let the holder in, by the device's clock: not before the device was created, nor
    /// after it was revoked, nor more than 5 minutes ahead of the server's clock (a time ahead is recorded as now).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scanned_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineUpload {
    #[schema(min_items = 1, max_items = 100)]
    pub scans: Vec<OfflineScan>,
}

/// What the server made of one uploaded scan.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfflineOutcome {
    /// Recorded as the ticket's admission.
    Admitted,
    /// The ticket was already in: recorded and reported to the organiser.
    DoubleEntry,
    /// The ticket was no longer valid: recorded and reported to the organiser.
    InvalidEntry,
    /// This `scan_id` was first sent online and refused there.
    AlreadyCheckedIn,
    /// Likewise, refused online as no longer valid.
    TicketNotValid,
    /// Not recorded: no such ticket, or a forged code.
    UnknownTicket,
    /// Not recorded: a ticket of another event.
    OtherEvent,
    /// Not recorded: this device used the `scan_id` for another ticket.
    ScanIdReused,
    /// Not recorded: `scanned_at` is before the device was created or more than 5 minutes ahead of the server.
    ScannedAtOutOfRange,
    /// Not recorded: `scanned_at` is not before the device's revocation.
    DeviceRevoked,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineResult {
    pub scan_id: Uuid,
    pub outcome: OfflineOutcome,
    pub ticket: Option<String>,
    pub name: Option<String>,
    pub ticket_type: Option<String>,
    /// For `double_entry`: the admission this scan doubled.
    pub checked_in: Option<Admission>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineUploadResult {
    /// One per uploaded scan, in order.
    pub results: Vec<OfflineResult>,
}

/// Upload the scans an offline gate admitted.
///
/// Each scan is recorded once (its `scan_id` makes re-uploading harmless). A ticket that another gate had already
/// let in is recorded as a `double_entry` and shown to the organiser. A revoked device may still upload, for
/// 24 hours after its revocation, the scans it made before it (later ones are answered `device_revoked`).
#[utoipa::path(
    tag = "checkin",
    request_body = OfflineUpload,
    security(("device" = [])),
    responses(
        (status = 200, description = format!("Every scan's outcome; `scanned_at_out_of_range` for a time before the \
                                              device was created or over {} minutes ahead", CLOCK_SKEW.whole_minutes()),
         body = OfflineUploadResult),
        (status = 401, description = "No device token", body = ErrorBody),
        (status = 403, description = format!("Not a valid device token, or `{}`: revoked over {} hours ago",
                                             ErrorCode::DeviceRevoked, REVOKED_UPLOAD_WINDOW.whole_hours()), body = ErrorBody),
        (status = 422, description = "Invalid body (1 to 100 scans)", body = ErrorBody),
        (status = 503, description = "A scan could not be recorded now; upload again", body = ErrorBody),
    )
)]
#[post("/checkins/offline")]
pub async fn upload_offline(
    state: web::Data<AppState>,
    uploader: UploadingDevice,
    body: web::Json<OfflineUpload>,
) -> ApiResult<HttpResponse> {
    if body.scans.is_empty() || body.scans.len() > MAX_OFFLINE_BATCH {
        return Err(ApiError::validation(format!("send 1 to {MAX_OFFLINE_BATCH} scans")));
    }
    let device = &uploader.device;
    let now = OffsetDateTime::now_utc();
    let mut results = Vec::with_capacity(body.scans.len());
    for s in &body.scans {
        let unrecorded = |outcome| OfflineResult {
            scan_id: s.scan_id,
            outcome,
            ticket: None,
            name: None,
            ticket_type: None,
            checked_in: None,
        };
        let at = match OfflineTime::check(s.scanned_at, &uploader, now) {
            Ok(at) => at,
            Err(BadTime::OutOfRange) => {
                results.push(unrecorded(OfflineOutcome::ScannedAtOutOfRange));
                continue;
            }
            Err(BadTime::AfterRevocation) => {
                results.push(unrecorded(OfflineOutcome::DeviceRevoked));
                continue;
            }
        };
        let recorded = match ScannedCode::parse(&s.code) {
            Some(code) => record(&state.pool, device, s.scan_id, &code, Some(at)).await,
            None => Err(NotRecorded::UnknownTicket),
        };
        results.push(match recorded {
            Ok(scan) => OfflineResult {
                scan_id: s.scan_id,
                outcome: match scan.outcome {
                    CheckinOutcome::Admitted => OfflineOutcome::Admitted,
                    CheckinOutcome::DoubleEntry => OfflineOutcome::DoubleEntry,
                    CheckinOutcome::InvalidEntry => OfflineOutcome::InvalidEntry,
                    CheckinOutcome::AlreadyCheckedIn => OfflineOutcome::AlreadyCheckedIn,
                    CheckinOutcome::TicketNotValid | CheckinOutcome::TicketDisputed => OfflineOutcome::TicketNotValid,
                },
                ticket: Some(scan.ticket),
                name: Some(scan.name),
                ticket_type: Some(scan.ticket_type),
                checked_in: scan.admission,
            },
            // Offline gates never admit a bare code: one uploaded is no ticket an offline gate checked.
            Err(NotRecorded::UnknownTicket | NotRecorded::SignedCodeRequired) => {
                unrecorded(OfflineOutcome::UnknownTicket)
            }
            Err(NotRecorded::OtherEvent) => unrecorded(OfflineOutcome::OtherEvent),
            Err(NotRecorded::ScanIdReused) => unrecorded(OfflineOutcome::ScanIdReused),
            // Scans recorded so far stay recorded; the device uploads the batch again.
            Err(e @ (NotRecorded::Contended | NotRecorded::Database(_))) => return Err(e.into()),
        });
    }
    Ok(HttpResponse::Ok().json(OfflineUploadResult { results }))
}

/// What a gate needs, for itself and for checking tickets offline.
#[derive(Debug, Serialize, ToSchema)]
pub struct GateState {
    pub device_id: Uuid,
    pub device: String,
    pub event_id: Uuid,
    pub event: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// The event's Ed25519 public key (32 bytes, base64url): a code `<ticket>.<signature>` is valid if
    /// `signature` (64 bytes, base64url) signs the bytes of `nts-ticket:v1:`, the event id's 16 bytes and `ticket`.
    pub public_key: String,
    /// Tickets sold (of paid orders).
    pub sold: i64,
    /// Tickets in (active admissions).
    pub checked_in: i64,
    /// Ticket codes that are no longer valid (refunded or canceled orders).
    pub revoked: Vec<String>,
    /// Ticket codes already in.
    pub admitted: Vec<String>,
}

/// The gate's event, signing key, counts, and the ticket lists for offline checks.
#[utoipa::path(
    tag = "checkin",
    security(("device" = [])),
    responses(
        (status = 200, description = "The device's event and what it needs offline", body = GateState),
        (status = 401, description = "No device token", body = ErrorBody),
        (status = 403, description = format!("Not a valid device token, or `{}`: a revoked one", ErrorCode::DeviceRevoked), body = ErrorBody),
    )
)]
#[get("/checkin")]
pub async fn gate_state(state: web::Data<AppState>, device: Device) -> ApiResult<HttpResponse> {
    let keys = &state.config.ticket_keys;
    let key = EventKey::for_event(&state.pool, keys, device.event_id).await?;
    let event = sqlx::query!("SELECT name, venue, starts_at FROM events WHERE id = $1", device.event_id)
        .fetch_one(&state.pool)
        .await?;
    let tickets = sqlx::query!(
        r#"SELECT t.id, t.key_id, t.sealed_code, t.legacy_code, o.status = $2 AS "valid!",
                  EXISTS (SELECT 1 FROM checkin_scans s WHERE s.event_id = t.event_id AND s.ticket_id = t.id
                          AND s.outcome = 'admitted' AND s.undone_at IS NULL) AS "admitted!"
           FROM tickets t JOIN orders o ON o.id = t.order_id
           WHERE t.event_id = $1"#,
        device.event_id,
        OrderStatus::Paid as OrderStatus,
    )
    .fetch_all(&state.pool)
    .await?;
    let mut gate = GateState {
        device_id: device.id,
        device: device.name,
        event_id: device.event_id,
        event: event.name,
        venue: event.venue,
        starts_at: event.starts_at,
        public_key: encode_key(&key.public_key()),
        sold: 0,
        checked_in: 0,
        revoked: Vec::new(),
        admitted: Vec::new(),
    };
    for t in tickets {
        let code = || {
            keys.require_code(&StoredCode {
                event_id: device.event_id,
                ticket_id: t.id,
                key_id: t.key_id.as_deref(),
                sealed_code: t.sealed_code.as_deref(),
                legacy_code: t.legacy_code.as_deref(),
            })
        };
        if t.valid {
            gate.sold += 1;
        } else {
            gate.revoked.push(code()?);
        }
        if t.admitted {
            gate.checked_in += 1;
            gate.admitted.push(code()?);
        }
    }
    Ok(HttpResponse::Ok().json(gate))
}

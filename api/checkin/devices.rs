//! Check-in devices: per-event credentials for the scanners at the door. The
//! organiser creates them (the token is shown once; only its hash is kept),
//! lists and revokes them. A device token checks tickets of its event and
//! nothing else.

use std::future::Future;
use std::pin::Pin;

use actix_web::{delete, dev::Payload, get, http::header, post, web, FromRequest, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Admin;
use crate::domain::secret::{hash_secret, is_random_token, random_token};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Device tokens start with this, so a token pasted in the wrong place is recognisable.
const TOKEN_PREFIX: &str = "ntsdev_";
/// Random bytes after the prefix.
const TOKEN_BYTES: usize = 32;

/// How long after its revocation a device may still upload the scans it made
/// offline before it was revoked.
pub const REVOKED_UPLOAD_WINDOW: Duration = Duration::hours(24);

/// The device a request comes from (a valid, unrevoked device token).
#[derive(Debug, Clone)]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    pub event_id: Uuid,
}

/// A device uploading the scans it made offline: unrevoked, or revoked less
/// than [`REVOKED_UPLOAD_WINDOW`] ago (only its scans from before `revoked_at`
/// count; `checkin::scans::OfflineTime` decides).
#[derive(Debug, Clone)]
pub struct UploadingDevice {
    pub device: Device,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The device of the request's token, revoked or not.
fn authenticate(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<UploadingDevice, ApiError>>>> {
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone();
    let token = bearer_token(req);
    Box::pin(async move {
        let token = token.ok_or(ApiError::Unauthorized)?;
        // Only a token of the shape created below is looked up: garbage costs no query.
        if !token.strip_prefix(TOKEN_PREFIX).is_some_and(|t| is_random_token(t, TOKEN_BYTES)) {
            return Err(ApiError::Forbidden);
        }
        let row = sqlx::query!(
            "SELECT id, name, event_id, created_at, revoked_at FROM checkin_devices WHERE token_hash = $1",
            hash_secret(&token)
        )
        .fetch_optional(&state.pool)
        .await?
        .ok_or(ApiError::Forbidden)?;
        Ok(UploadingDevice {
            device: Device { id: row.id, name: row.name, event_id: row.event_id },
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    })
}

const REVOKED: &str = "the organiser revoked this check-in device";

impl FromRequest for Device {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = authenticate(req);
        Box::pin(async move {
            let found = found.await?;
            match found.revoked_at {
                None => Ok(found.device),
                Some(_) => Err(ApiError::DeviceRevoked(REVOKED)),
            }
        })
    }
}

impl FromRequest for UploadingDevice {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = authenticate(req);
        Box::pin(async move {
            let found = found.await?;
            match found.revoked_at {
                Some(at) if at + REVOKED_UPLOAD_WINDOW <= OffsetDateTime::now_utc() => Err(ApiError::DeviceRevoked(
                    "the organiser revoked this check-in device too long ago for its offline scans to be uploaded",
                )),
                _ => Ok(found),
            }
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// What the door staff call it, e.g. `Gate 2, left`.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// A new device with its token: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedDevice {
    pub id: Uuid,
    pub name: String,
    /// The device's bearer token for the check-in API and `checkin.html`.
    pub token: String,
    /// The token as a QR code (SVG), for the scanner page to read with its camera.
    pub token_qr_svg: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Tickets this device let in (undone admissions not counted).
    pub admitted: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_scan_at: Option<OffsetDateTime>,
}

fn device_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name must be 1 to 100 characters without control characters"));
    }
    Ok(name.to_owned())
}

pub(crate) async fn require_event(state: &AppState, event_id: Uuid) -> ApiResult<()> {
    let exists = sqlx::query_scalar!("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)", event_id)
        .fetch_one(&state.pool)
        .await?;
    if exists != Some(true) {
        return Err(ApiError::NotFound("no such event"));
    }
    Ok(())
}

/// Create a check-in device for an event; answers its token once.
#[utoipa::path(
    tag = "checkin",
    params(("event_id" = Uuid, Path, description = "Event id")),
    request_body = NewDevice,
    security(("admin" = [])),
    responses(
        (status = 201, description = "Created; the token is not shown again", body = CreatedDevice),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    )
)]
#[post("/admin/events/{event_id}/checkin-devices")]
pub async fn create_device(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<Uuid>,
    body: web::Json<NewDevice>,
) -> ApiResult<HttpResponse> {
    let event_id = path.into_inner();
    let name = device_name(&body.name)?;
    require_event(&state, event_id).await?;
    let token = format!("{TOKEN_PREFIX}{}", random_token(TOKEN_BYTES));
    let id = Uuid::new_v4();
    let created_at = sqlx::query_scalar!(
        "INSERT INTO checkin_devices (id, event_id, name, token_hash) VALUES ($1, $2, $3, $4) RETURNING created_at",
        id,
        event_id,
        name,
        hash_secret(&token)
    )
    .fetch_one(&state.pool)
    .await?;
    let qr = qrcode::QrCode::new(token.as_bytes()).map_err(|e| ApiError::Internal(e.into()))?;
    let token_qr_svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    Ok(HttpResponse::Created().json(CreatedDevice { id, name, token, token_qr_svg, created_at }))
}

/// An event's check-in devices, revoked ones included.
#[utoipa::path(
    tag = "checkin",
    params(("event_id" = Uuid, Path, description = "Event id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Devices, oldest first", body = [DeviceView]),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    )
)]
#[get("/admin/events/{event_id}/checkin-devices")]
pub async fn list_devices(state: web::Data<AppState>, _admin: Admin, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let event_id = path.into_inner();
    require_event(&state, event_id).await?;
    let devices = sqlx::query_as!(
        DeviceView,
        r#"SELECT d.id, d.name, d.created_at, d.revoked_at,
                  COUNT(s.id) FILTER (WHERE s.outcome = 'admitted' AND s.undone_at IS NULL) AS "admitted!",
                  MAX(s.scanned_at) AS last_scan_at
           FROM checkin_devices d LEFT JOIN checkin_scans s ON s.device_id = d.id
           WHERE d.event_id = $1
           GROUP BY d.id ORDER BY d.created_at, d.id"#,
        event_id
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(devices))
}

/// Revoke a device: its token checks no ticket in from now on (`device_revoked`); for 24 hours it may still upload
/// the scans it made offline before now. Revoking twice is fine.
#[utoipa::path(
    tag = "checkin",
    params(
        ("event_id" = Uuid, Path, description = "Event id"),
        ("device_id" = Uuid, Path, description = "Device id"),
    ),
    security(("admin" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such device of this event", body = ErrorBody),
    )
)]
#[delete("/admin/events/{event_id}/checkin-devices/{device_id}")]
pub async fn revoke_device(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (event_id, device_id) = path.into_inner();
    let found = sqlx::query_scalar!(
        "UPDATE checkin_devices SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 AND event_id = $2 RETURNING id",
        device_id,
        event_id
    )
    .fetch_optional(&state.pool)
    .await?;
    match found {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(ApiError::NotFound("no such device")),
    }
}

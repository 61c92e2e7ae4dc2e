//! Gates: devices, scans (online and uploaded later), the check-in report.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{nullable, rfc3339_nullable};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDevice {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedDevice {
    pub id: Uuid,
    pub name: String,
    pub token: String,
    pub token_qr_svg: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub id: Uuid,
    pub name: String,
    pub admitted: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(deserialize_with = "rfc3339_nullable::deserialize")]
    pub last_scan_at: Option<OffsetDateTime>,
    #[serde(deserialize_with = "rfc3339_nullable::deserialize")]
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateState {
    pub event_id: Uuid,
    pub event: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub device_id: Uuid,
    pub device: String,
    pub public_key: String,
    pub sold: i64,
    pub checked_in: i64,
    pub admitted: Vec<String>,
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewCheckin {
    pub code: String,
    pub scan_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkin {
    pub id: Uuid,
    pub ticket: String,
    pub name: String,
    pub ticket_type: String,
    pub device: String,
    pub offline: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
}

/// Who let a ticket in first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    pub id: Uuid,
    pub device_id: Uuid,
    pub device: String,
    pub offline: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
}

/// The body of a refused scan: an error body with what the gate shows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinRefusal {
    pub code: String,
    pub message: String,
    pub ticket: String,
    pub name: String,
    pub ticket_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub checked_in: Option<Admission>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckinOutcome {
    Admitted,
    AlreadyCheckedIn,
    TicketNotValid,
    DoubleEntry,
    InvalidEntry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineOutcome {
    Admitted,
    DoubleEntry,
    InvalidEntry,
    AlreadyCheckedIn,
    TicketNotValid,
    UnknownTicket,
    OtherEvent,
    ScanIdReused,
    ScannedAtOutOfRange,
    DeviceRevoked,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfflineScan {
    pub code: String,
    pub scan_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub scanned_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfflineUpload {
    pub scans: Vec<OfflineScan>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineResult {
    pub scan_id: Uuid,
    pub outcome: OfflineOutcome,
    #[serde(default, deserialize_with = "nullable")]
    pub ticket: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub ticket_type: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub checked_in: Option<Admission>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineUploadResult {
    pub results: Vec<OfflineResult>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoubleEntry {
    pub id: Uuid,
    pub kind: CheckinOutcome,
    pub ticket: String,
    pub name: String,
    pub ticket_type: String,
    pub device_id: Uuid,
    pub device: String,
    #[serde(with = "time::serde::rfc3339")]
    pub scanned_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    #[serde(default, deserialize_with = "nullable")]
    pub first: Option<Admission>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketTypeCheckins {
    pub id: Uuid,
    pub name: String,
    pub sold: i64,
    pub checked_in: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinReport {
    pub sold: i64,
    pub checked_in: i64,
    pub ticket_types: Vec<TicketTypeCheckins>,
    pub double_entries: Vec<DoubleEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UndoCheckin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoneCheckin {
    pub id: Uuid,
    pub ticket: String,
    pub device: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub undone_at: OffsetDateTime,
    pub undone_by: String,
}

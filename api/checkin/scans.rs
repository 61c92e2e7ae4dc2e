//! Recording scans. Whether a ticket goes in is decided by the database: the
//! partial unique index `checkin_scans_one_admission` lets one active
//! admission per ticket exist, so of any number of gates and instances
//! scanning one ticket at once exactly one insert succeeds. A device's retry
//! of a scan (same `scan_id`) finds the row its first try wrote and gets the
//! same answer.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::codes::{self, ScannedCode};
use super::devices::Device;
use super::offline_time::OfflineTime;
use super::ticket_keys::code_hash;
use crate::domain::status::{DisputeStatus, OrderStatus};
use crate::domain::DisputePolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "checkin_outcome", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CheckinOutcome {
    /// The ticket went in.
    Admitted,
    /// Refused online: the ticket was already in.
    AlreadyCheckedIn,
    /// Refused online: its order was refunded or canceled.
    TicketNotValid,
    /// An offline gate let in a ticket that was already in.
    DoubleEntry,
    /// An offline gate let in a ticket that was no longer valid.
    InvalidEntry,
    /// Refused online: its order's payment is charged back (a dispute open
    /// or lost) and the event refuses disputed orders.
    TicketDisputed,
}

/// Why a scan was not recorded at all.
#[derive(Debug)]
pub enum NotRecorded {
    /// No ticket has this code, or its signature is not the event's.
    UnknownTicket,
    /// A bare code of a ticket that must be shown signed (any ticket issued
    /// since codes are derived from a server key).
    SignedCodeRequired,
    /// A ticket of another event.
    OtherEvent,
    /// The device already used this `scan_id` for another ticket.
    ScanIdReused,
    /// The ticket's admission was admitted and undone over and over while we looked; retrying is fine.
    Contended,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for NotRecorded {
    fn from(e: sqlx::Error) -> Self {
        NotRecorded::Database(e)
    }
}

/// The admission a ticket has (or had when a scan was refused for it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Admission {
    /// The admitting scan's id (what the organiser undoes).
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_in_at: OffsetDateTime,
    pub device_id: Uuid,
    /// The device's name.
    pub device: String,
    /// Admitted by a gate that was offline at the time.
    pub offline: bool,
}

/// A recorded scan, as its device is told about it.
#[derive(Debug, Clone)]
pub struct Scan {
    pub id: Uuid,
    /// The ticket's code, as scanned.
    pub ticket: String,
    /// The hash of the scanned ticket's code, which a retry's must match.
    ticket_hash: Vec<u8>,
    pub name: String,
    pub ticket_type: String,
    pub outcome: CheckinOutcome,
    pub offline: bool,
    pub scanned_at: OffsetDateTime,
    pub device: String,
    /// For refusals and double entries: the admission in the way.
    pub admission: Option<Admission>,
    /// This answer is a retry's: the scan was recorded before.
    pub replayed: bool,
}

struct Ticket {
    id: Uuid,
    order_id: Uuid,
    event_id: Uuid,
    /// Issued before codes were derived: its bare code may have been printed.
    legacy: bool,
}

/// Records one scan by `device`: online (`offline_at` none: the server's clock
/// says when) or uploaded from an offline gate that already let the holder in.
pub async fn record(
    pool: &PgPool,
    device: &Device,
    scan_id: Uuid,
    code: &ScannedCode,
    offline_at: Option<OfflineTime>,
) -> Result<Scan, NotRecorded> {
    let offline_at = offline_at.map(OfflineTime::at);
    if let Some(scan) = find(pool, device.id, scan_id).await? {
        return replay(scan, code);
    }
    let ticket = sqlx::query_as!(
        Ticket,
        r#"SELECT id, order_id, event_id, legacy_code IS NOT NULL OR sealed_code IS NOT NULL AS "legacy!"
           FROM tickets WHERE code_hash = $1"#,
        code_hash(code.ticket())
    )
    .fetch_optional(pool)
    .await?
    .ok_or(NotRecorded::UnknownTicket)?;
    match code {
        ScannedCode::Signed { ticket: t, signature } => {
            let key = codes::public_key(pool, ticket.event_id).await?;
            if !key.is_some_and(|key| codes::verify(&key, ticket.event_id, t, signature)) {
                return Err(NotRecorded::UnknownTicket);
            }
        }
        ScannedCode::Plain { .. } if !ticket.legacy => return Err(NotRecorded::SignedCodeRequired),
        ScannedCode::Plain { .. } => {}
    }
    if ticket.event_id != device.event_id {
        return Err(NotRecorded::OtherEvent);
    }
    // An undo between our failed admission and the read of the admission in
    // the way leaves nothing to refer to: try again (admitting, this time).
    for _ in 0..3 {
        if insert(pool, device, scan_id, &ticket, offline_at).await? {
            let scan = find(pool, device.id, scan_id).await?.expect("the scan was just recorded");
            return replay(Scan { replayed: false, ..scan }, code);
        }
    }
    Err(NotRecorded::Contended)
}

/// One attempt to record the scan; false if nothing could be recorded.
async fn insert(
    pool: &PgPool,
    device: &Device,
    scan_id: Uuid,
    ticket: &Ticket,
    offline_at: Option<OffsetDateTime>,
) -> Result<bool, sqlx::Error> {
    let offline = offline_at.is_some();
    let mut tx = pool.begin().await?;
    // Shares the lock a refund takes to change the order: a ticket is never
    // admitted by a scan that read its order as paid while a refund commits.
    let order = sqlx::query!(
        r#"SELECT o.status AS "status: OrderStatus",
                  e.dispute_policy = $2 AND EXISTS (SELECT 1 FROM disputes d WHERE d.order_id = o.id
                                                                           AND d.status = ANY($3)) AS "disputed!"
           FROM orders o JOIN events e ON e.id = o.event_id
           WHERE o.id = $1 FOR SHARE OF o"#,
        ticket.order_id,
        DisputePolicy::RefuseWhileDisputed as DisputePolicy,
        &DisputeStatus::CHARGED_BACK as &[DisputeStatus],
    )
    .fetch_one(&mut *tx)
    .await?;
    let (outcome, admission) = if order.status != OrderStatus::Paid {
        (if offline { CheckinOutcome::InvalidEntry } else { CheckinOutcome::TicketNotValid }, None)
    } else if order.disputed {
        (if offline { CheckinOutcome::InvalidEntry } else { CheckinOutcome::TicketDisputed }, None)
    } else {
        // Conflicts either with the ticket's active admission or with this
        // device's scan_id (a concurrent retry); both leave the row alone.
        let admitted = sqlx::query_scalar!(
            "INSERT INTO checkin_scans (id, device_id, scan_id, ticket_id, event_id, outcome, offline, scanned_at)
             VALUES ($1, $2, $3, $4, $5, 'admitted', $6, LEAST(COALESCE($7, now()), now()))
             ON CONFLICT DO NOTHING RETURNING id",
            Uuid::new_v4(),
            device.id,
            scan_id,
            ticket.id,
            device.event_id,
            offline,
            offline_at
        )
        .fetch_optional(&mut *tx)
        .await?;
        if admitted.is_some() {
            tx.commit().await?;
            return Ok(true);
        }
        let active = sqlx::query_scalar!(
            "SELECT id FROM checkin_scans
             WHERE event_id = $1 AND ticket_id = $2 AND outcome = 'admitted' AND undone_at IS NULL",
            ticket.event_id,
            ticket.id
        )
        .fetch_optional(&mut *tx)
        .await?;
        match active {
            Some(id) => {
                (if offline { CheckinOutcome::DoubleEntry } else { CheckinOutcome::AlreadyCheckedIn }, Some(id))
            }
            None => {
                // Either the conflict was our scan_id (recorded by a concurrent retry) or the admission was undone.
                let recorded = sqlx::query_scalar!(
                    "SELECT EXISTS (SELECT 1 FROM checkin_scans WHERE device_id = $1 AND scan_id = $2)",
                    device.id,
                    scan_id
                )
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(recorded == Some(true));
            }
        }
    };
    sqlx::query!(
        "INSERT INTO checkin_scans (id, device_id, scan_id, ticket_id, event_id, outcome, offline, scanned_at, admission_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, LEAST(COALESCE($8, now()), now()), $9)
         ON CONFLICT (device_id, scan_id) DO NOTHING",
        Uuid::new_v4(),
        device.id,
        scan_id,
        ticket.id,
        device.event_id,
        outcome as CheckinOutcome,
        offline,
        offline_at,
        admission
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

fn replay(scan: Scan, code: &ScannedCode) -> Result<Scan, NotRecorded> {
    if scan.ticket_hash != code_hash(code.ticket()) {
        return Err(NotRecorded::ScanIdReused);
    }
    Ok(Scan { ticket: code.ticket().to_owned(), ..scan })
}

/// The scan a device recorded under `scan_id`; [`replay`] fills in its ticket code.
async fn find(pool: &PgPool, device_id: Uuid, scan_id: Uuid) -> Result<Option<Scan>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s.id, t.code_hash, o.buyer_name, tt.name AS ticket_type, s.outcome AS "outcome: CheckinOutcome",
                  s.offline, s.scanned_at, d.name AS device,
                  a.id AS "a_id?", a.scanned_at AS "a_at?", a.device_id AS "a_device_id?",
                  ad.name AS "a_device?", a.offline AS "a_offline?"
           FROM checkin_scans s
           JOIN checkin_devices d ON d.id = s.device_id
           JOIN tickets t ON t.event_id = s.event_id AND t.id = s.ticket_id
           JOIN orders o ON o.id = t.order_id
           JOIN ticket_types tt ON tt.id = t.ticket_type_id
           LEFT JOIN checkin_scans a ON a.id = s.admission_id
           LEFT JOIN checkin_devices ad ON ad.id = a.device_id
           WHERE s.device_id = $1 AND s.scan_id = $2"#,
        device_id,
        scan_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Scan {
        id: r.id,
        ticket: String::new(),
        ticket_hash: r.code_hash,
        name: r.buyer_name,
        ticket_type: r.ticket_type,
        outcome: r.outcome,
        offline: r.offline,
        scanned_at: r.scanned_at,
        device: r.device,
        admission: match (r.a_id, r.a_at, r.a_device_id, r.a_device, r.a_offline) {
            (Some(id), Some(checked_in_at), Some(device_id), Some(device), Some(offline)) => {
                Some(Admission { id, checked_in_at, device_id, device, offline })
            }
            _ => None,
        },
        replayed: true,
    }))
}

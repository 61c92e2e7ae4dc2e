//! The outbox: one row per e-mail to send, written in the transaction that
//! makes the change it reports; senders claim due rows under a lease.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::status::{checked, Transitions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "mail_kind", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// The order confirmation with the tickets.
    OrderPaid,
    OrderRefunded,
    /// The tickets again, asked for by the buyer.
    Resend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "mail_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Pending,
    /// Claimed by a sender until its lease ends.
    Sending,
    Sent,
    /// Out of attempts: waits for an admin's retry.
    Failed,
}

impl Transitions for MailStatus {
    fn can_become(self, next: MailStatus) -> bool {
        use MailStatus::*;
        // Sending -> Sending: a lease that ran out is claimed by another sender.
        matches!((self, next), (Pending | Sending, Sending) | (Sending, Sent | Pending | Failed) | (Failed, Pending))
    }
}

/// Writes the e-mail of `kind` about `order_id` to its buyer, inside the
/// caller's transaction. A paid or refund notice is written once per order
/// whoever calls (the unique index decides).
pub async fn enqueue(conn: &mut PgConnection, order_id: Uuid, kind: MailKind) -> Result<(), sqlx::Error> {
    enqueue_all(conn, &[order_id], kind).await
}

/// [`enqueue`] for every order of `order_ids`, in one statement.
pub async fn enqueue_all(conn: &mut PgConnection, order_ids: &[Uuid], kind: MailKind) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = order_ids.iter().map(|_| Uuid::new_v4()).collect();
    sqlx::query!(
        "INSERT INTO mail_outbox (id, order_id, kind, recipient)
         SELECT m.id, o.id, $3, o.buyer_email
         FROM unnest($1::uuid[], $2::uuid[]) AS m(id, order_id) JOIN orders o ON o.id = m.order_id
         ON CONFLICT DO NOTHING",
        &ids,
        order_ids,
        kind as MailKind
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A claimed row: this sender owns it until `lease` ends.
#[derive(Debug)]
pub struct Claimed {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: MailKind,
    pub recipient: String,
    pub attempts: i32,
}

/// Claims the next due row: pending and due, or `sending` under a lease that
/// ran out (its sender died). Several senders never claim the same row.
pub async fn claim(pool: &PgPool, owner: Uuid, lease: std::time::Duration) -> Result<Option<Claimed>, sqlx::Error> {
    let (_, to) = checked(&[MailStatus::Pending, MailStatus::Sending], MailStatus::Sending);
    sqlx::query_as!(
        Claimed,
        r#"UPDATE mail_outbox SET status = $5, lease_owner = $1, lease_until = now() + make_interval(secs => $2),
                  attempts = attempts + 1, updated_at = now()
           WHERE id = (SELECT id FROM mail_outbox
                       WHERE (status = $3 AND next_attempt_at <= now())
                          OR (status = $4 AND lease_until < now())
                       ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING id, order_id, kind AS "kind: MailKind", recipient, attempts"#,
        owner,
        lease.as_secs_f64(),
        MailStatus::Pending as MailStatus,
        MailStatus::Sending as MailStatus,
        to as MailStatus,
    )
    .fetch_optional(pool)
    .await
}

/// The SMTP server took the message. Only the lease holder records it.
pub async fn mark_sent(pool: &PgPool, id: Uuid, owner: Uuid) -> Result<bool, sqlx::Error> {
    let (from, to) = checked(&[MailStatus::Sending], MailStatus::Sent);
    let done = sqlx::query!(
        "UPDATE mail_outbox SET status = $4, sent_at = now(), updated_at = now(), lease_owner = NULL,
                lease_until = NULL, last_error = NULL
         WHERE id = $1 AND status = ANY($3) AND lease_owner = $2",
        id,
        owner,
        from as &[MailStatus],
        to as MailStatus,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The attempt failed: try again after `retry_in`, or give up (`failed`) when
/// the row has had `max_attempts`.
pub async fn mark_failed_attempt(
    pool: &PgPool,
    id: Uuid,
    owner: Uuid,
    error: &str,
    retry_in: std::time::Duration,
    max_attempts: u32,
) -> Result<MailStatus, sqlx::Error> {
    let error: String = error.chars().take(500).collect();
    let (from, give_up) = checked(&[MailStatus::Sending], MailStatus::Failed);
    let (_, again) = checked(from, MailStatus::Pending);
    let status = sqlx::query_scalar!(
        r#"UPDATE mail_outbox SET status = CASE WHEN attempts >= $4 THEN $7::mail_status ELSE $8::mail_status END,
                  next_attempt_at = now() + make_interval(secs => $3), last_error = $5,
                  lease_owner = NULL, lease_until = NULL, updated_at = now()
           WHERE id = $1 AND status = ANY($6) AND lease_owner = $2
           RETURNING status AS "status: MailStatus""#,
        id,
        owner,
        retry_in.as_secs_f64(),
        max_attempts as i32,
        error,
        from as &[MailStatus],
        give_up as MailStatus,
        again as MailStatus,
    )
    .fetch_optional(pool)
    .await?;
    Ok(status.unwrap_or(MailStatus::Sending))
}

/// Exponential backoff: `first`, doubled per attempt, capped at `max`.
pub fn backoff(attempts: i32, first: std::time::Duration, max: std::time::Duration) -> std::time::Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    first.saturating_mul(1u32 << doublings).min(max)
}

/// One row as the organiser sees it: no secret, no content.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: MailKind,
    pub recipient: String,
    pub status: MailStatus,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (first, max) = (Duration::from_secs(5), Duration::from_secs(600));
        assert_eq!(backoff(1, first, max), Duration::from_secs(5));
        assert_eq!(backoff(2, first, max), Duration::from_secs(10));
        assert_eq!(backoff(4, first, max), Duration::from_secs(40));
        assert_eq!(backoff(20, first, max), max);
        assert_eq!(backoff(i32::MAX, first, max), max);
    }
}

//! The organiser's view of the outbox: what waits, what was sent, what failed
//! (with a retry), and whether SMTP is configured at all.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::outbox::{MailKind, MailStatus, OutboxRow};
use crate::caller::Admin;
use crate::domain::status::checked;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxCounts {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    /// Whether this instance has an SMTP server (`NTS_SMTP_URL`); without one nothing is sent.
    pub smtp_configured: bool,
    pub counts: OutboxCounts,
    /// The latest rows (newest first), at most `limit`.
    pub rows: Vec<OutboxRow>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// Only rows in this status.
    pub status: Option<MailStatus>,
    /// At most this many rows (1–500, default 100).
    pub limit: Option<i64>,
}

/// The e-mail outbox: counts per status and the latest rows.
#[utoipa::path(
    tag = "admin",
    params(OutboxQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The outbox", body = OutboxView),
        (status = 422, description = format!("`{}`: an unknown `status` or a `limit` out of range", ErrorCode::ValidationFailed), body = ErrorBody),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
#[get("/admin/mail")]
pub async fn outbox(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<OutboxQuery>,
) -> ApiResult<HttpResponse> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit must be from 1 to 500"));
    }
    let counts = sqlx::query_as!(
        OutboxCounts,
        r#"SELECT count(*) FILTER (WHERE status = $1) AS "pending!",
                  count(*) FILTER (WHERE status = $2) AS "sending!",
                  count(*) FILTER (WHERE status = $3) AS "sent!",
                  count(*) FILTER (WHERE status = $4) AS "failed!"
           FROM mail_outbox"#,
        MailStatus::Pending as MailStatus,
        MailStatus::Sending as MailStatus,
        MailStatus::Sent as MailStatus,
        MailStatus::Failed as MailStatus,
    )
    .fetch_one(&state.pool)
    .await?;
    let rows = sqlx::query_as!(
        OutboxRow,
        r#"SELECT id, order_id, kind AS "kind: MailKind", recipient, status AS "status: MailStatus", attempts,
                  next_attempt_at, last_error, created_at, sent_at
           FROM mail_outbox WHERE ($1::mail_status IS NULL OR status = $1)
           ORDER BY created_at DESC, id LIMIT $2"#,
        query.status as Option<MailStatus>,
        limit
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(OutboxView { smtp_configured: state.config.mail.smtp_url.is_some(), counts, rows }))
}

/// Send a failed e-mail again: it becomes pending with a fresh set of attempts.
#[utoipa::path(
    tag = "admin",
    params(("outbox_id" = Uuid, Path, description = "Outbox row id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Pending again", body = OutboxRow),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 404, description = "No such outbox row", body = ErrorBody),
        (status = 409, description = format!("`{}`: only a failed e-mail can be retried", ErrorCode::MailNotFailed), body = ErrorBody),
    )
)]
#[post("/admin/mail/{outbox_id}/retry")]
pub async fn retry(state: web::Data<AppState>, _admin: Admin, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (from, to) = checked(&[MailStatus::Failed], MailStatus::Pending);
    let row = sqlx::query_as!(
        OutboxRow,
        r#"UPDATE mail_outbox SET status = $3, attempts = 0, next_attempt_at = now(), updated_at = now()
           WHERE id = $1 AND status = ANY($2)
           RETURNING id, order_id, kind AS "kind: MailKind", recipient, status AS "status: MailStatus", attempts,
                     next_attempt_at, last_error, created_at, sent_at"#,
        id,
        from as &[MailStatus],
        to as MailStatus,
    )
    .fetch_optional(&state.pool)
    .await?;
    match row {
        Some(row) => {
            tracing::info!(outbox_id = %id, "failed e-mail queued again by an admin");
            Ok(HttpResponse::Ok().json(row))
        }
        None => {
            let exists = sqlx::query_scalar!("SELECT 1 AS \"one!\" FROM mail_outbox WHERE id = $1", id)
                .fetch_optional(&state.pool)
                .await?;
            match exists {
                Some(_) => Err(ApiError::conflict(ErrorCode::MailNotFailed, "only a failed e-mail can be retried")),
                None => Err(ApiError::NotFound("no such e-mail")),
            }
        }
    }
}

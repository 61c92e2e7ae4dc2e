//! The demo event ("the best ever show") a first visitor can buy at once, and
//! the original's "reset the world" call, which restores it.

use actix_web::{post, web, HttpResponse};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::events::{admin_event, insert_event, AdminEventView, NewEvent, NewTicketType};
use crate::caller::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

/// Serialises demo seeding across instances.
const DEMO_LOCK: i64 = 0x6e74_7364_656d_6f;

fn demo_event() -> NewEvent {
    NewEvent {
        name: "The best ever show".into(),
        venue: "The Naive Theatre, London".into(),
        starts_at: OffsetDateTime::now_utc() + Duration::days(30),
        currency: "GBP".into(),
        ticket_types: vec![
            NewTicketType { name: "General admission".into(), price_minor: 999, capacity: 10, max_per_order: 4 },
            NewTicketType { name: "Child (under 16)".into(), price_minor: 499, capacity: 10, max_per_order: 4 },
        ],
        max_tickets_per_order: Some(6),
        dispute_policy: Default::default(),
    }
}

/// Seeding and resetting the demo take turns, across instances.
async fn lock_demo(tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", DEMO_LOCK).execute(tx).await.map(drop)
}

/// Creates the demo event if the database has no events at all.
pub async fn seed_if_empty(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    lock_demo(&mut tx).await?;
    let any = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM events) AS "any!""#).fetch_one(&mut *tx).await?;
    if !any {
        insert_event(&mut tx, &demo_event(), true).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!("created the demo event \"The best ever show\" (set NTS_DEMO=false to skip)");
    }
    tx.commit().await?;
    Ok(())
}

/// Reset the world: delete the demo event with its holds, orders and tickets, and create it afresh.
/// Exists only with simulated payments; it never deletes an order a real payment provider
/// took part in (a database that once ran with Stripe).
#[utoipa::path(
    tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The new demo event", body = AdminEventView),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 409, description = format!("`{}`: an order of the demo event went through a real payment provider; nothing was deleted", ErrorCode::RealMoneyOrders), body = ErrorBody),
    )
)]
#[post("/admin/demo/reset")]
pub async fn reset(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let mut tx = state.pool.begin().await?;
    lock_demo(&mut tx).await?;
    let real_money = sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM payments p JOIN orders o ON o.id = p.order_id JOIN events e ON e.id = o.event_id
               WHERE e.is_demo AND p.provider <> 'simulated') AS "any!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    if real_money {
        return Err(ApiError::conflict(
            ErrorCode::RealMoneyOrders,
            "an order of the demo event was paid through a real payment provider; refund and settle it, \
             the demo reset never deletes it",
        ));
    }
    sqlx::query!(
        "DELETE FROM simulated_intents WHERE order_id IN
            (SELECT o.id FROM orders o JOIN events e ON e.id = o.event_id WHERE e.is_demo)"
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM orders WHERE event_id IN (SELECT id FROM events WHERE is_demo)")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM events WHERE is_demo").execute(&mut *tx).await?;
    let id = insert_event(&mut tx, &demo_event(), true).await?;
    tx.commit().await?;
    tracing::warn!("demo event reset");
    Ok(HttpResponse::Ok().json(admin_event(&state.pool, id).await?))
}

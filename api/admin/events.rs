//! Creating events and reading their sales.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Admin;
use crate::domain::money::StripeLimit;
use crate::domain::status::OrderStatus;
use crate::domain::{Currency, DisputePolicy, Money};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::payments::Provider;
use crate::sales::event_rows::{fetch_rows, group, EventRow};
use crate::state::AppState;

pub const MAX_TICKET_TYPES: usize = 20;
pub const MAX_CAPACITY: i64 = 1_000_000;
pub const MAX_PER_ORDER: i64 = 100;
pub const MAX_TICKETS_PER_ORDER: i64 = 2000;
/// 100 million in major units; keeps `price × quantity` far from overflow.
pub const MAX_PRICE_MINOR: i64 = 10_000_000_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketType {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Price of one ticket in minor units (e.g. 999 for 9.99 GBP).
    #[schema(minimum = 0, maximum = 10_000_000_000i64)]
    pub price_minor: i64,
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub capacity: i64,
    #[schema(minimum = 1, maximum = 100)]
    pub max_per_order: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub venue: String,
    /// RFC 3339, in the future.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// ISO 4217 code, e.g. `GBP` (AUD, BRL, CAD, CHF, CNY, CZK, DKK, EUR, GBP, HKD, HUF, INR, ISK, JPY,
    /// KRW, MXN, NOK, NZD, PLN, SEK, SGD, USD, ZAR).
    pub currency: String,
    #[schema(min_items = 1, max_items = 20)]
    pub ticket_types: Vec<NewTicketType>,
    /// At most this many tickets in one order across ticket types (each type's `max_per_order` still applies).
    #[schema(minimum = 1, maximum = 2000)]
    #[serde(default)]
    pub max_tickets_per_order: Option<i64>,
    /// Tickets of an order whose payment is disputed: `admit` (the default)
    /// or `refuse_while_disputed` (refused at the door while a chargeback is
    /// open or after it was lost; an inquiry never refuses anyone).
    #[serde(default)]
    pub dispute_policy: DisputePolicy,
}

/// An event as the organiser sees it: with sales figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminEventView {
    pub id: Uuid,
    pub name: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub currency: String,
    pub max_tickets_per_order: Option<i32>,
    pub dispute_policy: DisputePolicy,
    pub ticket_types: Vec<AdminTicketTypeView>,
    /// Money taken for paid orders, minor units.
    pub revenue_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTicketTypeView {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub capacity: i32,
    pub max_per_order: i32,
    pub sold: i32,
    /// Seats in live holds and unpaid orders.
    pub held: i32,
    pub available: i32,
    pub revenue_minor: i64,
}

fn text(field: &str, raw: &str) -> ApiResult<String> {
    let t = raw.trim();
    if t.is_empty() || raw.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(ApiError::validation(format!("{field} must be 1 to 200 characters without control characters")));
    }
    Ok(t.to_owned())
}

fn bounded(field: &str, value: i64, min: i64, max: i64) -> ApiResult<i64> {
    if !(min..=max).contains(&value) {
        return Err(ApiError::validation(format!("{field} must be between {min} and {max}")));
    }
    Ok(value)
}

/// Create an event with its ticket types.
#[utoipa::path(
    tag = "admin",
    request_body = NewEvent,
    security(("admin" = [])),
    responses(
        (status = 201, description = "Created", body = AdminEventView),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
        (status = 422, description = format!("Invalid event; under Stripe `{}` when it cannot charge a price exactly, `{}` when a non-zero price is under its minimum charge, `{}` when the largest order a buyer can make is over its largest charge", ErrorCode::CurrencyNotChargeable, ErrorCode::AmountBelowProviderMinimum, ErrorCode::AmountAboveProviderMaximum), body = ErrorBody),
    )
)]
#[post("/admin/events")]
pub async fn create_event(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<NewEvent>,
) -> ApiResult<HttpResponse> {
    if state.payments.provider() == Provider::Stripe {
        chargeable_through_stripe(&body)?;
    }
    let mut tx = state.pool.begin().await?;
    let id = insert_event(&mut tx, &body, false).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(admin_event(&state.pool, id).await?))
}

/// Every price must be an amount Stripe charges exactly (domain/money.rs),
/// every non-zero price at least Stripe's minimum charge in the currency,
/// and the largest order a buyer can make at most Stripe's largest charge:
/// an event nobody can pay for correctly is refused before it exists. Values
/// out of their ranges are left to `insert_event` to refuse.
fn chargeable_through_stripe(e: &NewEvent) -> ApiResult<()> {
    let Ok(currency) = Currency::parse(&e.currency) else { return Ok(()) };
    let in_range = |t: &&NewTicketType| {
        (0..=MAX_PRICE_MINOR).contains(&t.price_minor)
            && (0..=MAX_CAPACITY).contains(&t.capacity)
            && (1..=MAX_PER_ORDER).contains(&t.max_per_order)
    };
    let types: Vec<&NewTicketType> = e.ticket_types.iter().filter(in_range).collect();
    for t in &types {
        let price = Money::new(t.price_minor, currency).map_err(|e| ApiError::validation(e.to_string()))?;
        price
            .check_stripe()
            .map_err(|e| ApiError::Validation { code: ErrorCode::CurrencyNotChargeable, message: e.to_string() })?;
        if let (true, Err(StripeLimit::BelowMinimum(minimum))) = (t.price_minor > 0, price.check_stripe_limits()) {
            return Err(ApiError::Validation {
                code: ErrorCode::AmountBelowProviderMinimum,
                message: format!(
                    "ticket type {:?} costs {price}, under Stripe's minimum charge of {minimum}; \
                     make it free (0) or at least {minimum}",
                    t.name.trim()
                ),
            });
        }
    }
    let per_order = e.max_tickets_per_order.filter(|n| (1..=MAX_TICKETS_PER_ORDER).contains(n));
    let (total, lines) = largest_order(&types, per_order);
    let total = Money::new(total, currency).map_err(|e| ApiError::validation(e.to_string()))?;
    if let Err(StripeLimit::AboveMaximum(largest)) = total.check_stripe_limits() {
        let lines: Vec<String> = lines.iter().map(|(t, n)| format!("{n} × {:?}", t.name.trim())).collect();
        return Err(ApiError::Validation {
            code: ErrorCode::AmountAboveProviderMaximum,
            message: format!(
                "the largest order a buyer can make ({}) costs {total}, over Stripe's largest charge of {largest}; \
                 lower the prices, max_per_order or max_tickets_per_order",
                lines.join(" + ")
            ),
        });
    }
    Ok(())
}

/// The dearest order a buyer can make, and its lines: each type at most its
/// `max_per_order` and its capacity (a hold never takes more), all together
/// at most `per_order` tickets. Every ticket weighs one against that cap, so
/// taking the dearest types first is the best there is.
fn largest_order<'a>(types: &[&'a NewTicketType], per_order: Option<i64>) -> (i64, Vec<(&'a NewTicketType, i64)>) {
    let mut dearest_first = types.to_vec();
    dearest_first.sort_by_key(|t| std::cmp::Reverse(t.price_minor));
    let mut room = per_order.unwrap_or(i64::MAX);
    let (mut total, mut lines) = (0i64, Vec::new());
    for t in dearest_first {
        let n = t.max_per_order.min(t.capacity).min(room);
        if n > 0 && t.price_minor > 0 {
            total = total.saturating_add(t.price_minor.saturating_mul(n));
            lines.push((t, n));
            room -= n;
        }
    }
    (total, lines)
}

/// Validates and inserts an event; the caller commits.
pub async fn insert_event(tx: &mut Transaction<'_, Postgres>, e: &NewEvent, is_demo: bool) -> ApiResult<Uuid> {
    let name = text("name", &e.name)?;
    let venue = text("venue", &e.venue)?;
    let currency = Currency::parse(&e.currency).map_err(ApiError::validation)?;
    let now = OffsetDateTime::now_utc();
    match e.starts_at.checked_to_offset(time::UtcOffset::UTC) {
        Some(at) if at <= now => return Err(ApiError::validation("starts_at must be in the future")),
        Some(_) => {}
        // Its UTC time would fall past year 9999: out of range for the database driver.
        None => return Err(ApiError::validation("starts_at is out of range")),
    }
    if e.ticket_types.is_empty() || e.ticket_types.len() > MAX_TICKET_TYPES {
        return Err(ApiError::validation(format!("an event needs 1 to {MAX_TICKET_TYPES} ticket types")));
    }
    let max_tickets_per_order = e
        .max_tickets_per_order
        .map(|n| bounded("max_tickets_per_order", n, 1, MAX_TICKETS_PER_ORDER).map(|n| n as i32))
        .transpose()?;
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO events (id, name, venue, starts_at, currency, is_demo, max_tickets_per_order, dispute_policy)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        name,
        venue,
        e.starts_at,
        currency.as_str(),
        is_demo,
        max_tickets_per_order,
        e.dispute_policy as DisputePolicy
    )
    .execute(&mut **tx)
    .await?;
    for (position, t) in e.ticket_types.iter().enumerate() {
        let tname = text("ticket_types[].name", &t.name)?;
        let price = bounded("ticket_types[].price_minor", t.price_minor, 0, MAX_PRICE_MINOR)?;
        let capacity = bounded("ticket_types[].capacity", t.capacity, 0, MAX_CAPACITY)?;
        let max_per_order = bounded("ticket_types[].max_per_order", t.max_per_order, 1, MAX_PER_ORDER)?;
        sqlx::query!(
            "INSERT INTO ticket_types (id, event_id, position, name, price_minor, capacity, max_per_order)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            Uuid::new_v4(),
            id,
            position as i32,
            tname,
            price,
            capacity as i32,
            max_per_order as i32
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

async fn revenue_by_type(pool: &PgPool, event_id: Option<Uuid>) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT l.ticket_type_id, SUM(l.unit_price_minor * l.quantity)::bigint AS "revenue!"
           FROM orders o JOIN hold_lines l ON l.hold_id = o.hold_id
           WHERE o.status = $2 AND ($1::uuid IS NULL OR o.event_id = $1)
           GROUP BY l.ticket_type_id"#,
        event_id,
        OrderStatus::Paid as OrderStatus,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.ticket_type_id, r.revenue)).collect())
}

/// Each event's dispute policy (of one event, or all).
async fn dispute_policies(pool: &PgPool, event_id: Option<Uuid>) -> Result<Vec<(Uuid, DisputePolicy)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, dispute_policy AS "dispute_policy: DisputePolicy" FROM events WHERE $1::uuid IS NULL OR id = $1"#,
        event_id
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.dispute_policy)).collect())
}

fn admin_view(rows: &[EventRow], revenue: &[(Uuid, i64)], policies: &[(Uuid, DisputePolicy)]) -> AdminEventView {
    let first = &rows[0];
    let ticket_types: Vec<AdminTicketTypeView> = rows
        .iter()
        .map(|r| AdminTicketTypeView {
            id: r.id,
            name: r.name.clone(),
            price_minor: r.price_minor,
            currency: r.currency.clone(),
            capacity: r.capacity,
            max_per_order: r.max_per_order,
            sold: r.sold,
            held: r.capacity - r.sold - r.available.max(0),
            available: r.available.max(0),
            revenue_minor: revenue.iter().find(|(id, _)| *id == r.id).map_or(0, |(_, v)| *v),
        })
        .collect();
    AdminEventView {
        id: first.event_id,
        name: first.event_name.clone(),
        venue: first.venue.clone(),
        starts_at: first.starts_at,
        currency: first.currency.clone(),
        max_tickets_per_order: first.max_tickets_per_order,
        dispute_policy: policies
            .iter()
            .find(|(id, _)| *id == first.event_id)
            .map_or_else(DisputePolicy::default, |p| p.1),
        revenue_minor: ticket_types.iter().map(|t| t.revenue_minor).sum(),
        ticket_types,
    }
}

pub async fn admin_event(pool: &PgPool, id: Uuid) -> ApiResult<AdminEventView> {
    let rows = fetch_rows(pool, Some(id), None).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound("no such event"));
    }
    Ok(admin_view(&rows, &revenue_by_type(pool, Some(id)).await?, &dispute_policies(pool, Some(id)).await?))
}

/// Every event (past ones too) with its sales.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_events",
    security(("admin" = [])),
    responses(
        (status = 200, description = "Events with sales", body = [AdminEventView]),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
#[get("/admin/events")]
pub async fn list_events(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let rows = fetch_rows(&state.pool, None, None).await?;
    let revenue = revenue_by_type(&state.pool, None).await?;
    let policies = dispute_policies(&state.pool, None).await?;
    Ok(HttpResponse::Ok().json(group(rows, |r| admin_view(r, &revenue, &policies))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tt(name: &str, price_minor: i64, capacity: i64, max_per_order: i64) -> NewTicketType {
        NewTicketType { name: name.into(), price_minor, capacity, max_per_order }
    }

    #[test]
    fn the_largest_order_takes_the_dearest_seats_first_within_every_cap() {
        let (vip, seat, free, few) =
            (tt("VIP", 500, 1000, 10), tt("Seat", 100, 1000, 100), tt("Free", 0, 100, 5), tt("Few", 300, 2, 50));
        let types = [&vip, &seat, &free, &few];
        let total = |per_order| largest_order(&types, per_order).0;
        // No event cap: every type's own cap (Few has 2 seats in all).
        assert_eq!(total(None), 10 * 500 + 2 * 300 + 100 * 100);
        // 15 tickets at most: 10 VIP, 2 Few, 3 Seat.
        assert_eq!(total(Some(15)), 10 * 500 + 2 * 300 + 3 * 100);
        assert_eq!(total(Some(4)), 4 * 500);
    }
}

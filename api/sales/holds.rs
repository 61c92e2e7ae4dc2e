//! Holds: seats set aside for a buyer until a deadline. Taking seats is one
//! guarded UPDATE of the ticket type's counters; giving them back is a guarded
//! status change of the hold, so it happens exactly once.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::hoarding::{over_caps, Claimant};
use super::hold_batcher::{refusal, Facts, HoldBatcher, Keyed, Outcome, Refusal, Render, Seats, Taken};
use super::orders::latest_payment;
use super::views::{CheckoutView, HoldView, OrderView};
use crate::caller::BuyerSecret;
use crate::caller::ClientAddress;
use crate::domain::secret::{hash_secret, new_buyer_secret};
use crate::domain::status::{HoldStatus, OrderStatus};
use crate::domain::{BuyerName, Email};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::idempotency::{self, KeyContext};
use crate::metrics;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub ticket_type_id: Uuid,
    /// 1 to the ticket type's `max_per_order`.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
    /// The buyer's name, 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The buyer's email address.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
}

/// A hold request with a parsed buyer and a quantity of at least 1; `take_seats`
/// checks it against its event and ticket type.
pub struct NewHold {
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub quantity: i32,
    pub name: BuyerName,
    pub email: Email,
    /// The client address, as the rate limit sees it, for the hoarding caps.
    pub address: Option<String>,
    /// The request's Idempotency-Key: its answer is stored with the hold.
    pub key: Option<Arc<KeyContext>>,
}

/// Reserve seats for a few minutes.
#[utoipa::path(
    tag = "holds",
    params(
        ("event_id" = Uuid, Path, description = "Event id"),
    ),
    request_body = HoldRequest,
    responses(
        (status = 201, description = "Seats held; keep the secret", body = HoldView),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
        (status = 409, description = "`sold_out`: not enough seats left; `sales_closed`: the event has started; or `too_many_unpaid`: this address or e-mail already has as many unpaid holds and orders as nts allows", body = ErrorBody),
        (status = 422, description = "`validation_failed`: bad name, email or quantity, or not a ticket type of this event", body = ErrorBody),
    )
)]
#[post("/events/{event_id}/holds")]
pub async fn create_hold(
    state: web::Data<AppState>,
    http: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<HoldRequest>,
    client: ClientAddress,
) -> ApiResult<HttpResponse> {
    let event_id = path.into_inner();
    let req = body.into_inner();
    let name = BuyerName::parse(&req.name).map_err(ApiError::validation)?;
    let email = Email::parse(&req.email).map_err(ApiError::validation)?;
    if req.quantity < 1 {
        return Err(ApiError::validation("quantity must be at least 1"));
    }
    // Anything past i32 is past every max_per_order, and is refused as such.
    let quantity = req.quantity.min(i64::from(i32::MAX)) as i32;
    let address = Some(client.to_string());
    let key = KeyContext::of(&http);
    let hold = NewHold { event_id, ticket_type_id: req.ticket_type_id, quantity, name, email, address, key };
    let view = take_seats(&state.holds, &hold, state.config.hold_duration.as_secs() as i64).await?;
    idempotency::debug_stall("hold").await;
    Ok(HttpResponse::Created().json(view))
}

/// Holds seats through this instance's group commit of holds (see
/// [`hold_batcher`](super::hold_batcher)), which also checks the event, the
/// ticket type and the quantity. If that flush fails, the request is checked
/// and takes its seats alone, with the same hold id.
pub async fn take_seats(holds: &HoldBatcher, hold: &NewHold, hold_seconds: i64) -> ApiResult<HoldView> {
    #[cfg(debug_assertions)]
    if super::unguarded::enabled() {
        return super::unguarded::take_seats(holds.pool(), hold, hold_seconds).await;
    }
    let id = Uuid::new_v4();
    let secret = new_buyer_secret();
    let secret_hash = hash_secret(&secret);
    let view = {
        let (hold, secret) = (HoldShape::of(hold, id), secret.clone());
        move |taken: &Taken| hold.view(secret.clone(), taken)
    };
    let keyed = hold.key.clone().map(|context| {
        let view = view.clone();
        let render: Arc<Render> = Arc::new(move |outcome: &Outcome| match outcome {
            Outcome::Held(taken) => {
                Some((StatusCode::CREATED, serde_json::to_vec(&view(taken)).expect("a view serialises")))
            }
            Outcome::Refused(why) => {
                let e = refused(*why);
                Some((e.status_code(), e.body_bytes()))
            }
            _ => None,
        });
        Keyed { context, render }
    });
    let seats = Seats {
        event_id: hold.event_id,
        ticket_type_id: hold.ticket_type_id,
        id,
        secret_hash: secret_hash.clone(),
        quantity: hold.quantity,
        name: hold.name.as_str().to_owned(),
        email: hold.email.as_str().to_owned(),
        hold_seconds: hold_seconds as f64,
        address: hold.address.clone(),
        keyed: keyed.clone(),
    };
    let taken = match holds.take(seats).await {
        Outcome::Held(taken) => Ok(taken),
        Outcome::Refused(why) => Err(refused(why)),
        Outcome::Unavailable { code, message } => Err(ApiError::Unavailable { code, message }),
        Outcome::KeyTaken => return Err(taken_key(hold)),
        Outcome::Failed => take_seats_alone(holds, hold, hold_seconds, id, &secret_hash, keyed.as_ref()).await,
    };
    let taken = match taken {
        Ok(taken) => {
            metrics::record_hold_granted(hold.quantity);
            taken
        }
        Err(e) => {
            metrics::record_hold_refused(&e.code());
            return Err(e);
        }
    };
    Ok(view(&taken))
}

/// The parts of a hold's view known before its seats are taken.
#[derive(Clone)]
struct HoldShape {
    id: Uuid,
    event_id: Uuid,
    ticket_type_id: Uuid,
    name: String,
    email: String,
    quantity: i32,
}

impl HoldShape {
    fn of(hold: &NewHold, id: Uuid) -> Self {
        HoldShape {
            id,
            event_id: hold.event_id,
            ticket_type_id: hold.ticket_type_id,
            name: hold.name.as_str().to_owned(),
            email: hold.email.as_str().to_owned(),
            quantity: hold.quantity,
        }
    }

    fn view(&self, secret: String, taken: &Taken) -> HoldView {
        HoldView {
            id: self.id,
            secret: Some(secret),
            status: HoldStatus::Active,
            event_id: self.event_id,
            event_name: taken.event_name.clone(),
            ticket_type_id: self.ticket_type_id,
            ticket_type_name: taken.ticket_type_name.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            quantity: self.quantity,
            amount_minor: taken.amount_minor,
            currency: taken.currency.clone(),
            expires_at: taken.expires_at,
            order_id: None,
        }
    }
}

fn taken_key(hold: &NewHold) -> ApiError {
    match &hold.key {
        Some(key) => key.taken(),
        None => ApiError::Internal(anyhow::anyhow!("a request without a key was told its key is taken")),
    }
}

fn refused(why: Refusal) -> ApiError {
    match why {
        Refusal::NoSuchEvent => ApiError::NotFound("no such event"),
        Refusal::NotThisEvent => ApiError::validation("ticket_type_id is not a ticket type of this event"),
        Refusal::TooMany { max_per_order } => {
            ApiError::validation(format!("quantity must be at most {max_per_order} for this ticket type"))
        }
        Refusal::SalesClosed => {
            ApiError::conflict("sales_closed", "this event has started; tickets are no longer on sale")
        }
        Refusal::Capped(cap) => ApiError::conflict("too_many_unpaid", cap.message()),
        Refusal::SoldOut => ApiError::sold_out(),
    }
}

/// One request on its own: checks it, then holds seats in one statement: the
/// counters move only if enough are free. When they are not, holds whose
/// deadline passed are expired first and the take is tried once more, so
/// availability is exact without a sweeper race.
async fn take_seats_alone(
    holds: &HoldBatcher,
    hold: &NewHold,
    hold_seconds: i64,
    id: Uuid,
    secret_hash: &[u8],
    keyed: Option<&Keyed>,
) -> ApiResult<Taken> {
    let pool = holds.pool();
    let facts = sqlx::query!(
        r#"SELECT e.starts_at > now() AS "on_sale!", t.max_per_order AS "max_per_order?"
           FROM events e LEFT JOIN ticket_types t ON t.event_id = e.id AND t.id = $2
           WHERE e.id = $1"#,
        hold.event_id,
        hold.ticket_type_id
    )
    .fetch_optional(pool)
    .await?
    .map(|r| Facts { on_sale: r.on_sale, max_per_order: r.max_per_order });
    if let Some(why) = refusal(facts, hold.quantity) {
        return Err(refused(why));
    }
    let claimant = Claimant { id, address: hold.address.as_deref(), email: hold.email.as_str() };
    for attempt in 0..2 {
        let mut tx = pool.begin().await?;
        if let Some(&cap) = over_caps(&mut tx, holds.caps(), &[claimant]).await?.get(&id) {
            return Err(refused(Refusal::Capped(cap)));
        }
        let row = sqlx::query!(
            r#"WITH taken AS (
                   UPDATE ticket_types SET held = held + $3
                   WHERE id = $2 AND event_id = $5 AND capacity - sold - held >= $3
                   RETURNING id, name, price_minor
               ), ins AS (
                   INSERT INTO holds (id, secret_hash, event_id, ticket_type_id, buyer_name, buyer_email,
                                      quantity, amount_minor, currency, expires_at, client_address)
                   SELECT $1, $4, e.id, taken.id, $6, $7, $3, taken.price_minor * $3, e.currency,
                          clock_timestamp() + make_interval(secs => $8), $9
                   FROM taken JOIN events e ON e.id = $5
                   RETURNING amount_minor, currency, expires_at
               )
               SELECT ins.amount_minor, ins.currency AS "currency!", ins.expires_at,
                      taken.name AS ticket_type_name, e.name AS event_name
               FROM ins, taken, events e WHERE e.id = $5"#,
            id,
            hold.ticket_type_id,
            hold.quantity,
            secret_hash,
            hold.event_id,
            hold.name.as_str(),
            hold.email.as_str(),
            hold_seconds as f64,
            hold.address.as_deref(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = row {
            let taken = Taken {
                amount_minor: r.amount_minor,
                currency: r.currency,
                expires_at: r.expires_at,
                ticket_type_name: r.ticket_type_name,
                event_name: r.event_name,
            };
            if let Some(k) = keyed {
                let answer = (k.render)(&Outcome::Held(taken.clone()));
                let records: Vec<_> =
                    answer.map(|(status, body)| k.context.record(status, &body)).into_iter().collect();
                if idempotency::insert_answered(&mut *tx, &records).await?.len() != records.len() {
                    return Err(k.context.taken());
                }
            }
            tx.commit().await?;
            if let Some(k) = keyed {
                k.context.mark_recorded();
            }
            return Ok(taken);
        }
        if attempt == 0 && expire_stale_holds(pool, Some(hold.ticket_type_id)).await? == 0 {
            break;
        }
    }
    Err(ApiError::sold_out())
}

/// Expires active holds past their deadline and gives their seats back, once:
/// the status guard and the row locks make concurrent sweepers (in any number
/// of instances) skip each other's holds. One ticket type per statement, so
/// sweepers never lock two counter rows and cannot deadlock.
pub async fn expire_stale_holds(pool: &PgPool, ticket_type: Option<Uuid>) -> Result<u64, sqlx::Error> {
    let types: Vec<Uuid> = match ticket_type {
        Some(t) => vec![t],
        None => {
            sqlx::query_scalar!(
                "SELECT DISTINCT ticket_type_id FROM holds WHERE status = 'active' AND expires_at <= now() LIMIT 1000"
            )
            .fetch_all(pool)
            .await?
        }
    };
    let mut expired = 0;
    for tt in types {
        expired += expire_stale_type(pool, tt).await?;
    }
    Ok(expired)
}

/// Expires the stale holds of one ticket type (see [`expire_stale_holds`]).
pub async fn expire_stale_type(db: impl PgExecutor<'_>, ticket_type: Uuid) -> Result<u64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"WITH stale AS (
               SELECT id FROM holds
               WHERE ticket_type_id = $1 AND status = 'active' AND expires_at <= clock_timestamp()
               LIMIT 5000 FOR UPDATE SKIP LOCKED
           ), expired AS (
               UPDATE holds h SET status = 'expired', finished_at = now()
               FROM stale WHERE h.id = stale.id AND h.status = 'active'
               RETURNING h.quantity
           ), total AS (SELECT COUNT(*) AS n, COALESCE(SUM(quantity), 0)::int AS q FROM expired)
           UPDATE ticket_types t SET held = t.held - total.q
           FROM total WHERE t.id = $1
           RETURNING total.n AS "n!""#,
        ticket_type
    )
    .fetch_optional(db)
    .await?;
    Ok(n.unwrap_or(0) as u64)
}

struct HoldRow {
    id: Uuid,
    status: HoldStatus,
    live: bool,
    event_id: Uuid,
    event_name: String,
    ticket_type_id: Uuid,
    ticket_type_name: String,
    buyer_name: String,
    buyer_email: String,
    quantity: i32,
    amount_minor: i64,
    currency: String,
    expires_at: time::OffsetDateTime,
    order_id: Option<Uuid>,
}

impl From<HoldRow> for HoldView {
    fn from(r: HoldRow) -> Self {
        HoldView {
            id: r.id,
            secret: None,
            // Past its deadline a hold is expired, whether or not the sweeper has run.
            status: if r.status == HoldStatus::Active && !r.live { HoldStatus::Expired } else { r.status },
            event_id: r.event_id,
            event_name: r.event_name,
            ticket_type_id: r.ticket_type_id,
            ticket_type_name: r.ticket_type_name,
            name: r.buyer_name,
            email: r.buyer_email,
            quantity: r.quantity,
            amount_minor: r.amount_minor,
            currency: r.currency,
            expires_at: r.expires_at,
            order_id: r.order_id,
        }
    }
}

async fn fetch_hold(pool: &PgPool, id: Uuid, secret: &BuyerSecret) -> ApiResult<HoldView> {
    sqlx::query_as!(
        HoldRow,
        r#"SELECT h.id, h.status AS "status: HoldStatus", h.expires_at > now() AS "live!",
                  h.event_id, e.name AS event_name, h.ticket_type_id, t.name AS ticket_type_name,
                  h.buyer_name, h.buyer_email, h.quantity, h.amount_minor, h.currency AS "currency!",
                  h.expires_at, o.id AS "order_id?"
           FROM holds h
           JOIN events e ON e.id = h.event_id
           JOIN ticket_types t ON t.id = h.ticket_type_id
           LEFT JOIN orders o ON o.hold_id = h.id
           WHERE h.id = $1 AND h.secret_hash = $2"#,
        id,
        secret.hash
    )
    .fetch_optional(pool)
    .await?
    .map(HoldView::from)
    .ok_or(ApiError::NotFound("no such hold"))
}

/// A hold, seen by its buyer.
#[utoipa::path(
    tag = "holds",
    params(("hold_id" = Uuid, Path, description = "Hold id")),
    security(("buyer" = [])),
    responses(
        (status = 200, description = "The hold", body = HoldView),
        (status = 404, description = "No such hold, or not your secret", body = ErrorBody),
    )
)]
#[get("/holds/{hold_id}")]
pub async fn get_hold(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(fetch_hold(&state.pool, path.into_inner(), &secret).await?))
}

fn not_active(view: &HoldView) -> ApiError {
    match view.status {
        HoldStatus::Expired | HoldStatus::Active => {
            ApiError::conflict("hold_expired", "this hold has expired; its seats went back on sale")
        }
        HoldStatus::Released => ApiError::conflict("hold_released", "this hold was released"),
        HoldStatus::CheckedOut => ApiError::conflict("hold_checked_out", "this hold has already been checked out"),
    }
}

/// Give the seats back before the deadline.
#[utoipa::path(
    tag = "holds",
    params(("hold_id" = Uuid, Path, description = "Hold id")),
    security(("buyer" = [])),
    responses(
        (status = 200, description = "Released", body = HoldView),
        (status = 404, description = "No such hold, or not your secret", body = ErrorBody),
        (status = 409, description = "`hold_expired`, `hold_released` or `hold_checked_out`", body = ErrorBody),
    )
)]
#[delete("/holds/{hold_id}")]
pub async fn release_hold(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let released = sqlx::query_scalar!(
        r#"WITH released AS (
               UPDATE holds SET status = 'released', finished_at = now()
               WHERE id = $1 AND secret_hash = $2 AND status = 'active'
               RETURNING ticket_type_id, quantity
           )
           UPDATE ticket_types t SET held = t.held - r.quantity
           FROM released r WHERE t.id = r.ticket_type_id
           RETURNING t.id"#,
        id,
        secret.hash
    )
    .fetch_optional(&state.pool)
    .await?;
    let view = fetch_hold(&state.pool, id, &secret).await?;
    match released {
        Some(_) => Ok(HttpResponse::Ok().json(view)),
        None => Err(not_active(&view)),
    }
}

/// Turn a live hold into an order awaiting payment; the order takes over the seats.
#[utoipa::path(
    tag = "holds",
    params(
        ("hold_id" = Uuid, Path, description = "Hold id"),
    ),
    security(("buyer" = [])),
    responses(
        (status = 201, description = "Order created (or, if this hold was already checked out, the same order again); keep its secret", body = CheckoutView),
        (status = 404, description = "No such hold, or not your secret", body = ErrorBody),
        (status = 409, description = "`hold_expired` or `hold_released`", body = ErrorBody),
        (status = 503, description = "`payment_provider_unavailable`: the provider did not answer; retry", body = ErrorBody),
    )
)]
#[post("/holds/{hold_id}/checkout")]
pub async fn checkout(
    state: web::Data<AppState>,
    http: HttpRequest,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    let hold_id = path.into_inner();
    // Derived from the hold secret, so a repeated checkout can hand out the same order secret again.
    let order_secret = secret.derive("order");
    let key = KeyContext::of(&http);
    // One transaction: the order, its first attempt (simulated gateway) and
    // the key's answer. The provider is called after it commits, as a retry
    // or the reconciler would.
    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key {
        if !key.insert_in(&mut *tx).await? {
            return Err(key.taken());
        }
    }
    let created = sqlx::query!(
        r#"WITH hold AS (
               UPDATE holds SET status = 'checked_out', finished_at = now()
               WHERE id = $1 AND secret_hash = $2 AND status = 'active' AND expires_at > clock_timestamp()
               RETURNING *
           ), ins AS (
               INSERT INTO orders (id, secret_hash, hold_id, event_id, ticket_type_id, buyer_name, buyer_email,
                                   quantity, amount_minor, currency, expires_at, client_address)
               SELECT $3, $4, hold.id, hold.event_id, hold.ticket_type_id, hold.buyer_name, hold.buyer_email,
                      hold.quantity, hold.amount_minor, hold.currency, clock_timestamp() + make_interval(secs => $5),
                      hold.client_address
               FROM hold
               RETURNING *
           )
           SELECT ins.id, ins.event_id, e.name AS event_name, ins.ticket_type_id, t.name AS ticket_type_name,
                  ins.buyer_name, ins.buyer_email, ins.quantity, ins.amount_minor, ins.currency AS "currency!",
                  ins.expires_at
           FROM ins JOIN events e ON e.id = ins.event_id JOIN ticket_types t ON t.id = ins.ticket_type_id"#,
        hold_id,
        secret.hash,
        Uuid::new_v4(),
        hash_secret(&order_secret),
        state.config.order_duration.as_secs_f64(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(o) = created else {
        drop(tx);
        let view = fetch_hold(&state.pool, hold_id, &secret).await?;
        // Checked out already, by a request whose answer never arrived (it
        // had no key, or another one): the same order again, with its latest attempt.
        let Some(order_id) = view.order_id.filter(|_| view.status == HoldStatus::CheckedOut) else {
            return Err(not_active(&view));
        };
        let payment = latest_payment(&state.pool, order_id).await?;
        let mut order = super::orders::fetch_order_by_id(&state.pool, order_id).await?;
        order.secret = Some(order_secret);
        return Ok(HttpResponse::Created().json(CheckoutView { order, payment }));
    };
    let payment = state.payments.first_attempt_in(&mut tx, o.id, o.amount_minor, &o.currency).await?;
    // For the link in the order's e-mails.
    crate::mail::links::remember(&mut *tx, state.config.mail.link_key.as_ref(), o.id, &order_secret).await?;
    let order = OrderView {
        id: o.id,
        secret: Some(order_secret),
        status: OrderStatus::AwaitingPayment,
        event_id: o.event_id,
        event_name: o.event_name,
        ticket_type_id: o.ticket_type_id,
        ticket_type_name: o.ticket_type_name,
        name: o.buyer_name,
        email: o.buyer_email,
        quantity: o.quantity,
        amount_minor: o.amount_minor,
        currency: o.currency,
        expires_at: o.expires_at,
        paid_at: None,
        tickets: Vec::new(),
        payment: payment.clone(),
    };
    let body = serde_json::to_vec(&CheckoutView { order, payment: payment.clone() }).expect("a view serialises");
    if let Some(key) = &key {
        key.answer_in(&mut *tx, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    if let Some(key) = &key {
        key.mark_recorded();
    }
    idempotency::debug_stall("checkout").await;
    if let Some(payment) = payment {
        state.payments.send_first_attempt(payment.id).await;
    }
    Ok(HttpResponse::Created().content_type("application/json").body(body))
}

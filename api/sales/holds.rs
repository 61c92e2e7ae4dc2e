//! Holds: seats set aside for a buyer until a deadline. Taking seats is one
//! guarded UPDATE of the ticket type's counters; giving them back is a guarded
//! status change of the hold, so it happens exactly once.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::hoarding::Origin;
use super::hold_batcher::{HoldBatcher, Keyed, Outcome, Render, Seats, Taken};
use super::hold_rules::{Line, Lines, NewHold};
use super::views::{single_type, HoldView, LineView};
use super::{lines, seats};
use crate::caller::{BuyerSecret, ClientAddress};
use crate::domain::secret::{hash_secret, new_buyer_secret};
use crate::domain::status::HoldStatus;
use crate::domain::{BuyerName, Email, Quantity};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::idempotency::{self, KeyContext};
use crate::metrics;
use crate::state::AppState;

/// Either `lines` (one or more ticket types) or, for one ticket type, `ticket_type_id` and `quantity`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "lines": [
        {"ticket_type_id": "0b5e8f4e-6a34-4b8e-9a51-8f4f2d0c1a11", "quantity": 2},
        {"ticket_type_id": "6d1f0c55-1c2e-4f7a-b1a4-3e9d5b7c2f22", "quantity": 1}
    ],
    "name": "Grace Hopper",
    "email": "grace@example.com"
}))]
pub struct HoldRequest {
    /// The seats to hold, one line per ticket type (each type at most once); all are held or none.
    #[schema(min_items = 1, max_items = 20)]
    pub lines: Option<Vec<LineRequest>>,
    /// One ticket type, without `lines` (the older form of a one-line hold).
    pub ticket_type_id: Option<Uuid>,
    /// With `ticket_type_id`: 1 to the ticket type's `max_per_order`.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: Option<i64>,
    /// The buyer's name, 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The buyer's email address.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub ticket_type_id: Uuid,
    /// 1 to the ticket type's `max_per_order`.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
}

impl HoldRequest {
    fn lines(&self) -> Result<Lines, ApiError> {
        let quantity = |n| Quantity::parse(n).map_err(ApiError::validation);
        match (&self.lines, self.ticket_type_id, self.quantity) {
            (Some(lines), None, None) => {
                let lines = lines
                    .iter()
                    .map(|l| Ok(Line { ticket_type_id: l.ticket_type_id, quantity: quantity(l.quantity)? }))
                    .collect::<Result<Vec<_>, ApiError>>()?;
                Lines::parse(lines).map_err(ApiError::validation)
            }
            (None, Some(ticket_type_id), Some(n)) => Ok(Lines::one(ticket_type_id, quantity(n)?)),
            _ => Err(ApiError::validation("send either lines, or ticket_type_id with quantity")),
        }
    }
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
        (status = 404, description = format!("`{}`: no such event", ErrorCode::NotFound), body = ErrorBody),
        (status = 409, description = format!("`{}`: not enough seats left (nothing is held; `lines` names the lines that did not fit); `{}`: the event has started; or `{}`: as many unpaid holds and orders come from this client address or its network as nts allows (one answer whichever cap)", ErrorCode::SoldOut, ErrorCode::SalesClosed, ErrorCode::TooManyUnpaid), body = ErrorBody),
        (status = 422, description = format!("`{}`: bad name, email, lines or quantity, a quantity past a type's `max_per_order` or the order past the event's `max_tickets_per_order`, or not a ticket type of this event", ErrorCode::ValidationFailed), body = ErrorBody),
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
    let lines = req.lines()?;
    let origin = Some(Origin::of(client));
    let key = KeyContext::of(&http);
    let hold = NewHold { event_id, lines, name, email, origin, key };
    let view = take_seats(&state.holds, &hold, state.config.hold_duration.as_secs() as i64).await?;
    idempotency::debug_stall("hold").await;
    Ok(HttpResponse::Created().json(view))
}

/// Holds seats through this instance's group commit of holds (see
/// [`hold_batcher`](super::hold_batcher)), which also checks the event, the
/// ticket types and the quantities. If that flush fails, the request takes its
/// seats alone, by the same transaction, with the same hold id.
pub async fn take_seats(holds: &HoldBatcher, hold: &NewHold, hold_seconds: i64) -> ApiResult<HoldView> {
    #[cfg(feature = "broken-oversell")]
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
                let e = ApiError::from(why.clone());
                Some((e.status_code(), e.body_bytes()))
            }
            _ => None,
        });
        Keyed { context, render }
    });
    let seats = Seats {
        event_id: hold.event_id,
        lines: hold.lines.clone(),
        id,
        secret_hash: secret_hash.clone(),
        name: hold.name.as_str().to_owned(),
        email: hold.email.as_str().to_owned(),
        hold_seconds: hold_seconds as f64,
        origin: hold.origin.clone(),
        keyed,
    };
    let outcome = match holds.take(seats.clone()).await {
        Outcome::Failed => holds.take_alone(&seats).await?,
        outcome => outcome,
    };
    let taken = match outcome {
        Outcome::Held(taken) => Ok(taken),
        Outcome::Refused(why) => Err(ApiError::from(why)),
        Outcome::Unavailable { code, message } => Err(ApiError::Unavailable { code, message }),
        Outcome::KeyTaken => return Err(taken_key(hold)),
        Outcome::Failed => Err(ApiError::Internal(anyhow::anyhow!("a lone hold cannot fail as a flush"))),
    };
    let taken = match taken {
        Ok(taken) => {
            metrics::record_hold_granted(hold.lines.total());
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
    name: String,
    email: String,
    quantity: i32,
}

impl HoldShape {
    fn of(hold: &NewHold, id: Uuid) -> Self {
        HoldShape {
            id,
            event_id: hold.event_id,
            name: hold.name.as_str().to_owned(),
            email: hold.email.as_str().to_owned(),
            quantity: hold.lines.total(),
        }
    }

    fn view(&self, secret: String, taken: &Taken) -> HoldView {
        let (ticket_type_id, ticket_type_name) = single_type(&taken.lines);
        HoldView {
            id: self.id,
            secret: Some(secret),
            status: HoldStatus::Active,
            event_id: self.event_id,
            event_name: taken.event_name.clone(),
            ticket_type_id,
            ticket_type_name,
            name: self.name.clone(),
            email: self.email.clone(),
            quantity: self.quantity,
            amount_minor: taken.amount.minor(),
            currency: taken.amount.currency().to_string(),
            expires_at: taken.expires_at,
            order_id: None,
            lines: taken.lines.clone(),
        }
    }
}

fn taken_key(hold: &NewHold) -> ApiError {
    match &hold.key {
        Some(key) => key.taken(),
        None => ApiError::Internal(anyhow::anyhow!("a request without a key was told its key is taken")),
    }
}

/// Expires active holds past their deadline and gives their seats back, once,
/// one event at a time (see [`seats::lock`]).
pub async fn expire_stale_holds(pool: &PgPool, event: Option<Uuid>) -> Result<u64, sqlx::Error> {
    let events: Vec<Uuid> = match event {
        Some(e) => vec![e],
        None => {
            sqlx::query_scalar!(
                "SELECT DISTINCT event_id FROM holds WHERE status = $1 AND expires_at <= now() LIMIT 1000",
                HoldStatus::Active as HoldStatus
            )
            .fetch_all(pool)
            .await?
        }
    };
    let mut expired = 0;
    for e in events {
        expired += seats::lock(pool, e, &[]).await?.swept();
    }
    Ok(expired)
}

struct HoldRow {
    id: Uuid,
    status: HoldStatus,
    live: bool,
    event_id: Uuid,
    event_name: String,
    buyer_name: String,
    buyer_email: String,
    quantity: i32,
    amount_minor: i64,
    currency: String,
    expires_at: time::OffsetDateTime,
    order_id: Option<Uuid>,
}

impl HoldRow {
    fn view(self, lines: Vec<LineView>) -> HoldView {
        let r = self;
        let (ticket_type_id, ticket_type_name) = single_type(&lines);
        HoldView {
            id: r.id,
            secret: None,
            // Past its deadline a hold is expired, whether or not the sweeper has run.
            status: if r.status == HoldStatus::Active && !r.live { HoldStatus::Expired } else { r.status },
            event_id: r.event_id,
            event_name: r.event_name,
            ticket_type_id,
            ticket_type_name,
            name: r.buyer_name,
            email: r.buyer_email,
            quantity: r.quantity,
            amount_minor: r.amount_minor,
            currency: r.currency,
            expires_at: r.expires_at,
            order_id: r.order_id,
            lines,
        }
    }
}

pub(super) async fn fetch_hold(pool: &PgPool, id: Uuid, secret: &BuyerSecret) -> ApiResult<HoldView> {
    let row = sqlx::query_as!(
        HoldRow,
        r#"SELECT h.id, h.status AS "status: HoldStatus", h.expires_at > now() AS "live!",
                  h.event_id, e.name AS event_name, h.buyer_name, h.buyer_email, h.quantity, h.amount_minor, h.currency AS "currency!",
                  h.expires_at, o.id AS "order_id?"
           FROM holds h
           JOIN events e ON e.id = h.event_id
           LEFT JOIN orders o ON o.hold_id = h.id
           WHERE h.id = $1 AND h.secret_hash = $2"#,
        id,
        secret.hash
    )
    .fetch_optional(pool)
    .await?
    .ok_or(ApiError::NotFound("no such hold"))?;
    let lines = lines::of_hold(pool, id).await?;
    Ok(row.view(lines))
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

/// The order an earlier checkout of this hold made (by a request whose answer
/// never arrived: it had no key, or another one); otherwise why the hold
/// cannot be checked out.
pub async fn earlier_order(pool: &PgPool, hold_id: Uuid, secret: &BuyerSecret) -> ApiResult<Uuid> {
    let view = fetch_hold(pool, hold_id, secret).await?;
    match view.order_id.filter(|_| view.status == HoldStatus::CheckedOut) {
        Some(order_id) => Ok(order_id),
        None => Err::<Uuid, ApiError>(not_active(&view)),
    }
}

pub(super) fn not_active(view: &HoldView) -> ApiError {
    match view.status {
        HoldStatus::Expired | HoldStatus::Active => {
            ApiError::conflict(ErrorCode::HoldExpired, "this hold has expired; its seats went back on sale")
        }
        HoldStatus::Released => ApiError::conflict(ErrorCode::HoldReleased, "this hold was released"),
        HoldStatus::CheckedOut => {
            ApiError::conflict(ErrorCode::HoldCheckedOut, "this hold has already been checked out")
        }
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
        (status = 409, description = format!("`{}`, `{}` or `{}`", ErrorCode::HoldExpired, ErrorCode::HoldReleased, ErrorCode::HoldCheckedOut), body = ErrorBody),
    )
)]
#[delete("/holds/{hold_id}")]
pub async fn release_hold(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    secret: BuyerSecret,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let released = seats::release(&state.pool, id, &secret.hash).await?;
    let view = fetch_hold(&state.pool, id, &secret).await?;
    match released {
        true => Ok(HttpResponse::Ok().json(view)),
        false => Err(not_active(&view)),
    }
}

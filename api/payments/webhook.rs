//! Stripe's webhook. The signature is checked over the raw body; what an
//! event says is applied as guarded transitions (settle.rs), so events may
//! arrive in any order, late, early or twice. An event id is recorded only
//! after its effect is committed: a delivery seen before is acknowledged and
//! ignored, and a process that dies between receiving an event and applying
//! it leaves no record, so Stripe's redelivery is applied. (Two deliveries
//! racing may both apply: the transitions make that harmless.)

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::disputes::{self, DisputeNews};
use super::gateway::{Intent, Refund};
use super::refunds;
use super::service::{buyer_error, PaymentService};
use super::signature;
use super::stripe::{DisputeFacts, PaymentIntentFacts, RefundFacts};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct ChargeFacts {
    payment_intent: Option<String>,
}

/// What an event asks of nts.
enum Action {
    /// The event carries the PaymentIntent as it was.
    Apply(Intent),
    /// Money went back, or is on its way: every refund of the PaymentIntent,
    /// asked now, is recorded by its own id.
    Refunds(String),
    /// A refund changed: its row, found by the refund's id (or nts's key it
    /// carries), moves; a refund made elsewhere (Stripe's dashboard) becomes
    /// a row of the payment of its PaymentIntent.
    Refund(Refund),
    /// A dispute of a charge opened, moved or closed: recorded by its own id.
    Dispute(DisputeNews),
    Ignore,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// The event had been received before; it was not applied again.
    pub duplicate: bool,
}

/// Stripe's events about PaymentIntents, refunds and disputes (signed with `NTS_STRIPE_WEBHOOK_SECRET`).
#[utoipa::path(
    tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<HMAC-SHA256 of \"t.body\">`")),
    request_body(content = String, content_type = "application/json", description = "A Stripe event, exactly as Stripe sent it"),
    responses(
        (status = 200, description = "Applied, ignored, or a duplicate", body = WebhookAck),
        (status = 400, description = format!("`{}` (bad, missing or older than 5 minutes) or `{}`", ErrorCode::InvalidSignature, ErrorCode::InvalidEvent), body = ErrorBody),
        (status = 404, description = "Stripe is not configured on this server (simulated payments)", body = ErrorBody),
        (status = 503, description = "Could not be applied now; Stripe delivers it again", body = ErrorBody),
    )
)]
#[post("/payments/stripe/webhook")]
pub async fn receive(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> ApiResult<HttpResponse> {
    let mut kind = "unknown";
    let result = receive_event(&state, &req, &body, &mut kind).await;
    let outcome = match &result {
        Ok((_, duplicate)) if *duplicate => "duplicate",
        Ok(_) => "applied",
        Err(ApiError::BadRequest { code, .. }) => code.as_str(),
        Err(_) => "failed",
    };
    crate::metrics::record_webhook(kind, outcome);
    result.map(|(res, _)| res)
}

/// The event types nts acts on, as metric labels; anything else is `other`.
const KNOWN_TYPES: [&str; 13] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
];

/// Answers the response and whether the event was a duplicate; sets `kind` once the event is read.
async fn receive_event(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
    kind: &mut &'static str,
) -> ApiResult<(HttpResponse, bool)> {
    let secret = &state.config.stripe().ok_or(ApiError::NotFound("no such resource"))?.webhook_secret;
    let header = req.headers().get("Stripe-Signature").and_then(|v| v.to_str().ok());
    signature::verify(body, header, secret, time::OffsetDateTime::now_utc().unix_timestamp())
        .map_err(|e| ApiError::BadRequest { code: ErrorCode::InvalidSignature, message: e.to_string() })?;
    let event: Event = serde_json::from_slice(body).map_err(invalid_event)?;
    *kind = KNOWN_TYPES.into_iter().find(|k| *k == event.kind).unwrap_or("other");
    let action = action(&event)?;

    let seen = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM provider_events WHERE provider = 'stripe' AND event_id = $1)",
        event.id
    )
    .fetch_one(&state.pool)
    .await?;
    if seen == Some(true) {
        tracing::debug!(event_id = %event.id, "duplicate webhook delivery ignored");
        return Ok((HttpResponse::Ok().json(WebhookAck { received: true, duplicate: true }), true));
    }
    perform(&state.payments, &event, action).await?;
    let fresh = sqlx::query!(
        "INSERT INTO provider_events (provider, event_id, event_type) VALUES ('stripe', $1, $2) ON CONFLICT DO NOTHING",
        event.id,
        event.kind
    )
    .execute(&state.pool)
    .await?
    .rows_affected()
        == 1;
    Ok((HttpResponse::Ok().json(WebhookAck { received: true, duplicate: !fresh }), !fresh))
}

fn invalid_event(e: serde_json::Error) -> ApiError {
    ApiError::BadRequest { code: ErrorCode::InvalidEvent, message: format!("not a Stripe event: {e}") }
}

fn action(event: &Event) -> ApiResult<Action> {
    Ok(match event.kind.as_str() {
        "payment_intent.succeeded" | "payment_intent.payment_failed" | "payment_intent.canceled" => {
            let facts: PaymentIntentFacts = serde_json::from_value(event.data.object.clone()).map_err(invalid_event)?;
            Action::Apply(facts.into_intent(false))
        }
        "charge.refunded" => {
            let charge: ChargeFacts = serde_json::from_value(event.data.object.clone()).map_err(invalid_event)?;
            charge.payment_intent.map_or(Action::Ignore, Action::Refunds)
        }
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            let r: RefundFacts = serde_json::from_value(event.data.object.clone()).map_err(invalid_event)?;
            Action::Refund(r.into_refund())
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => {
            let d: DisputeFacts = serde_json::from_value(event.data.object.clone()).map_err(invalid_event)?;
            let funds = match event.kind.as_str() {
                "charge.dispute.funds_withdrawn" => Some(true),
                "charge.dispute.funds_reinstated" => Some(false),
                _ => None,
            };
            d.into_news(funds).map_or(Action::Ignore, Action::Dispute)
        }
        _ => Action::Ignore,
    })
}

async fn perform(payments: &PaymentService, event: &Event, action: Action) -> ApiResult<()> {
    let intent = match action {
        Action::Apply(intent) => intent,
        Action::Refunds(provider_ref) => {
            let all = payments.gateway.refunds_of(&provider_ref).await.map_err(buyer_error)?;
            for news in &all {
                apply_refund(payments, event, news).await?;
            }
            return Ok(());
        }
        Action::Refund(news) => return apply_refund(payments, event, &news).await,
        Action::Dispute(news) => {
            match disputes::record(&payments.pool, &news).await? {
                Some((dispute_id, status)) => tracing::info!(event_id = %event.id, event = %event.kind, %dispute_id,
                    status = status.as_str(), "webhook applied"),
                None => tracing::warn!(dispute = %news.provider_ref, event = %event.kind,
                    "webhook about a dispute of a PaymentIntent nts did not make"),
            }
            return Ok(());
        }
        Action::Ignore => return Ok(()),
    };
    let Some(payment_id) = find_payment(&payments.pool, &intent).await? else {
        tracing::warn!(provider_ref = %intent.provider_ref, event = %event.kind,
            "webhook about a PaymentIntent nts did not make; the payments audit lists it if it took money");
        return Ok(());
    };
    let status = payments.apply_and_close(payment_id, &intent).await?;
    tracing::info!(event_id = %event.id, event = %event.kind, %payment_id, ?status, "webhook applied");
    Ok(())
}

async fn apply_refund(payments: &PaymentService, event: &Event, news: &Refund) -> ApiResult<()> {
    match refunds::apply_news(&payments.pool, news, None).await? {
        Some((row, status)) => tracing::info!(event_id = %event.id, event = %event.kind, refund_id = %row.id,
            payment_id = %row.payment_id, ?status, "webhook applied"),
        None => tracing::warn!(refund_ref = %news.provider_ref, event = %event.kind,
            "webhook about a refund of a PaymentIntent nts did not make"),
    }
    Ok(())
}

/// Our attempt behind a PaymentIntent: by its reference, or by the payment
/// id in its metadata when its reference is not recorded yet (the webhook
/// overtook the answer to the create call), which records it.
async fn find_payment(pool: &PgPool, intent: &Intent) -> Result<Option<Uuid>, sqlx::Error> {
    let known = sqlx::query_scalar!(
        "SELECT id FROM payments WHERE provider = 'stripe' AND provider_ref = $1",
        intent.provider_ref
    )
    .fetch_optional(pool)
    .await?;
    if known.is_some() {
        return Ok(known);
    }
    sqlx::query_scalar!(
        "UPDATE payments SET provider_ref = $1 WHERE provider = 'stripe' AND id = $2 AND provider_ref IS NULL RETURNING id",
        intent.provider_ref,
        intent.payment_id,
    )
    .fetch_optional(pool)
    .await
}

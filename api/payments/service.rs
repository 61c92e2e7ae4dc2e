//! Payment attempts: what they are and how their outcome is told. Starting
//! and confirming them is in `attempts`, asking the provider what became of
//! them in `recovery`. The order of steps is
//! the point: commit our record, then call the provider with the attempt's
//! idempotency key, then record the answer. A crash between steps is repaired
//! by running the step again (here, on retry, or in the reconciler).

use std::sync::Arc;

use actix_web::http::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use super::attempt::Attempt;
use super::gateway::{GatewayError, PaymentGateway, Provider};
use super::paid::PaidBatcher;
use crate::checkin::ticket_keys::TicketKeys;
use crate::domain::status::PaymentStatus;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sales::views::PaymentView;

/// How many times one request asks the provider for an answer it did not get.
pub(super) const CREATE_TRIES: u32 = 3;

/// The failure code of an attempt the provider never made anything of: its
/// creation was held back or refused before it ran (nothing was sent, or a
/// 401/403/429), or no listing of its creation window found it for longer
/// than Stripe keeps a key. Nothing was charged; the buyer may pay again.
pub const PROVIDER_ERROR: &str = "provider_error";

#[derive(Clone)]
pub struct PaymentService {
    pub pool: PgPool,
    pub gateway: Arc<dyn PaymentGateway>,
    /// Successes of concurrent requests, recorded together.
    pub paid: PaidBatcher,
}

/// The provider's refusals of an amount itself (Stripe's error codes on a
/// PaymentIntent's creation): permanent for the order whatever the card, so
/// its attempt fails with the code and the buyer is told, never "retry".
const AMOUNT_REFUSALS: [ErrorCode; 2] = [ErrorCode::AmountTooSmall, ErrorCode::AmountTooLarge];

fn amount_refusal(code: &str) -> Option<ErrorCode> {
    AMOUNT_REFUSALS.into_iter().find(|c| c.as_str() == code)
}

/// The failure code an attempt the provider refused is recorded with: a
/// decline's code, the amount refusal's code, else [`PROVIDER_ERROR`]
/// (nothing charged, a new attempt may go through).
pub fn failure_code(e: &GatewayError) -> String {
    match e {
        GatewayError::Declined { code, .. } => code.clone(),
        GatewayError::Refused { code, .. } if amount_refusal(code).is_some() => code.clone(),
        _ => PROVIDER_ERROR.to_owned(),
    }
}

/// The buyer's 422 for an order whose amount the provider will not charge.
fn amount_refused(code: ErrorCode) -> ApiError {
    let message = match code {
        ErrorCode::AmountTooSmall => {
            "the payment provider cannot charge an amount this small; the organiser has been told"
        }
        _ => "the payment provider cannot charge an amount this large; the organiser has been told",
    };
    ApiError::Validation { code, message: message.into() }
}

/// What a buyer is told when the provider did not take their payment. Only
/// declines and refusals of the amount are meant for buyers; anything else
/// (no answer, a stored error, a wrong API key, the rate limit, an invalid
/// request) is the operator's problem: logged in full, and the buyer gets a
/// 503 to retry later.
pub fn buyer_error(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Declined { code, message } => {
            let message =
                if message.is_empty() { "the card was declined; you can try another card".into() } else { message };
            ApiError::PaymentRefused { code, message }
        }
        GatewayError::Refused { code, message } if amount_refusal(&code).is_some() => {
            tracing::error!(%code, %message, "the payment provider refuses to charge this order's amount");
            amount_refused(amount_refusal(&code).expect("checked"))
        }
        GatewayError::Unknown(detail) => {
            tracing::warn!(%detail, "payment provider did not answer");
            unavailable()
        }
        other => {
            tracing::error!(error = %other, "the payment provider could not be used; check its configuration and status");
            unavailable()
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        code: ErrorCode::PaymentProviderUnavailable,
        message: "payments are unavailable for a moment; nothing was charged twice, please retry".into(),
    }
}

impl PaymentService {
    /// Every provider call is timed, counted and logged (see `metered`).
    /// `ticket_keys` derive the codes of the tickets its paid orders get.
    pub fn new(pool: PgPool, gateway: Arc<dyn PaymentGateway>, ticket_keys: TicketKeys) -> Self {
        Self {
            paid: PaidBatcher::new(pool.clone(), ticket_keys),
            pool,
            gateway: super::metered::Metered::wrap(gateway),
        }
    }

    pub fn provider(&self) -> Provider {
        self.gateway.provider()
    }

    pub async fn attempt(&self, payment_id: Uuid) -> Result<Option<Attempt>, sqlx::Error> {
        sqlx::query_as!(
            Attempt,
            r#"SELECT id, order_id, provider, status AS "status: PaymentStatus", provider_ref, idempotency_key,
                      amount_minor, currency AS "currency!", payment_method, return_url, client_secret,
                      failure_code, create_error_stored, created_at
               FROM payments WHERE id = $1"#,
            payment_id
        )
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn view(&self, payment_id: Uuid) -> Result<PaymentView, sqlx::Error> {
        sqlx::query_as!(
            PaymentView,
            r#"SELECT id, order_id, provider, status AS "status: PaymentStatus", amount_minor,
                      currency AS "currency!", client_secret, failure_code
               FROM payments WHERE id = $1"#,
            payment_id
        )
        .fetch_one(&self.pool)
        .await
    }
}

/// The HTTP answer to a confirmation's outcome: 200 when paid, 202 while
/// pending, an error when refused or when the order could not take the money.
pub(super) fn outcome_answer(status: PaymentStatus, view: PaymentView) -> ApiResult<(StatusCode, PaymentView)> {
    match status {
        PaymentStatus::Succeeded => Ok((StatusCode::OK, view)),
        PaymentStatus::Failed => Err(declined(&view)),
        PaymentStatus::Canceled => Err(ApiError::conflict(
            ErrorCode::PaymentCanceled,
            "this payment attempt was canceled; the order may have expired",
        )),
        PaymentStatus::RefundPending | PaymentStatus::Refunded => Err(ApiError::conflict(
            ErrorCode::OrderNotAwaitingPayment,
            "the order could not take this payment; the money is being refunded",
        )),
        _ => Ok((StatusCode::ACCEPTED, view)),
    }
}

pub(super) fn declined(view: &PaymentView) -> ApiError {
    if view.failure_code.as_deref() == Some(PROVIDER_ERROR) {
        return unavailable();
    }
    if let Some(code) = view.failure_code.as_deref().and_then(amount_refusal) {
        return amount_refused(code);
    }
    let code = view.failure_code.clone().unwrap_or_else(|| ErrorCode::CardDeclined.as_str().into());
    ApiError::PaymentRefused { code, message: "the card was declined; you can try again with another card".into() }
}

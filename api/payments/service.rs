//! Payment attempts: what they are and how their outcome is told. Starting
//! and confirming them is in `attempts`, asking the provider what became of
//! them in `recovery`. The order of steps is
//! the point: commit our record, then call the provider with the attempt's
//! idempotency key, then record the answer. A crash between steps is repaired
//! by running the step again (here, on retry, or in the reconciler).

use std::sync::Arc;

use actix_web::http::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gateway::{GatewayError, IntentRequest, PaymentGateway, Provider};
use super::paid::PaidBatcher;
use crate::domain::status::PaymentStatus;
use crate::domain::{Currency, Money};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sales::views::PaymentView;

/// How many times one request asks the provider for an answer it did not get.
pub(super) const CREATE_TRIES: u32 = 3;

/// Stripe keeps the answer to a request with an idempotency key for at least
/// 24 hours and may prune it afterwards: a creation re-sent after that is a
/// brand-new charge, a day late. nts re-sends a creation only while its
/// attempt is younger than this, far inside those 24 hours and far beyond
/// any request still in flight; an older attempt is looked up instead.
pub const RESEND_CREATE_WITHIN: time::Duration = time::Duration::hours(1);

/// How long after an attempt was recorded its creation may still reach the
/// provider: the buyer's request tries a few times, and the reconciler
/// re-sends an unanswered creation once it is a few seconds old.
pub(super) const MAY_STILL_BE_SENT: time::Duration = time::Duration::minutes(2);

/// The failure code of an attempt the provider has no trace of after an
/// error answer: nothing was charged, the buyer may pay with a new attempt.
pub const PROVIDER_ERROR: &str = "provider_error";

#[derive(Clone)]
pub struct PaymentService {
    pub pool: PgPool,
    pub gateway: Arc<dyn PaymentGateway>,
    /// Successes of concurrent requests, recorded together.
    pub paid: PaidBatcher,
}

/// One attempt as stored, with what the provider needs to find it again.
pub struct Attempt {
    pub id: Uuid,
    pub order_id: Uuid,
    pub provider: String,
    pub status: PaymentStatus,
    pub provider_ref: Option<String>,
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: String,
    pub payment_method: Option<String>,
    pub return_url: Option<String>,
    pub client_secret: Option<String>,
    pub failure_code: Option<String>,
    pub created_at: OffsetDateTime,
}

impl Attempt {
    /// What the buyer sees of it, as read, in `status`.
    pub(super) fn view(&self, status: PaymentStatus) -> PaymentView {
        PaymentView {
            id: self.id,
            order_id: self.order_id,
            provider: self.provider.clone(),
            status,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            client_secret: self.client_secret.clone(),
            failure_code: self.failure_code.clone(),
        }
    }

    pub(super) fn intent_request(&self) -> Result<IntentRequest, GatewayError> {
        let amount = Currency::parse(&self.currency)
            .ok()
            .and_then(|c| Money::new(self.amount_minor, c).ok())
            .ok_or_else(|| GatewayError::Refused {
                code: "invalid_amount".into(),
                message: format!("{} {} is not an amount nts can charge", self.amount_minor, self.currency),
            })?;
        Ok(IntentRequest {
            idempotency_key: self.idempotency_key.clone(),
            order_id: self.order_id,
            payment_id: self.id,
            amount,
            payment_method: self.payment_method.clone(),
            return_url: self.return_url.clone(),
        })
    }

    /// May its creation be sent (again) with its key? Only while the
    /// provider surely still holds the key's first answer.
    pub(super) fn may_send_create(&self, now: OffsetDateTime) -> bool {
        self.provider_ref.is_none()
            && matches!(self.status, PaymentStatus::Created | PaymentStatus::Processing)
            && now - self.created_at < RESEND_CREATE_WITHIN
    }
}

/// What a buyer is told when the provider did not take their payment. Only
/// declines are meant for buyers; anything else (no answer, a stored error,
/// a wrong API key, the rate limit, an invalid request) is the operator's
/// problem: logged in full, and the buyer gets a 503 to retry later.
pub fn buyer_error(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Declined { code, message } => {
            let message =
                if message.is_empty() { "the card was declined; you can try another card".into() } else { message };
            ApiError::PaymentRefused { code, message }
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
    pub fn new(pool: PgPool, gateway: Arc<dyn PaymentGateway>) -> Self {
        Self { paid: PaidBatcher::new(pool.clone()), pool, gateway: super::metered::Metered::wrap(gateway) }
    }

    pub fn provider(&self) -> Provider {
        self.gateway.provider()
    }

    pub async fn attempt(&self, payment_id: Uuid) -> Result<Option<Attempt>, sqlx::Error> {
        self.attempt_of(payment_id, None).await
    }

    /// The attempt, with `order_secret_hash` only if it is its order's buyer's.
    ///
    /// A join, not `$2 IS NULL OR EXISTS (…)`: an `EXISTS` under an `OR`
    /// cannot become a join, and PostgreSQL may run it as a hashed subplan
    /// that reads every order with that secret's hash.
    pub async fn attempt_of(
        &self,
        payment_id: Uuid,
        order_secret_hash: Option<&[u8]>,
    ) -> Result<Option<Attempt>, sqlx::Error> {
        sqlx::query_as!(
            Attempt,
            r#"SELECT p.id, p.order_id, p.provider, p.status AS "status: PaymentStatus", p.provider_ref,
                      p.idempotency_key, p.amount_minor, p.currency AS "currency!", p.payment_method, p.return_url,
                      p.client_secret, p.failure_code, p.created_at
               FROM payments p JOIN orders o ON o.id = p.order_id
               WHERE p.id = $1 AND ($2::bytea IS NULL OR o.secret_hash = $2)"#,
            payment_id,
            order_secret_hash
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
    let code = view.failure_code.clone().unwrap_or_else(|| ErrorCode::CardDeclined.as_str().into());
    ApiError::PaymentRefused { code, message: "the card was declined; you can try again with another card".into() }
}

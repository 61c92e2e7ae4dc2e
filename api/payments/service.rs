//! Payment attempts: start, confirm, cancel, refresh. The order of steps is
//! the point: commit our record, then call the provider with the attempt's
//! idempotency key, then record the answer. A crash between steps is repaired
//! by running the step again (here, on retry, or in the reconciler).

use std::sync::Arc;

use actix_web::http::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use super::gateway::{GatewayError, Intent, IntentRequest, IntentStatus, PaymentGateway, PaymentMethod, Provider};
use super::settle;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult};
use crate::sales::views::PaymentView;

/// How many times one request asks the provider for an answer it did not get.
const CREATE_TRIES: u64 = 3;

#[derive(Clone)]
pub struct PaymentService {
    pub pool: PgPool,
    pub gateway: Arc<dyn PaymentGateway>,
}

/// One attempt as stored, with what the provider needs to find it again.
pub struct Attempt {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub provider_ref: Option<String>,
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: String,
    pub payment_method: Option<String>,
}

impl Attempt {
    fn intent_request(&self) -> IntentRequest {
        IntentRequest {
            idempotency_key: self.idempotency_key.clone(),
            order_id: self.order_id,
            payment_id: self.id,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            payment_method: self.payment_method.clone(),
        }
    }
}

fn provider_unavailable(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Unknown(detail) => {
            tracing::warn!(%detail, "payment provider did not answer");
            ApiError::Unavailable {
                code: "payment_provider_unavailable",
                message: "the payment provider did not answer; nothing was charged twice, please retry".into(),
            }
        }
        GatewayError::Refused { code, message } => ApiError::PaymentRefused { code, message },
    }
}

impl PaymentService {
    pub fn new(pool: PgPool, gateway: Arc<dyn PaymentGateway>) -> Self {
        Self { pool, gateway }
    }

    pub fn provider(&self) -> Provider {
        self.gateway.provider()
    }

    pub async fn attempt(&self, payment_id: Uuid) -> Result<Option<Attempt>, sqlx::Error> {
        sqlx::query_as!(
            Attempt,
            r#"SELECT id, order_id, status AS "status: PaymentStatus", provider_ref, idempotency_key,
                      amount_minor, currency AS "currency!", payment_method
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

    /// Under the simulated gateway checkout opens the first attempt at once, so
    /// the buyer can press "pay"; under Stripe the first attempt comes with the card.
    pub async fn open_first_attempt(&self, order_id: Uuid) -> ApiResult<Option<PaymentView>> {
        match self.provider() {
            Provider::Simulated => Ok(Some(self.start_attempt(order_id, None).await?)),
            Provider::Stripe => Ok(None),
        }
    }

    /// A new attempt for an order awaiting payment. Open attempts are canceled
    /// at the provider first, so two attempts can never both take money.
    /// A provider payment method travels with the creation call (Stripe
    /// confirms it there); a simulated attempt is confirmed later with an outcome.
    pub async fn start_attempt(&self, order_id: Uuid, method: Option<PaymentMethod>) -> ApiResult<PaymentView> {
        let provider_method = match method {
            Some(PaymentMethod::Provider(pm)) => Some(pm),
            _ if self.provider() == Provider::Stripe => {
                return Err(ApiError::Validation {
                    code: "payment_method_required",
                    message: "send the card's PaymentMethod id from Stripe.js: {\"payment_method\": \"pm_...\"}".into(),
                })
            }
            _ => None,
        };
        if self.cancel_open_attempts(order_id).await? {
            return Err(ApiError::conflict("order_already_paid", "this order has been paid"));
        }
        let payment_id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        let order = sqlx::query!(
            r#"SELECT status AS "status: OrderStatus", expires_at > clock_timestamp() AS "live!",
                      amount_minor, currency AS "currency!"
               FROM orders WHERE id = $1 FOR UPDATE"#,
            order_id
        )
        .fetch_one(&mut *tx)
        .await?;
        match order.status {
            OrderStatus::AwaitingPayment if order.live => {}
            OrderStatus::AwaitingPayment | OrderStatus::Expired => {
                return Err(ApiError::conflict("order_expired", "the time to pay for this order is over"))
            }
            OrderStatus::Paid => return Err(ApiError::conflict("order_already_paid", "this order has been paid")),
            _ => return Err(ApiError::conflict("order_not_awaiting_payment", "this order no longer takes payments")),
        }
        let inserted = sqlx::query!(
            r#"INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency, payment_method)
               SELECT $1, $2, $3, $6, $4, $5, $7
               WHERE NOT EXISTS (SELECT 1 FROM payments WHERE order_id = $2
                                 AND status IN ('created', 'processing', 'requires_action'))"#,
            payment_id,
            order_id,
            self.provider().as_str(),
            order.amount_minor,
            order.currency,
            format!("nts-pay-{payment_id}"),
            provider_method,
        )
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(ApiError::conflict(
                "payment_in_progress",
                "another payment attempt for this order is in progress",
            ));
        }
        tx.commit().await?;

        let attempt = self.attempt(payment_id).await?.expect("just inserted");
        if attempt.payment_method.is_some() {
            return self.create_confirmed(&attempt).await;
        }
        if let Err(e) = self.ensure_intent(&attempt).await {
            match e {
                // The attempt stays `created`; a retry or the reconciler repeats the call with the same key.
                GatewayError::Unknown(detail) => {
                    tracing::warn!(%payment_id, %detail, "creating the payment intent got no answer")
                }
                e => return Err(provider_unavailable(e)),
            }
        }
        Ok(self.view(payment_id).await?)
    }

    /// Creates the provider object of an attempt that carries its payment
    /// method, which confirms it, and records the outcome. An unknown outcome
    /// is asked again a few times with the same key (the provider answers the
    /// same object); if it stays unknown the attempt is left `processing` for
    /// the buyer's next look at the order or the reconciler.
    async fn create_confirmed(&self, attempt: &Attempt) -> ApiResult<PaymentView> {
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match self.ensure_intent(attempt).await {
                Err(GatewayError::Unknown(detail)) if tries < CREATE_TRIES => {
                    tracing::warn!(payment_id = %attempt.id, %detail, "no answer to the payment; asking again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
                }
                other => break other,
            }
        };
        let status = match outcome {
            Ok(intent) => settle::apply(&self.pool, attempt.id, &intent).await?,
            Err(GatewayError::Unknown(detail)) => {
                tracing::warn!(payment_id = %attempt.id, %detail, "the payment's outcome is unknown; the reconciler will settle it");
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &[PaymentStatus::Created],
                    PaymentStatus::Processing,
                    None,
                    None,
                )
                .await?
            }
            Err(GatewayError::Refused { code, message }) => {
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(&code),
                    None,
                )
                .await?;
                return Err(ApiError::PaymentRefused { code, message });
            }
        };
        let (_, view) = outcome_answer(status, self.view(attempt.id).await?)?;
        Ok(view)
    }

    /// Makes sure the provider object of an attempt exists and is recorded.
    pub async fn ensure_intent(&self, attempt: &Attempt) -> Result<Intent, GatewayError> {
        let intent = match &attempt.provider_ref {
            Some(r) => self.gateway.retrieve(r).await?,
            None => self.gateway.create_intent(&attempt.intent_request()).await?,
        };
        sqlx::query!(
            "UPDATE payments SET provider_ref = $2, client_secret = COALESCE(client_secret, $3), updated_at = now()
             WHERE id = $1 AND provider_ref IS NULL",
            attempt.id,
            intent.provider_ref,
            intent.client_secret,
        )
        .execute(&self.pool)
        .await
        .map_err(|e| GatewayError::Unknown(format!("recording the provider reference: {e}")))?;
        Ok(intent)
    }

    /// Confirms an attempt with the buyer's payment method. Answers 200 when
    /// paid, 202 while the outcome is pending, and the refusal as an error.
    pub async fn confirm_attempt(
        &self,
        payment_id: Uuid,
        method: &PaymentMethod,
    ) -> ApiResult<(StatusCode, PaymentView)> {
        let attempt = self.attempt(payment_id).await?.ok_or(ApiError::NotFound("no such payment"))?;
        match attempt.status {
            PaymentStatus::Created | PaymentStatus::Processing | PaymentStatus::RequiresAction => {}
            PaymentStatus::Succeeded => return Ok((StatusCode::OK, self.view(payment_id).await?)),
            PaymentStatus::Failed => return Err(declined(&self.view(payment_id).await?)),
            _ => return Err(ApiError::conflict("payment_not_open", "this payment attempt is closed; start a new one")),
        }
        let intent = match self.ensure_intent(&attempt).await {
            Ok(intent) => intent,
            Err(GatewayError::Unknown(_)) => return Ok((StatusCode::ACCEPTED, self.view(payment_id).await?)),
            Err(e) => return Err(provider_unavailable(e)),
        };
        let answer = if intent.status == IntentStatus::Open {
            settle::transition(
                &self.pool,
                payment_id,
                &[PaymentStatus::Created],
                PaymentStatus::Processing,
                None,
                None,
            )
            .await?;
            self.gateway.confirm(&intent.provider_ref, &attempt.idempotency_key, method).await
        } else {
            Ok(intent)
        };
        let status = match answer {
            Ok(intent) => settle::apply(&self.pool, payment_id, &intent).await?,
            // We do not know whether money moved: the attempt stays open and the
            // reconciler (or the buyer's next look at the order) settles it.
            Err(GatewayError::Unknown(detail)) => {
                tracing::warn!(%payment_id, %detail, "confirmation got no answer; the reconciler will settle it");
                PaymentStatus::Processing
            }
            Err(GatewayError::Refused { code, message }) => {
                settle::transition(
                    &self.pool,
                    payment_id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(&code),
                    None,
                )
                .await?;
                return Err(ApiError::PaymentRefused { code, message });
            }
        };
        outcome_answer(status, self.view(payment_id).await?)
    }

    /// Cancels every open attempt of an order at the provider and records it.
    /// Answers true if the provider said one had already succeeded (the order is then paid).
    pub async fn cancel_open_attempts(&self, order_id: Uuid) -> ApiResult<bool> {
        let open: Vec<Uuid> = sqlx::query_scalar!(
            "SELECT id FROM payments WHERE order_id = $1 AND status IN ('created', 'processing', 'requires_action')",
            order_id
        )
        .fetch_all(&self.pool)
        .await?;
        let mut paid = false;
        for payment_id in open {
            let Some(attempt) = self.attempt(payment_id).await? else { continue };
            let Some(intent) = self.current_intent(&attempt).await.map_err(provider_unavailable)? else { continue };
            let intent = match intent.status {
                IntentStatus::Succeeded | IntentStatus::Canceled | IntentStatus::Failed { .. } => intent,
                _ => self
                    .gateway
                    .cancel(&intent.provider_ref, &format!("{}-cancel", attempt.idempotency_key))
                    .await
                    .map_err(provider_unavailable)?,
            };
            let status = settle::apply(&self.pool, payment_id, &intent).await?;
            paid |= status == PaymentStatus::Succeeded;
        }
        Ok(paid)
    }

    /// The provider's object of an open attempt, made if it is missing. None
    /// when the provider refused to make it: the attempt is then recorded as
    /// failed, since no money can move without the object.
    pub async fn current_intent(&self, attempt: &Attempt) -> Result<Option<Intent>, GatewayError> {
        match self.ensure_intent(attempt).await {
            Ok(intent) => Ok(Some(intent)),
            Err(GatewayError::Refused { code, message }) if attempt.provider_ref.is_none() => {
                tracing::warn!(payment_id = %attempt.id, %code, %message, "the provider refused the attempt");
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(&code),
                    None,
                )
                .await
                .map_err(|e| GatewayError::Unknown(format!("recording the refusal: {e}")))?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the provider about an order's latest attempt (when it is
    /// waiting on the provider), so a buyer whose webhook is late still sees the
    /// truth. Answers whether anything changed.
    pub async fn refresh_attempt(&self, latest: &PaymentView) -> ApiResult<bool> {
        if !matches!(latest.status, PaymentStatus::Processing | PaymentStatus::RequiresAction) {
            return Ok(false);
        }
        let Some(attempt) = self.attempt(latest.id).await? else { return Ok(false) };
        match self.current_intent(&attempt).await {
            Ok(Some(intent)) => Ok(settle::apply(&self.pool, attempt.id, &intent).await? != attempt.status),
            Ok(None) => Ok(true),
            Err(_) => Ok(false),
        }
    }
}

/// The HTTP answer to a confirmation's outcome: 200 when paid, 202 while
/// pending, an error when refused or when the order could not take the money.
fn outcome_answer(status: PaymentStatus, view: PaymentView) -> ApiResult<(StatusCode, PaymentView)> {
    match status {
        PaymentStatus::Succeeded => Ok((StatusCode::OK, view)),
        PaymentStatus::Failed => Err(declined(&view)),
        PaymentStatus::Canceled => {
            Err(ApiError::conflict("payment_canceled", "this payment attempt was canceled; the order may have expired"))
        }
        PaymentStatus::RefundPending | PaymentStatus::Refunded => Err(ApiError::conflict(
            "order_not_awaiting_payment",
            "the order could not take this payment; the money is being refunded",
        )),
        _ => Ok((StatusCode::ACCEPTED, view)),
    }
}

fn declined(view: &PaymentView) -> ApiError {
    let code = view.failure_code.clone().unwrap_or_else(|| "card_declined".into());
    ApiError::PaymentRefused { code, message: "the card was declined; you can try again with another card".into() }
}

//! Payment attempts: start, confirm, cancel, refresh. The order of steps is
//! the point: commit our record, then call the provider with the attempt's
//! idempotency key, then record the answer. A crash between steps is repaired
//! by running the step again (here, on retry, or in the reconciler).

use std::sync::Arc;

use actix_web::http::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gateway::{GatewayError, Intent, IntentRequest, IntentStatus, PaymentGateway, PaymentMethod, Provider};
use super::guard::backoff;
use super::settle;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::domain::{Currency, Money};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::KeyContext;
use crate::sales::views::PaymentView;

/// How many times one request asks the provider for an answer it did not get.
const CREATE_TRIES: u32 = 3;

/// Stripe keeps the answer to a request with an idempotency key for at least
/// 24 hours and may prune it afterwards: a creation re-sent after that is a
/// brand-new charge, a day late. nts re-sends a creation only while its
/// attempt is younger than this, far inside those 24 hours and far beyond
/// any request still in flight; an older attempt is looked up instead.
pub const RESEND_CREATE_WITHIN: time::Duration = time::Duration::hours(1);

/// How long after an attempt was recorded its creation may still reach the
/// provider: the buyer's request tries a few times, and the reconciler
/// re-sends an unanswered creation once it is a few seconds old.
const MAY_STILL_BE_SENT: time::Duration = time::Duration::minutes(2);

/// The failure code of an attempt the provider has no trace of after an
/// error answer: nothing was charged, the buyer may pay with a new attempt.
pub const PROVIDER_ERROR: &str = "provider_error";

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
    pub return_url: Option<String>,
    pub created_at: OffsetDateTime,
}

impl Attempt {
    fn intent_request(&self) -> Result<IntentRequest, GatewayError> {
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
    fn may_send_create(&self, now: OffsetDateTime) -> bool {
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
        code: "payment_provider_unavailable",
        message: "payments are unavailable for a moment; nothing was charged twice, please retry".into(),
    }
}

impl PaymentService {
    /// Every provider call is timed, counted and logged (see `metered`).
    pub fn new(pool: PgPool, gateway: Arc<dyn PaymentGateway>) -> Self {
        Self { pool, gateway: super::metered::Metered::wrap(gateway) }
    }

    pub fn provider(&self) -> Provider {
        self.gateway.provider()
    }

    pub async fn attempt(&self, payment_id: Uuid) -> Result<Option<Attempt>, sqlx::Error> {
        sqlx::query_as!(
            Attempt,
            r#"SELECT id, order_id, status AS "status: PaymentStatus", provider_ref, idempotency_key,
                      amount_minor, currency AS "currency!", payment_method, return_url, created_at
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

    /// Checkout's part under the simulated gateway: the first attempt of a
    /// new order, in the checkout's transaction, so the buyer can press
    /// "pay". Under Stripe the first attempt comes with the card.
    pub async fn first_attempt_in(
        &self,
        tx: &mut sqlx::PgConnection,
        order_id: Uuid,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Option<PaymentView>, sqlx::Error> {
        if self.provider() != Provider::Simulated {
            return Ok(None);
        }
        let payment_id = Uuid::new_v4();
        sqlx::query_as!(
            PaymentView,
            r#"INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency)
               VALUES ($1, $2, $3, $4, $5, $6)
               RETURNING id, order_id, provider, status AS "status: PaymentStatus", amount_minor,
                         currency AS "currency!", client_secret, failure_code"#,
            payment_id,
            order_id,
            self.provider().as_str(),
            format!("nts-pay-{payment_id}"),
            amount_minor,
            currency,
        )
        .fetch_one(tx)
        .await
        .map(Some)
    }

    /// Creates the provider object of a recorded first attempt. Whatever goes
    /// wrong, the attempt stays `created` and the reconciler repeats the call.
    pub async fn send_first_attempt(&self, payment_id: Uuid) {
        let attempt = match self.attempt(payment_id).await {
            Ok(Some(attempt)) => attempt,
            Ok(None) => return,
            Err(e) => return tracing::warn!(%payment_id, error = %e, "could not read a new payment attempt"),
        };
        if let Err(e) = self.ensure_intent(&attempt).await {
            tracing::warn!(%payment_id, error = %e, "creating the payment intent failed; the reconciler will retry");
        }
    }

    /// A new attempt for an order awaiting payment. Open attempts are canceled
    /// at the provider first, so two attempts can never both take money.
    /// A provider payment method travels with the creation call (Stripe
    /// confirms it there); a simulated attempt is confirmed later with an outcome.
    ///
    /// With an Idempotency-Key, the new attempt is the key's recovery point,
    /// recorded in the transaction that creates it.
    pub async fn start_attempt(
        &self,
        order_id: Uuid,
        method: Option<PaymentMethod>,
        return_url: Option<String>,
        key: Option<&KeyContext>,
    ) -> ApiResult<PaymentView> {
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
            r#"INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency, payment_method,
                                    return_url)
               SELECT $1, $2, $3, $6, $4, $5, $7, $8
               WHERE NOT EXISTS (SELECT 1 FROM payments WHERE order_id = $2 AND status = ANY($9))"#,
            payment_id,
            order_id,
            self.provider().as_str(),
            order.amount_minor,
            order.currency,
            format!("nts-pay-{payment_id}"),
            provider_method,
            return_url,
            &PaymentStatus::OPEN as &[PaymentStatus],
        )
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(ApiError::conflict(
                "payment_in_progress",
                "another payment attempt for this order is in progress",
            ));
        }
        if let Some(key) = key {
            if !key.set_recovery_point(&mut *tx, payment_id).await? {
                return Err(key.lost());
            }
        }
        tx.commit().await?;
        self.carry_on(payment_id).await
    }

    /// Carries on with an attempt a request started and did not finish (its
    /// instance died, or it failed): no new attempt, the same one, from
    /// where it got to; a settled one answers as it settled. `None`: the
    /// attempt failed at the provider without charging anything (the request
    /// answered 503, which its key does not keep), so a new attempt is due,
    /// as for a retry without a key.
    pub async fn resume_attempt(&self, order_id: Uuid, payment_id: Uuid) -> ApiResult<Option<PaymentView>> {
        let attempt = self.attempt(payment_id).await?.filter(|a| a.order_id == order_id);
        let Some(attempt) = attempt else { return Err(ApiError::NotFound("no such order")) };
        let view = self.view(payment_id).await?;
        if attempt.status == PaymentStatus::Failed && view.failure_code.as_deref() == Some(PROVIDER_ERROR) {
            return Ok(None);
        }
        if attempt.payment_method.is_some() && !attempt.may_send_create(OffsetDateTime::now_utc()) {
            let (_, view) = outcome_answer(attempt.status, view)?;
            return Ok(Some(view));
        }
        if attempt.payment_method.is_none() && attempt.status != PaymentStatus::Created {
            return Ok(Some(view));
        }
        self.carry_on(payment_id).await.map(Some)
    }

    async fn carry_on(&self, payment_id: Uuid) -> ApiResult<PaymentView> {
        let attempt = self.attempt(payment_id).await?.ok_or(ApiError::NotFound("no such payment"))?;
        if attempt.payment_method.is_some() {
            return self.create_confirmed(&attempt).await;
        }
        if let Err(e) = self.ensure_intent(&attempt).await {
            match e {
                // The attempt stays `created`; a retry or the reconciler repeats the call with the same key.
                GatewayError::Unknown(detail) => {
                    tracing::warn!(%payment_id, %detail, "creating the payment intent got no answer")
                }
                e => return Err(buyer_error(e)),
            }
        }
        Ok(self.view(payment_id).await?)
    }

    /// Creates the provider object of an attempt that carries its payment
    /// method, which confirms it, and records the outcome. No answer is
    /// asked again a few times with the same key and the same bytes; an
    /// error Stripe stored under the key is not (it would only be replayed):
    /// the PaymentIntent is looked up instead. If the outcome stays unknown
    /// the attempt is left `processing` for the reconciler.
    async fn create_confirmed(&self, attempt: &Attempt) -> ApiResult<PaymentView> {
        let mut tries = 0;
        let mut maybe_sent = false;
        let outcome = loop {
            tries += 1;
            match self.ensure_intent(attempt).await {
                Err(GatewayError::Unknown(detail)) if tries < CREATE_TRIES => {
                    maybe_sent = true;
                    tracing::warn!(payment_id = %attempt.id, %detail, "no answer to the payment; asking again");
                    tokio::time::sleep(backoff(tries - 1)).await;
                }
                Err(e @ GatewayError::Unknown(_)) => {
                    maybe_sent = true;
                    break Err(e);
                }
                other => break other,
            }
        };
        let status = match outcome {
            Ok(intent) => self.apply_and_close(attempt.id, &intent).await?,
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
            Err(GatewayError::Stored(detail)) => {
                tracing::warn!(payment_id = %attempt.id, %detail, "Stripe stored an error for the payment; looking it up");
                match self.recover(attempt).await {
                    Ok(status) => status,
                    Err(e) => {
                        self.leave_for_reconciler(attempt.id).await?;
                        return Err(buyer_error(e));
                    }
                }
            }
            // Nothing was sent, or the provider refused the request itself:
            // no money can move under this attempt.
            Err(e) if !maybe_sent || matches!(e, GatewayError::Declined { .. } | GatewayError::Refused { .. }) => {
                let code = match &e {
                    GatewayError::Declined { code, .. } => code.clone(),
                    _ => PROVIDER_ERROR.to_owned(),
                };
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(&code),
                    None,
                )
                .await?;
                return Err(buyer_error(e));
            }
            Err(e) => {
                self.leave_for_reconciler(attempt.id).await?;
                return Err(buyer_error(e));
            }
        };
        let (_, view) = outcome_answer(status, self.view(attempt.id).await?)?;
        Ok(view)
    }

    async fn leave_for_reconciler(&self, payment_id: Uuid) -> Result<PaymentStatus, sqlx::Error> {
        settle::transition(&self.pool, payment_id, &[PaymentStatus::Created], PaymentStatus::Processing, None, None)
            .await
    }

    /// Applies the provider's view of an attempt; a failed PaymentIntent is
    /// canceled at the provider, so a `client_secret` the buyer still holds
    /// (after a failed 3-D Secure, say) cannot confirm it later.
    pub async fn apply_and_close(&self, payment_id: Uuid, intent: &Intent) -> Result<PaymentStatus, sqlx::Error> {
        let status = settle::apply(&self.pool, payment_id, intent).await?;
        if matches!(intent.status, IntentStatus::Failed { .. }) {
            let key = format!("nts-pay-{payment_id}-cancel");
            match self.gateway.cancel(&intent.provider_ref, &key).await {
                Ok(now) if now.status == IntentStatus::Succeeded => {
                    return settle::apply(&self.pool, payment_id, &now).await
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%payment_id, error = %e, "could not cancel a failed PaymentIntent"),
            }
        }
        Ok(status)
    }

    /// An attempt whose creation answer cannot be had (Stripe stored an
    /// error under its key, or the attempt is too old to re-send): its
    /// PaymentIntent is looked up by listing. Settled from what is found;
    /// if Stripe has none, the attempt failed (nothing was charged) and the
    /// order can be paid with a new attempt, under a new key, or expire.
    pub async fn recover(&self, attempt: &Attempt) -> Result<PaymentStatus, GatewayError> {
        let recorded = |e: sqlx::Error| GatewayError::Unknown(format!("recording the lookup: {e}"));
        match self.look_up(attempt).await? {
            Some(intent) => self.apply_and_close(attempt.id, &intent).await.map_err(recorded),
            None => {
                tracing::warn!(payment_id = %attempt.id, "the provider has no PaymentIntent for this attempt; it failed");
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(PROVIDER_ERROR),
                    None,
                )
                .await
                .map_err(recorded)
            }
        }
    }

    /// The provider's object of an attempt, never created here: retrieved by
    /// its reference, or found by listing (and its reference recorded).
    pub async fn look_up(&self, attempt: &Attempt) -> Result<Option<Intent>, GatewayError> {
        if let Some(r) = &attempt.provider_ref {
            return self.gateway.retrieve(r).await.map(Some);
        }
        let Some(intent) = self.gateway.find_intent(attempt.id, attempt.created_at).await? else { return Ok(None) };
        self.record_ref(attempt.id, &intent).await?;
        Ok(Some(intent))
    }

    async fn record_ref(&self, payment_id: Uuid, intent: &Intent) -> Result<(), GatewayError> {
        sqlx::query!(
            "UPDATE payments SET provider_ref = $2, client_secret = COALESCE(client_secret, $3), updated_at = now()
             WHERE id = $1 AND provider_ref IS NULL",
            payment_id,
            intent.provider_ref,
            intent.client_secret,
        )
        .execute(&self.pool)
        .await
        .map_err(|e| GatewayError::Unknown(format!("recording the provider reference: {e}")))?;
        Ok(())
    }

    /// Makes sure the provider object of an attempt exists and is recorded.
    pub async fn ensure_intent(&self, attempt: &Attempt) -> Result<Intent, GatewayError> {
        let intent = match &attempt.provider_ref {
            Some(r) => self.gateway.retrieve(r).await?,
            None => self.gateway.create_intent(&attempt.intent_request()?).await?,
        };
        self.record_ref(attempt.id, &intent).await?;
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
            Err(e) => return Err(buyer_error(e)),
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
            Err(e @ (GatewayError::Refused { .. } | GatewayError::Declined { .. })) => {
                let code = match &e {
                    GatewayError::Declined { code, .. } | GatewayError::Refused { code, .. } => code.clone(),
                    _ => unreachable!(),
                };
                settle::transition(
                    &self.pool,
                    payment_id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(&code),
                    None,
                )
                .await?;
                return Err(match e {
                    GatewayError::Refused { code, message } => ApiError::PaymentRefused { code, message },
                    other => buyer_error(other),
                });
            }
            Err(e) => {
                tracing::warn!(%payment_id, error = %e, "confirmation not sent; the attempt stays open");
                return Err(buyer_error(e));
            }
        };
        outcome_answer(status, self.view(payment_id).await?)
    }

    /// Cancels every open attempt of an order at the provider and records it.
    /// Answers true if the provider said one had already succeeded (the order is then paid).
    pub async fn cancel_open_attempts(&self, order_id: Uuid) -> ApiResult<bool> {
        let open: Vec<Uuid> = sqlx::query_scalar!(
            "SELECT id FROM payments WHERE order_id = $1 AND status = ANY($2)",
            order_id,
            &PaymentStatus::OPEN as &[PaymentStatus]
        )
        .fetch_all(&self.pool)
        .await?;
        let mut paid = false;
        for payment_id in open {
            let Some(attempt) = self.attempt(payment_id).await? else { continue };
            let Some(intent) = self.look_up(&attempt).await.map_err(buyer_error)? else {
                // The provider has nothing for it yet. Its creation may still
                // be on its way (another request's tries, the reconciler's
                // re-send): wait for that. Later, nothing can come of it.
                if OffsetDateTime::now_utc() - attempt.created_at < MAY_STILL_BE_SENT {
                    return Err(ApiError::conflict(
                        "payment_in_progress",
                        "another payment attempt for this order is in progress",
                    ));
                }
                settle::transition(&self.pool, payment_id, &PaymentStatus::OPEN, PaymentStatus::Canceled, None, None)
                    .await?;
                continue;
            };
            let intent = match intent.status {
                IntentStatus::Succeeded | IntentStatus::Canceled => intent,
                _ => self
                    .gateway
                    .cancel(&intent.provider_ref, &format!("{}-cancel", attempt.idempotency_key))
                    .await
                    .map_err(buyer_error)?,
            };
            let status = settle::apply(&self.pool, payment_id, &intent).await?;
            paid |= status == PaymentStatus::Succeeded;
        }
        Ok(paid)
    }

    /// Asks the provider about an order's latest attempt (when it is
    /// waiting on the provider and its object is known), so a buyer whose
    /// webhook is late still sees the truth. A read: it never creates or
    /// lists at the provider (an attempt without its reference is the
    /// reconciler's), and a provider in trouble is not asked. Answers
    /// whether anything changed.
    pub async fn refresh_attempt(&self, latest: &PaymentView) -> ApiResult<bool> {
        if !matches!(latest.status, PaymentStatus::Processing | PaymentStatus::RequiresAction) {
            return Ok(false);
        }
        let Some(attempt) = self.attempt(latest.id).await? else { return Ok(false) };
        let Some(provider_ref) = &attempt.provider_ref else { return Ok(false) };
        match self.gateway.retrieve(provider_ref).await {
            Ok(intent) => Ok(self.apply_and_close(attempt.id, &intent).await? != attempt.status),
            Err(_) => Ok(false),
        }
    }

    /// The reconciler's step for one attempt waiting on the provider: a
    /// young attempt whose creation got no answer is sent again (same key,
    /// same bytes); an older one, or one whose answer was a stored error, is
    /// looked up; a known one is retrieved.
    pub async fn settle_stale(&self, attempt: &Attempt) -> Result<PaymentStatus, GatewayError> {
        let recorded = |e: sqlx::Error| GatewayError::Unknown(format!("recording: {e}"));
        if attempt.provider_ref.is_some() {
            let intent = self.look_up(attempt).await?.expect("retrieved by reference");
            return self.apply_and_close(attempt.id, &intent).await.map_err(recorded);
        }
        if !attempt.may_send_create(OffsetDateTime::now_utc()) {
            return self.recover(attempt).await;
        }
        match self.ensure_intent(attempt).await {
            Ok(intent) => self.apply_and_close(attempt.id, &intent).await.map_err(recorded),
            Err(GatewayError::Stored(detail)) => {
                tracing::warn!(payment_id = %attempt.id, %detail, "Stripe stored an error for the payment; looking it up");
                self.recover(attempt).await
            }
            Err(e @ (GatewayError::Refused { .. } | GatewayError::Declined { .. })) => {
                tracing::warn!(payment_id = %attempt.id, error = %e, "the provider refused the attempt");
                let code = match &e {
                    GatewayError::Declined { code, .. } => code.as_str(),
                    _ => PROVIDER_ERROR,
                };
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(code),
                    None,
                )
                .await
                .map_err(recorded)
            }
            Err(e) => Err(e),
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
    if view.failure_code.as_deref() == Some(PROVIDER_ERROR) {
        return unavailable();
    }
    let code = view.failure_code.clone().unwrap_or_else(|| "card_declined".into());
    ApiError::PaymentRefused { code, message: "the card was declined; you can try again with another card".into() }
}

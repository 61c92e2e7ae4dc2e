//! Starting and confirming payment attempts: commit the attempt, then call
//! the provider with its idempotency key, then record the answer.

use actix_web::http::StatusCode;
use time::OffsetDateTime;
use uuid::Uuid;

use super::attempt::{Attempt, IN_FLIGHT_UNTIL};
use super::gateway::{GatewayError, IntentStatus, PaymentMethod, Provider};
use super::guard::backoff;
use super::service::{
    buyer_error, declined, failure_code, outcome_answer, PaymentService, CREATE_TRIES, PROVIDER_ERROR,
};
use super::{payment_status, settle};
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::domain::Money;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::KeyContext;
use crate::sales::views::PaymentView;

impl PaymentService {
    /// Checkout's part under the simulated gateway: the first attempt of each
    /// new order of `orders` (id and amount), in the checkout's transaction,
    /// so the buyer can press "pay". Under Stripe the first attempt comes
    /// with the card, and this adds nothing. Answers each attempt (for
    /// [`send_first_attempts`](Self::send_first_attempts) once the transaction
    /// committed) and its view.
    pub async fn first_attempts_in(
        &self,
        tx: &mut sqlx::PgConnection,
        orders: &[(Uuid, Money)],
    ) -> Result<Vec<(Attempt, PaymentView)>, sqlx::Error> {
        if self.provider() != Provider::Simulated || orders.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = orders.iter().map(|_| Uuid::new_v4()).collect();
        let order_ids: Vec<Uuid> = orders.iter().map(|(id, _)| *id).collect();
        let keys: Vec<String> = ids.iter().copied().map(attempt_key).collect();
        let amounts: Vec<i64> = orders.iter().map(|(_, amount)| amount.minor()).collect();
        let currencies: Vec<String> = orders.iter().map(|(_, amount)| amount.currency().as_str().to_owned()).collect();
        let rows = sqlx::query!(
            r#"INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency)
               SELECT id, order_id, $3, key, amount_minor, currency
               FROM unnest($1::uuid[], $2::uuid[], $4::text[], $5::int8[], $6::text[])
                    AS a(id, order_id, key, amount_minor, currency)
               RETURNING id, order_id, provider, status AS "status: PaymentStatus", idempotency_key, amount_minor,
                         currency AS "currency!", created_at"#,
            &ids,
            &order_ids,
            self.provider().as_str(),
            &keys,
            &amounts,
            &currencies,
        )
        .fetch_all(tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let attempt = Attempt {
                    id: row.id,
                    order_id: row.order_id,
                    provider: row.provider,
                    status: row.status,
                    provider_ref: None,
                    idempotency_key: row.idempotency_key,
                    amount_minor: row.amount_minor,
                    currency: row.currency,
                    payment_method: None,
                    return_url: None,
                    client_secret: None,
                    failure_code: None,
                    create_error_stored: false,
                    created_at: row.created_at,
                };
                let view = attempt.view(attempt.status);
                (attempt, view)
            })
            .collect())
    }

    /// Creates the provider objects of first attempts whose transaction
    /// committed, in one call, and records them in one statement. Whatever
    /// goes wrong, an attempt stays `created` and the reconciler repeats the
    /// call.
    pub async fn send_first_attempts(&self, attempts: &[&Attempt]) {
        let (mut ids, mut reqs) = (Vec::with_capacity(attempts.len()), Vec::with_capacity(attempts.len()));
        for attempt in attempts {
            match attempt.intent_request() {
                Ok(req) => {
                    ids.push(attempt.id);
                    reqs.push(req);
                }
                Err(e) => tracing::warn!(payment_id = %attempt.id, error = %e, "the attempt cannot be sent"),
            }
        }
        if reqs.is_empty() {
            return;
        }
        let answers = self.gateway.create_intents(&reqs).await;
        let mut made = Vec::with_capacity(answers.len());
        for (payment_id, answer) in ids.into_iter().zip(&answers) {
            match answer {
                Ok(intent) => made.push((payment_id, intent)),
                Err(e) => {
                    tracing::warn!(%payment_id, error = %e, "creating the payment intent failed; the reconciler will retry")
                }
            }
        }
        if made.is_empty() {
            return;
        }
        if let Err(e) = self.record_refs(&made).await {
            tracing::warn!(error = %e, attempts = made.len(), "recording the payment intents failed; the reconciler will");
        }
    }

    /// A new attempt for an order awaiting payment. Open attempts are canceled
    /// at the provider first, so two attempts can never both take money (an
    /// indeterminate one, whose PaymentIntent no listing has found, cannot
    /// be canceled and stops nothing: money found for it later is refunded).
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
                    code: ErrorCode::PaymentMethodRequired,
                    message: "send the card's PaymentMethod id from Stripe.js: {\"payment_method\": \"pm_...\"}".into(),
                })
            }
            _ => None,
        };
        if self.cancel_open_attempts(order_id).await? {
            return Err(ApiError::conflict(ErrorCode::OrderAlreadyPaid, "this order has been paid"));
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
                return Err(ApiError::conflict(ErrorCode::OrderExpired, "the time to pay for this order is over"))
            }
            OrderStatus::Paid => {
                return Err(ApiError::conflict(ErrorCode::OrderAlreadyPaid, "this order has been paid"))
            }
            _ => {
                return Err(ApiError::conflict(
                    ErrorCode::OrderNotAwaitingPayment,
                    "this order no longer takes payments",
                ))
            }
        }
        let inserted = sqlx::query!(
            r#"INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency, payment_method,
                                    return_url)
               SELECT $1, $2, $3, $6, $4, $5, $7, $8
               WHERE NOT EXISTS (SELECT 1 FROM payments WHERE order_id = $2 AND status = ANY($9)
                                   AND (provider_ref IS NOT NULL OR created_at > now() - make_interval(secs => $10)))"#,
            payment_id,
            order_id,
            self.provider().as_str(),
            order.amount_minor,
            order.currency,
            attempt_key(payment_id),
            provider_method,
            return_url,
            &PaymentStatus::OPEN as &[PaymentStatus],
            IN_FLIGHT_UNTIL.as_seconds_f64(),
        )
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(ApiError::conflict(
                ErrorCode::PaymentInProgress,
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

    pub(super) async fn carry_on(&self, payment_id: Uuid) -> ApiResult<PaymentView> {
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
    pub(super) async fn create_confirmed(&self, attempt: &Attempt) -> ApiResult<PaymentView> {
        // Marked sent before it is sent: a send whose answer is lost, or whose
        // process dies mid-call, leaves the attempt `processing`. So only the
        // request that sends first may take a refusal of its own send
        // (nothing executed) for the attempt's truth; a later one cannot
        // know what an earlier, unanswered send did.
        let first_send = attempt.provider_ref.is_none()
            && payment_status::transition(
                &self.pool,
                attempt.id,
                &[PaymentStatus::Created],
                PaymentStatus::Processing,
                payment_status::Also::default(),
            )
            .await?
            .is_some();
        let mut tries = 0;
        let mut maybe_sent = !first_send;
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
            // What Stripe did is unknown, and asking again replays the error:
            // the reconciler looks for the PaymentIntent (a listing, which no
            // buyer's request waits for) and settles the attempt from it.
            Err(GatewayError::Stored(detail)) => {
                tracing::warn!(payment_id = %attempt.id, %detail, "Stripe stored an error for the payment; the reconciler will look for it");
                self.creation_error_stored(attempt.id).await?
            }
            // Nothing of this attempt was ever sent (this request sent first,
            // and its one send was held back or refused before it ran), or the
            // provider refused the request itself: no money can move under it.
            Err(e) if !maybe_sent || matches!(e, GatewayError::Declined { .. } | GatewayError::Refused { .. }) => {
                let code = failure_code(&e);
                self.fail(attempt.id, &code).await?;
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

    /// Records the provider's success of `attempt`; with `key`, the answer
    /// its request gets then is stored in the same transaction.
    async fn record_paid(&self, attempt: &Attempt, key: Option<&KeyContext>) -> ApiResult<PaymentStatus> {
        let answer = match key {
            Some(key) => {
                let body = serde_json::to_vec(&attempt.view(PaymentStatus::Succeeded))
                    .map_err(|e| ApiError::Internal(e.into()))?;
                Some(key.record(StatusCode::OK, &body))
            }
            None => None,
        };
        let status = self.paid.record_answering(attempt.id, answer).await?;
        if let (Some(key), PaymentStatus::Succeeded) = (key, status) {
            key.mark_recorded();
        }
        Ok(status)
    }

    /// The provider stored an error under the attempt's key: its creation is
    /// never sent again (it would only replay the error), only looked for.
    pub(super) async fn creation_error_stored(&self, payment_id: Uuid) -> Result<PaymentStatus, sqlx::Error> {
        sqlx::query!("UPDATE payments SET create_error_stored = true WHERE id = $1", payment_id)
            .execute(&self.pool)
            .await?;
        self.leave_for_reconciler(payment_id).await
    }

    pub(super) async fn leave_for_reconciler(&self, payment_id: Uuid) -> Result<PaymentStatus, sqlx::Error> {
        settle::transition(&self.pool, payment_id, &[PaymentStatus::Created], PaymentStatus::Processing, None, None)
            .await
    }

    /// Confirms the attempt `payment_id` with the buyer's payment method, if
    /// `order_secret_hash` is its order's (otherwise 404). Answers 200 when
    /// paid, 202 while the outcome is pending, and the refusal as an error.
    /// With an Idempotency-Key, a success's answer is stored in the
    /// transaction that records the payment.
    pub async fn confirm_attempt(
        &self,
        payment_id: Uuid,
        order_secret_hash: &[u8],
        method: &PaymentMethod,
        key: Option<&KeyContext>,
    ) -> ApiResult<(StatusCode, PaymentView)> {
        let attempt = payment_status::begin_confirmation(&self.pool, payment_id, order_secret_hash)
            .await?
            .ok_or(ApiError::NotFound("no such payment"))?;
        match attempt.status {
            PaymentStatus::Created | PaymentStatus::Processing | PaymentStatus::RequiresAction => {}
            PaymentStatus::Succeeded => return Ok((StatusCode::OK, self.view(payment_id).await?)),
            PaymentStatus::Failed => return Err(declined(&self.view(payment_id).await?)),
            _ => {
                return Err(ApiError::conflict(
                    ErrorCode::PaymentNotOpen,
                    "this payment attempt is closed; start a new one",
                ))
            }
        }
        // An attempt moves to `processing` before its confirmation is sent, so
        // a `created` one whose intent exists was never confirmed: its intent
        // awaits confirmation (the read above moved it), and the provider need
        // not be asked first.
        let awaiting = match (&attempt.provider_ref, attempt.status) {
            (Some(provider_ref), PaymentStatus::Created) => Ok(provider_ref.clone()),
            _ => match self.ensure_intent(&attempt).await {
                Ok(intent) if intent.status == IntentStatus::Open => {
                    settle::transition(
                        &self.pool,
                        payment_id,
                        &[PaymentStatus::Created],
                        PaymentStatus::Processing,
                        None,
                        None,
                    )
                    .await?;
                    Ok(intent.provider_ref)
                }
                Ok(settled) => Err(settled),
                Err(GatewayError::Unknown(_)) => return Ok((StatusCode::ACCEPTED, self.view(payment_id).await?)),
                Err(e) => return Err(buyer_error(e)),
            },
        };
        let answer = match awaiting {
            Ok(provider_ref) => self.gateway.confirm(&provider_ref, &attempt.idempotency_key, method).await,
            Err(settled) => Ok(settled),
        };
        let status = match answer {
            Ok(intent) if intent.status == IntentStatus::Succeeded && !intent.refunded => {
                self.record_paid(&attempt, key).await?
            }
            Ok(intent) => settle::apply(&self.paid, payment_id, &intent).await?,
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
                self.fail(payment_id, &code).await?;
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
        // A success changes nothing else the buyer sees: no need to read the attempt again.
        let view =
            if status == PaymentStatus::Succeeded { attempt.view(status) } else { self.view(payment_id).await? };
        outcome_answer(status, view)
    }
}

/// The idempotency key an attempt's provider calls are sent with.
fn attempt_key(payment_id: Uuid) -> String {
    format!("nts-pay-{payment_id}")
}

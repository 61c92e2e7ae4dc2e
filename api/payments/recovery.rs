//! Asking the provider what became of an attempt, and settling from its
//! answer: the reconciler's and the order page's side, and canceling open
//! attempts before an order's seats go back.

use time::OffsetDateTime;
use uuid::Uuid;

use super::attempt::Attempt;
use super::gateway::{GatewayError, Intent, IntentStatus};
use super::service::{buyer_error, failure_code, PaymentService, MAY_STILL_BE_SENT, PROVIDER_ERROR};
use super::settle;
use crate::domain::status::PaymentStatus;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sales::views::PaymentView;

impl PaymentService {
    /// Applies the provider's view of an attempt; a failed PaymentIntent is
    /// canceled at the provider, so a `client_secret` the buyer still holds
    /// (after a failed 3-D Secure, say) cannot confirm it later.
    pub async fn apply_and_close(&self, payment_id: Uuid, intent: &Intent) -> Result<PaymentStatus, sqlx::Error> {
        let status = settle::apply(&self.paid, payment_id, intent).await?;
        if matches!(intent.status, IntentStatus::Failed { .. }) {
            let key = format!("nts-pay-{payment_id}-cancel");
            match self.gateway.cancel(&intent.provider_ref, &key).await {
                Ok(now) if now.status == IntentStatus::Succeeded => {
                    return settle::apply(&self.paid, payment_id, &now).await
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

    pub(super) async fn record_ref(&self, payment_id: Uuid, intent: &Intent) -> Result<(), GatewayError> {
        self.record_refs(&[(payment_id, intent)]).await
    }

    /// Records the provider object of each attempt that has none recorded yet.
    pub(super) async fn record_refs(&self, made: &[(Uuid, &Intent)]) -> Result<(), GatewayError> {
        let ids: Vec<Uuid> = made.iter().map(|(id, _)| *id).collect();
        let refs: Vec<&str> = made.iter().map(|(_, i)| i.provider_ref.as_str()).collect();
        let secrets: Vec<Option<&str>> = made.iter().map(|(_, i)| i.client_secret.as_deref()).collect();
        sqlx::query!(
            "UPDATE payments p SET provider_ref = r.provider_ref,
                    client_secret = COALESCE(p.client_secret, r.client_secret), updated_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, provider_ref, client_secret)
             WHERE p.id = r.id AND p.provider_ref IS NULL",
            &ids,
            &refs as &[&str],
            &secrets as &[Option<&str>],
        )
        .execute(&self.pool)
        .await
        .map_err(|e| GatewayError::Unknown(format!("recording the provider reference: {e}")))?;
        Ok(())
    }

    /// Makes sure the provider object of an attempt exists and is recorded.
    pub async fn ensure_intent(&self, attempt: &Attempt) -> Result<Intent, GatewayError> {
        let intent = match &attempt.provider_ref {
            Some(r) => return self.gateway.retrieve(r).await,
            None => self.gateway.create_intent(&attempt.intent_request()?).await?,
        };
        self.record_ref(attempt.id, &intent).await?;
        Ok(intent)
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
                        ErrorCode::PaymentInProgress,
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
            let status = settle::apply(&self.paid, payment_id, &intent).await?;
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
                let code = failure_code(&e);
                settle::transition(
                    &self.pool,
                    attempt.id,
                    &PaymentStatus::OPEN,
                    PaymentStatus::Failed,
                    Some(&code),
                    None,
                )
                .await
                .map_err(recorded)
            }
            Err(e) => Err(e),
        }
    }
}

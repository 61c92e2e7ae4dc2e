//! Asking the provider what became of an attempt, and settling from its
//! answer: the reconciler's and the order page's side, and canceling open
//! attempts before an order's seats go back. An attempt leaves `processing`
//! only on the provider's own word about its PaymentIntent (retrieved,
//! listed, or a signed event): a call that failed, a listing that does not
//! have it yet, or a spent budget leave it as it is, to be asked again.

use time::OffsetDateTime;
use uuid::Uuid;

use super::attempt::Attempt;
use super::gateway::{GatewayError, Intent, IntentStatus};
use super::guard::backoff;
use super::service::{buyer_error, failure_code, PaymentService, PROVIDER_ERROR};
use super::settle;
use crate::domain::status::PaymentStatus;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sales::views::PaymentView;

/// How often the order page may ask the provider about one attempt, however
/// many readers and instances there are.
pub const REFRESH_EVERY: time::Duration = time::Duration::seconds(5);

/// What asking the provider about an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The provider answered about the attempt's PaymentIntent; the attempt is now in this status.
    Answered(PaymentStatus),
    /// The attempt's creation window was listed and has no PaymentIntent of
    /// it (yet): the attempt stays as it is, to be looked for again.
    NotFound,
}

impl PaymentService {
    /// Applies the provider's view of an attempt; a failed PaymentIntent is
    /// canceled at the provider, so a `client_secret` the buyer still holds
    /// (after a failed 3-D Secure, say) cannot confirm it later.
    pub async fn apply_and_close(&self, payment_id: Uuid, intent: &Intent) -> Result<PaymentStatus, sqlx::Error> {
        let status = settle::apply(&self.paid, payment_id, intent).await?;
        if matches!(intent.status, IntentStatus::Failed { .. }) {
            return self.close(payment_id, &intent.provider_ref).await;
        }
        Ok(status)
    }

    /// Cancels the PaymentIntent of a failed attempt. Until the provider
    /// answers the cancel (canceled, or succeeded after all, which is then
    /// recorded), the cancel is owed, and the reconciler sends it again.
    pub async fn close(&self, payment_id: Uuid, provider_ref: &str) -> Result<PaymentStatus, sqlx::Error> {
        let key = format!("nts-pay-{payment_id}-cancel");
        match self.gateway.cancel(provider_ref, &key).await {
            Ok(now) => {
                let status = settle::apply(&self.paid, payment_id, &now).await?;
                sqlx::query!("UPDATE payments SET close_owed = false WHERE id = $1 AND close_owed", payment_id)
                    .execute(&self.pool)
                    .await?;
                Ok(status)
            }
            Err(e) => {
                tracing::warn!(%payment_id, error = %e, "could not cancel a failed PaymentIntent; the reconciler will");
                let failures: i32 = sqlx::query_scalar!(
                    "UPDATE payments SET close_owed = true, provider_failures = provider_failures + 1 WHERE id = $1
                     RETURNING provider_failures",
                    payment_id
                )
                .fetch_one(&self.pool)
                .await?;
                let wait = backoff(failures.max(0) as u32 + 2).as_secs_f64();
                sqlx::query_scalar!(
                    r#"UPDATE payments SET next_check_at = now() + make_interval(secs => $2) WHERE id = $1
                       RETURNING status AS "status: PaymentStatus""#,
                    payment_id,
                    wait
                )
                .fetch_one(&self.pool)
                .await
            }
        }
    }

    /// The provider refused the attempt, or never made anything of it: it
    /// fails with `code`. Answers its status afterwards.
    pub(super) async fn fail(&self, payment_id: Uuid, code: &str) -> Result<PaymentStatus, sqlx::Error> {
        settle::transition(&self.pool, payment_id, &PaymentStatus::OPEN, PaymentStatus::Failed, Some(code), None).await
    }

    /// An attempt whose creation answer cannot be had (Stripe stored an
    /// error under its key, or it may no longer be sent): its PaymentIntent
    /// is looked for in the window in which it can have been created, and
    /// the attempt settled from what is found. A listing without it says
    /// nothing yet (a 5xx leaves Stripe's part unknown): the attempt stays
    /// `processing`, and the reconciler looks again, until the gateway's
    /// `look_for` (48 h against Stripe) after the attempt was recorded, long
    /// after Stripe forgot its key. Only a
    /// whole listing of the window made after that, still without it, is
    /// taken as the provider's word that it never made one: nothing was
    /// charged, and the attempt failed.
    pub async fn recover(&self, attempt: &Attempt) -> Result<Checked, GatewayError> {
        let recorded = |e: sqlx::Error| GatewayError::Unknown(format!("recording the lookup: {e}"));
        if let Some(intent) = self.look_up(attempt).await? {
            let status = self.apply_and_close(attempt.id, &intent).await.map_err(recorded)?;
            return Ok(Checked::Answered(status));
        }
        if OffsetDateTime::now_utc() - attempt.created_at >= self.gateway.look_for() {
            tracing::warn!(payment_id = %attempt.id, "the provider never made a PaymentIntent for this attempt; it failed");
            self.fail(attempt.id, PROVIDER_ERROR).await.map_err(recorded)?;
            return Ok(Checked::Answered(PaymentStatus::Failed));
        }
        tracing::info!(payment_id = %attempt.id, "no PaymentIntent for this attempt at the provider yet; looking again later");
        settle::transition(&self.pool, attempt.id, &[PaymentStatus::Created], PaymentStatus::Processing, None, None)
            .await
            .map_err(recorded)?;
        Ok(Checked::NotFound)
    }

    /// The provider's object of an attempt, never created here: retrieved by
    /// its reference, or found by listing the attempt's creation window (its
    /// reference recorded from the listing before anything else is asked).
    pub async fn look_up(&self, attempt: &Attempt) -> Result<Option<Intent>, GatewayError> {
        if let Some(r) = &attempt.provider_ref {
            return self.gateway.retrieve(r).await.map(Some);
        }
        let Some(listed) = self.gateway.find_intent(attempt.id, attempt.creation_window()).await? else {
            return Ok(None);
        };
        self.record_ref(attempt.id, &listed).await?;
        if listed.status == IntentStatus::Succeeded {
            // A listing does not say what was refunded of it; retrieving does.
            return self.gateway.retrieve(&listed.provider_ref).await.map(Some);
        }
        Ok(Some(listed))
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

    /// Cancels every open attempt of an order whose PaymentIntent is known,
    /// at the provider, and records what the provider says. An attempt
    /// whose PaymentIntent is not known has nothing to cancel by: while its
    /// creation may still be on its way the order waits for it
    /// (`payment_in_progress`); after that it is indeterminate, stops
    /// nothing, and the reconciler keeps looking for it (money found for an
    /// order that can no longer take it is refunded). Answers true if the
    /// provider said one had already succeeded (the order is then paid).
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
            let Some(provider_ref) = &attempt.provider_ref else {
                if attempt.is_indeterminate(OffsetDateTime::now_utc()) {
                    continue;
                }
                return Err(ApiError::conflict(
                    ErrorCode::PaymentInProgress,
                    "another payment attempt for this order is in progress",
                ));
            };
            let intent = self.gateway.retrieve(provider_ref).await.map_err(buyer_error)?;
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

    /// Asks the provider about an order's latest attempt while it is
    /// `processing` with its PaymentIntent known, so a buyer whose webhook is
    /// late still sees the truth: at most once per [`REFRESH_EVERY`] for an
    /// attempt, however many pages and instances read it (the claim is the
    /// attempt's own `refreshed_at`, apart from the reconciler's schedule),
    /// and never while the buyer authenticates (`requires_action`: that
    /// answer comes by webhook or the reconciler). A read: it never creates
    /// or lists at the provider, and a provider in trouble is not asked.
    /// Answers whether anything changed.
    pub async fn refresh_attempt(&self, latest: &PaymentView) -> ApiResult<bool> {
        if latest.status != PaymentStatus::Processing {
            return Ok(false);
        }
        let claimed = sqlx::query_scalar!(
            r#"UPDATE payments SET refreshed_at = now()
               WHERE id = $1 AND status = $2 AND provider_ref IS NOT NULL
                 AND (refreshed_at IS NULL OR refreshed_at <= now() - make_interval(secs => $3))
               RETURNING provider_ref AS "provider_ref!""#,
            latest.id,
            PaymentStatus::Processing as PaymentStatus,
            REFRESH_EVERY.as_seconds_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(provider_ref) = claimed else { return Ok(false) };
        match self.gateway.retrieve(&provider_ref).await {
            Ok(intent) => Ok(self.apply_and_close(latest.id, &intent).await? != PaymentStatus::Processing),
            Err(_) => Ok(false),
        }
    }

    /// The reconciler's step for one attempt waiting on the provider: a
    /// young attempt whose creation got no answer is sent again (same key,
    /// same bytes); an older one, or one whose answer was a stored error, is
    /// looked for; a known one is retrieved.
    pub async fn settle_stale(&self, attempt: &Attempt) -> Result<Checked, GatewayError> {
        let recorded = |e: sqlx::Error| GatewayError::Unknown(format!("recording: {e}"));
        let answered = |status: Result<PaymentStatus, sqlx::Error>| status.map(Checked::Answered).map_err(recorded);
        if let Some(provider_ref) = &attempt.provider_ref {
            let intent = self.gateway.retrieve(provider_ref).await?;
            return answered(self.apply_and_close(attempt.id, &intent).await);
        }
        if !attempt.may_send_create(OffsetDateTime::now_utc()) {
            return self.recover(attempt).await;
        }
        match self.ensure_intent(attempt).await {
            Ok(intent) => answered(self.apply_and_close(attempt.id, &intent).await),
            Err(GatewayError::Stored(detail)) => {
                tracing::warn!(payment_id = %attempt.id, %detail, "Stripe stored an error for the payment; looking it up");
                self.creation_error_stored(attempt.id).await.map_err(recorded)?;
                self.recover(attempt).await
            }
            Err(e @ (GatewayError::Refused { .. } | GatewayError::Declined { .. })) => {
                tracing::warn!(payment_id = %attempt.id, error = %e, "the provider refused the attempt");
                let code = failure_code(&e);
                answered(self.fail(attempt.id, &code).await)
            }
            Err(e) => Err(e),
        }
    }
}

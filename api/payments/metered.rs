//! Every call to the payment provider, timed and counted (see `metrics`) and
//! logged with its outcome, inside the span of the request or reconciler pass
//! that made it (so a request's id is on its provider calls' lines).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gateway::{
    GatewayError, Intent, IntentRequest, IntentStatus, PaymentGateway, PaymentMethod, Provider, ProviderWindow, Refund,
};
use crate::metrics;

pub struct Metered(pub Arc<dyn PaymentGateway>);

impl Metered {
    pub fn wrap(gateway: Arc<dyn PaymentGateway>) -> Arc<dyn PaymentGateway> {
        Arc::new(Metered(gateway))
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let started = Instant::now();
        let result = call.await;
        self.observe(operation, started.elapsed(), &result);
        result
    }

    fn observe<T>(&self, operation: &'static str, elapsed: Duration, result: &Result<T, GatewayError>) {
        let provider = self.0.provider().as_str();
        let error = result.as_ref().err().map(error_kind);
        metrics::record_provider_call(provider, operation, error, elapsed);
        let duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        match result {
            Ok(_) => tracing::info!(provider, operation, duration_ms, "provider call"),
            Err(e) => tracing::warn!(provider, operation, duration_ms, error = %e, "provider call failed"),
        }
    }

    /// An intent created with the buyer's payment method is confirmed in the same call.
    fn count_attempt(&self, req: &IntentRequest, result: &Result<Intent, GatewayError>) {
        if req.payment_method.is_some() {
            metrics::record_payment_attempt(self.0.provider().as_str(), attempt_outcome(result));
        }
    }
}

fn error_kind(e: &GatewayError) -> &'static str {
    match e {
        GatewayError::Unknown(_) => "unknown",
        GatewayError::Stored(_) => "stored",
        GatewayError::Unavailable(_) => "unavailable",
        GatewayError::Declined { .. } => "declined",
        GatewayError::Refused { .. } => "refused",
    }
}

/// What a confirmation came to, as the payment attempts metric counts it.
fn attempt_outcome(result: &Result<Intent, GatewayError>) -> &'static str {
    match result {
        Ok(intent) => match intent.status {
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Failed { .. } => "failed",
            IntentStatus::RequiresAction { .. } => "requires_action",
            IntentStatus::Processing => "processing",
            IntentStatus::Open => "open",
            IntentStatus::Canceled => "canceled",
        },
        Err(GatewayError::Declined { .. }) => "declined",
        Err(_) => "error",
    }
}

#[async_trait]
impl PaymentGateway for Metered {
    fn provider(&self) -> Provider {
        self.0.provider()
    }

    fn look_for(&self) -> time::Duration {
        self.0.look_for()
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError> {
        let result = self.call("create_intent", self.0.create_intent(req)).await;
        self.count_attempt(req, &result);
        result
    }

    /// Each creation is counted and logged as one call, taking as long as the batch.
    async fn create_intents(&self, reqs: &[IntentRequest]) -> Vec<Result<Intent, GatewayError>> {
        let started = Instant::now();
        let results = self.0.create_intents(reqs).await;
        let elapsed = started.elapsed();
        for (req, result) in reqs.iter().zip(&results) {
            self.observe("create_intent", elapsed, result);
            self.count_attempt(req, result);
        }
        results
    }

    async fn confirm(
        &self,
        provider_ref: &str,
        idempotency_key: &str,
        method: &PaymentMethod,
    ) -> Result<Intent, GatewayError> {
        let result = self.call("confirm", self.0.confirm(provider_ref, idempotency_key, method)).await;
        metrics::record_payment_attempt(self.0.provider().as_str(), attempt_outcome(&result));
        result
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<Intent, GatewayError> {
        self.call("retrieve", self.0.retrieve(provider_ref)).await
    }

    async fn cancel(&self, provider_ref: &str, idempotency_key: &str) -> Result<Intent, GatewayError> {
        self.call("cancel", self.0.cancel(provider_ref, idempotency_key)).await
    }

    async fn refund(&self, provider_ref: &str, idempotency_key: &str) -> Result<Refund, GatewayError> {
        self.call("refund", self.0.refund(provider_ref, idempotency_key)).await
    }

    async fn retrieve_refund(&self, refund_ref: &str) -> Result<Refund, GatewayError> {
        self.call("retrieve_refund", self.0.retrieve_refund(refund_ref)).await
    }

    async fn find_refund(&self, provider_ref: &str) -> Result<Option<Refund>, GatewayError> {
        self.call("find_refund", self.0.find_refund(provider_ref)).await
    }

    async fn list_intents(&self, since: Option<OffsetDateTime>) -> Result<Vec<Intent>, GatewayError> {
        self.call("list_intents", self.0.list_intents(since)).await
    }

    async fn find_intent(
        &self,
        payment_id: Uuid,
        window: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Option<Intent>, GatewayError> {
        self.call("find_intent", self.0.find_intent(payment_id, window)).await
    }

    async fn refunds_of(&self, provider_ref: &str) -> Result<Vec<Refund>, GatewayError> {
        self.call("refunds_of", self.0.refunds_of(provider_ref)).await
    }

    async fn list_window(&self, since: OffsetDateTime, until: OffsetDateTime) -> Result<ProviderWindow, GatewayError> {
        self.call("list_window", self.0.list_window(since, until)).await
    }
}

//! Stripe PaymentIntents through async-stripe. Server-side confirmation: the
//! PaymentIntent is created with the buyer's PaymentMethod and `confirm=true`
//! in one call, with the attempt's idempotency key, so repeating the call
//! after a lost answer returns the same PaymentIntent instead of charging again.

use std::collections::HashMap;

use ::stripe::{ApiErrorsType, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use serde::Deserialize;
use stripe_core::payment_intent::{CancelPaymentIntent, CreatePaymentIntent, ListPaymentIntent, RetrievePaymentIntent};
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_core::{PaymentIntent, PaymentIntentAllowedPaymentMethodTypes, Refund};
use uuid::Uuid;

use super::gateway::{GatewayError, Intent, IntentRequest, IntentStatus, PaymentGateway, PaymentMethod, Provider};
use crate::config::StripeSettings;

pub struct StripeGateway {
    client: Client,
}

impl StripeGateway {
    pub fn new(settings: &StripeSettings) -> anyhow::Result<Self> {
        let client = ClientBuilder::new(settings.secret_key.clone())
            .url(settings.api_base.clone())
            .timeout(settings.timeout)
            .app_info("nts", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(|e| anyhow::anyhow!("NTS_STRIPE_SECRET_KEY / NTS_STRIPE_API_BASE: {e}"))?;
        Ok(Self { client })
    }

    async fn refunded_amount(&self, payment_intent: &str) -> Result<i64, GatewayError> {
        let refunds =
            ListRefund::new().payment_intent(payment_intent).limit(100).send(&self.client).await.map_err(classify)?;
        Ok(refunds.data.iter().filter(|r| counts(r)).map(|r| r.amount).sum())
    }

    async fn intent(&self, pi: &PaymentIntent) -> Result<Intent, GatewayError> {
        let facts = PaymentIntentFacts::from_api(pi);
        let refunded = facts.status == "succeeded" && self.refunded_amount(&facts.id).await? >= facts.amount;
        Ok(facts.into_intent(refunded))
    }
}

/// A refund that gives or will give the money back.
fn counts(refund: &Refund) -> bool {
    matches!(refund.status.as_deref(), Some("succeeded" | "pending") | None)
}

fn once_with(key: &str) -> RequestStrategy {
    RequestStrategy::Idempotent(IdempotencyKey::new(key).expect("nts's idempotency keys are 1 to 255 characters"))
}

/// Stripe's errors: a refusal (4xx: declined, invalid) is final for that
/// request; anything else (no answer, timeout, 409 while the same key is in
/// flight, 429, 5xx, an answer we cannot read) leaves the outcome unknown.
fn classify(e: StripeError) -> GatewayError {
    match e {
        StripeError::Stripe(err, status) => {
            let code =
                err.code.as_ref().map(|c| c.as_str().to_owned()).unwrap_or_else(|| err.type_.as_str().to_owned());
            let message = err.message.clone().unwrap_or_default();
            // An idempotency_error means this key first went with other
            // parameters: what Stripe did under it is unknown to this call.
            if status >= 500 || status == 409 || status == 429 || matches!(err.type_, ApiErrorsType::IdempotencyError) {
                GatewayError::Unknown(format!("Stripe answered {status}: {code}: {message}"))
            } else {
                GatewayError::Refused { code, message }
            }
        }
        other => GatewayError::Unknown(other.to_string()),
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError> {
        let metadata = HashMap::from([
            ("order_id".to_owned(), req.order_id.to_string()),
            ("payment_id".to_owned(), req.payment_id.to_string()),
        ]);
        let currency: stripe_types::Currency =
            req.currency.to_ascii_lowercase().parse().unwrap_or_else(|never| match never {});
        let mut create = CreatePaymentIntent::new(req.amount_minor, currency)
            .metadata(metadata)
            // Cards only: they need no return URL, so confirming here is complete.
            .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card]);
        if let Some(pm) = &req.payment_method {
            create = create.payment_method(pm.as_str()).confirm(true);
        }
        match create.customize().request_strategy(once_with(&req.idempotency_key)).send(&self.client).await {
            Ok(pi) => self.intent(&pi).await,
            // A decline still made the PaymentIntent; Stripe sends it with the error.
            Err(StripeError::Stripe(err, 402)) if err.payment_intent.is_some() => {
                self.intent(err.payment_intent.as_ref().expect("checked")).await
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// nts's Stripe attempts carry their PaymentMethod into the create call,
    /// which confirms them; nothing is ever left to confirm separately.
    async fn confirm(&self, provider_ref: &str, _key: &str, _method: &PaymentMethod) -> Result<Intent, GatewayError> {
        Err(GatewayError::Refused {
            code: "confirmed_at_creation".into(),
            message: format!("{provider_ref}: Stripe attempts are confirmed when they are created"),
        })
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<Intent, GatewayError> {
        let pi = RetrievePaymentIntent::new(provider_ref).send(&self.client).await.map_err(classify)?;
        self.intent(&pi).await
    }

    async fn cancel(&self, provider_ref: &str, idempotency_key: &str) -> Result<Intent, GatewayError> {
        let cancel = CancelPaymentIntent::new(provider_ref);
        match cancel.customize().request_strategy(once_with(idempotency_key)).send(&self.client).await {
            Ok(pi) => self.intent(&pi).await,
            // Refused because it is past canceling (succeeded, say): what is it now?
            Err(e) => match classify(e) {
                GatewayError::Refused { .. } => self.retrieve(provider_ref).await,
                unknown => Err(unknown),
            },
        }
    }

    async fn refund(&self, provider_ref: &str, idempotency_key: &str) -> Result<String, GatewayError> {
        let refund = CreateRefund::new().payment_intent(provider_ref);
        let refund = refund
            .customize()
            .request_strategy(once_with(idempotency_key))
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(refund.id.to_string())
    }

    async fn list_intents(&self) -> Result<Vec<Intent>, GatewayError> {
        let ours: Vec<PaymentIntent> = ListPaymentIntent::new()
            .limit(100)
            .paginate()
            .stream(&self.client)
            .try_filter(|pi| {
                std::future::ready(pi.metadata.contains_key("payment_id") || pi.metadata.contains_key("order_id"))
            })
            .try_collect()
            .await
            .map_err(classify)?;
        let by_charge: HashMap<String, String> = ours
            .iter()
            .filter_map(|pi| Some((pi.latest_charge.as_ref()?.id().to_string(), pi.id.to_string())))
            .collect();
        let mut refunded: HashMap<String, i64> = HashMap::new();
        let mut refunds = ListRefund::new().limit(100).paginate().stream(&self.client);
        while let Some(r) = refunds.try_next().await.map_err(classify)? {
            let pi = match (&r.payment_intent, &r.charge) {
                (Some(pi), _) => Some(pi.id().to_string()),
                (None, Some(charge)) => by_charge.get(charge.id().as_str()).cloned(),
                (None, None) => None,
            };
            if let Some(pi) = pi.filter(|_| counts(&r)) {
                *refunded.entry(pi).or_default() += r.amount;
            }
        }
        Ok(ours
            .iter()
            .map(|pi| {
                let facts = PaymentIntentFacts::from_api(pi);
                let back = refunded.get(&facts.id).copied().unwrap_or(0) >= facts.amount;
                facts.into_intent(back)
            })
            .collect())
    }
}

/// What nts reads from a PaymentIntent, whether from an API answer or inside
/// a webhook event (parsed leniently there: an event renders the object in
/// the webhook endpoint's API version).
#[derive(Debug, Deserialize)]
pub struct PaymentIntentFacts {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    pub last_payment_error: Option<PaymentError>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PaymentError {
    pub code: Option<String>,
}

impl PaymentIntentFacts {
    fn from_api(pi: &PaymentIntent) -> Self {
        PaymentIntentFacts {
            id: pi.id.to_string(),
            status: pi.status.as_str().to_owned(),
            amount: pi.amount,
            currency: pi.currency.to_string(),
            metadata: pi.metadata.clone(),
            last_payment_error: pi.last_payment_error.as_ref().map(|e| PaymentError {
                code: Some(e.code.as_ref().map_or_else(|| e.type_.as_str().to_owned(), |c| c.as_str().to_owned())),
            }),
            client_secret: pi.client_secret.clone(),
        }
    }

    pub fn into_intent(self, refunded: bool) -> Intent {
        let status = match self.status.as_str() {
            "succeeded" => IntentStatus::Succeeded,
            "canceled" => IntentStatus::Canceled,
            // nts never asks for manual capture; an authorised charge is on its way.
            "processing" | "requires_capture" => IntentStatus::Processing,
            "requires_action" => {
                IntentStatus::RequiresAction { client_secret: self.client_secret.clone().unwrap_or_default() }
            }
            // A declined confirmation sends the intent back for another method;
            // for nts that attempt failed (a new attempt brings the next card).
            "requires_payment_method" if self.last_payment_error.is_some() => IntentStatus::Failed {
                code: self.last_payment_error.and_then(|e| e.code).unwrap_or_else(|| "card_declined".into()),
            },
            _ => IntentStatus::Open,
        };
        let id = |key: &str| self.metadata.get(key).and_then(|v| Uuid::parse_str(v).ok());
        Intent {
            client_secret: match &status {
                IntentStatus::RequiresAction { client_secret } => Some(client_secret.clone()),
                _ => None,
            },
            status,
            provider_ref: self.id.clone(),
            amount_minor: self.amount,
            currency: self.currency.to_ascii_uppercase(),
            refunded,
            order_id: id("order_id"),
            payment_id: id("payment_id"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(json: serde_json::Value) -> PaymentIntentFacts {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_declined_intent_is_a_failed_attempt_with_its_code() {
        let intent = facts(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "amount": 1998, "currency": "gbp",
            "metadata": {"order_id": "00000000-0000-0000-0000-000000000001"},
            "last_payment_error": {"code": "card_declined", "type": "card_error"},
            "client_secret": "pi_1_secret"
        }))
        .into_intent(false);
        assert_eq!(intent.status, IntentStatus::Failed { code: "card_declined".into() });
        assert_eq!(intent.currency, "GBP");
        assert_eq!(intent.order_id, Some(Uuid::from_u128(1)));
        assert_eq!(intent.payment_id, None);
        assert_eq!(intent.client_secret, None, "the secret would let anyone confirm the intent");
    }

    #[test]
    fn only_an_intent_awaiting_authentication_shows_its_client_secret() {
        let intent = facts(serde_json::json!({
            "id": "pi_2", "status": "requires_action", "amount": 5, "currency": "eur", "client_secret": "pi_2_secret"
        }))
        .into_intent(false);
        assert_eq!(intent.status, IntentStatus::RequiresAction { client_secret: "pi_2_secret".into() });
        assert_eq!(intent.client_secret.as_deref(), Some("pi_2_secret"));
        let fresh = facts(
            serde_json::json!({"id": "pi_3", "status": "requires_payment_method", "amount": 5, "currency": "eur"}),
        );
        assert_eq!(fresh.into_intent(false).status, IntentStatus::Open);
    }

    #[test]
    fn no_answer_is_an_unknown_outcome() {
        assert!(matches!(classify(StripeError::Timeout), GatewayError::Unknown(_)));
        assert!(matches!(classify(StripeError::ClientError("reset".into())), GatewayError::Unknown(_)));
    }
}

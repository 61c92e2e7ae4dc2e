//! What nts needs from a payment provider. Every call that can move money
//! carries the attempt's idempotency key, so repeating a call whose response
//! was lost returns the same provider object instead of charging again.

use async_trait::async_trait;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Simulated,
    Stripe,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Simulated => "simulated",
            Provider::Stripe => "stripe",
        }
    }
}

/// What to charge; amounts and currency always come from the database.
#[derive(Debug, Clone)]
pub struct IntentRequest {
    pub idempotency_key: String,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    /// The buyer's provider payment method: the provider confirms with it in
    /// the same call, so the server alone decides when money moves.
    pub payment_method: Option<String>,
}

/// How the buyer pays: a simulated card outcome, or a provider payment method id.
#[derive(Debug, Clone)]
pub enum PaymentMethod {
    Simulated { succeed: bool },
    Provider(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentStatus {
    /// Waiting for the buyer's payment method or confirmation.
    Open,
    Processing,
    RequiresAction {
        client_secret: String,
    },
    Succeeded,
    Failed {
        code: String,
    },
    Canceled,
}

#[derive(Debug, Clone)]
pub struct Intent {
    pub provider_ref: String,
    pub status: IntentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub refunded: bool,
    /// Only while the buyer must authenticate: anyone holding it could confirm the intent.
    pub client_secret: Option<String>,
    /// nts's ids, as the provider keeps them with the object.
    pub order_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// We do not know whether the provider acted: the response was lost or
    /// timed out. The same call with the same key is safe to repeat.
    #[error("payment provider did not answer: {0}")]
    Unknown(String),
    /// The provider refused the request itself (bad method, wrong state).
    #[error("payment provider refused the request: {code}: {message}")]
    Refused { code: String, message: String },
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    fn provider(&self) -> Provider;

    /// Creates the provider object for an attempt, or returns the one already
    /// created with the same idempotency key.
    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError>;

    async fn confirm(
        &self,
        provider_ref: &str,
        idempotency_key: &str,
        method: &PaymentMethod,
    ) -> Result<Intent, GatewayError>;

    async fn retrieve(&self, provider_ref: &str) -> Result<Intent, GatewayError>;

    /// Cancels an intent that has not succeeded. Answers the intent as it then
    /// is: `Succeeded` means the money was already taken and must be honoured.
    async fn cancel(&self, provider_ref: &str, idempotency_key: &str) -> Result<Intent, GatewayError>;

    /// Refunds a succeeded intent in full, once per key. Returns the refund's reference.
    async fn refund(&self, provider_ref: &str, idempotency_key: &str) -> Result<String, GatewayError>;

    /// Every intent at the provider that carries nts's ids, for the audit.
    async fn list_intents(&self) -> Result<Vec<Intent>, GatewayError>;
}

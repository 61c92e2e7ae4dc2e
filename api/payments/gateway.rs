//! What nts needs from a payment provider. Every call that can move money
//! carries the attempt's idempotency key, so repeating a call whose response
//! was lost returns the same provider object instead of charging again.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Money;

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
    pub amount: Money,
    /// The buyer's provider payment method: the provider confirms with it in
    /// the same call, so the server alone decides when money moves.
    pub payment_method: Option<String>,
    /// Where the provider sends the buyer back after a redirecting authentication.
    pub return_url: Option<String>,
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
    /// In nts's minor units of `currency` (the gateway converts the provider's).
    pub amount_minor: i64,
    pub currency: String,
    /// Refunds that succeeded give back the whole amount (pending ones do not count).
    pub refunded: bool,
    /// Only while the buyer must authenticate: anyone holding it could confirm the intent.
    pub client_secret: Option<String>,
    /// nts's ids, as the provider keeps them with the object.
    pub order_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
}

/// A refund's status, as nts records it (Stripe's `requires_action` counts as pending).
pub use crate::domain::status::RefundStatus;

/// A refund as the provider reports it.
#[derive(Debug, Clone)]
pub struct Refund {
    pub provider_ref: String,
    pub status: RefundStatus,
    /// The PaymentIntent it gives money back for.
    pub payment_ref: Option<String>,
    pub failure_reason: Option<String>,
    /// In the provider's own units (Stripe's: see `Money::stripe_amount`).
    pub amount: i64,
    /// In nts's minor units of `currency` (as the gateway converts it; the
    /// provider's amount if it does not convert exactly).
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The idempotency key nts sent with it (kept by the provider with the
    /// refund): names nts's row even before the answer was recorded.
    pub key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// We do not know whether the provider acted: the response was lost or
    /// timed out, or the same key is still being worked on. The same call
    /// with the same key is safe to repeat.
    #[error("payment provider did not answer: {0}")]
    Unknown(String),
    /// The provider answered an error that it stores under the idempotency
    /// key (a 5xx, or `idempotency_error`): repeating the call replays that
    /// answer for 24 hours, so what happened must be looked up another way.
    #[error("payment provider answered an error stored under the key: {0}")]
    Stored(String),
    /// The provider cannot be used now and did nothing: the account's key or
    /// configuration is wrong, the rate limit is reached, or nts's own
    /// circuit breaker or call budget held the call back. The operator's
    /// problem, never the buyer's; safe to try again later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The card was declined: meant for the buyer, who may use another card.
    #[error("declined: {code}: {message}")]
    Declined { code: String, message: String },
    /// The provider refused the request itself (wrong state, already refunded).
    #[error("payment provider refused the request: {code}: {message}")]
    Refused { code: String, message: String },
}

/// How long the reconciler keeps looking for the PaymentIntent of an
/// indeterminate attempt, by default (see [`PaymentGateway::look_for`]):
/// Stripe keeps the key's answer (a stored 5xx says nothing about whether it
/// acted) for 24 hours, and then some. Only a complete listing of the
/// attempt's creation window made after this, which still does not have it,
/// lets the attempt fail.
pub const LOOK_FOR: time::Duration = time::Duration::hours(48);

/// How far nts's clock and the provider's may disagree, when nts asks for
/// objects created after one of its own timestamps.
pub const CLOCK_MARGIN: time::Duration = time::Duration::minutes(10);

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    fn provider(&self) -> Provider;

    /// How long an attempt whose object nts does not know is looked for
    /// before a listing without it is taken as the provider's word that it
    /// never made one.
    fn look_for(&self) -> time::Duration {
        LOOK_FOR
    }

    /// Creates the provider object for an attempt, or returns the one already
    /// created with the same idempotency key.
    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError>;

    /// [`create_intent`](Self::create_intent) for each of `reqs`, answered in
    /// their order. By default each is its own call, all at once; a provider
    /// that can take several in one request overrides it.
    async fn create_intents(&self, reqs: &[IntentRequest]) -> Vec<Result<Intent, GatewayError>> {
        futures_util::future::join_all(reqs.iter().map(|req| self.create_intent(req))).await
    }

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

    /// Refunds a succeeded intent in full, once per key.
    async fn refund(&self, provider_ref: &str, idempotency_key: &str) -> Result<Refund, GatewayError>;

    async fn retrieve_refund(&self, refund_ref: &str) -> Result<Refund, GatewayError>;

    /// A refund of the intent that gives or will give the money back, if any.
    async fn find_refund(&self, provider_ref: &str) -> Result<Option<Refund>, GatewayError>;

    /// Every intent at the provider that carries nts's ids, created at or
    /// after `since` (the audit looks no further back than nts's first attempt).
    async fn list_intents(&self, since: Option<OffsetDateTime>) -> Result<Vec<Intent>, GatewayError>;

    /// The intent made for `payment_id`, if the provider has one, found
    /// among those created between the two times of `window` (a list is
    /// consistent at once; a search lags). `None` is an answer about that
    /// window only, and only if the whole window was listed.
    async fn find_intent(
        &self,
        payment_id: Uuid,
        window: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Option<Intent>, GatewayError> {
        Ok(self.list_intents(Some(window.0)).await?.into_iter().find(|i| i.payment_id == Some(payment_id)))
    }

    /// Every refund of the intent, whoever made it, in any status.
    async fn refunds_of(&self, provider_ref: &str) -> Result<Vec<Refund>, GatewayError>;

    /// The audit's view of the provider: every intent that carries nts's ids
    /// and every refund, created within `[since, until]`, with amounts as the
    /// provider has them (never converted back through nts's currency table).
    async fn list_window(&self, since: OffsetDateTime, until: OffsetDateTime) -> Result<ProviderWindow, GatewayError>;
}

/// An intent as the provider lists it, its amount in the provider's units.
#[derive(Debug, Clone)]
pub struct ListedIntent {
    pub intent: Intent,
    /// As the provider has it (Stripe: ISK ×100, HUF and TWD in whole units).
    pub raw_amount: i64,
    /// When the provider made it.
    pub created: OffsetDateTime,
}

/// What the provider holds within an audit's window.
#[derive(Debug, Clone, Default)]
pub struct ProviderWindow {
    pub intents: Vec<ListedIntent>,
    pub refunds: Vec<Refund>,
}

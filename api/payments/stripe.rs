//! Stripe PaymentIntents through async-stripe: the one place nts talks to
//! Stripe, with its rules in it. Server-side confirmation: the PaymentIntent
//! is created with the buyer's PaymentMethod and `confirm=true` in one call,
//! with the attempt's idempotency key, so repeating the call after a lost
//! answer returns the same PaymentIntent instead of charging again. Stripe
//! compares a reused key's request with the first one, so every request is
//! encoded deterministically (same attempt, same bytes, in any process).
//! Every call passes the instance's call guard (budget, circuit breaker).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use ::stripe::{ApiErrorsType, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use stripe_client_core::{RequestBuilder, StripeMethod};
use stripe_core::payment_intent::{CancelPaymentIntent, ListPaymentIntent, RetrievePaymentIntent};
use stripe_core::refund::{CreateRefund, ListRefund, RetrieveRefund};
use stripe_core::PaymentIntent;
use time::OffsetDateTime;
use uuid::Uuid;

use super::disputes::DisputeNews;
use super::gateway::{
    GatewayError, Intent, IntentRequest, IntentStatus, ListedIntent, PaymentGateway, PaymentMethod, Provider,
    ProviderWindow, Refund, RefundStatus,
};
use super::guard::{Answer, CallGuard, Calls};
use crate::config::StripeSettings;
use crate::domain::status::DisputeStatus;
use crate::domain::{Currency, Money};
use crate::error::ErrorCode;

/// The metadata keys nts puts on its PaymentIntents. Namespaced: the account
/// may hold other integrations' objects, which must not look like nts's.
pub const ORDER_KEY: &str = "nts_order_id";
pub const PAYMENT_KEY: &str = "nts_payment_id";
/// The metadata key of nts's refunds: the refund's idempotency key, which names its row.
pub const REFUND_KEY: &str = "nts_refund_key";

pub struct StripeGateway {
    client: Client,
    /// For listings, which may take longer per page than any buyer should wait.
    lister: Client,
    guard: CallGuard,
    look_for: time::Duration,
}

/// The creation of a PaymentIntent, as sent. Fields serialise in declaration
/// order and the metadata is a sorted map, so the same attempt always gives
/// the same bytes (async-stripe's own builder keeps metadata in a HashMap,
/// whose order changes from one map to the next).
#[derive(Debug, Serialize)]
pub struct CreateIntent {
    amount: i64,
    currency: String,
    allowed_payment_method_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm: Option<bool>,
    metadata: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_stripe_sdk: Option<bool>,
}

impl CreateIntent {
    pub fn new(req: &IntentRequest) -> Result<Self, GatewayError> {
        let amount = req.amount.stripe_amount().map_err(|e| GatewayError::Refused {
            code: ErrorCode::CurrencyNotChargeable.as_str().into(),
            message: e.to_string(),
        })?;
        let confirm = req.payment_method.is_some();
        Ok(CreateIntent {
            amount,
            currency: req.amount.currency().as_str().to_ascii_lowercase(),
            // Cards only: 3-D Secure runs in the page through Stripe.js (use_stripe_sdk).
            allowed_payment_method_types: ["card"],
            confirm: confirm.then_some(true),
            metadata: BTreeMap::from([
                (ORDER_KEY, req.order_id.to_string()),
                (PAYMENT_KEY, req.payment_id.to_string()),
            ]),
            payment_method: req.payment_method.clone(),
            return_url: req.return_url.clone().filter(|_| confirm),
            use_stripe_sdk: confirm.then_some(true),
        })
    }
}

impl StripeRequest for CreateIntent {
    type Output = PaymentIntent;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Post, "/payment_intents").form(self)
    }
}

impl StripeGateway {
    pub fn new(settings: &StripeSettings) -> anyhow::Result<Self> {
        let client = |timeout: std::time::Duration| {
            ClientBuilder::new(settings.secret_key.clone())
                .url(settings.api_base.clone())
                .timeout(timeout)
                .app_info("nts", Some(env!("CARGO_PKG_VERSION").into()), None)
                .build()
                .map_err(|e| anyhow::anyhow!("NTS_STRIPE_SECRET_KEY / NTS_STRIPE_API_BASE: {e}"))
        };
        Ok(Self {
            client: client(settings.timeout)?,
            lister: client(settings.list_timeout)?,
            guard: CallGuard::new(),
            look_for: time::Duration::try_from(settings.look_for).expect("at most 30 days"),
        })
    }

    /// Every call to Stripe goes through here: admitted by the guard
    /// against the budget of its kind, its answer classified and reported
    /// back to the guard.
    async fn call<T, F>(&self, calls: Calls, call: F) -> Result<T, StripeError>
    where
        F: Future<Output = Result<T, StripeError>>,
    {
        if let Err(why) = self.guard.admit(calls) {
            return Err(StripeError::ClientError(format!("{HELD_BACK}{why}")));
        }
        let answer = call.await;
        self.guard.record(match &answer {
            Ok(_) => Answer::Answered,
            // Another request holds the same object (`lock_timeout`): says nothing of Stripe's load.
            Err(StripeError::Stripe(err, 429)) if err.code.as_ref().is_some_and(|c| c.as_str() == "lock_timeout") => {
                Answer::Answered
            }
            Err(StripeError::Stripe(_, status)) if *status == 429 || *status >= 500 => Answer::Overloaded,
            Err(StripeError::Stripe(..)) => Answer::Answered,
            Err(_) => Answer::Silent,
        });
        answer
    }

    async fn refunded_amount(&self, payment_intent: &str) -> Result<i64, GatewayError> {
        let list = ListRefund::new().payment_intent(payment_intent).limit(100);
        let refunds = self.call(Calls::Reads, list.send(&self.client)).await.map_err(classify)?;
        Ok(refunds.data.iter().filter(|r| refund_status(r) == RefundStatus::Succeeded).map(|r| r.amount).sum())
    }

    async fn intent(&self, pi: &PaymentIntent) -> Result<Intent, GatewayError> {
        let facts = PaymentIntentFacts::from_api(pi);
        let refunded = facts.status == "succeeded" && self.refunded_amount(&facts.id).await? >= facts.amount;
        Ok(facts.into_intent(refunded))
    }
}

/// The guard held a call back: nothing was sent.
const HELD_BACK: &str = "held back: ";

fn refund_status(refund: &stripe_core::Refund) -> RefundStatus {
    refund_status_named(refund.status.as_deref())
}

/// A refund's status as Stripe names it (`pending`, `requires_action`, `succeeded`, `failed`, `canceled`).
pub fn refund_status_named(status: Option<&str>) -> RefundStatus {
    match status {
        Some("succeeded") => RefundStatus::Succeeded,
        Some("failed") => RefundStatus::Failed,
        Some("canceled") => RefundStatus::Canceled,
        _ => RefundStatus::Pending,
    }
}

fn refund_from_api(r: &stripe_core::Refund) -> Refund {
    RefundFacts {
        id: r.id.to_string(),
        status: r.status.clone(),
        payment_intent: r.payment_intent.as_ref().map(|pi| pi.id().to_string()),
        failure_reason: r.failure_reason.clone(),
        amount: r.amount,
        currency: r.currency.to_string(),
        metadata: r.metadata.clone(),
    }
    .into_refund()
}

/// What nts reads from a Refund, from an API answer or inside a webhook event.
#[derive(Debug, Deserialize)]
pub struct RefundFacts {
    pub id: String,
    pub status: Option<String>,
    pub payment_intent: Option<String>,
    pub failure_reason: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub metadata: Option<HashMap<String, String>>,
}

impl RefundFacts {
    pub fn into_refund(self) -> Refund {
        let currency = self.currency.to_ascii_uppercase();
        // In nts's minor units; an amount that does not convert exactly stays as Stripe has it.
        let amount_minor = Currency::parse(&currency)
            .ok()
            .and_then(|c| Money::from_stripe(self.amount, c).ok())
            .map_or(self.amount, Money::minor);
        Refund {
            status: refund_status_named(self.status.as_deref()),
            provider_ref: self.id,
            payment_ref: self.payment_intent,
            failure_reason: self.failure_reason,
            amount: self.amount,
            amount_minor,
            currency,
            key: self.metadata.and_then(|mut m| m.remove(REFUND_KEY)),
        }
    }
}

/// `created` within `[since, until]`, both bounds inclusive.
fn created_within(since: OffsetDateTime, until: OffsetDateTime) -> stripe_types::RangeQueryTs {
    stripe_types::RangeQueryTs::Bounds(stripe_types::RangeBoundsTs {
        gte: Some(since.unix_timestamp()),
        lte: Some(until.unix_timestamp()),
        ..Default::default()
    })
}

fn once_with(key: &str) -> RequestStrategy {
    RequestStrategy::Idempotent(IdempotencyKey::new(key).expect("nts's idempotency keys are 1 to 255 characters"))
}

/// Stripe's errors, by what nts may do next:
/// - no answer, a timeout, 409 (the same key still running): unknown, ask again with the same key;
/// - 5xx or `idempotency_error`: stored under the key, asking again replays it;
/// - 401/403, 429, or the guard holding the call back: Stripe did nothing; the operator's problem;
/// - a `card_error`: a decline for the buyer;
/// - any other 4xx: a refusal of this request (wrong state, already refunded, invalid).
fn classify(e: StripeError) -> GatewayError {
    match e {
        StripeError::Stripe(err, status) => {
            let code =
                err.code.as_ref().map(|c| c.as_str().to_owned()).unwrap_or_else(|| err.type_.as_str().to_owned());
            let message = err.message.clone().unwrap_or_default();
            let detail = format!("Stripe answered {status}: {code}: {message}");
            match (status, &err.type_) {
                (_, ApiErrorsType::IdempotencyError) => GatewayError::Stored(detail),
                (500.., _) => GatewayError::Stored(detail),
                (409, _) => GatewayError::Unknown(detail),
                (401 | 403 | 429, _) => GatewayError::Unavailable(detail),
                (_, ApiErrorsType::CardError) => GatewayError::Declined { code, message },
                _ => GatewayError::Refused { code, message },
            }
        }
        StripeError::ClientError(why) if why.starts_with(HELD_BACK) => GatewayError::Unavailable(why),
        other => GatewayError::Unknown(other.to_string()),
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }

    fn look_for(&self) -> time::Duration {
        self.look_for
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<Intent, GatewayError> {
        let create = CreateIntent::new(req)?;
        let sent = create.customize().request_strategy(once_with(&req.idempotency_key));
        // The creation's own answer is all that is needed to record the
        // PaymentIntent, so no further call stands between it and the record
        // (a refund of it can only come later, and is learned then).
        match self.call(Calls::Moves, sent.send(&self.client)).await {
            Ok(pi) => Ok(PaymentIntentFacts::from_api(&pi).into_intent(false)),
            // A decline still made the PaymentIntent; Stripe sends it with the error.
            Err(StripeError::Stripe(err, 402)) if err.payment_intent.is_some() => {
                Ok(PaymentIntentFacts::from_api(err.payment_intent.as_ref().expect("checked")).into_intent(false))
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
        let pi = self
            .call(Calls::Reads, RetrievePaymentIntent::new(provider_ref).send(&self.client))
            .await
            .map_err(classify)?;
        self.intent(&pi).await
    }

    /// Canceling is idempotent by nature (a canceled intent refuses another
    /// cancel, and the intent then says what it is), so each call gets its
    /// own key: a stored error under one key cannot block the cancel.
    async fn cancel(&self, provider_ref: &str, idempotency_key: &str) -> Result<Intent, GatewayError> {
        let cancel = CancelPaymentIntent::new(provider_ref);
        let key = format!("{idempotency_key}-{}", Uuid::new_v4().simple());
        let sent = cancel.customize().request_strategy(once_with(&key));
        match self.call(Calls::Moves, sent.send(&self.client)).await {
            // Canceled: no money was taken, so none can have gone back.
            Ok(pi) => Ok(PaymentIntentFacts::from_api(&pi).into_intent(false)),
            // Refused because it is past canceling (succeeded, say), or a
            // stored error: what is the intent now?
            Err(e) => match classify(e) {
                GatewayError::Refused { .. } | GatewayError::Stored(_) => self.retrieve(provider_ref).await,
                other => Err(other),
            },
        }
    }

    /// The refund carries its key in its metadata (one entry: the same bytes
    /// every time), so its news names nts's row even before the answer to
    /// this call is recorded.
    async fn refund(&self, provider_ref: &str, idempotency_key: &str) -> Result<Refund, GatewayError> {
        let metadata = HashMap::from([(REFUND_KEY.to_owned(), idempotency_key.to_owned())]);
        let refund = CreateRefund::new().payment_intent(provider_ref).metadata(metadata);
        let sent = refund.customize().request_strategy(once_with(idempotency_key));
        let refund = self.call(Calls::Moves, sent.send(&self.client)).await.map_err(classify)?;
        Ok(refund_from_api(&refund))
    }

    async fn retrieve_refund(&self, refund_ref: &str) -> Result<Refund, GatewayError> {
        let refund =
            self.call(Calls::Reads, RetrieveRefund::new(refund_ref).send(&self.client)).await.map_err(classify)?;
        Ok(refund_from_api(&refund))
    }

    async fn find_refund(&self, provider_ref: &str) -> Result<Option<Refund>, GatewayError> {
        let list = ListRefund::new().payment_intent(provider_ref).limit(100);
        let refunds = self.call(Calls::Reads, list.send(&self.lister)).await.map_err(classify)?;
        Ok(refunds
            .data
            .iter()
            .map(refund_from_api)
            .find(|r| !matches!(r.status, RefundStatus::Failed | RefundStatus::Canceled)))
    }

    async fn list_intents(&self, since: Option<OffsetDateTime>) -> Result<Vec<Intent>, GatewayError> {
        let mut list = ListPaymentIntent::new().limit(100);
        if let Some(since) = since {
            list = list.created(stripe_types::RangeQueryTs::gte(since.unix_timestamp()));
        }
        // A listing of many pages counts as one call against the budget; its
        // outcome (a 429 or 5xx on any page) still reaches the circuit breaker.
        let ours: Vec<PaymentIntent> = self
            .call(
                Calls::Reads,
                list.paginate()
                    .stream(&self.lister)
                    .try_filter(|pi| {
                        std::future::ready(pi.metadata.contains_key(PAYMENT_KEY) || pi.metadata.contains_key(ORDER_KEY))
                    })
                    .try_collect(),
            )
            .await
            .map_err(classify)?;
        let by_charge: HashMap<String, String> = ours
            .iter()
            .filter_map(|pi| Some((pi.latest_charge.as_ref()?.id().to_string(), pi.id.to_string())))
            .collect();
        let mut refunded: HashMap<String, i64> = HashMap::new();
        let mut refunds = ListRefund::new().limit(100);
        if let Some(since) = since {
            refunds = refunds.created(stripe_types::RangeQueryTs::gte(since.unix_timestamp()));
        }
        let refunds: Vec<stripe_core::Refund> =
            self.call(Calls::Reads, refunds.paginate().stream(&self.lister).try_collect()).await.map_err(classify)?;
        for r in refunds {
            let pi = match (&r.payment_intent, &r.charge) {
                (Some(pi), _) => Some(pi.id().to_string()),
                (None, Some(charge)) => by_charge.get(charge.id().as_str()).cloned(),
                (None, None) => None,
            };
            if let Some(pi) = pi.filter(|_| refund_status(&r) == RefundStatus::Succeeded) {
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

    /// Lists the window page by page, newest first, each page one call
    /// against the budget of reads, and stops at the first page that has it.
    async fn find_intent(
        &self,
        payment_id: Uuid,
        (since, until): (OffsetDateTime, OffsetDateTime),
    ) -> Result<Option<Intent>, GatewayError> {
        let window = stripe_types::RangeQueryTs::Bounds(stripe_types::RangeBoundsTs {
            gte: Some(since.unix_timestamp()),
            lte: Some(until.unix_timestamp()),
            ..Default::default()
        });
        let wanted = payment_id.to_string();
        let mut after: Option<String> = None;
        loop {
            let mut list = ListPaymentIntent::new().limit(100).created(window);
            if let Some(last) = &after {
                list = list.starting_after(last.as_str());
            }
            let page = self.call(Calls::Reads, list.send(&self.lister)).await.map_err(classify)?;
            // The PaymentIntent as listed: recorded before anything else is asked about it.
            if let Some(pi) = page.data.iter().find(|pi| pi.metadata.get(PAYMENT_KEY) == Some(&wanted)) {
                return Ok(Some(PaymentIntentFacts::from_api(pi).into_intent(false)));
            }
            match page.data.last() {
                Some(last) if page.has_more => after = Some(last.id.to_string()),
                _ => return Ok(None),
            }
        }
    }

    async fn refunds_of(&self, provider_ref: &str) -> Result<Vec<Refund>, GatewayError> {
        let mut refunds = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut page = ListRefund::new().payment_intent(provider_ref).limit(100);
            if let Some(after) = &after {
                page = page.starting_after(after.as_str());
            }
            let listed = self.call(Calls::Reads, page.send(&self.lister)).await.map_err(classify)?;
            refunds.extend(listed.data.iter().map(refund_from_api));
            match listed.data.last() {
                Some(last) if listed.has_more => after = Some(last.id.to_string()),
                _ => return Ok(refunds),
            }
        }
    }

    /// Each page is a call of its own through the guard: a long window
    /// spends the budget page by page, and stops when it is spent.
    async fn list_window(&self, since: OffsetDateTime, until: OffsetDateTime) -> Result<ProviderWindow, GatewayError> {
        let mut window = ProviderWindow::default();
        let mut by_charge: HashMap<String, String> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut page = ListPaymentIntent::new().limit(100).created(created_within(since, until));
            if let Some(after) = &after {
                page = page.starting_after(after.as_str());
            }
            let listed = self.call(Calls::Reads, page.send(&self.lister)).await.map_err(classify)?;
            let ours = listed
                .data
                .iter()
                .filter(|pi| pi.metadata.contains_key(PAYMENT_KEY) || pi.metadata.contains_key(ORDER_KEY));
            by_charge.extend(
                ours.clone().filter_map(|pi| Some((pi.latest_charge.as_ref()?.id().to_string(), pi.id.to_string()))),
            );
            window.intents.extend(ours.map(|pi| {
                let facts = PaymentIntentFacts::from_api(pi);
                let raw_amount = facts.amount;
                let created = OffsetDateTime::from_unix_timestamp(pi.created).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                ListedIntent { intent: facts.into_intent(false), raw_amount, created }
            }));
            match listed.data.last() {
                Some(last) if listed.has_more => after = Some(last.id.to_string()),
                _ => break,
            }
        }
        let mut after: Option<String> = None;
        loop {
            let mut page = ListRefund::new().limit(100).created(created_within(since, until));
            if let Some(after) = &after {
                page = page.starting_after(after.as_str());
            }
            let listed = self.call(Calls::Reads, page.send(&self.lister)).await.map_err(classify)?;
            window.refunds.extend(listed.data.iter().map(|r| {
                let mut refund = refund_from_api(r);
                if refund.payment_ref.is_none() {
                    refund.payment_ref = r.charge.as_ref().and_then(|c| by_charge.get(c.id().as_str()).cloned());
                }
                refund
            }));
            match listed.data.last() {
                Some(last) if listed.has_more => after = Some(last.id.to_string()),
                _ => return Ok(window),
            }
        }
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
                code: self
                    .last_payment_error
                    .and_then(|e| e.code)
                    .unwrap_or_else(|| ErrorCode::CardDeclined.as_str().into()),
            },
            _ => IntentStatus::Open,
        };
        let id = |key: &str| self.metadata.get(key).and_then(|v| Uuid::parse_str(v).ok());
        // In nts's minor units; an amount that does not convert exactly stays
        // as Stripe has it (the audit then reports the difference).
        let amount_minor = Currency::parse(&self.currency)
            .ok()
            .and_then(|c| Money::from_stripe(self.amount, c).ok())
            .map_or(self.amount, Money::minor);
        Intent {
            client_secret: match &status {
                IntentStatus::RequiresAction { client_secret } => Some(client_secret.clone()),
                _ => None,
            },
            status,
            provider_ref: self.id.clone(),
            amount_minor,
            currency: self.currency.to_ascii_uppercase(),
            refunded,
            order_id: id(ORDER_KEY),
            payment_id: id(PAYMENT_KEY),
        }
    }
}

/// What nts reads from a Dispute inside a webhook event.
#[derive(Debug, Deserialize)]
pub struct DisputeFacts {
    pub id: String,
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub reason: String,
    pub status: String,
}

impl DisputeFacts {
    /// `None` for a dispute nts cannot place (no PaymentIntent, or a status Stripe has not documented).
    pub fn into_news(self, funds_withdrawn: Option<bool>) -> Option<DisputeNews> {
        let currency = self.currency.to_ascii_uppercase();
        let amount_minor = Currency::parse(&currency)
            .ok()
            .and_then(|c| Money::from_stripe(self.amount, c).ok())
            .map_or(self.amount, Money::minor);
        Some(DisputeNews {
            status: DisputeStatus::parse(&self.status)?,
            payment_ref: self.payment_intent?,
            provider_ref: self.id,
            amount_minor,
            currency,
            reason: self.reason,
            funds_withdrawn,
        })
    }
}

#[cfg(test)]
mod tests;

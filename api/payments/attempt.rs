//! One payment attempt as stored: what the buyer sees of it, and what the
//! provider needs to find it again.

use time::OffsetDateTime;
use uuid::Uuid;

use super::gateway::{GatewayError, IntentRequest};
use crate::domain::status::PaymentStatus;
use crate::domain::{Currency, Money};
use crate::sales::views::PaymentView;

/// Stripe keeps the answer to a request with an idempotency key for at least
/// 24 hours and may prune it afterwards: a creation re-sent after that is a
/// brand-new charge, a day late. nts re-sends a creation only while its
/// attempt is younger than this, far inside those 24 hours and far beyond
/// any request still in flight; an older attempt is looked up instead.
pub const RESEND_CREATE_WITHIN: time::Duration = time::Duration::hours(1);

/// One attempt as stored, with what the provider needs to find it again.
pub struct Attempt {
    pub id: Uuid,
    pub order_id: Uuid,
    pub provider: String,
    pub status: PaymentStatus,
    pub provider_ref: Option<String>,
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: String,
    pub payment_method: Option<String>,
    pub return_url: Option<String>,
    pub client_secret: Option<String>,
    pub failure_code: Option<String>,
    pub created_at: OffsetDateTime,
}

impl Attempt {
    /// What the buyer sees of it, as read, in `status`.
    pub(super) fn view(&self, status: PaymentStatus) -> PaymentView {
        PaymentView {
            id: self.id,
            order_id: self.order_id,
            provider: self.provider.clone(),
            status,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            client_secret: self.client_secret.clone(),
            failure_code: self.failure_code.clone(),
        }
    }

    pub(super) fn intent_request(&self) -> Result<IntentRequest, GatewayError> {
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
    pub(super) fn may_send_create(&self, now: OffsetDateTime) -> bool {
        self.provider_ref.is_none()
            && matches!(self.status, PaymentStatus::Created | PaymentStatus::Processing)
            && now - self.created_at < RESEND_CREATE_WITHIN
    }
}

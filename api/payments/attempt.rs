//! One payment attempt as stored: what the buyer sees of it, and what the
//! provider needs to find it again.

use time::OffsetDateTime;
use uuid::Uuid;

use super::gateway::{GatewayError, IntentRequest, CLOCK_MARGIN};
use crate::domain::status::PaymentStatus;
use crate::domain::{Currency, Money};
use crate::sales::views::PaymentView;

/// An attempt's creation is sent (by its request's tries, then by the
/// reconciler, always with its key and the same bytes) only this long after
/// the attempt was recorded. Stripe keeps a key's first answer for at least
/// 24 hours, so a re-send within this window can never be a second charge;
/// and since nothing more is sent afterwards, an attempt's PaymentIntent, if
/// it exists at all, was created in a window nts knows.
pub const SEND_WITHIN: time::Duration = time::Duration::minutes(2);

/// No creation of an attempt can still be on its way after this: the last
/// one may start at [`SEND_WITHIN`] and lasts at most the longest provider
/// call nts allows (`NTS_STRIPE_TIMEOUT_MS`, at most 60 s), with margin.
/// An attempt older than this whose PaymentIntent nts does not know is
/// *indeterminate*: it no longer stops its order from taking another
/// attempt or from expiring, and the reconciler keeps looking for it.
pub const IN_FLIGHT_UNTIL: time::Duration = time::Duration::minutes(4);

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
    /// The provider answered its creation with an error stored under its key.
    pub create_error_stored: bool,
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
    /// provider surely still holds the key's first answer, and while
    /// nothing says the creation may be over.
    pub(super) fn may_send_create(&self, now: OffsetDateTime) -> bool {
        self.provider_ref.is_none()
            && !self.create_error_stored
            && matches!(self.status, PaymentStatus::Created | PaymentStatus::Processing)
            && now - self.created_at < SEND_WITHIN
    }

    /// Open, its PaymentIntent unknown, and no creation of it can still be on its way.
    pub(super) fn is_indeterminate(&self, now: OffsetDateTime) -> bool {
        self.provider_ref.is_none() && self.status.is_open() && now - self.created_at >= IN_FLIGHT_UNTIL
    }

    /// The times between which the provider may have created its PaymentIntent.
    pub(super) fn creation_window(&self) -> (OffsetDateTime, OffsetDateTime) {
        (self.created_at - CLOCK_MARGIN, self.created_at + IN_FLIGHT_UNTIL + CLOCK_MARGIN)
    }
}

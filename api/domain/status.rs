//! The state machines of holds, orders and payments. Each transition the code
//! makes is written as a guarded UPDATE (`... WHERE status = <from>`); these
//! enums say which transitions exist.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "hold_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    CheckedOut,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn can_become(self, next: HoldStatus) -> bool {
        use HoldStatus::*;
        matches!((self, next), (Active, CheckedOut | Released | Expired))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "order_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    AwaitingPayment,
    Paid,
    Expired,
    Canceled,
    Refunded,
}

impl OrderStatus {
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!((self, next), (AwaitingPayment, Paid | Expired | Canceled) | (Paid, Refunded))
    }

    pub fn is_final(self) -> bool {
        !matches!(self, OrderStatus::AwaitingPayment)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "payment_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Row committed, provider not yet (known to be) asked.
    Created,
    /// Confirmation sent; the provider's answer is pending or was lost.
    Processing,
    /// The buyer must authenticate (3-D Secure).
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
    /// Money owed back: being refunded, or refunded and not yet confirmed by the provider.
    RefundPending,
    Refunded,
    /// The provider could not give the money back; the organiser must act.
    RefundFailed,
}

impl PaymentStatus {
    pub fn can_become(self, next: PaymentStatus) -> bool {
        use PaymentStatus::*;
        match (self, next) {
            (Created | Processing | RequiresAction, Succeeded | Failed | Canceled | RefundPending) => true,
            (Created, Processing | RequiresAction) | (Processing, RequiresAction) | (RequiresAction, Processing) => {
                true
            }
            (Succeeded, Refunded | RefundPending) | (RefundPending, Refunded | RefundFailed) => true,
            // A refund made another way (Stripe's dashboard) after ours failed,
            // or the organiser asks the provider again (under a new key).
            (RefundFailed, Refunded | RefundPending) => true,
            _ => false,
        }
    }

    /// Could still turn into money taken.
    pub fn is_open(self) -> bool {
        matches!(self, PaymentStatus::Created | PaymentStatus::Processing | PaymentStatus::RequiresAction)
    }

    pub const OPEN: [PaymentStatus; 3] =
        [PaymentStatus::Created, PaymentStatus::Processing, PaymentStatus::RequiresAction];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_leave_active_once() {
        assert!(HoldStatus::Active.can_become(HoldStatus::Expired));
        assert!(!HoldStatus::Expired.can_become(HoldStatus::Active));
        assert!(!HoldStatus::Released.can_become(HoldStatus::CheckedOut));
    }

    #[test]
    fn only_paid_orders_are_refunded() {
        assert!(OrderStatus::Paid.can_become(OrderStatus::Refunded));
        assert!(!OrderStatus::Expired.can_become(OrderStatus::Paid));
        assert!(!OrderStatus::AwaitingPayment.can_become(OrderStatus::Refunded));
    }

    #[test]
    fn final_payments_stay_final() {
        use PaymentStatus::*;
        for done in [Failed, Canceled, Refunded] {
            for next in [Created, Processing, Succeeded, Failed, Canceled, RefundPending] {
                assert!(!done.can_become(next), "{done:?} -> {next:?}");
            }
        }
        assert!(Processing.can_become(Succeeded));
        assert!(Succeeded.can_become(Refunded));
        assert!(RefundPending.can_become(RefundFailed));
        assert!(!RefundFailed.can_become(Succeeded));
        assert!(RefundFailed.can_become(RefundPending));
        assert!(PaymentStatus::OPEN.iter().all(|s| s.is_open()));
    }
}

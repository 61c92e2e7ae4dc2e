//! The state machines of holds, orders and payments. These enums say which
//! transitions exist; every guarded UPDATE that makes one binds its `from` and
//! `to` as these enums (`... SET status = $to WHERE status = ANY($from)`) and
//! passes them through [`checked`] first.

use std::fmt::Debug;

use serde::Serialize;
use utoipa::ToSchema;

/// A status with a state machine.
pub trait Transitions: Copy + Debug {
    fn can_become(self, next: Self) -> bool;
}

/// The `from` and `to` of a transition, after checking (in debug builds) that
/// the state machine has it for every `from`.
pub fn checked<S: Transitions>(from: &[S], to: S) -> (&[S], S) {
    debug_assert!(from.iter().all(|f| f.can_become(to)), "no transition {from:?} -> {to:?}");
    (from, to)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "hold_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    CheckedOut,
    Released,
    Expired,
}

impl Transitions for HoldStatus {
    fn can_become(self, next: HoldStatus) -> bool {
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

impl Transitions for OrderStatus {
    fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!((self, next), (AwaitingPayment, Paid | Expired | Canceled) | (Paid, Refunded))
    }
}

impl OrderStatus {
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

impl Transitions for PaymentStatus {
    fn can_become(self, next: PaymentStatus) -> bool {
        use PaymentStatus::*;
        match (self, next) {
            (Created | Processing | RequiresAction, Succeeded | Failed | Canceled | RefundPending) => true,
            // The provider took the money after all: a failed attempt whose
            // cancel answers that it succeeded. The money is recorded, never lost.
            (Failed | Canceled, Succeeded | RefundPending) => true,
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
}

impl PaymentStatus {
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
        for next in [Created, Processing, Succeeded, Failed, Canceled, RefundPending] {
            assert!(!Refunded.can_become(next), "Refunded -> {next:?}");
        }
        // Failed and canceled attempts never reopen; only money the provider took after all moves them.
        for done in [Failed, Canceled] {
            for next in [Created, Processing, RequiresAction, Failed, Canceled, Refunded, RefundFailed] {
                assert!(!done.can_become(next), "{done:?} -> {next:?}");
            }
            assert!(done.can_become(Succeeded) && done.can_become(RefundPending));
        }
        assert!(Processing.can_become(Succeeded));
        assert!(Succeeded.can_become(Refunded));
        assert!(RefundPending.can_become(RefundFailed));
        assert!(!RefundFailed.can_become(Succeeded));
        assert!(RefundFailed.can_become(RefundPending));
        assert!(PaymentStatus::OPEN.iter().all(|s| s.is_open()));
    }

    /// Every status a table has, as PostgreSQL spells it.
    const STATUSES: [&str; 18] = [
        "active",
        "checked_out",
        "released",
        "expired",
        "awaiting_payment",
        "paid",
        "canceled",
        "refunded",
        "created",
        "processing",
        "requires_action",
        "succeeded",
        "failed",
        "refund_pending",
        "refund_failed",
        "pending",
        "sending",
        "sent",
    ];

    /// The simulated provider keeps its own ledger with statuses of its own;
    /// the test helpers and the torture tool write fixtures.
    const NOT_OURS: [&str; 3] = ["simulated.rs", "test_db.rs", "torture"];

    /// Statuses are bound as enums, so SQL cannot name a status the state
    /// machines do not know or make a transition they do not check.
    #[test]
    fn no_status_is_spelled_out_in_sql() {
        let files: Vec<_> = crate::layering::source_files()
            .into_iter()
            .filter(|f| !f.iter().any(|part| NOT_OURS.iter().any(|n| part == *n)))
            .collect();
        assert!(files.len() > 20, "found only {} sources", files.len());
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a readable source");
            for (n, line) in text.lines().enumerate() {
                for status in STATUSES {
                    if line.contains(&format!("'{status}'")) {
                        found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(found.is_empty(), "status literals in SQL (bind the status enum instead):\n{}", found.join("\n"));
    }
}

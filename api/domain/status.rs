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

/// One refund at the provider (a row of `refunds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "refund_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Recorded before the provider is asked; asked, or the provider's refund is not done yet.
    Pending,
    /// The money went back.
    Succeeded,
    /// The provider could not give the money back, or refused to try (the charge is disputed, say).
    Failed,
    /// Never made (the provider stored an error under its key and has no such
    /// refund; the next request goes under a new key), or canceled at the provider.
    Canceled,
}

impl Transitions for RefundStatus {
    fn can_become(self, next: RefundStatus) -> bool {
        use RefundStatus::*;
        matches!((self, next), (Pending, Succeeded | Failed | Canceled))
    }
}

/// A dispute as Stripe names its statuses: an inquiry (`warning_*`), which
/// takes no money, or a chargeback, which takes the amount until it is won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "dispute_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    WarningNeedsResponse,
    WarningUnderReview,
    WarningClosed,
    NeedsResponse,
    UnderReview,
    Won,
    Lost,
}

impl Transitions for DisputeStatus {
    /// Forward only, so news that arrives late cannot move a dispute back.
    fn can_become(self, next: DisputeStatus) -> bool {
        use DisputeStatus::*;
        match self {
            WarningNeedsResponse => {
                matches!(next, WarningUnderReview | WarningClosed | NeedsResponse | UnderReview | Won | Lost)
            }
            WarningUnderReview => matches!(next, WarningClosed | NeedsResponse | UnderReview | Won | Lost),
            NeedsResponse => matches!(next, UnderReview | Won | Lost),
            UnderReview => matches!(next, Won | Lost),
            WarningClosed | Won | Lost => false,
        }
    }
}

impl DisputeStatus {
    pub const ALL: [DisputeStatus; 7] = [
        DisputeStatus::WarningNeedsResponse,
        DisputeStatus::WarningUnderReview,
        DisputeStatus::WarningClosed,
        DisputeStatus::NeedsResponse,
        DisputeStatus::UnderReview,
        DisputeStatus::Won,
        DisputeStatus::Lost,
    ];

    /// A chargeback still open, or lost: the buyer took the money back. An
    /// inquiry (`warning_*`) never counts: it takes no money.
    pub const CHARGED_BACK: [DisputeStatus; 3] =
        [DisputeStatus::NeedsResponse, DisputeStatus::UnderReview, DisputeStatus::Lost];

    /// As Stripe names it.
    pub fn parse(raw: &str) -> Option<DisputeStatus> {
        DisputeStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        use DisputeStatus::*;
        match self {
            WarningNeedsResponse => "warning_needs_response",
            WarningUnderReview => "warning_under_review",
            WarningClosed => "warning_closed",
            NeedsResponse => "needs_response",
            UnderReview => "under_review",
            Won => "won",
            Lost => "lost",
        }
    }
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

    #[test]
    fn disputes_only_move_forward_and_inquiries_never_count_as_charged_back() {
        use DisputeStatus::*;
        assert!(WarningNeedsResponse.can_become(NeedsResponse));
        assert!(NeedsResponse.can_become(Won) && UnderReview.can_become(Lost));
        for done in [WarningClosed, Won, Lost] {
            assert!(DisputeStatus::ALL.iter().all(|s| !done.can_become(*s)), "{done:?} is final");
        }
        assert!(!UnderReview.can_become(NeedsResponse), "a late needs_response changes nothing");
        assert!(DisputeStatus::ALL.iter().all(|s| DisputeStatus::parse(s.as_str()) == Some(*s)));
        assert!(DisputeStatus::CHARGED_BACK.iter().all(|s| !s.as_str().starts_with("warning_")));
    }

    #[test]
    fn refunds_leave_pending_once() {
        use RefundStatus::*;
        for done in [Succeeded, Failed, Canceled] {
            assert!(Pending.can_become(done));
            for next in [Pending, Succeeded, Failed, Canceled] {
                assert!(!done.can_become(next), "{done:?} -> {next:?}");
            }
        }
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

//! The payments audit: our orders and attempts against the provider's own
//! objects, including objects that carry our ids but that we never recorded
//! (stray charges). An empty list of mismatches means every penny the
//! provider took belongs to exactly one paid order, or went back.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::gateway::{Intent, IntentStatus, CLOCK_MARGIN};
use super::service::PaymentService;
use crate::domain::status::{OrderStatus, PaymentStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditReport {
    /// Our payment attempts compared.
    pub checked_payments: usize,
    /// The provider's objects that carry our ids.
    pub provider_objects: usize,
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The provider holds money for which no order is paid (a stray charge,
    /// a late success, a refund still owed).
    MoneyWithoutPaidOrder,
    /// An order or attempt counts as paid but the provider holds no money for it.
    PaidOrderWithoutMoney,
    /// The provider holds money more than once for one order.
    ExtraCharge,
    /// A refund on one side only.
    RefundNotReflected,
    /// The provider's amount or currency differs from ours.
    AmountMismatch,
    /// The provider could not give the money back: the buyer is still owed it.
    RefundFailed,
    /// The provider refuses to charge the order's amount at all (under its
    /// minimum charge after conversion, or over its maximum): nobody can pay
    /// for it until its prices change.
    AmountNotChargeable,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Mismatch {
    pub kind: MismatchKind,
    pub order_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub provider_ref: Option<String>,
    pub detail: String,
}

/// One of our attempts, with its order's status.
#[derive(Debug)]
pub struct OurPayment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub provider_ref: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub order_status: OrderStatus,
    pub created_at: time::OffsetDateTime,
    pub refund_failure: Option<String>,
    pub failure_code: Option<String>,
}

pub async fn run(payments: &PaymentService) -> ApiResult<AuditReport> {
    let ours = sqlx::query_as!(
        OurPayment,
        r#"SELECT p.id, p.order_id, p.status AS "status: PaymentStatus", p.provider_ref, p.amount_minor,
                  p.currency AS "currency!", o.status AS "order_status: OrderStatus", p.created_at, p.refund_failure,
                  p.failure_code
           FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE p.provider = $1
           ORDER BY p.created_at, p.id"#,
        payments.provider().as_str()
    )
    .fetch_all(&payments.pool)
    .await?;
    // A free order (total zero) is paid without a payment: nothing to find at the provider.
    let paid_without_success = sqlx::query_scalar!(
        "SELECT o.id FROM orders o WHERE o.status = $1 AND o.amount_minor > 0
           AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = $2)",
        OrderStatus::Paid as OrderStatus,
        PaymentStatus::Succeeded as PaymentStatus,
    )
    .fetch_all(&payments.pool)
    .await?;
    // The provider's objects from a little before our first attempt: the
    // account's older history (other integrations, years of it) is not ours.
    let since = ours.iter().map(|p| p.created_at).min().map(|first| first - CLOCK_MARGIN);
    let theirs = payments.gateway.list_intents(since).await.map_err(|e| ApiError::Unavailable {
        code: ErrorCode::PaymentProviderUnavailable,
        message: format!("could not list the provider's payments: {e}"),
    })?;
    let mut mismatches = compare(&ours, &theirs);
    mismatches.extend(paid_without_success.into_iter().map(|order_id| Mismatch {
        kind: MismatchKind::PaidOrderWithoutMoney,
        order_id: Some(order_id),
        payment_id: None,
        provider_ref: None,
        detail: "the order is paid but none of its attempts succeeded".into(),
    }));
    Ok(AuditReport { checked_payments: ours.len(), provider_objects: theirs.len(), mismatches })
}

/// Compares our attempts with the provider's objects.
pub fn compare(ours: &[OurPayment], theirs: &[Intent]) -> Vec<Mismatch> {
    let by_id: HashMap<Uuid, &OurPayment> = ours.iter().map(|p| (p.id, p)).collect();
    let by_ref: HashMap<&str, &OurPayment> =
        ours.iter().filter_map(|p| Some((p.provider_ref.as_deref()?, p))).collect();
    let mut seen = HashSet::new();
    let mut taken_by_order: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    let mut out = Vec::new();
    for intent in theirs {
        let mine = by_ref
            .get(intent.provider_ref.as_str())
            .copied()
            .or_else(|| intent.payment_id.and_then(|id| by_id.get(&id).copied()).filter(|p| p.provider_ref.is_none()));
        let taken = intent.status == IntentStatus::Succeeded && !intent.refunded;
        let order_id = mine.map(|p| p.order_id).or(intent.order_id);
        let mut flag = |kind, detail: String| {
            out.push(Mismatch {
                kind,
                order_id,
                payment_id: mine.map(|p| p.id).or(intent.payment_id),
                provider_ref: Some(intent.provider_ref.clone()),
                detail,
            })
        };
        if let (true, Some(order_id)) = (taken, order_id) {
            taken_by_order.entry(order_id).or_default().push(&intent.provider_ref);
        }
        let Some(p) = mine else {
            if taken {
                flag(
                    MismatchKind::MoneyWithoutPaidOrder,
                    "a succeeded payment carries our ids but matches none of our attempts (stray charge)".into(),
                );
            }
            continue;
        };
        seen.insert(p.id);
        if intent.amount_minor != p.amount_minor || !intent.currency.eq_ignore_ascii_case(&p.currency) {
            flag(
                MismatchKind::AmountMismatch,
                format!(
                    "the provider has {} {}, we have {} {}",
                    intent.amount_minor, intent.currency, p.amount_minor, p.currency
                ),
            );
        }
        let paid = p.status == PaymentStatus::Succeeded && p.order_status == OrderStatus::Paid;
        if taken && !paid && p.status != PaymentStatus::RefundFailed {
            flag(
                MismatchKind::MoneyWithoutPaidOrder,
                format!(
                    "the provider took the money; the attempt is {:?} and the order {:?}",
                    p.status, p.order_status
                ),
            );
        }
        if !taken && p.status == PaymentStatus::Succeeded {
            flag(
                MismatchKind::PaidOrderWithoutMoney,
                format!("the attempt succeeded; the provider says {:?}, refunded: {}", intent.status, intent.refunded),
            );
        }
        if intent.refunded && p.status != PaymentStatus::Refunded {
            flag(MismatchKind::RefundNotReflected, format!("refunded at the provider; the attempt is {:?}", p.status));
        }
        if !intent.refunded && p.status == PaymentStatus::Refunded {
            flag(MismatchKind::RefundNotReflected, "recorded as refunded; the provider shows no refund".into());
        }
    }
    for p in ours.iter().filter(|p| p.status == PaymentStatus::RefundFailed) {
        out.push(Mismatch {
            kind: MismatchKind::RefundFailed,
            order_id: Some(p.order_id),
            payment_id: Some(p.id),
            provider_ref: p.provider_ref.clone(),
            detail: format!("the refund failed: {}", p.refund_failure.as_deref().unwrap_or("no reason given")),
        });
    }
    let amount_refused = |p: &&OurPayment| {
        p.status == PaymentStatus::Failed
            && [ErrorCode::AmountTooSmall, ErrorCode::AmountTooLarge]
                .iter()
                .any(|c| p.failure_code.as_deref() == Some(c.as_str()))
    };
    for p in ours.iter().filter(amount_refused) {
        out.push(Mismatch {
            kind: MismatchKind::AmountNotChargeable,
            order_id: Some(p.order_id),
            payment_id: Some(p.id),
            provider_ref: p.provider_ref.clone(),
            detail: format!(
                "the provider refused to charge {} {} ({}); the event's prices need changing",
                p.amount_minor,
                p.currency,
                p.failure_code.as_deref().unwrap_or_default()
            ),
        });
    }
    for p in ours.iter().filter(|p| !seen.contains(&p.id)) {
        let kind = match p.status {
            PaymentStatus::Succeeded => MismatchKind::PaidOrderWithoutMoney,
            PaymentStatus::Refunded => MismatchKind::RefundNotReflected,
            _ => continue,
        };
        out.push(Mismatch {
            kind,
            order_id: Some(p.order_id),
            payment_id: Some(p.id),
            provider_ref: p.provider_ref.clone(),
            detail: format!("the attempt is {:?}; the provider has no such object", p.status),
        });
    }
    for (order_id, refs) in taken_by_order.into_iter().filter(|(_, refs)| refs.len() > 1) {
        out.push(Mismatch {
            kind: MismatchKind::ExtraCharge,
            order_id: Some(order_id),
            payment_id: None,
            provider_ref: None,
            detail: format!("{} payments hold money for this order: {}", refs.len(), refs.join(", ")),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(id: u128, status: PaymentStatus, provider_ref: Option<&str>, order_status: OrderStatus) -> OurPayment {
        OurPayment {
            id: Uuid::from_u128(id),
            order_id: Uuid::from_u128(100),
            status,
            provider_ref: provider_ref.map(Into::into),
            amount_minor: 1998,
            currency: "GBP".into(),
            order_status,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            refund_failure: None,
            failure_code: None,
        }
    }

    fn theirs(provider_ref: &str, payment: Option<u128>, status: IntentStatus, refunded: bool) -> Intent {
        Intent {
            provider_ref: provider_ref.into(),
            status,
            amount_minor: 1998,
            currency: "GBP".into(),
            refunded,
            client_secret: None,
            order_id: Some(Uuid::from_u128(100)),
            payment_id: payment.map(Uuid::from_u128),
        }
    }

    fn kinds(m: &[Mismatch]) -> Vec<MismatchKind> {
        m.iter().map(|m| m.kind).collect()
    }

    #[test]
    fn a_paid_order_with_one_charge_and_a_declined_attempt_is_clean() {
        let mine = [
            ours(1, PaymentStatus::Failed, None, OrderStatus::Paid),
            ours(2, PaymentStatus::Succeeded, Some("pi_2"), OrderStatus::Paid),
        ];
        let provider = [
            theirs("pi_1", Some(1), IntentStatus::Failed { code: "card_declined".into() }, false),
            theirs("pi_2", Some(2), IntentStatus::Succeeded, false),
        ];
        assert!(compare(&mine, &provider).is_empty());
    }

    #[test]
    fn a_stray_charge_is_money_without_a_paid_order_and_an_extra_charge() {
        let mine = [ours(2, PaymentStatus::Succeeded, Some("pi_2"), OrderStatus::Paid)];
        let provider = [
            theirs("pi_2", Some(2), IntentStatus::Succeeded, false),
            theirs("pi_x", None, IntentStatus::Succeeded, false),
        ];
        let found = compare(&mine, &provider);
        assert_eq!(kinds(&found), [MismatchKind::MoneyWithoutPaidOrder, MismatchKind::ExtraCharge]);
        assert_eq!(found[0].provider_ref.as_deref(), Some("pi_x"));
        assert_eq!(found[0].order_id, Some(Uuid::from_u128(100)));
    }

    #[test]
    fn refunds_must_show_on_both_sides() {
        let mine = [ours(1, PaymentStatus::Refunded, Some("pi_1"), OrderStatus::Refunded)];
        assert_eq!(
            kinds(&compare(&mine, &[theirs("pi_1", Some(1), IntentStatus::Succeeded, false)])),
            [MismatchKind::MoneyWithoutPaidOrder, MismatchKind::RefundNotReflected]
        );
        assert!(compare(&mine, &[theirs("pi_1", Some(1), IntentStatus::Succeeded, true)]).is_empty());
        let paid = [ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid)];
        assert_eq!(
            kinds(&compare(&paid, &[theirs("pi_1", Some(1), IntentStatus::Succeeded, true)])),
            [MismatchKind::PaidOrderWithoutMoney, MismatchKind::RefundNotReflected]
        );
    }

    #[test]
    fn a_success_we_never_recorded_and_one_the_provider_never_had() {
        let lost = [ours(1, PaymentStatus::Processing, None, OrderStatus::AwaitingPayment)];
        let found = compare(&lost, &[theirs("pi_1", Some(1), IntentStatus::Succeeded, false)]);
        assert_eq!(kinds(&found), [MismatchKind::MoneyWithoutPaidOrder]);
        assert_eq!(found[0].payment_id, Some(Uuid::from_u128(1)));
        let phantom = [ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid)];
        assert_eq!(kinds(&compare(&phantom, &[])), [MismatchKind::PaidOrderWithoutMoney]);
    }

    #[test]
    fn another_amount_is_flagged() {
        let mine = [ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid)];
        let mut intent = theirs("pi_1", Some(1), IntentStatus::Succeeded, false);
        intent.amount_minor = 1;
        assert_eq!(kinds(&compare(&mine, &[intent])), [MismatchKind::AmountMismatch]);
    }

    #[test]
    fn an_amount_the_provider_refuses_is_shown_to_the_organiser() {
        let mut refused = ours(1, PaymentStatus::Failed, None, OrderStatus::AwaitingPayment);
        refused.failure_code = Some("amount_too_small".into());
        let mut declined = ours(2, PaymentStatus::Failed, None, OrderStatus::AwaitingPayment);
        declined.failure_code = Some("card_declined".into());
        let found = compare(&[refused, declined], &[]);
        assert_eq!(kinds(&found), [MismatchKind::AmountNotChargeable]);
        assert_eq!(found[0].payment_id, Some(Uuid::from_u128(1)));
    }
}

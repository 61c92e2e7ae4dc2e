//! The payments audit: our attempts and refunds against the provider's own
//! objects within a time window, including objects that carry our ids but
//! that we never recorded (stray charges) and refunds made without us. An
//! empty list of mismatches means every penny the provider took belongs to
//! exactly one paid order, or went back, and every refund is on both sides.
//!
//! Amounts are compared in the provider's units, as it sent them: ours are
//! converted with nts's currency table (`Money::stripe_amount`, pinned to
//! Stripe's list by a test), theirs never, so a wrong exponent shows as a
//! difference instead of cancelling out on the way back.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use super::gateway::{IntentStatus, ListedIntent, Provider, ProviderWindow, Refund, CLOCK_MARGIN};
use super::service::PaymentService;
use crate::domain::status::{OrderStatus, PaymentStatus, RefundStatus};
use crate::domain::Money;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The longest window one audit may cover: each page of the provider's
/// listing is a call against the instance's budget.
pub const MAX_WINDOW: Duration = Duration::days(31);
/// The window when none is given.
pub const DEFAULT_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditReport {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Our payment attempts compared (made within the window).
    pub checked_payments: usize,
    /// The provider's objects that carry our ids (made within the window).
    pub provider_objects: usize,
    /// The provider's refunds of our payments made within the window.
    pub provider_refunds: usize,
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
    /// A refund on one side only, or in another status on each side.
    RefundNotReflected,
    /// The provider's amount or currency differs from ours.
    AmountMismatch,
    /// The provider could not give the money back: the buyer is still owed it.
    RefundFailed,
    /// Part of a paid order's money went back (a partial refund made outside
    /// nts): the order is still paid and its tickets valid.
    PartialRefund,
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

/// The window of an audit, `[since, until]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
}

impl Window {
    /// From the request's bounds (RFC 3339); by default the last 24 hours.
    /// At most [`MAX_WINDOW`] long, `since` before `until`.
    pub fn parse(since: Option<&str>, until: Option<&str>, now: OffsetDateTime) -> ApiResult<Window> {
        let parse = |name: &str, raw: &str| {
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ApiError::validation(format!("{name} must be an RFC 3339 time, like 2026-12-07T00:00:00Z"))
            })
        };
        let until = until.map(|raw| parse("until", raw)).transpose()?.unwrap_or(now);
        let since = since.map(|raw| parse("since", raw)).transpose()?.unwrap_or(until - DEFAULT_WINDOW);
        if since >= until {
            return Err(ApiError::validation("since must be before until"));
        }
        if until - since > MAX_WINDOW {
            return Err(ApiError::validation(format!(
                "the window may be at most {} days; audit a longer time in several windows",
                MAX_WINDOW.whole_days()
            )));
        }
        Ok(Window { since, until })
    }

    fn contains(&self, t: OffsetDateTime) -> bool {
        self.since <= t && t <= self.until
    }
}

/// One of our attempts, with its order's status and its refunds.
#[derive(Debug)]
pub struct OurPayment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub provider_ref: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub order_status: OrderStatus,
    pub created_at: OffsetDateTime,
    /// What its succeeded refunds gave back.
    pub refunded_minor: i64,
    /// Why nts's latest refund of it failed.
    pub refund_failure: Option<String>,
    pub failure_code: Option<String>,
}

/// One of our refund rows.
#[derive(Debug)]
pub struct OurRefund {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub provider_ref: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub status: RefundStatus,
    pub created_at: OffsetDateTime,
}

pub async fn run(payments: &PaymentService, window: Window) -> ApiResult<AuditReport> {
    let pool = &payments.pool;
    // The provider is asked a little beyond the window, so that each of our
    // objects finds its counterpart whichever clock was ahead; only the
    // provider's objects within the window may count as missing on our side.
    let (wide_since, wide_until) = (window.since - CLOCK_MARGIN, window.until + CLOCK_MARGIN);
    let ours = sqlx::query_as!(
        OurPayment,
        r#"SELECT p.id, p.order_id, p.status AS "status: PaymentStatus", p.provider_ref, p.amount_minor,
                  p.currency AS "currency!", o.status AS "order_status: OrderStatus", p.created_at,
                  COALESCE((SELECT SUM(r.amount_minor) FROM refunds r WHERE r.payment_id = p.id AND r.status = $4),
                           0)::int8 AS "refunded_minor!",
                  (SELECT r.failure FROM refunds r WHERE r.payment_id = p.id AND r.idempotency_key IS NOT NULL
                   ORDER BY r.created_at DESC, r.id DESC LIMIT 1) AS refund_failure,
                  p.failure_code
           FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE p.provider = $1 AND p.created_at BETWEEN $2 AND $3
           ORDER BY p.created_at, p.id"#,
        payments.provider().as_str(),
        window.since,
        window.until,
        RefundStatus::Succeeded as RefundStatus,
    )
    .fetch_all(pool)
    .await?;
    let theirs = payments.gateway.list_window(wide_since, wide_until).await.map_err(|e| ApiError::Unavailable {
        code: ErrorCode::PaymentProviderUnavailable,
        message: format!("could not list the provider's payments: {e}"),
    })?;
    // Refunds made in the window may be of payments made before it.
    let mut ours = ours;
    let known: HashSet<&str> = ours.iter().filter_map(|p| p.provider_ref.as_deref()).collect();
    let older: Vec<String> = theirs
        .refunds
        .iter()
        .filter_map(|r| r.payment_ref.clone())
        .filter(|pi| !known.contains(pi.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !older.is_empty() {
        let more = sqlx::query_as!(
            OurPayment,
            r#"SELECT p.id, p.order_id, p.status AS "status: PaymentStatus", p.provider_ref, p.amount_minor,
                      p.currency AS "currency!", o.status AS "order_status: OrderStatus", p.created_at,
                      COALESCE((SELECT SUM(r.amount_minor) FROM refunds r WHERE r.payment_id = p.id AND r.status = $3),
                               0)::int8 AS "refunded_minor!",
                      (SELECT r.failure FROM refunds r WHERE r.payment_id = p.id AND r.idempotency_key IS NOT NULL
                       ORDER BY r.created_at DESC, r.id DESC LIMIT 1) AS refund_failure,
                      p.failure_code
               FROM payments p JOIN orders o ON o.id = p.order_id
               WHERE p.provider = $1 AND p.provider_ref = ANY($2)"#,
            payments.provider().as_str(),
            &older,
            RefundStatus::Succeeded as RefundStatus,
        )
        .fetch_all(pool)
        .await?;
        ours.extend(more);
    }
    let refund_refs: Vec<String> = theirs.refunds.iter().map(|r| r.provider_ref.clone()).collect();
    let payment_ids: Vec<Uuid> = ours.iter().map(|p| p.id).collect();
    let our_refunds = sqlx::query_as!(
        OurRefund,
        r#"SELECT r.id, r.payment_id, p.order_id, r.provider_ref, r.amount_minor, r.currency AS "currency!",
                  r.status AS "status: RefundStatus", r.created_at
           FROM refunds r JOIN payments p ON p.id = r.payment_id
           WHERE r.payment_id = ANY($1) OR r.provider_ref = ANY($2)
           ORDER BY r.created_at, r.id"#,
        &payment_ids,
        &refund_refs,
    )
    .fetch_all(pool)
    .await?;
    let paid_without_success = sqlx::query_scalar!(
        // A free order (total zero) is paid without a payment: nothing to find at the provider.
        "SELECT o.id FROM orders o WHERE o.status = $1 AND o.amount_minor > 0 AND o.created_at BETWEEN $3 AND $4
           AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = $2)",
        OrderStatus::Paid as OrderStatus,
        PaymentStatus::Succeeded as PaymentStatus,
        window.since,
        window.until,
    )
    .fetch_all(pool)
    .await?;
    let mut mismatches = compare(payments.provider(), window, &ours, &our_refunds, &theirs);
    mismatches.extend(paid_without_success.into_iter().map(|order_id| Mismatch {
        kind: MismatchKind::PaidOrderWithoutMoney,
        order_id: Some(order_id),
        payment_id: None,
        provider_ref: None,
        detail: "the order is paid but none of its attempts succeeded".into(),
    }));
    let in_window = |p: &&OurPayment| window.contains(p.created_at);
    Ok(AuditReport {
        since: window.since,
        until: window.until,
        checked_payments: ours.iter().filter(in_window).count(),
        provider_objects: theirs.intents.iter().filter(|i| window.contains(i.created)).count(),
        provider_refunds: theirs
            .refunds
            .iter()
            .filter(|r| r.payment_ref.as_deref().is_some_and(|pi| known_ref(&ours, pi)))
            .count(),
        mismatches,
    })
}

fn known_ref(ours: &[OurPayment], payment_ref: &str) -> bool {
    ours.iter().any(|p| p.provider_ref.as_deref() == Some(payment_ref))
}

/// Our amount in the provider's units: Stripe's by nts's table; the
/// simulated provider keeps nts's minor units.
fn provider_amount(provider: Provider, minor: i64, currency: &str) -> Option<i64> {
    match provider {
        Provider::Simulated => Some(minor),
        Provider::Stripe => Money::stored(minor, currency).ok()?.stripe_amount().ok(),
    }
}

/// Compares our attempts and refunds with the provider's objects.
pub fn compare(
    provider: Provider,
    window: Window,
    ours: &[OurPayment],
    our_refunds: &[OurRefund],
    theirs: &ProviderWindow,
) -> Vec<Mismatch> {
    let by_id: HashMap<Uuid, &OurPayment> = ours.iter().map(|p| (p.id, p)).collect();
    let by_ref: HashMap<&str, &OurPayment> =
        ours.iter().filter_map(|p| Some((p.provider_ref.as_deref()?, p))).collect();
    let mut seen = HashSet::new();
    let mut taken_by_order: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    let mut out = Vec::new();
    for ListedIntent { intent, raw_amount, created } in &theirs.intents {
        let mine = by_ref
            .get(intent.provider_ref.as_str())
            .copied()
            .or_else(|| intent.payment_id.and_then(|id| by_id.get(&id).copied()).filter(|p| p.provider_ref.is_none()));
        let succeeded = intent.status == IntentStatus::Succeeded;
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
        let Some(p) = mine else {
            if succeeded && window.contains(*created) {
                flag(
                    MismatchKind::MoneyWithoutPaidOrder,
                    "a succeeded payment carries our ids but matches none of our attempts (stray charge)".into(),
                );
            }
            if succeeded {
                if let Some(order_id) = order_id {
                    taken_by_order.entry(order_id).or_default().push(&intent.provider_ref);
                }
            }
            continue;
        };
        seen.insert(p.id);
        let expected = provider_amount(provider, p.amount_minor, &p.currency);
        if expected != Some(*raw_amount) || !intent.currency.eq_ignore_ascii_case(&p.currency) {
            flag(
                MismatchKind::AmountMismatch,
                format!(
                    "the provider has {raw_amount} {} in its units, we have {} {} (sent as {})",
                    intent.currency,
                    p.amount_minor,
                    p.currency,
                    expected.map_or_else(|| "nothing: not chargeable".to_owned(), |a| a.to_string())
                ),
            );
        }
        let money_taken = matches!(
            p.status,
            PaymentStatus::Succeeded
                | PaymentStatus::RefundPending
                | PaymentStatus::Refunded
                | PaymentStatus::RefundFailed
        );
        if succeeded && p.status == PaymentStatus::Succeeded {
            taken_by_order.entry(p.order_id).or_default().push(&intent.provider_ref);
        }
        if succeeded && !money_taken {
            flag(
                MismatchKind::MoneyWithoutPaidOrder,
                format!(
                    "the provider took the money; the attempt is {:?} and the order {:?}",
                    p.status, p.order_status
                ),
            );
        }
        if succeeded && p.status == PaymentStatus::RefundPending {
            flag(MismatchKind::MoneyWithoutPaidOrder, "the money is owed back; its refund is pending".into());
        }
        if !succeeded && money_taken {
            flag(
                MismatchKind::PaidOrderWithoutMoney,
                format!("the attempt is {:?}; the provider says {:?}", p.status, intent.status),
            );
        }
    }
    // Refunds: each of the provider's, by its own id, against our row.
    let rows_by_ref: HashMap<&str, &OurRefund> =
        our_refunds.iter().filter_map(|r| Some((r.provider_ref.as_deref()?, r))).collect();
    let listed: HashSet<&str> = theirs.refunds.iter().map(|r| r.provider_ref.as_str()).collect();
    for refund in &theirs.refunds {
        let Some(p) = refund.payment_ref.as_deref().and_then(|pi| by_ref.get(pi).copied()) else { continue };
        let mut flag = |kind, detail: String| {
            out.push(Mismatch {
                kind,
                order_id: Some(p.order_id),
                payment_id: Some(p.id),
                provider_ref: Some(refund.provider_ref.clone()),
                detail,
            })
        };
        let Some(row) = rows_by_ref.get(refund.provider_ref.as_str()) else {
            flag(MismatchKind::RefundNotReflected, format!("{}; nts has no record of it", describe(refund)));
            continue;
        };
        if row.status != refund.status
            && !(row.status == RefundStatus::Canceled && refund.status == RefundStatus::Failed)
        {
            flag(MismatchKind::RefundNotReflected, format!("{}; nts has it {:?}", describe(refund), row.status));
        }
        let expected = provider_amount(provider, row.amount_minor, &row.currency);
        if expected != Some(refund.amount) || !refund.currency.eq_ignore_ascii_case(&row.currency) {
            flag(
                MismatchKind::AmountMismatch,
                format!("{}; nts has {} {}", describe(refund), row.amount_minor, row.currency),
            );
        }
    }
    for row in our_refunds.iter().filter(|r| r.status == RefundStatus::Succeeded && window.contains(r.created_at)) {
        let Some(refund_ref) = row.provider_ref.as_deref() else { continue };
        if !listed.contains(refund_ref) {
            out.push(Mismatch {
                kind: MismatchKind::RefundNotReflected,
                order_id: Some(row.order_id),
                payment_id: Some(row.payment_id),
                provider_ref: Some(refund_ref.to_owned()),
                detail: "recorded as refunded; the provider shows no such refund".into(),
            });
        }
    }
    // Our own books: each payment against its refund rows.
    for p in ours {
        let flag = |kind, detail: String| Mismatch {
            kind,
            order_id: Some(p.order_id),
            payment_id: Some(p.id),
            provider_ref: p.provider_ref.clone(),
            detail,
        };
        match p.status {
            PaymentStatus::RefundFailed => out.push(flag(
                MismatchKind::RefundFailed,
                format!("the refund failed: {}", p.refund_failure.as_deref().unwrap_or("no reason given")),
            )),
            PaymentStatus::Refunded if p.refunded_minor < p.amount_minor => out.push(flag(
                MismatchKind::RefundNotReflected,
                format!("recorded as refunded; its refunds gave back {} of {}", p.refunded_minor, p.amount_minor),
            )),
            PaymentStatus::Failed
                if [ErrorCode::AmountTooSmall, ErrorCode::AmountTooLarge]
                    .iter()
                    .any(|c| p.failure_code.as_deref() == Some(c.as_str())) =>
            {
                out.push(flag(
                    MismatchKind::AmountNotChargeable,
                    format!(
                        "the provider refused to charge {} {} ({}); the event's prices need changing",
                        p.amount_minor,
                        p.currency,
                        p.failure_code.as_deref().unwrap_or_default()
                    ),
                ))
            }
            PaymentStatus::Succeeded if p.refunded_minor > 0 => out.push(flag(
                MismatchKind::PartialRefund,
                format!(
                    "{} of {} {} went back (a refund made outside nts); the order is still {:?}",
                    p.refunded_minor, p.amount_minor, p.currency, p.order_status
                ),
            )),
            _ => {}
        }
        if seen.contains(&p.id) || !window.contains(p.created_at) {
            continue;
        }
        let kind = match p.status {
            PaymentStatus::Succeeded
            | PaymentStatus::Refunded
            | PaymentStatus::RefundPending
            | PaymentStatus::RefundFailed => MismatchKind::PaidOrderWithoutMoney,
            _ => continue,
        };
        out.push(flag(kind, format!("the attempt is {:?}; the provider has no such object", p.status)));
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

fn describe(refund: &Refund) -> String {
    format!("the provider has a refund of {} {} in its units, {:?}", refund.amount, refund.currency, refund.status)
}

#[cfg(test)]
mod tests;

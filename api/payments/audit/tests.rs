use super::*;
use crate::payments::gateway::Intent;

const AT: OffsetDateTime = time::macros::datetime!(2026-12-07 12:00 UTC);

fn window() -> Window {
    Window { since: AT - Duration::hours(1), until: AT + Duration::hours(1) }
}

fn ours(id: u128, status: PaymentStatus, provider_ref: Option<&str>, order_status: OrderStatus) -> OurPayment {
    OurPayment {
        id: Uuid::from_u128(id),
        order_id: Uuid::from_u128(100),
        status,
        provider_ref: provider_ref.map(Into::into),
        amount_minor: 1998,
        currency: "GBP".into(),
        order_status,
        created_at: AT,
        refunded_minor: if status == PaymentStatus::Refunded { 1998 } else { 0 },
        refund_failure: None,
        failure_code: None,
    }
}

fn theirs(provider_ref: &str, payment: Option<u128>, status: IntentStatus) -> ListedIntent {
    ListedIntent {
        intent: Intent {
            provider_ref: provider_ref.into(),
            status,
            amount_minor: 1998,
            currency: "GBP".into(),
            refunded: false,
            client_secret: None,
            order_id: Some(Uuid::from_u128(100)),
            payment_id: payment.map(Uuid::from_u128),
        },
        raw_amount: 1998,
        created: AT,
    }
}

fn their_refund(refund_ref: &str, payment_ref: &str, amount: i64, status: RefundStatus) -> Refund {
    Refund {
        provider_ref: refund_ref.into(),
        status,
        payment_ref: Some(payment_ref.into()),
        failure_reason: None,
        amount,
        amount_minor: amount,
        currency: "GBP".into(),
        key: None,
    }
}

fn our_refund(refund_ref: &str, payment: u128, amount_minor: i64, status: RefundStatus) -> OurRefund {
    OurRefund {
        id: Uuid::new_v4(),
        payment_id: Uuid::from_u128(payment),
        order_id: Uuid::from_u128(100),
        provider_ref: Some(refund_ref.into()),
        amount_minor,
        currency: "GBP".into(),
        status,
        created_at: AT,
    }
}

fn provider(intents: Vec<ListedIntent>, refunds: Vec<Refund>) -> ProviderWindow {
    ProviderWindow { intents, refunds }
}

fn check(mine: &[OurPayment], rows: &[OurRefund], at: &ProviderWindow) -> Vec<MismatchKind> {
    compare(Provider::Stripe, window(), mine, rows, at).iter().map(|m| m.kind).collect()
}

#[test]
fn a_paid_order_with_one_charge_and_a_declined_attempt_is_clean() {
    let mine = [
        ours(1, PaymentStatus::Failed, None, OrderStatus::Paid),
        ours(2, PaymentStatus::Succeeded, Some("pi_2"), OrderStatus::Paid),
    ];
    let at = provider(
        vec![
            theirs("pi_1", Some(1), IntentStatus::Failed { code: "card_declined".into() }),
            theirs("pi_2", Some(2), IntentStatus::Succeeded),
        ],
        vec![],
    );
    assert_eq!(check(&mine, &[], &at), []);
}

#[test]
fn a_stray_charge_is_money_without_a_paid_order_and_an_extra_charge() {
    let mine = [ours(2, PaymentStatus::Succeeded, Some("pi_2"), OrderStatus::Paid)];
    let at = provider(
        vec![theirs("pi_2", Some(2), IntentStatus::Succeeded), theirs("pi_x", None, IntentStatus::Succeeded)],
        vec![],
    );
    let found = compare(Provider::Stripe, window(), &mine, &[], &at);
    assert_eq!(
        found.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [MismatchKind::MoneyWithoutPaidOrder, MismatchKind::ExtraCharge]
    );
    assert_eq!(found[0].provider_ref.as_deref(), Some("pi_x"));
    assert_eq!(found[0].order_id, Some(Uuid::from_u128(100)));
}

#[test]
fn a_stray_charge_outside_the_window_belongs_to_another_audit() {
    let mut stray = theirs("pi_x", None, IntentStatus::Succeeded);
    stray.created = AT - Duration::hours(2);
    assert_eq!(check(&[], &[], &provider(vec![stray], vec![])), []);
}

#[test]
fn refunds_are_matched_by_their_own_ids_on_both_sides() {
    let mine = [ours(1, PaymentStatus::Refunded, Some("pi_1"), OrderStatus::Refunded)];
    let intent = || vec![theirs("pi_1", Some(1), IntentStatus::Succeeded)];
    let rows = [our_refund("re_1", 1, 1998, RefundStatus::Succeeded)];
    let refund = their_refund("re_1", "pi_1", 1998, RefundStatus::Succeeded);
    assert_eq!(check(&mine, &rows, &provider(intent(), vec![refund.clone()])), []);
    // Recorded, but the provider shows no such refund.
    assert_eq!(check(&mine, &rows, &provider(intent(), vec![])), [MismatchKind::RefundNotReflected]);
    // The provider refunded; nts has no record of that refund.
    let paid = [ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid)];
    assert_eq!(check(&paid, &[], &provider(intent(), vec![refund.clone()])), [MismatchKind::RefundNotReflected]);
    // Failed at the provider, succeeded for nts.
    let failed = their_refund("re_1", "pi_1", 1998, RefundStatus::Failed);
    assert_eq!(check(&mine, &rows, &provider(intent(), vec![failed])), [MismatchKind::RefundNotReflected]);
}

#[test]
fn a_partial_refund_made_outside_nts_is_reported() {
    let mut paid = ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid);
    paid.refunded_minor = 500;
    let rows = [our_refund("re_part", 1, 500, RefundStatus::Succeeded)];
    let at = provider(
        vec![theirs("pi_1", Some(1), IntentStatus::Succeeded)],
        vec![their_refund("re_part", "pi_1", 500, RefundStatus::Succeeded)],
    );
    let found = compare(Provider::Stripe, window(), &[paid], &rows, &at);
    assert_eq!(found.iter().map(|m| m.kind).collect::<Vec<_>>(), [MismatchKind::PartialRefund]);
    assert!(found[0].detail.contains("500 of 1998"), "{}", found[0].detail);
}

#[test]
fn a_success_we_never_recorded_and_one_the_provider_never_had() {
    let lost = [ours(1, PaymentStatus::Processing, None, OrderStatus::AwaitingPayment)];
    let found = compare(
        Provider::Stripe,
        window(),
        &lost,
        &[],
        &provider(vec![theirs("pi_1", Some(1), IntentStatus::Succeeded)], vec![]),
    );
    assert_eq!(found.iter().map(|m| m.kind).collect::<Vec<_>>(), [MismatchKind::MoneyWithoutPaidOrder]);
    assert_eq!(found[0].payment_id, Some(Uuid::from_u128(1)));
    let phantom = [ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid)];
    assert_eq!(check(&phantom, &[], &provider(vec![], vec![])), [MismatchKind::PaidOrderWithoutMoney]);
}

#[test]
fn another_amount_is_flagged() {
    let mine = [ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid)];
    let mut intent = theirs("pi_1", Some(1), IntentStatus::Succeeded);
    intent.raw_amount = 1;
    assert_eq!(check(&mine, &[], &provider(vec![intent], vec![])), [MismatchKind::AmountMismatch]);
}

/// ISK 1,500 is `amount=150000` at Stripe. Converted back through the same
/// table, a provider amount of 1,500 (15 krónur) would have to be compared as
/// krónur; compared in Stripe's own units it cannot pass for 1,500 krónur.
#[test]
fn amounts_are_compared_in_the_providers_units() {
    let mut mine = ours(1, PaymentStatus::Succeeded, Some("pi_1"), OrderStatus::Paid);
    (mine.amount_minor, mine.currency) = (1500, "ISK".into());
    let listed = |raw_amount: i64, amount_minor: i64| {
        let mut intent = theirs("pi_1", Some(1), IntentStatus::Succeeded);
        (intent.raw_amount, intent.intent.amount_minor, intent.intent.currency) =
            (raw_amount, amount_minor, "ISK".into());
        provider(vec![intent], vec![])
    };
    let mine = [mine];
    assert_eq!(check(&mine, &[], &listed(150_000, 1500)), []);
    // Whatever the gateway made of it, Stripe's 1,500 is not nts's 1,500 krónur.
    assert_eq!(check(&mine, &[], &listed(1500, 1500)), [MismatchKind::AmountMismatch]);
    // The simulated provider keeps nts's minor units.
    let simulated = compare(Provider::Simulated, window(), &mine, &[], &listed(1500, 1500));
    assert!(simulated.is_empty(), "{simulated:?}");
}

#[test]
fn a_window_is_bounded_and_defaults_to_the_last_day() {
    let now = AT;
    assert_eq!(Window::parse(None, None, now).unwrap(), Window { since: now - Duration::hours(24), until: now });
    let w = Window::parse(Some("2026-12-01T00:00:00Z"), Some("2026-12-07T00:00:00+01:00"), now).unwrap();
    assert_eq!(w.until - w.since, Duration::days(6) - Duration::hours(1));
    for (since, until) in [
        (Some("2026-11-01T00:00:00Z"), Some("2026-12-07T00:00:00Z")),
        (Some("2026-12-07T00:00:00Z"), Some("2026-12-06T00:00:00Z")),
        (Some("yesterday"), None),
        (None, Some("2026-12-07")),
    ] {
        assert!(Window::parse(since, until, now).is_err(), "{since:?}..{until:?}");
    }
    assert!(Window::parse(Some("2026-11-06T12:00:00Z"), None, now).is_ok(), "exactly 31 days");
}

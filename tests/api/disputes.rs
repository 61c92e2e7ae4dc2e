//! Refunds as rows of their own and disputes, against the Stripe emulator:
//! refunds made in Stripe's dashboard (in whole or in part) are adopted and
//! reported; disputes are recorded, shown, refuse the door only under the
//! event's policy, and make Stripe refuse a refund for good.

use nts_testkit::wire::{MismatchKind, NewCheckin, Order, PaymentStatus, RefundStatus};
use nts_testkit::{Expect, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::stripe_emulator::*;

/// An event with `dispute_policy` (none: the default) and a paid order of two tickets; answers the order.
async fn paid_order(app: &TestApp, dispute_policy: Option<&str>) -> Order {
    let mut event = json!({
        "name": "Disputed", "venue": "Hall", "currency": "GBP",
        "starts_at": (time::OffsetDateTime::now_utc() + time::Duration::days(30))
            .format(&time::format_description::well_known::Rfc3339).unwrap(),
        "ticket_types": [{"name": "Seat", "price_minor": 999, "capacity": 10, "max_per_order": 4}],
    });
    if let Some(policy) = dispute_policy {
        event["dispute_policy"] = json!(policy);
    }
    let created = app.api().send_json(Method::POST, "/api/v1/admin/events", Some(&event), Some(ADMIN_TOKEN)).await;
    let created = created.expect(201);
    assert_eq!(created["dispute_policy"], dispute_policy.unwrap_or("admit"));
    let (event, tt) = (
        created["id"].as_str().unwrap().parse().unwrap(),
        created["ticket_types"][0]["id"].as_str().unwrap().parse().unwrap(),
    );
    let checkout = app.checkout(event, tt, 2).await;
    let secret = checkout.order.secret.clone().unwrap();
    pay(app, 0, checkout.order.id, &secret, "pm_card_visa").await.expect_status(201);
    app.api().order(checkout.order.id, &secret).await.unwrap().body
}

async fn scan(
    app: &TestApp,
    gate: &str,
    order: &Order,
    i: usize,
) -> nts_testkit::ApiResult<nts_testkit::wire::Checkin> {
    app.api().check_in(gate, &NewCheckin { code: order.tickets[i].signed_code.clone(), scan_id: Uuid::new_v4() }).await
}

async fn dispute_status(app: &TestApp, order: Uuid) -> Option<String> {
    let all = app.api().disputes("").await.expect_status(200);
    all.body.into_iter().find(|d| d.order_id == order).map(|d| d.status)
}

#[tokio::test]
async fn refunds_made_in_stripes_dashboard_are_rows_of_their_own_and_a_part_is_reported() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (order, secret, tt) = stripe_order(&app, 2).await;
    pay(&app, 0, order, &secret, "pm_card_visa").await.expect_status(201);
    let pi = stripe.intents_of(order).await.remove(0).id.to_string();

    // 5.00 of 19.98 back: a row of its own, the order still paid, and the audit says so.
    let first = stripe.dashboard_partial_refund(&pi, 500).await["id"].as_str().unwrap().to_owned();
    let refunded = || async { app.api().refunds("?status=refunded").await.expect_status(200) };
    app.eventually(10, || async { refunded().await.len() == 1 }).await;
    let rows = refunded().await;
    assert_eq!((rows[0].refund_ref.as_deref(), rows[0].amount_minor), (Some(first.as_str()), 500));
    assert_eq!((rows[0].reason.as_str(), rows[0].status), ("outside_nts", RefundStatus::Succeeded));
    assert_eq!(rows[0].payment_status, PaymentStatus::Succeeded);
    assert_eq!(order_status(&app, order).await, "paid");
    let report = audit(&app).await;
    let kinds: Vec<MismatchKind> = report.mismatches.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MismatchKind::PartialRefund], "{report:#?}");
    assert_eq!(report.provider_refunds, 1);

    // The rest, another refund: both rows, each matched by its own id; the order is refunded.
    let second = stripe.dashboard_partial_refund(&pi, 1498).await["id"].as_str().unwrap().to_owned();
    app.eventually(10, || async { order_status(&app, order).await == "refunded" }).await;
    let mut refs: Vec<String> = refunded().await.body.into_iter().filter_map(|r| r.refund_ref).collect();
    refs.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(refs, expected);
    assert_eq!(app.sold_and_held(tt).await, (2, 0), "a refund made outside nts leaves the seats sold");
    settled_and_audited(&app).await;
}

#[tokio::test]
async fn a_dispute_is_shown_and_refuses_the_door_only_under_the_events_policy() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let strict = paid_order(&app, Some("refuse_while_disputed")).await;
    let lenient = paid_order(&app, None).await;
    let pi = |order: Uuid| {
        let stripe = &stripe;
        async move { stripe.intents_of(order).await.remove(0).id.to_string() }
    };
    let strict_gate = app.api().create_device(strict.event_id, "Gate").await.unwrap().body.token;
    let lenient_gate = app.api().create_device(lenient.event_id, "Gate").await.unwrap().body.token;

    // An inquiry never turns a buyer away.
    stripe.dispute(&pi(strict.id).await, "warning_needs_response", "charge.dispute.created").await;
    app.eventually(10, || async { dispute_status(&app, strict.id).await.is_some() }).await;
    scan(&app, &strict_gate, &strict, 0).await.expect_status(201);

    // A chargeback: shown to the organiser (per event too), and the strict event refuses the ticket.
    stripe.dispute(&pi(strict.id).await, "needs_response", "charge.dispute.updated").await;
    app.eventually(10, || async { dispute_status(&app, strict.id).await.as_deref() == Some("needs_response") }).await;
    let listed = app.api().disputes(&format!("?event_id={}", strict.event_id)).await.expect_status(200);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].amount_minor, listed[0].reason.as_str()), (1998, "fraudulent"));
    scan(&app, &strict_gate, &strict, 1).await.expect_error(409, "ticket_not_valid");
    app.api().disputes("?event_id=nope").await.expect_error(422, "validation_failed");

    // The lenient event admits a disputed order's tickets.
    stripe.dispute(&pi(lenient.id).await, "needs_response", "charge.dispute.created").await;
    app.eventually(10, || async { dispute_status(&app, lenient.id).await.as_deref() == Some("needs_response") }).await;
    scan(&app, &lenient_gate, &lenient, 0).await.expect_status(201);

    // Late news of an earlier status moves nothing back.
    stripe.dispute(&pi(strict.id).await, "lost", "charge.dispute.closed").await;
    app.eventually(10, || async { dispute_status(&app, strict.id).await.as_deref() == Some("lost") }).await;
    let events = stripe.events().await;
    let updated = events.iter().find(|e| e["type"] == "charge.dispute.updated").expect("the earlier event");
    let mut again = updated.clone();
    again["id"] = json!("evt_late_copy");
    let body = serde_json::to_string(&again).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    deliver(&app, 0, &body, Some(signed(&body, now))).await.expect_status(200);
    assert_eq!(dispute_status(&app, strict.id).await.as_deref(), Some("lost"));

    // Stripe refuses to refund a disputed charge: a visible, final refusal, asked once.
    let answer = app.api().refund(strict.id, false).await.expect_status(202);
    assert_eq!(answer.payment_status, Some(PaymentStatus::RefundFailed));
    let failed = app.api().refunds("?status=failed").await.expect_status(200);
    assert_eq!((failed.len(), failed[0].status), (1, RefundStatus::Failed));
    assert!(failed[0].refund_failure.as_deref().unwrap().starts_with("charge_disputed"), "{failed:?}");
    let refund_calls =
        stripe.calls().await.iter().filter(|c| c["path"] == "/v1/refunds" && c["method"] == "POST").count();
    assert_eq!(refund_calls, 1);
}

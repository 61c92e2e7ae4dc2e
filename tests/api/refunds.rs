//! Admin refunds and the payments audit, with the simulated provider (whose
//! own ledger is `simulated_intents`).

use nts_testkit::wire::{MismatchKind, PaymentStatus, SimulatedOutcome};
use nts_testkit::{spawn_app, Expect};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn refunds_and_audit_need_the_admin_token() {
    let app = spawn_app().await;
    let api = app.api();
    let order = uuid::Uuid::new_v4();
    let refund = format!("/api/v1/admin/orders/{order}/refund");
    // Without a credential, or without `release_seats`: only raw requests can be that wrong.
    api.send_json(Method::POST, &refund, Some(&json!({"release_seats": true})), None)
        .await
        .expect_error(401, "unauthorized");
    api.with_admin_token("wrong-token-wrong-token-wrong-token")
        .refund(order, true)
        .await
        .expect_error(403, "forbidden");
    api.send_json(Method::GET, "/api/v1/admin/payments/audit", None, None).await.expect_error(401, "unauthorized");
    api.refund(order, true).await.expect_error(404, "not_found");
    api.send_json(Method::POST, &refund, Some(&json!({})), Some(nts_testkit::ADMIN_TOKEN))
        .await
        .expect_error(422, "validation_failed");
    // The Stripe webhook exists only when Stripe is on.
    api.send_json(Method::POST, "/api/v1/payments/stripe/webhook", Some(&json!({})), None)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_paid_order_is_refunded_once_and_its_seats_go_back_if_asked() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let c = app.checkout(event, tt, 2).await;
        app.confirm(c.payment.unwrap().id, c.order.secret.as_deref().unwrap(), SimulatedOutcome::Succeeded)
            .await
            .expect_status(200);
        orders.push(c.order.id);
    }
    let unpaid = app.checkout(event, tt, 1).await;
    let audit = api.payments_audit().await.unwrap();
    assert_eq!(audit.mismatches, []);
    assert_eq!((audit.checked_payments, audit.provider_objects), (3, 3));
    assert_eq!(app.sold_and_held(tt).await, (4, 1));

    let released = api.refund(orders[0], true).await.expect_status(200);
    assert_eq!(released.payment_status, Some(PaymentStatus::Refunded));
    assert!(released.seats_released);
    let kept = api.refund(orders[1], false).await.expect_status(200);
    assert_eq!(kept.payment_status, Some(PaymentStatus::Refunded));
    assert_eq!(app.sold_and_held(tt).await, (2, 1), "only the released order's seats are back on sale");

    api.refund(orders[0], true).await.expect_error(409, "order_already_refunded");
    api.refund(unpaid.order.id, true).await.expect_error(409, "order_not_paid");
    let refunded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE refunded").fetch_one(&app.pool).await.unwrap();
    assert_eq!(refunded, 2);
    let status: String = sqlx::query_scalar("SELECT status::text FROM orders WHERE id = $1")
        .bind(orders[0])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "refunded");
    assert_eq!(api.payments_audit().await.unwrap().mismatches, []);
}

#[tokio::test]
async fn the_audit_finds_money_the_provider_took_behind_our_back() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let c = app.checkout(event, tt, 1).await;
    let order = c.order.id;
    let payment = c.payment.as_ref().unwrap().id;
    sqlx::query(
        "INSERT INTO simulated_intents (id, idempotency_key, order_id, payment_id, amount_minor, currency, status)
         VALUES ('sim_pi_stray', 'stray', $1, gen_random_uuid(), 999, 'GBP', 'succeeded')",
    )
    .bind(order)
    .execute(&app.pool)
    .await
    .unwrap();
    // And one of ours marked paid while the provider says it never succeeded.
    app.confirm(payment, c.order.secret.as_deref().unwrap(), SimulatedOutcome::Succeeded).await.expect_status(200);
    sqlx::query("UPDATE simulated_intents SET status = 'declined' WHERE id <> 'sim_pi_stray'")
        .execute(&app.pool)
        .await
        .unwrap();

    let audit = app.api().payments_audit().await.unwrap();
    let kinds: Vec<MismatchKind> = audit.mismatches.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MismatchKind::PaidOrderWithoutMoney, MismatchKind::MoneyWithoutPaidOrder], "{:?}", audit.body);
    assert_eq!(audit.mismatches[0].payment_id, Some(payment));
    assert_eq!(audit.mismatches[1].provider_ref.as_deref(), Some("sim_pi_stray"));
    assert_eq!(audit.mismatches[1].order_id, Some(order));
}

#[tokio::test]
async fn the_audit_covers_one_bounded_window_of_time() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let c = app.checkout(event, tt, 1).await;
    app.confirm(c.payment.unwrap().id, c.order.secret.as_deref().unwrap(), SimulatedOutcome::Succeeded)
        .await
        .expect_status(200);
    let day = api.payments_audit().await.unwrap();
    assert_eq!(day.until - day.since, time::Duration::hours(24), "by default the last 24 hours");
    assert_eq!((day.checked_payments, day.provider_objects, day.mismatches.len()), (1, 1, 0));

    let at = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let before = api
        .payments_audit_of(&format!(
            "?since={}&until={}",
            at(now - time::Duration::days(3)),
            at(now - time::Duration::days(2))
        ))
        .await
        .unwrap();
    assert_eq!((before.checked_payments, before.provider_objects), (0, 0), "the sale is outside that window");

    let too_long = format!("?since={}&until={}", at(now - time::Duration::days(40)), at(now));
    api.payments_audit_of(&too_long).await.expect_error(422, "validation_failed");
    api.payments_audit_of("?since=yesterday").await.expect_error(422, "validation_failed");
    let backwards = format!("?since={}&until={}", at(now), at(now - time::Duration::hours(1)));
    api.payments_audit_of(&backwards).await.expect_error(422, "validation_failed");
}

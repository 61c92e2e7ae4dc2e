//! Admin refunds and the payments audit, with the simulated provider (whose
//! own ledger is `simulated_intents`).

use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_TOKEN};

#[tokio::test]
async fn refunds_and_audit_need_the_admin_token() {
    let app = spawn_app().await;
    let refund = format!("/api/v1/admin/orders/{}/refund", uuid::Uuid::new_v4());
    app.post(&refund, &json!({"release_seats": true}), None).await.expect_error(401, "unauthorized");
    app.post(&refund, &json!({"release_seats": true}), Some("wrong-token-wrong-token-wrong-token"))
        .await
        .expect_error(403, "forbidden");
    app.get("/api/v1/admin/payments/audit", None).await.expect_error(401, "unauthorized");
    app.post(&refund, &json!({"release_seats": true}), Some(ADMIN_TOKEN)).await.expect_error(404, "not_found");
    app.post(&refund, &json!({}), Some(ADMIN_TOKEN)).await.expect_error(422, "validation_failed");
    // The Stripe webhook exists only when Stripe is on.
    app.post("/api/v1/payments/stripe/webhook", &json!({}), None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn a_paid_order_is_refunded_once_and_its_seats_go_back_if_asked() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let c = app.checkout(&event, &tt, 2).await;
        app.confirm(c["payment"]["id"].as_str().unwrap(), c["order"]["secret"].as_str().unwrap(), "succeeded")
            .await
            .expect(200);
        orders.push(c["order"]["id"].as_str().unwrap().to_owned());
    }
    let unpaid = app.checkout(&event, &tt, 1).await;
    let audit = app.get("/api/v1/admin/payments/audit", Some(ADMIN_TOKEN)).await;
    assert_eq!(audit.expect(200)["mismatches"], json!([]));
    assert_eq!((audit.body["checked_payments"].as_i64(), audit.body["provider_objects"].as_i64()), (Some(3), Some(3)));
    assert_eq!(app.counters(&tt).await, (4, 1));

    let released = app
        .post(&format!("/api/v1/admin/orders/{}/refund", orders[0]), &json!({"release_seats": true}), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(released.expect(200)["payment_status"], "refunded");
    assert_eq!(released.body["seats_released"], true);
    let kept = app
        .post(
            &format!("/api/v1/admin/orders/{}/refund", orders[1]),
            &json!({"release_seats": false}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(kept.expect(200)["payment_status"], "refunded");
    assert_eq!(app.counters(&tt).await, (2, 1), "only the released order's seats are back on sale");

    app.post(&format!("/api/v1/admin/orders/{}/refund", orders[0]), &json!({"release_seats": true}), Some(ADMIN_TOKEN))
        .await
        .expect_error(409, "order_already_refunded");
    let unpaid_id = unpaid["order"]["id"].as_str().unwrap();
    app.post(&format!("/api/v1/admin/orders/{unpaid_id}/refund"), &json!({"release_seats": true}), Some(ADMIN_TOKEN))
        .await
        .expect_error(409, "order_not_paid");
    let refunded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE refunded").fetch_one(&app.pool).await.unwrap();
    assert_eq!(refunded, 2);
    let status: String = sqlx::query_scalar("SELECT status::text FROM orders WHERE id = $1::uuid")
        .bind(&orders[0])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "refunded");
    let audit = app.get("/api/v1/admin/payments/audit", Some(ADMIN_TOKEN)).await;
    assert_eq!(audit.expect(200)["mismatches"], json!([]));
}

#[tokio::test]
async fn the_audit_finds_money_the_provider_took_behind_our_back() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let c = app.checkout(&event, &tt, 1).await;
    let order = c["order"]["id"].as_str().unwrap();
    sqlx::query(
        "INSERT INTO simulated_intents (id, idempotency_key, order_id, payment_id, amount_minor, currency, status)
         VALUES ('sim_pi_stray', 'stray', $1::uuid, gen_random_uuid(), 999, 'GBP', 'succeeded')",
    )
    .bind(order)
    .execute(&app.pool)
    .await
    .unwrap();
    // And one of ours marked paid while the provider says it never succeeded.
    app.confirm(c["payment"]["id"].as_str().unwrap(), c["order"]["secret"].as_str().unwrap(), "succeeded")
        .await
        .expect(200);
    sqlx::query("UPDATE simulated_intents SET status = 'declined' WHERE id <> 'sim_pi_stray'")
        .execute(&app.pool)
        .await
        .unwrap();

    let audit = app.get("/api/v1/admin/payments/audit", Some(ADMIN_TOKEN)).await;
    let mismatches = audit.expect(200)["mismatches"].as_array().unwrap();
    let kinds: Vec<&str> = mismatches.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["paid_order_without_money", "money_without_paid_order"], "{}", audit.body);
    assert_eq!(mismatches[0]["payment_id"], c["payment"]["id"]);
    assert_eq!(mismatches[1]["provider_ref"], "sim_pi_stray");
    assert_eq!(mismatches[1]["order_id"], order);
}

use std::time::Duration;

use futures_util::future::join_all;
use nts_testkit::wire::{HoldRequest, SimulatedOutcome};
use nts_testkit::{spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_holds_on_two_instances_sell_exactly_the_capacity() {
    let mut app = spawn_app().await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(100, 1).await;
    let body = HoldRequest { ticket_type_id: tt, quantity: 1, name: "Buyer".into(), email: "buyer@example.com".into() };
    let apis = [app.api_on(0), app.api_on(1)];

    let answers = join_all((0..500).map(|i| apis[i % 2].create_hold(event, &body))).await;

    let created = answers.iter().filter(|a| a.is_ok()).count();
    let sold_out =
        answers.iter().filter(|a| a.as_ref().is_err_and(|e| e.status == 409 && e.code == "sold_out")).count();
    assert_eq!(created, 100);
    assert_eq!(sold_out, 400);
    assert_eq!(created + sold_out, 500, "no other status");
    let (sold, held) = app.sold_and_held(tt).await;
    assert_eq!(sold + held, 100);
    let rows: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(quantity), 0) FROM holds WHERE status = 'active'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 100, "the counters agree with the hold rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_frees_seats_exactly_once_with_sweepers_racing_in_two_instances() {
    let mut app = spawn_app_with(&[("NTS_HOLD_SECONDS", "3"), ("NTS_RECONCILE_MS", "20")]).await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(300, 3).await;
    let mut taken = 0;
    for i in 0..120 {
        let q = 1 + i % 3;
        app.hold(event, tt, q).await.unwrap();
        taken += q;
    }
    let (_, held) = app.sold_and_held(tt).await;
    assert!(held as i64 <= taken, "nothing taken twice");
    tokio::time::sleep(Duration::from_millis(3050)).await;
    // Two instances' reconcilers plus eight direct sweepers, all at once.
    let sweeps = join_all((0..8).map(|_| nts::sales::holds::expire_stale_holds(&app.pool, None))).await;
    let swept: u64 = sweeps.into_iter().map(|r| r.expect("sweeping never conflicts")).sum();
    app.eventually(5, || async { app.sold_and_held(tt).await == (0, 0) }).await;
    assert!(swept <= 120);
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE status = 'expired'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(expired, 120);
    assert_eq!(app.available(event).await, 300);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sold_and_held(tt).await, (0, 0), "nothing was given back twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_purchases_and_expiry_on_two_instances_stay_consistent() {
    let mut app =
        spawn_app_with(&[("NTS_HOLD_SECONDS", "2"), ("NTS_ORDER_SECONDS", "2"), ("NTS_RECONCILE_MS", "50")]).await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(30, 2).await;
    let apis = [app.api_on(0), app.api_on(1)];
    let buyers = (0..60).map(|i| {
        let apis = &apis;
        async move {
            let node = i % 2;
            let body = HoldRequest {
                ticket_type_id: tt,
                quantity: 1 + i as i64 % 2,
                name: "B".into(),
                email: "b@example.com".into(),
            };
            let hold = match apis[node].create_hold(event, &body).await {
                Ok(hold) => hold,
                Err(e) => {
                    assert_eq!(e.code, "sold_out");
                    return;
                }
            };
            if i % 5 == 0 {
                return; // abandoned: expires
            }
            let Ok(co) = apis[1 - node].checkout(hold.id, hold.secret.as_deref().unwrap()).await else { return };
            let secret = co.order.secret.as_deref().unwrap();
            let outcome = if i % 3 == 0 { SimulatedOutcome::Declined } else { SimulatedOutcome::Succeeded };
            let _ = apis[node].confirm_simulated(co.payment.as_ref().unwrap().id, secret, outcome).await;
        }
    });
    join_all(buyers).await;
    // Everything unpaid expires; the counters must match the rows exactly.
    app.eventually(20, || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM holds WHERE status = 'active') + (SELECT COUNT(*) FROM orders WHERE status = 'awaiting_payment')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        open == 0
    })
    .await;
    let (sold, held) = app.sold_and_held(tt).await;
    let paid_seats: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(quantity), 0) FROM orders WHERE status = 'paid'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(&app.pool).await.unwrap();
    let charges: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents WHERE status = 'succeeded'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let paid_orders: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'paid'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(held, 0);
    assert_eq!(sold as i64, paid_seats);
    assert_eq!(tickets, paid_seats);
    assert_eq!(charges, paid_orders);
    assert!(sold <= 30);
}

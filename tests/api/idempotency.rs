use futures_util::future::join_all;
use nts_testkit::wire::{HoldRequest, PaymentRequest};
use nts_testkit::{spawn_app, spawn_app_with, Expect, NtsProcess, TestApp};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

fn ada(tt: Uuid, quantity: i64) -> HoldRequest {
    HoldRequest { ticket_type_id: tt, quantity, name: "Ada".into(), email: "ada@example.com".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_requests_make_one_hold() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let (keyed, body) = (app.api_on(0).with_key("key-1"), ada(tt, 2));

    let answers = join_all((0..20).map(|_| keyed.create_hold(event, &body))).await;
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 1);
    assert_eq!(app.sold_and_held(tt).await, (0, 2));
    let created: Vec<_> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    assert!(!created.is_empty());
    for a in &answers {
        assert!(
            a.as_ref().is_ok() || a.as_ref().is_err_and(|e| e.status == 409 && e.code == "idempotency_key_in_use"),
            "{a:?}"
        );
    }
    assert!(created.windows(2).all(|w| w[0].body == w[1].body), "every success is the same hold");

    let replay = keyed.create_hold(event, &body).await.unwrap();
    assert_eq!(replay.body, created[0].body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(app.sold_and_held(tt).await, (0, 2));
}

#[tokio::test]
async fn a_key_reused_with_another_request_is_refused() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let keyed = app.api_on(0).with_key("k");
    keyed.create_hold(event, &ada(tt, 1)).await.unwrap();
    keyed.create_hold(event, &ada(tt, 2)).await.expect_error(422, "idempotency_key_reused");
    assert_eq!(app.sold_and_held(tt).await, (0, 1));
}

#[tokio::test]
async fn errors_are_replayed_too_and_keys_are_scoped_by_credential() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(1, 1).await;
    let hold = app.hold(event, tt, 1).await.unwrap();
    let keyed = app.api_on(0).with_key("e");
    keyed.create_hold(event, &ada(tt, 1)).await.expect_error(409, "sold_out");
    // Seats come back, but the key's answer stays what it was.
    app.api().release_hold(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
    keyed.create_hold(event, &ada(tt, 1)).await.expect_error(409, "sold_out");

    // The same key under another buyer's credential is another key.
    let a = app.checkout(event, tt, 1).await;
    let keyed = app.api_on(0).with_key("p");
    keyed.create_payment(a.order.id, a.order.secret.as_deref().unwrap(), &PaymentRequest::default()).await.unwrap();
    keyed.create_payment(a.order.id, "someone-else", &PaymentRequest::default()).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn malformed_keys_are_rejected() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(5, 1).await;
    let long = "k".repeat(256);
    app.api_on(0).with_key(&long).create_hold(event, &ada(tt, 1)).await.expect_error(400, "invalid_idempotency_key");
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_checking_out_at_once_on_two_instances_each_get_one_order_per_key() {
    let mut app = spawn_app().await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(100, 1).await;
    let mut holds = Vec::new();
    for _ in 0..60 {
        holds.push(app.hold(event, tt, 1).await.unwrap());
    }
    // Every buyer sends its checkout twice with one key, once to each instance, all at once.
    let requests = holds.iter().enumerate().flat_map(|(i, hold)| {
        let secret = hold.secret.clone().unwrap();
        [0, 1].map(|n| {
            let (api, secret, id) = (app.api_on(n).with_key(&format!("checkout-{i}")), secret.clone(), hold.id);
            async move { (id, api.checkout(id, &secret).await) }
        })
    });
    let answers = join_all(requests).await;

    assert_eq!(count(&app, "orders").await, 60, "one order per hold");
    assert_eq!(count(&app, "payments").await, 60, "one first attempt per order");
    for (i, hold) in holds.iter().enumerate() {
        let order: Uuid = sqlx::query_scalar("SELECT id FROM orders WHERE hold_id = $1")
            .bind(hold.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let mine: Vec<_> = answers.iter().filter(|(id, _)| *id == hold.id).map(|(_, a)| a).collect();
        for a in &mine {
            assert!(
                a.as_ref().is_ok_and(|c| c.order.id == order)
                    || a.as_ref().is_err_and(|e| e.status == 409 && e.code == "idempotency_key_in_use"),
                "{a:?}"
            );
        }
        let bodies: Vec<_> = mine.iter().filter_map(|a| a.as_ref().ok()).map(|c| &c.body).collect();
        assert!(!bodies.is_empty() && bodies.windows(2).all(|w| w[0] == w[1]), "one answer per key: {bodies:?}");
        let replay = app.api_on(1).with_key(&format!("checkout-{i}"));
        let replay = replay.checkout(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
        assert_eq!(replay.headers["idempotent-replayed"], "true");
        assert_eq!(&replay.body, bodies[0]);
    }
    assert_eq!(app.sold_and_held(tt).await, (0, 60), "checkouts move no seats");
}

/// Counts rows of a table in the test's database.
async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_instance_dies_after_its_commit_is_replayed_not_taken_twice() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let body = ada(tt, 2);
    let mut doomed = NtsProcess::start(&app.db.url, &[("NTS_DEBUG_STALL_AFTER", "hold")]);
    // Its answer never comes: the process is killed.
    let (doomed_api, forgotten) = (doomed.api().with_key("crash-hold"), body.clone());
    tokio::spawn(async move { doomed_api.create_hold(event, &forgotten).await });
    app.eventually(60, || async { count(&app, "holds").await == 1 }).await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    let retry = app.api_on(0).with_key("crash-hold").create_hold(event, &body).await.unwrap();
    let held: Uuid = sqlx::query_scalar("SELECT id FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(retry.id, held, "the retry answers the hold its first request made");
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert!(retry.secret.as_deref().is_some_and(|s| !s.is_empty()));
    assert_eq!(count(&app, "holds").await, 1);
    assert_eq!(app.sold_and_held(tt).await, (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_instance_dies_after_its_commit_is_replayed() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let hold = app.hold(event, tt, 1).await.unwrap();
    let secret = hold.secret.clone().unwrap();
    let mut doomed = NtsProcess::start(&app.db.url, &[("NTS_DEBUG_STALL_AFTER", "checkout")]);
    // Its answer never comes: the process is killed.
    let (doomed_api, hold_id, forgotten) = (doomed.api().with_key("crash-checkout"), hold.id, secret.clone());
    tokio::spawn(async move { doomed_api.checkout(hold_id, &forgotten).await });
    app.eventually(60, || async { count(&app, "orders").await == 1 }).await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    let retry = app.api_on(0).with_key("crash-checkout").checkout(hold.id, &secret).await.unwrap();
    let order: Uuid = sqlx::query_scalar("SELECT id FROM orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!(retry.order.id, order);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert!(retry.order.secret.is_some());
    assert_eq!((count(&app, "orders").await, count(&app, "payments").await), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_instance_died_is_resumed_by_the_next_retry_not_refused_for_a_minute() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let checkout = app.checkout(event, tt, 1).await;
    let order = checkout.order.id;
    let secret = checkout.order.secret.clone().unwrap();
    let mut doomed = NtsProcess::start(&app.db.url, &[("NTS_DEBUG_STALL_AFTER", "payment")]);
    // Its answer never comes: the process is killed.
    let (doomed_api, forgotten) = (doomed.api().with_key("crash-pay"), secret.clone());
    tokio::spawn(async move { doomed_api.create_payment(order, &forgotten, &PaymentRequest::default()).await });
    // The new attempt exists and its provider object was made: the request is
    // past its effect and has not answered.
    app.eventually(60, || async {
        let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE provider_ref IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        count(&app, "payments").await == 2 && made == 2
    })
    .await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    // The claim's instance is dead: retries are answered once its lease runs
    // out (about 2 s), not `in_use` until a minute has passed.
    let keyed = app.api_on(0).with_key("crash-pay");
    let killed = std::time::Instant::now();
    let answer = loop {
        let a = keyed.create_payment(order, &secret, &PaymentRequest::default()).await;
        if !a.as_ref().is_err_and(|e| e.status == 409) {
            break a;
        }
        a.expect_error(409, "idempotency_key_in_use");
        assert!(killed.elapsed() < std::time::Duration::from_secs(30), "still in use 30 s after the kill");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let second: Uuid =
        sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1 ORDER BY created_at DESC LIMIT 1")
            .bind(order)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let answer = answer.unwrap();
    assert_eq!(answer.id, second, "the retry carries on with the attempt already made");
    assert_eq!(count(&app, "payments").await, 2, "no second attempt");
    let again = keyed.create_payment(order, &secret, &PaymentRequest::default()).await.unwrap();
    assert_eq!(again.body, answer.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_provider_call_keeps_its_key_in_use_on_every_instance() {
    let mut app = spawn_app_with(&[("NTS_SIM_SLOW_RATE", "1"), ("NTS_SIM_SLOW_MS", "1500")]).await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let checkout = app.checkout(event, tt, 1).await;
    let order = checkout.order.id;
    let secret = checkout.order.secret.clone().unwrap();
    let first = {
        let (keyed, secret) = (app.api_on(0).with_key("slow"), secret.clone());
        tokio::spawn(async move { keyed.create_payment(order, &secret, &PaymentRequest::default()).await })
    };
    // Cancelling the open attempt and creating the new one take several slow
    // provider calls, longer than an instance's lease. Retries start once the
    // first request has claimed its key.
    app.eventually(60, || async { count(&app, "idempotency_keys").await == 1 }).await;
    let keyed = app.api_on(1).with_key("slow");
    let mut retries = 0;
    loop {
        let retry = keyed.create_payment(order, &secret, &PaymentRequest::default()).await;
        if retry.is_ok() {
            break; // the first request has answered: this is its replay
        }
        retry.expect_error(409, "idempotency_key_in_use");
        retries += 1;
        if first.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(retries > 0, "the first request ended before any retry");
    let first = first.await.unwrap().unwrap();
    let replay = keyed.create_payment(order, &secret, &PaymentRequest::default()).await.unwrap();
    assert_eq!(replay.body, first.body);
    assert_eq!(count(&app, "payments").await, 2, "the first attempt and the one this key made");
}

/// The point is the path written otherwise: raw requests.
#[tokio::test]
async fn the_same_key_on_the_same_route_written_otherwise_replays() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let keyed = app.api_on(0).with_key("case");
    let body = json!({"ticket_type_id": tt, "quantity": 1, "name": "Ada", "email": "ada@example.com"});
    let event = event.to_string();
    let first = keyed.send_json(Method::POST, &format!("/api/v1/events/{event}/holds"), Some(&body), None).await;
    let upper = format!("/api/v1/events/{}/holds", event.to_uppercase());
    let again = keyed.send_json(Method::POST, &upper, Some(&body), None).await;
    assert_eq!(again.expect(201), first.expect(201));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let simple = format!("/api/v1/events/{}/holds", event.replace('-', ""));
    let third = keyed.send_json(Method::POST, &simple, Some(&body), None).await;
    assert_eq!(third.expect(201), first.expect(201));
    assert_eq!(count(&app, "holds").await, 1);
    assert_eq!(app.sold_and_held(tt).await, (0, 1));
}

#[tokio::test]
async fn a_refused_hold_is_replayed_with_its_refusal_even_after_seats_come_back() {
    let app = spawn_app_with(&[("NTS_MAX_UNPAID_PER_ADDRESS", "1")]).await;
    let (event, tt) = app.simple_event(50, 4).await;
    let first = app.api_on(0).with_key("cap-1").create_hold(event, &ada(tt, 1)).await.unwrap();
    let capped = app.api_on(0).with_key("cap-2");
    capped.create_hold(event, &ada(tt, 1)).await.expect_error(409, "too_many_unpaid");
    app.api().release_hold(first.id, first.secret.as_deref().unwrap()).await.unwrap();
    let replay = capped.create_hold(event, &ada(tt, 1)).await.expect_error(409, "too_many_unpaid");
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(app.sold_and_held(tt).await, (0, 0));
}

#[tokio::test]
async fn a_keyed_payment_confirmation_replays_its_answer_and_refuses_another_outcome() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(50, 4).await;
    let c = app.checkout(event, tt, 1).await;
    let secret = c.order.secret.clone().unwrap();
    let path = format!("/api/v1/payments/simulated/{}/confirm", c.payment.unwrap().id);
    let keyed = app.api_on(0).with_key("pay");
    let confirm = |outcome: &'static str| {
        let keyed = keyed.clone();
        let (path, secret) = (path.clone(), secret.clone());
        async move { keyed.send_json(Method::POST, &path, Some(&json!({ "outcome": outcome })), Some(&secret)).await }
    };
    let paid = confirm("succeeded").await;
    assert_eq!(paid.expect(200)["status"], "succeeded");
    assert!(!paid.headers.contains_key("idempotent-replayed"));
    // Its answer is stored: nothing is left claimed.
    let claimed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE response_status IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(claimed, 0);
    let again = confirm("succeeded").await;
    assert_eq!(again.expect(200), paid.expect(200));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(confirm("declined").await.code(), "idempotency_key_reused");
    assert_eq!(app.sold_and_held(tt).await, (1, 0));
}

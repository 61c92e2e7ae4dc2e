//! Holds and orders of several ticket types at once ("lines").

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use nts_testkit::wire::{
    ErrorBody, LineRequest, LinesHoldRequest, NewEvent, NewTicketType, OrderStatus, Shortfall, SimulatedOutcome,
};
use nts_testkit::{spawn_app, spawn_app_with, Expect, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

/// An event with Adult (15.00) and Child (7.00) tickets; answers (event, adult, child).
async fn family_event(app: &TestApp, child_capacity: i64, max_tickets_per_order: Option<i64>) -> (Uuid, Uuid, Uuid) {
    let ticket_type = |name: &str, price_minor, capacity| NewTicketType {
        name: name.into(),
        price_minor,
        capacity,
        max_per_order: 4,
    };
    let event = NewEvent {
        name: "Family day".into(),
        venue: "The Park".into(),
        currency: "GBP".into(),
        starts_at: datetime!(2099-01-01 20:00 UTC),
        ticket_types: vec![ticket_type("Adult", 1500, 10), ticket_type("Child", 700, child_capacity)],
        max_tickets_per_order,
    };
    let e = app.api().create_event(&event).await.expect("the event is created").body;
    (e.id, e.ticket_types[0].id, e.ticket_types[1].id)
}

fn family(lines: &[(Uuid, i64)]) -> LinesHoldRequest {
    LinesHoldRequest {
        lines: lines.iter().map(|&(ticket_type_id, quantity)| LineRequest { ticket_type_id, quantity }).collect(),
        name: "Grace Hopper".into(),
        email: "grace@example.com".into(),
    }
}

#[tokio::test]
async fn a_family_holds_two_types_in_one_hold_pays_once_and_is_refunded_whole() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, adult, child) = family_event(&app, 10, None).await;

    let hold = api.create_lines_hold(event, &family(&[(adult, 2), (child, 1)])).await.expect_status(201);
    assert_eq!((hold.quantity, hold.amount_minor, hold.ticket_type_id), (3, 3700, None));
    let lines: Vec<(Uuid, &str, i32, i64, i64)> = hold
        .lines
        .iter()
        .map(|l| (l.ticket_type_id, l.ticket_type_name.as_str(), l.quantity, l.unit_price_minor, l.amount_minor))
        .collect();
    assert_eq!(lines, [(adult, "Adult", 2, 1500, 3000), (child, "Child", 1, 700, 700)]);
    assert_eq!((app.sold_and_held(adult).await, app.sold_and_held(child).await), ((0, 2), (0, 1)));
    let seen = api.hold(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
    assert_eq!(seen.lines, hold.lines);

    let checkout = api.checkout(hold.id, hold.secret.as_deref().unwrap()).await.unwrap();
    assert_eq!(checkout.order.lines, hold.lines);
    let payment = checkout.payment.clone().expect("a simulated payment");
    assert_eq!((payment.amount_minor, payment.currency.as_str()), (3700, "GBP"));
    let secret = checkout.order.secret.as_deref().unwrap();
    app.confirm(payment.id, secret, SimulatedOutcome::Succeeded).await.expect_status(200);

    let order = api.order(checkout.order.id, secret).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    let types: Vec<&str> = order.tickets.iter().map(|t| t.ticket_type_name.as_str()).collect();
    assert_eq!(types, ["Adult", "Adult", "Child"]);
    assert_eq!(order.tickets.iter().filter(|t| t.ticket_type_id == child).count(), 1);
    assert_eq!((app.sold_and_held(adult).await, app.sold_and_held(child).await), ((2, 0), (1, 0)));

    let sales = api.admin_events().await.unwrap().body.into_iter().find(|e| e.id == event).unwrap();
    let per_type: Vec<(i32, i64)> = sales.ticket_types.iter().map(|t| (t.sold, t.revenue_minor)).collect();
    assert_eq!((per_type, sales.revenue_minor), (vec![(2, 3000), (1, 700)], 3700));
    let guests = api.guests(event).await.unwrap();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].ticket_types, ["Adult", "Adult", "Child"]);
    assert_eq!(guests[0].tickets, order.tickets.iter().map(|t| t.code.clone()).collect::<Vec<_>>());
    let csv = api
        .raw(Method::GET, &format!("/api/v1/admin/events/{event}/guests?format=csv"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for t in &order.tickets {
        let row = csv.lines().find(|l| l.contains(&t.code)).expect("a row per ticket");
        assert!(row.contains(&format!(",{},", t.ticket_type_name)), "{row}");
    }

    let refund = api.refund(order.id, true).await.expect_status(200);
    assert!(refund.seats_released);
    assert_eq!((app.sold_and_held(adult).await, app.sold_and_held(child).await), ((0, 0), (0, 0)));
    let event_view = api.event(event).await.unwrap();
    let available: Vec<i32> = event_view.ticket_types.iter().map(|t| t.available).collect();
    assert_eq!(available, [10, 10]);
}

#[tokio::test]
async fn all_lines_are_held_or_none_and_sold_out_names_the_lines_that_did_not_fit() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, adult, child) = family_event(&app, 1, None).await;

    let e = api.create_lines_hold(event, &family(&[(adult, 2), (child, 2)])).await.expect_error(409, "sold_out");
    let body: ErrorBody = serde_json::from_str(&e.body).unwrap();
    assert_eq!(body.lines, [Shortfall { ticket_type_id: child, requested: 2, available: 1 }]);
    assert_eq!((app.sold_and_held(adult).await, app.sold_and_held(child).await), ((0, 0), (0, 0)));
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 0, "nothing was held");

    api.create_lines_hold(event, &family(&[(adult, 2), (child, 1)])).await.expect_status(201);
    // A single-type sold out says which type too.
    let e = app.hold(event, child, 1).await.expect_error(409, "sold_out");
    let body: ErrorBody = serde_json::from_str(&e.body).unwrap();
    assert_eq!(body.lines, [Shortfall { ticket_type_id: child, requested: 1, available: 0 }]);
}

#[tokio::test]
async fn per_line_and_per_order_limits_and_malformed_lines_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, adult, child) = family_event(&app, 10, Some(5)).await;
    let (_, other_event_type) = app.simple_event(10, 4).await;
    assert_eq!(api.event(event).await.unwrap().max_tickets_per_order, Some(5));
    let path = format!("/api/v1/events/{event}/holds");
    let line = |t: Uuid, q: i64| json!({"ticket_type_id": t, "quantity": q});
    let body = |lines: serde_json::Value| json!({"lines": lines, "name": "Grace", "email": "grace@example.com"});
    let cases = [
        (body(json!([line(adult, 5)])), "a line past its type's max_per_order"),
        (body(json!([line(adult, 4), line(child, 2)])), "the order past the event's max_tickets_per_order"),
        (body(json!([line(adult, 1), line(adult, 1)])), "a type twice"),
        (body(json!([])), "no lines"),
        (body(json!([line(adult, 0)])), "quantity 0"),
        (body(json!([line(adult, 1), line(other_event_type, 1)])), "a type of another event"),
        (body(json!([line(adult, 1), line(Uuid::new_v4(), 1)])), "an unknown type"),
        (body(json!((0..21).map(|_| line(Uuid::new_v4(), 1)).collect::<Vec<_>>())), "21 lines"),
        (
            json!({"lines": [line(adult, 1)], "ticket_type_id": adult, "quantity": 1, "name": "G", "email": "g@example.com"}),
            "both forms at once",
        ),
        (json!({"name": "G", "email": "g@example.com"}), "neither form"),
        (json!({"ticket_type_id": adult, "name": "G", "email": "g@example.com"}), "a type without a quantity"),
    ];
    for (body, why) in cases {
        let answer = api.send_json(Method::POST, &path, Some(&body), None).await;
        assert_eq!(answer.status.as_u16(), 422, "{why}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed", "{why}");
    }
    assert_eq!((app.sold_and_held(adult).await, app.sold_and_held(child).await), ((0, 0), (0, 0)));
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 0);

    // At the limits: allowed. The one-type body still works, as one line.
    api.create_lines_hold(event, &family(&[(adult, 4), (child, 1)])).await.expect_status(201);
    let old = app.hold(event, child, 2).await.expect_status(201);
    assert_eq!((old.ticket_type_id, old.ticket_type_name.as_deref()), (Some(child), Some("Child")));
    assert_eq!(old.lines.len(), 1);
    assert_eq!((old.lines[0].ticket_type_id, old.lines[0].quantity, old.amount_minor), (child, 2, 1400));
}

/// Holds naming the same types in every order, releases and expiries (which
/// move the counters of several types in one statement), all at once on two
/// instances: no deadlock is ever detected, every answer is a hold or
/// `sold_out`, and the counters agree with the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_type_holds_in_any_order_on_two_instances_never_deadlock() {
    let mut app = spawn_app_with(&[("NTS_HOLD_SECONDS", "2"), ("NTS_RECONCILE_MS", "50")]).await;
    app.start_instance().await;
    let e = app.create_event(&[("A", 100, 150, 4), ("B", 100, 150, 4), ("C", 100, 150, 4)]).await;
    let types: Vec<Uuid> = e.ticket_types.iter().map(|t| t.id).collect();
    let deadlocks = || async {
        sqlx::query_scalar::<_, i64>("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = deadlocks().await;
    let apis = [app.api_on(0), app.api_on(1)];
    let orders: [[usize; 3]; 6] = [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1], [0, 2, 1], [1, 2, 0]];
    let mut answers = Vec::new();
    for round in 0..3 {
        let buyers = (0..240).map(|i| {
            let api = &apis[i % 2];
            let order = orders[(i + round) % 6];
            let picked: Vec<(Uuid, i64)> =
                order.iter().take(1 + i % 3).map(|&t| (types[t], 1 + (i / 3 % 2) as i64)).collect();
            async move {
                let answer = api.create_lines_hold(e.id, &family(&picked)).await;
                if let Ok(hold) = &answer {
                    if i % 4 == 0 {
                        api.release_hold(hold.id, hold.secret.as_deref().unwrap()).await.expect_status(200);
                    }
                }
                answer.map(|h| h.body).map_err(|e| (e.status.as_u16(), e.code))
            }
        });
        answers.extend(join_all(buyers).await);
        // Let some expire, so that sweeps run alongside the next round's holds.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let other: Vec<_> =
        answers.iter().filter_map(|a| a.as_ref().err()).filter(|e| **e != (409, "sold_out".into())).collect();
    assert!(other.is_empty(), "every answer is a hold or sold_out: {other:?}");
    assert!(answers.iter().filter(|a| a.is_ok()).count() > 100, "most were held");

    let counters_match = || async {
        let rows: Vec<(Uuid, i32, i64)> = sqlx::query_as(
            "SELECT t.id, t.held, COALESCE((SELECT SUM(l.quantity) FROM holds h JOIN hold_lines l ON l.hold_id = h.id
                                            WHERE l.ticket_type_id = t.id AND h.status = 'active'), 0)
             FROM ticket_types t WHERE t.event_id = $1",
        )
        .bind(e.id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        rows.iter().all(|(_, held, rows)| i64::from(*held) == *rows && *held <= 150)
    };
    assert!(counters_match().await, "held == seats in active holds, per type");
    app.eventually(10, || async {
        let held: HashMap<Uuid, (i32, i32)> =
            join_all(types.iter().map(|t| async { (*t, app.sold_and_held(*t).await) })).await.into_iter().collect();
        held.values().all(|&v| v == (0, 0))
    })
    .await;
    // A detected deadlock is counted once its backend reports its statistics (within a second or so of idling).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(deadlocks().await, before, "PostgreSQL detected a deadlock");
}

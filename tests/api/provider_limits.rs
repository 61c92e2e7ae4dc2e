//! Amounts Stripe cannot charge, and free orders: an event whose prices or
//! largest order Stripe refuses is refused at creation (under Stripe only); a
//! refusal of the amount by the provider is the buyer's 422, not a "retry";
//! an order of total zero is paid at checkout without the provider.

use futures_util::future::join_all;
use nts_testkit::wire::{
    HoldRequest, LineRequest, LinesHoldRequest, MismatchKind, NewEvent, NewTicketType, OrderStatus, PaymentStatus,
    SimulatedOutcome,
};
use nts_testkit::{spawn_app, Expect, TestApp};
use uuid::Uuid;

use crate::stripe_emulator::*;

fn event_of(currency: &str, types: &[(&str, i64, i64)], per_order: Option<i64>) -> NewEvent {
    NewEvent {
        max_tickets_per_order: per_order,
        name: "Limits".into(),
        venue: "Hall".into(),
        currency: currency.into(),
        starts_at: time::OffsetDateTime::now_utc() + time::Duration::days(30),
        ticket_types: types
            .iter()
            .map(|&(name, price_minor, max_per_order)| NewTicketType {
                name: name.into(),
                price_minor,
                capacity: 1000,
                max_per_order,
            })
            .collect(),
    }
}

/// Events Stripe could not be paid for: 0.10 GBP; 100 × 20,000 kr (Stripe's
/// amount, ×100, has nine digits); two types each fine alone, over the maximum
/// together within the event's cap.
fn unchargeable() -> [(NewEvent, &'static str, &'static str); 3] {
    [
        (event_of("GBP", &[("Cheap seat", 10, 4)], None), "amount_below_provider_minimum", "Cheap seat"),
        (event_of("ISK", &[("Gala", 20_000, 100)], None), "amount_above_provider_maximum", "Gala"),
        (
            event_of("ISK", &[("Front", 9_000, 60), ("Back", 8_000, 60)], Some(120)),
            "amount_above_provider_maximum",
            "Back",
        ),
    ]
}

/// Events Stripe can be paid for: free, its minimum, its maximum exactly
/// (9,999 kr × 100 is Stripe's 99,990,000), and the two types of above with
/// an event cap that keeps every order under the maximum.
fn chargeable() -> [NewEvent; 4] {
    [
        event_of("GBP", &[("Free", 0, 10), ("Standing", 30, 10)], None),
        event_of("ISK", &[("Gala", 9_999, 100)], None),
        event_of("JPY", &[("Seat", 50, 100)], None),
        event_of("ISK", &[("Front", 9_000, 60), ("Back", 8_000, 60)], Some(110)),
    ]
}

async fn event_count(app: &TestApp) -> usize {
    app.api().admin_events().await.expect_status(200).len()
}

#[tokio::test]
async fn under_stripe_prices_and_orders_it_cannot_charge_are_refused_at_event_creation() {
    let (app, _stripe) = spawn_stripe_app(&[], false).await;
    for (event, code, names) in unchargeable() {
        let refused = app.api().create_event(&event).await.expect_error(422, code);
        assert!(refused.message.contains(names), "the message names the ticket type: {}", refused.message);
        assert!(refused.message.contains("Stripe"), "{}", refused.message);
    }
    assert_eq!(event_count(&app).await, 0, "nothing was stored");
    let below = app.api().create_event(&unchargeable()[0].0).await.expect_error(422, "amount_below_provider_minimum");
    assert!(below.message.contains("GBP 0.30"), "the message names the minimum: {}", below.message);
    let above = app.api().create_event(&unchargeable()[1].0).await.expect_error(422, "amount_above_provider_maximum");
    assert!(above.message.contains("ISK 999999"), "the message names the maximum: {}", above.message);
    for event in chargeable() {
        app.api().create_event(&event).await.expect_status(201);
    }
    assert_eq!(event_count(&app).await, 4);
}

#[tokio::test]
async fn the_simulated_gateway_has_no_such_limits() {
    let app = spawn_app().await;
    for (event, _, _) in unchargeable() {
        app.api().create_event(&event).await.expect_status(201);
    }
    for event in chargeable() {
        app.api().create_event(&event).await.expect_status(201);
    }
    assert_eq!(event_count(&app).await, 7);
}

#[tokio::test]
async fn stripe_refusing_the_amount_is_the_buyers_422_and_the_organiser_sees_it() {
    let (app, stripe) = spawn_stripe_app(&[], true).await;
    let (event, tt) = app.simple_event(10, 4).await;
    // An event from before nts knew Stripe's minimums (or one Stripe refuses
    // after converting to the account's currency): 0.10 GBP.
    sqlx::query("UPDATE ticket_types SET price_minor = 10 WHERE id = $1").bind(tt).execute(&app.pool).await.unwrap();
    let order = app.checkout(event, tt, 1).await.order;
    let secret = order.secret.clone().unwrap();

    let refused = pay(&app, 0, order.id, &secret, "pm_card_visa").await.expect_error(422, "amount_too_small");
    assert!(!refused.message.contains("retry"), "{}", refused.message);
    let payment: (String, Option<String>) =
        sqlx::query_as("SELECT status::text, failure_code FROM payments WHERE order_id = $1")
            .bind(order.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(payment, ("failed".into(), Some("amount_too_small".into())));
    assert!(stripe.intents_of(order.id).await.is_empty(), "Stripe made no PaymentIntent");
    let seen = app.api().order(order.id, &secret).await.expect_status(200);
    assert_eq!(seen.payment.as_ref().unwrap().failure_code.as_deref(), Some("amount_too_small"));

    // Asked again, the same answer: never a 503 to retry.
    pay(&app, 1, order.id, &secret, "pm_card_visa").await.expect_error(422, "amount_too_small");
    let report = audit(&app).await;
    let kinds: Vec<MismatchKind> = report.mismatches.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MismatchKind::AmountNotChargeable; 2], "{report:#?}");
    assert!(report.mismatches.iter().all(|m| m.order_id == Some(order.id)));
}

/// A free ticket type (and a paid one) on a fresh event; answers (event, free type, paid type).
async fn free_event(app: &TestApp, capacity: i64) -> (Uuid, Uuid, Uuid) {
    let event = app.create_event(&[("Free", 0, capacity, 4), ("Paid", 999, capacity, 4)]).await;
    (event.id, event.ticket_types[0].id, event.ticket_types[1].id)
}

async fn count(app: &TestApp, sql: &str, order: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(order).fetch_one(&app.pool).await.unwrap()
}

/// A free order at checkout: paid, with its tickets and its e-mail, its seats
/// sold, no payment and nothing at the provider; refunded by an admin
/// without the provider.
async fn free_order_is_paid_at_checkout(app: &TestApp) -> Uuid {
    let (event, free, _) = free_event(app, 10).await;
    let hold = app.hold(event, free, 2).await.expect_status(201);
    let secret = hold.secret.clone().unwrap();
    let checkout = app.api().checkout(hold.id, &secret).await.expect_status(201);
    let order = &checkout.order;
    assert_eq!(order.status, OrderStatus::Paid, "{checkout:?}");
    assert!(order.paid_at.is_some());
    assert_eq!(order.amount_minor, 0);
    assert_eq!(order.tickets.len(), 2);
    assert!(order.tickets.iter().all(|t| t.ticket_type_id == free && t.ticket_type_name == "Free"));
    assert!(checkout.payment.is_none() && order.payment.is_none(), "no payment attempt");
    assert_eq!(app.sold_and_held(free).await, (2, 0));
    assert_eq!(count(app, "SELECT COUNT(*) FROM payments WHERE order_id = $1", order.id).await, 0);
    let mail = "SELECT COUNT(*) FROM mail_outbox WHERE order_id = $1 AND kind = 'order_paid'";
    assert_eq!(count(app, mail, order.id).await, 1);

    // The buyer's page and a repeated checkout show the same paid order.
    let again = app.api().checkout(hold.id, &secret).await.expect_status(201);
    assert_eq!((again.order.id, again.order.status), (order.id, OrderStatus::Paid));
    assert_eq!(again.order.tickets, order.tickets);
    let order_secret = order.secret.clone().unwrap();
    let seen = app.api().order(order.id, &order_secret).await.expect_status(200);
    assert_eq!(seen.tickets, order.tickets);
    assert_eq!(app.sold_and_held(free).await, (2, 0), "sold once");
    assert_eq!(count(app, mail, order.id).await, 1, "one e-mail");

    let audit = app.api().payments_audit().await.expect_status(200).body;
    assert_eq!(audit.mismatches, [], "a free order is not money without a payment");
    let refunded = app.api().refund(order.id, true).await.expect_status(200);
    assert_eq!((refunded.payment_id, refunded.payment_status), (None, None));
    let status: String = sqlx::query_scalar("SELECT status::text FROM orders WHERE id = $1")
        .bind(order.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "refunded");
    assert_eq!(app.sold_and_held(free).await, (0, 0), "the seats are back on sale");
    order.id
}

#[tokio::test]
async fn a_free_order_is_paid_at_checkout_under_the_simulated_gateway() {
    let app = spawn_app().await;
    free_order_is_paid_at_checkout(&app).await;
    let intents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents").fetch_one(&app.pool).await.unwrap();
    assert_eq!(intents, 0, "the provider was not called");
}

#[tokio::test]
async fn a_free_order_is_paid_at_checkout_under_stripe_without_a_payment_intent() {
    let (app, stripe) = spawn_stripe_app(&[], false).await;
    free_order_is_paid_at_checkout(&app).await;
    assert!(stripe.payment_intents().await.is_empty());
    // The audit lists; nothing was created, confirmed or refunded.
    let calls = stripe.calls().await;
    assert!(calls.iter().all(|c| c["method"] != "POST"), "nothing was sent to Stripe: {calls:?}");
}

#[tokio::test]
async fn a_mixed_cart_is_charged_for_its_paid_part_only() {
    let app = spawn_app().await;
    let (event, free, paid) = free_event(&app, 10).await;
    let lines =
        vec![LineRequest { ticket_type_id: free, quantity: 2 }, LineRequest { ticket_type_id: paid, quantity: 1 }];
    let cart = LinesHoldRequest { lines, name: "Ada".into(), email: "ada@example.com".into() };
    let hold = app.api().create_lines_hold(event, &cart).await.expect_status(201);
    let checkout = app.api().checkout(hold.id, hold.secret.as_deref().unwrap()).await.expect_status(201).body;
    assert_eq!(checkout.order.status, OrderStatus::AwaitingPayment);
    let payment = checkout.payment.expect("a first attempt for the paid part");
    assert_eq!(payment.amount_minor, 999);
    let secret = checkout.order.secret.unwrap();
    let done = app.confirm(payment.id, &secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    assert_eq!(done.status, PaymentStatus::Succeeded);
    let order = app.api().order(checkout.order.id, &secret).await.expect_status(200);
    assert_eq!((order.status, order.tickets.len()), (OrderStatus::Paid, 3));
    assert_eq!((app.sold_and_held(free).await, app.sold_and_held(paid).await), ((2, 0), (1, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_free_checkouts_sell_exactly_what_was_held() {
    let mut app = spawn_app().await;
    app.start_instance().await;
    let event = app.create_event(&[("Free", 0, 200, 4)]).await;
    let (event, free) = (event.id, event.ticket_types[0].id);
    let apis = [app.api_on(0), app.api_on(1)];
    let mut holds = Vec::new();
    for i in 0..50 {
        let body = HoldRequest {
            ticket_type_id: free,
            quantity: 1 + i % 3,
            name: "Buyer".into(),
            email: format!("buyer{i}@example.com"),
        };
        holds.push(apis[0].create_hold(event, &body).await.expect_status(201).body);
    }
    let held: i32 = holds.iter().map(|h| h.quantity).sum();
    assert_eq!(app.sold_and_held(free).await, (0, held));
    // Each checkout twice, on both instances at once.
    let checkouts = join_all(holds.iter().flat_map(|h| {
        let secret = h.secret.clone().unwrap();
        [0, 1].map(|i| {
            let (api, secret) = (apis[i].clone(), secret.clone());
            async move { api.checkout(h.id, &secret).await.expect_status(201).body }
        })
    }))
    .await;
    assert!(checkouts.iter().all(|c| c.order.status == OrderStatus::Paid));
    assert_eq!(app.sold_and_held(free).await, (held, 0), "sold exactly what was held");
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(&app.pool).await.unwrap();
    let mails: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox WHERE kind = 'order_paid'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let orders: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'paid'").fetch_one(&app.pool).await.unwrap();
    assert_eq!((tickets, mails, orders), (held as i64, 50, 50));
}

//! The steps most tests start with: an event on sale, a hold, a checkout, a payment.

use time::macros::datetime;
use uuid::Uuid;

use crate::app::TestApp;
use crate::client::wire::*;
use crate::client::{ApiResult, Expect};

impl TestApp {
    /// Creates an event (GBP, in 2099) through the admin API; `ticket_types` are (name, price, capacity, max per order).
    pub async fn create_event(&self, ticket_types: &[(&str, i64, i64, i64)]) -> AdminEvent {
        let ticket_types = ticket_types
            .iter()
            .map(|&(name, price_minor, capacity, max_per_order)| NewTicketType {
                name: name.to_owned(),
                price_minor,
                capacity,
                max_per_order,
            })
            .collect();
        let event = NewEvent {
            max_tickets_per_order: None,
            name: "Test night".into(),
            venue: "The Hall".into(),
            currency: "GBP".into(),
            starts_at: datetime!(2099-01-01 20:00 UTC),
            ticket_types,
        };
        self.api().create_event(&event).await.expect("the event is created").body
    }

    /// An event with one ticket type at 9.99; answers (event id, ticket type id).
    pub async fn simple_event(&self, capacity: i64, max_per_order: i64) -> (Uuid, Uuid) {
        let e = self.create_event(&[("General", 999, capacity, max_per_order)]).await;
        (e.id, e.ticket_types[0].id)
    }

    /// Ada Lovelace holds `quantity` seats.
    pub async fn hold(&self, event: Uuid, ticket_type: Uuid, quantity: i64) -> ApiResult<Hold> {
        self.api().create_hold(event, &ada(ticket_type, quantity)).await
    }

    /// Hold + checkout; answers the checkout (order with its secret, payment).
    pub async fn checkout(&self, event: Uuid, ticket_type: Uuid, quantity: i64) -> Checkout {
        let hold = self.hold(event, ticket_type, quantity).await.expect("the hold is made");
        let secret = hold.secret.as_deref().expect("a new hold has its secret");
        self.api().checkout(hold.id, secret).await.expect("the checkout is made").body
    }

    /// A paid order of `quantity` tickets, as its buyer reads it (with `tickets[].code` and `signed_code`).
    pub async fn buy(&self, event: Uuid, ticket_type: Uuid, quantity: i64) -> Order {
        let c = self.checkout(event, ticket_type, quantity).await;
        let secret = c.order.secret.clone().expect("a new order has its secret");
        self.confirm(c.payment.expect("a simulated first attempt").id, &secret, SimulatedOutcome::Succeeded)
            .await
            .expect_status(200);
        let order = self.api().order(c.order.id, &secret).await.expect("the order").body;
        assert_eq!(order.status, OrderStatus::Paid);
        order
    }

    /// Answers the simulated provider's payment page for `payment`.
    pub async fn confirm(&self, payment: Uuid, order_secret: &str, outcome: SimulatedOutcome) -> ApiResult<Payment> {
        self.api().confirm_simulated(payment, order_secret, outcome).await
    }

    /// Seats available of the event's first ticket type, as the public API says.
    pub async fn available(&self, event: Uuid) -> i32 {
        self.api().event(event).await.expect("the event").ticket_types[0].available
    }
}

/// A hold request from Ada Lovelace.
pub fn ada(ticket_type_id: Uuid, quantity: i64) -> HoldRequest {
    HoldRequest { ticket_type_id, quantity, name: "Ada Lovelace".into(), email: "ada@example.com".into() }
}

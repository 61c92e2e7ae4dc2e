//! What a hold request is checked against, apart from the database: the
//! refusals in the order they are made, and first fit in arrival order.

use std::sync::Arc;

use uuid::Uuid;

use super::hoarding::Cap;
use crate::domain::{BuyerName, Email, Quantity};
use crate::idempotency::KeyContext;

/// A hold request with a parsed buyer and a quantity of at least 1; `take_seats`
/// checks it against its event and ticket type.
pub struct NewHold {
    pub event_id: Uuid,
    pub ticket_type_id: Uuid,
    pub quantity: Quantity,
    pub name: BuyerName,
    pub email: Email,
    /// The client address, as the rate limit sees it, for the hoarding caps.
    pub address: Option<String>,
    /// The request's Idempotency-Key: its answer is stored with the hold.
    pub key: Option<Arc<KeyContext>>,
}

/// Why a request gets no seats, in the order the checks are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoSuchEvent,
    NotThisEvent,
    TooMany {
        max_per_order: i32,
    },
    SalesClosed,
    /// The buyer has as many unpaid holds and orders as a cap allows.
    Capped(Cap),
    SoldOut,
}

/// What a request is checked against: `None` if the event does not exist;
/// `max_per_order` is `None` if the ticket type is not one of the event's.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub on_sale: bool,
    pub max_per_order: Option<i32>,
}

/// Everything but availability: why `quantity` seats of this ticket type cannot be held, if they cannot.
pub fn refusal(facts: Option<Facts>, quantity: i32) -> Option<Refusal> {
    let Some(facts) = facts else { return Some(Refusal::NoSuchEvent) };
    match facts.max_per_order {
        None => Some(Refusal::NotThisEvent),
        Some(max_per_order) if quantity > max_per_order => Some(Refusal::TooMany { max_per_order }),
        Some(_) if !facts.on_sale => Some(Refusal::SalesClosed),
        Some(_) => None,
    }
}

/// Which requests, in arrival order, fit in `free` seats when each takes what it asks if it can.
pub(super) fn first_fit(mut free: i32, quantities: impl Iterator<Item = i32>) -> Vec<bool> {
    quantities
        .map(|q| {
            let fits = q <= free;
            if fits {
                free -= q;
            }
            fits
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_serves_arrival_order_and_lets_later_smaller_requests_in() {
        assert_eq!(first_fit(5, [4, 3, 1].into_iter()), [true, false, true]);
        assert_eq!(first_fit(3, [1, 1, 1, 1].into_iter()), [true, true, true, false]);
        assert_eq!(first_fit(0, [1].into_iter()), [false]);
    }

    #[test]
    fn refusals_follow_the_order_of_the_checks() {
        let open = |max| Some(Facts { on_sale: true, max_per_order: max });
        let closed = |max| Some(Facts { on_sale: false, max_per_order: max });
        assert_eq!(refusal(None, 1), Some(Refusal::NoSuchEvent));
        assert_eq!(refusal(closed(None), 1), Some(Refusal::NotThisEvent));
        assert_eq!(refusal(closed(Some(4)), 5), Some(Refusal::TooMany { max_per_order: 4 }));
        assert_eq!(refusal(closed(Some(4)), 4), Some(Refusal::SalesClosed));
        assert_eq!(refusal(open(Some(4)), 4), None);
    }
}

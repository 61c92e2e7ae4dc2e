//! What a hold request is checked against, apart from the database: its
//! lines, the refusals in the order they are made, and first fit in arrival
//! order across the ticket types a request asks for.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::hoarding::{Cap, Origin, CAPPED};
use crate::domain::{BuyerName, Email, Quantity};
use crate::error::{ApiError, ErrorCode, Shortfall};
use crate::idempotency::KeyContext;

/// Seats of one ticket type in a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub ticket_type_id: Uuid,
    pub quantity: Quantity,
}

/// Most lines in one hold (an event has at most this many ticket types).
pub const MAX_LINES: usize = 20;

/// A hold's lines: 1 to [`MAX_LINES`], each ticket type at most once, in the buyer's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<Line>);

impl Lines {
    pub fn parse(lines: Vec<Line>) -> Result<Self, String> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(format!("lines must hold 1 to {MAX_LINES} ticket types"));
        }
        for (i, line) in lines.iter().enumerate() {
            if lines[..i].iter().any(|l| l.ticket_type_id == line.ticket_type_id) {
                return Err(format!(
                    "ticket type {} appears twice in lines; ask once with the whole quantity",
                    line.ticket_type_id
                ));
            }
        }
        Ok(Lines(lines))
    }

    pub fn one(ticket_type_id: Uuid, quantity: Quantity) -> Self {
        Lines(vec![Line { ticket_type_id, quantity }])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Line> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Line] {
        &self.0
    }

    /// Every ticket in the hold; saturates past any order's maximum.
    pub fn total(&self) -> i32 {
        self.0.iter().fold(0i32, |sum, l| sum.saturating_add(l.quantity.get()))
    }

    /// The one ticket type of a single-line hold.
    pub fn single_type(&self) -> Option<Uuid> {
        match self.0.as_slice() {
            [line] => Some(line.ticket_type_id),
            _ => None,
        }
    }
}

/// A hold request with a parsed buyer and lines; `take_seats` checks it
/// against its event and ticket types.
pub struct NewHold {
    pub event_id: Uuid,
    pub lines: Lines,
    pub name: BuyerName,
    pub email: Email,
    /// Where the request comes from, for the hoarding caps.
    pub origin: Option<Origin>,
    /// The request's Idempotency-Key: its answer is stored with the hold.
    pub key: Option<Arc<KeyContext>>,
}

/// Why a request gets no seats, in the order the checks are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSuchEvent,
    NotThisEvent {
        ticket_type_id: Uuid,
    },
    TooMany {
        ticket_type_id: Uuid,
        max_per_order: i32,
    },
    TooManyInOrder {
        max_tickets_per_order: i32,
    },
    SalesClosed,
    /// The buyer's address or network has as many unpaid holds and orders as a cap allows.
    Capped(Cap),
    /// These lines did not fit (the others did, but all or none are held).
    SoldOut(Vec<Shortfall>),
}

impl From<Refusal> for ApiError {
    fn from(why: Refusal) -> Self {
        match why {
            Refusal::NoSuchEvent => ApiError::NotFound("no such event"),
            Refusal::NotThisEvent { ticket_type_id } => {
                ApiError::validation(format!("{ticket_type_id} is not a ticket type of this event"))
            }
            Refusal::TooMany { ticket_type_id, max_per_order } => ApiError::validation(format!(
                "quantity must be at most {max_per_order} for ticket type {ticket_type_id}"
            )),
            Refusal::TooManyInOrder { max_tickets_per_order } => {
                ApiError::validation(format!("at most {max_tickets_per_order} tickets per order for this event"))
            }
            Refusal::SalesClosed => {
                ApiError::conflict(ErrorCode::SalesClosed, "this event has started; tickets are no longer on sale")
            }
            // One answer whatever the cap: a refusal tells nothing about which one, nor whose.
            Refusal::Capped(_) => ApiError::conflict(ErrorCode::TooManyUnpaid, CAPPED),
            Refusal::SoldOut(lines) => ApiError::SoldOut { lines },
        }
    }
}

/// What a request is checked against: its event, and the event's ticket
/// types the request names, as they are under the transaction's locks.
#[derive(Debug, Clone)]
pub struct Facts {
    pub event_name: String,
    pub currency: String,
    pub on_sale: bool,
    pub max_tickets_per_order: Option<i32>,
    pub types: HashMap<Uuid, TypeFacts>,
}

#[derive(Debug, Clone)]
pub struct TypeFacts {
    pub name: String,
    pub price_minor: i64,
    pub max_per_order: i32,
    /// Seats neither sold nor held, holds past their deadline counted free.
    pub free: i32,
}

/// Everything but availability: why these lines cannot be held, if they cannot
/// (`facts` is `None` when the event does not exist).
pub fn refusal(facts: Option<&Facts>, lines: &Lines) -> Option<Refusal> {
    let Some(facts) = facts else { return Some(Refusal::NoSuchEvent) };
    for line in lines.iter() {
        match facts.types.get(&line.ticket_type_id) {
            None => return Some(Refusal::NotThisEvent { ticket_type_id: line.ticket_type_id }),
            Some(t) if line.quantity.get() > t.max_per_order => {
                return Some(Refusal::TooMany { ticket_type_id: line.ticket_type_id, max_per_order: t.max_per_order })
            }
            Some(_) => {}
        }
    }
    match facts.max_tickets_per_order {
        Some(max) if lines.total() > max => Some(Refusal::TooManyInOrder { max_tickets_per_order: max }),
        _ if !facts.on_sale => Some(Refusal::SalesClosed),
        _ => None,
    }
}

/// Which requests, in arrival order, fit in the `free` seats of each type when
/// each takes all its lines if it can (and nothing if one line does not fit):
/// `Ok` for those that are granted, else the lines that did not fit.
pub(super) fn first_fit<'a>(
    free: &mut HashMap<Uuid, i32>,
    requests: impl Iterator<Item = &'a [Line]>,
) -> Vec<Result<(), Vec<Shortfall>>> {
    requests
        .map(|lines| {
            let short: Vec<Shortfall> = lines
                .iter()
                .filter_map(|l| {
                    let available = free.get(&l.ticket_type_id).copied().unwrap_or(0);
                    (l.quantity.get() > available).then_some(Shortfall {
                        ticket_type_id: l.ticket_type_id,
                        requested: l.quantity.get(),
                        available: available.max(0),
                    })
                })
                .collect();
            if short.is_empty() {
                for l in lines {
                    *free.entry(l.ticket_type_id).or_insert(0) -= l.quantity.get();
                }
                Ok(())
            } else {
                Err(short)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64) -> Quantity {
        Quantity::parse(n).unwrap()
    }

    fn line(t: Uuid, n: i64) -> Line {
        Line { ticket_type_id: t, quantity: q(n) }
    }

    fn lines(ls: &[Line]) -> Lines {
        Lines::parse(ls.to_vec()).unwrap()
    }

    #[test]
    fn first_fit_serves_arrival_order_and_lets_later_smaller_requests_in() {
        let t = Uuid::new_v4();
        let fit = |free: i32, qs: &[i64]| {
            let mut free = HashMap::from([(t, free)]);
            let requests: Vec<Vec<Line>> = qs.iter().map(|&n| vec![line(t, n)]).collect();
            first_fit(&mut free, requests.iter().map(Vec::as_slice)).iter().map(Result::is_ok).collect::<Vec<_>>()
        };
        assert_eq!(fit(5, &[4, 3, 1]), [true, false, true]);
        assert_eq!(fit(3, &[1, 1, 1, 1]), [true, true, true, false]);
        assert_eq!(fit(0, &[1]), [false]);
    }

    #[test]
    fn a_request_takes_all_its_lines_or_none_and_names_what_did_not_fit() {
        let (adult, child) = (Uuid::new_v4(), Uuid::new_v4());
        let mut free = HashMap::from([(adult, 3), (child, 1)]);
        let requests = [
            vec![line(adult, 2), line(child, 2)], // child does not fit: nothing taken
            vec![line(adult, 2), line(child, 1)], // fits
            vec![line(adult, 2)],                 // 1 adult left
            vec![line(adult, 1)],
        ];
        let got = first_fit(&mut free, requests.iter().map(Vec::as_slice));
        assert_eq!(got[0], Err(vec![Shortfall { ticket_type_id: child, requested: 2, available: 1 }]));
        assert_eq!(got[1], Ok(()));
        assert_eq!(got[2], Err(vec![Shortfall { ticket_type_id: adult, requested: 2, available: 1 }]));
        assert_eq!(got[3], Ok(()));
        assert_eq!(free, HashMap::from([(adult, 0), (child, 0)]));
    }

    #[test]
    fn lines_name_each_type_once() {
        let t = Uuid::new_v4();
        assert!(Lines::parse(vec![]).is_err());
        assert!(Lines::parse(vec![line(t, 1), line(t, 2)]).is_err());
        assert!(Lines::parse((0..=MAX_LINES).map(|_| line(Uuid::new_v4(), 1)).collect()).is_err());
        let lines = Lines::parse(vec![line(t, 2), line(Uuid::new_v4(), 3)]).unwrap();
        assert_eq!((lines.total(), lines.single_type()), (5, None));
        assert_eq!(Lines::one(t, q(4)).single_type(), Some(t));
    }

    #[test]
    fn refusals_follow_the_order_of_the_checks() {
        let (t, u) = (Uuid::new_v4(), Uuid::new_v4());
        let facts = |on_sale, per_order| Facts {
            event_name: "E".into(),
            currency: "GBP".into(),
            on_sale,
            max_tickets_per_order: per_order,
            types: HashMap::from([
                (t, TypeFacts { name: "A".into(), price_minor: 1, max_per_order: 4, free: 100 }),
                (u, TypeFacts { name: "B".into(), price_minor: 1, max_per_order: 4, free: 100 }),
            ]),
        };
        let other = Uuid::new_v4();
        assert_eq!(refusal(None, &lines(&[line(t, 1)])), Some(Refusal::NoSuchEvent));
        assert_eq!(
            refusal(Some(&facts(false, None)), &lines(&[line(t, 1), line(other, 1)])),
            Some(Refusal::NotThisEvent { ticket_type_id: other })
        );
        assert_eq!(
            refusal(Some(&facts(false, None)), &lines(&[line(t, 1), line(u, 5)])),
            Some(Refusal::TooMany { ticket_type_id: u, max_per_order: 4 })
        );
        assert_eq!(
            refusal(Some(&facts(false, Some(6))), &lines(&[line(t, 4), line(u, 3)])),
            Some(Refusal::TooManyInOrder { max_tickets_per_order: 6 })
        );
        assert_eq!(
            refusal(Some(&facts(false, Some(7))), &lines(&[line(t, 4), line(u, 3)])),
            Some(Refusal::SalesClosed)
        );
        assert_eq!(refusal(Some(&facts(true, Some(7))), &lines(&[line(t, 4), line(u, 3)])), None);
    }
}

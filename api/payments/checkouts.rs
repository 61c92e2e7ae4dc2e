//! Checkouts in group commits. A checkout turns a hold into an order, starts
//! its first payment attempt (simulated gateway), keeps the order's secret
//! for its e-mails and stores the request's Idempotency-Key with its answer:
//! five statements and a commit. In a flash sale many buyers check out at
//! once; concurrent checkouts in this instance join one queue and one
//! transaction makes all of them, with the same statements, each over many
//! rows.
//!
//! Nothing is given up:
//! - each hold is checked out by its own buyer's proof, as alone; the holds
//!   are locked in id order (see [`take_over_all`]), so batches of several
//!   instances that share holds cannot deadlock;
//! - a request's key commits with its order (atomic phases). If any key of a
//!   batch is stored already (a client's retry racing its first request),
//!   nothing of the batch commits: that request replays the stored answer
//!   and the others check out again, each alone;
//! - if a batch fails otherwise, each request checks out alone; a hold
//!   checked out already answers its existing order, so nothing is made twice.
//!
//! The provider is called after the commit, once for the batch's first
//! attempts (see [`PaymentService::send_first_attempts`]), outside the queue's
//! turn: the next batch does not wait for it.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::attempt::Attempt;
use super::paid::make_paid;
use super::service::PaymentService;
use crate::batching::{Batches, Member};
use crate::checkin::codes::EventKey;
use crate::domain::secret::hash_secret;
use crate::domain::status::OrderStatus;
use crate::domain::Money;
use crate::error::{ApiError, ErrorCode};
use crate::idempotency::{self, KeyContext};
use crate::mail::links::{self, LinkKey};
use crate::sales::checkout::{take_over_all, TakeOver};
use crate::sales::views::{CheckoutView, OrderView, TicketView};

/// Most checkouts in one transaction; more wait for the next one.
const MAX_BATCH: usize = 200;

/// One buyer's checkout of a hold.
#[derive(Clone)]
pub struct Checkout {
    pub hold_id: Uuid,
    /// The hash of the hold's secret, as the buyer presented it.
    pub hold_secret_hash: Vec<u8>,
    /// The new order's secret (derived from the hold's, so a repeated checkout hands out the same one).
    pub order_secret: String,
    pub key: Option<Arc<KeyContext>>,
}

/// What became of one checkout.
pub enum Outcome {
    /// The order was made: the answer's JSON body (stored with the key, if
    /// any), and its first attempt, which [`CheckoutBatcher::checkout`] has
    /// sent to the provider ([`CheckoutBatcher::checkout_all`] leaves that to its caller).
    Created { body: Vec<u8>, first: Option<Box<Attempt>> },
    /// The hold was not checked out by this request: it is not active, not
    /// live, not this buyer's, or was checked out already (maybe by a twin
    /// request in the same batch, which committed).
    NotTaken,
    /// The request's Idempotency-Key has an answer already: it is replayed.
    KeyTaken,
    /// Nothing of the batch committed: check out again, alone.
    Again,
}

/// How a queued checkout is answered.
enum Served {
    Done(Outcome),
    /// The database cannot be reached: not tried again request by request.
    Unavailable(ErrorCode, String),
}

/// This instance's queue of checkouts; cheap to clone.
#[derive(Clone)]
pub struct CheckoutBatcher {
    pool: PgPool,
    payments: PaymentService,
    link_key: Option<LinkKey>,
    order_seconds: f64,
    batches: Batches<(), Checkout, Served>,
}

impl CheckoutBatcher {
    /// Orders are to be paid within `order_seconds`; `link_key` seals their
    /// secrets for the e-mails' links (none: no links).
    pub fn new(payments: PaymentService, link_key: Option<LinkKey>, order_seconds: f64) -> Self {
        CheckoutBatcher {
            pool: payments.pool.clone(),
            payments,
            link_key,
            order_seconds,
            batches: Batches::new(MAX_BATCH),
        }
    }

    /// Checks `checkout` out with whatever other checkouts are under way in
    /// this instance; alone if that batch failed.
    pub async fn checkout(&self, checkout: &Checkout) -> Result<Outcome, ApiError> {
        let this = self.clone();
        let batched = self.batches.join((), checkout.clone(), move |(), members| this.clone().serve(members)).await;
        match batched {
            Some(Served::Done(Outcome::Again)) | None => {}
            Some(Served::Done(outcome)) => return Ok(outcome),
            Some(Served::Unavailable(code, message)) => return Err(ApiError::Unavailable { code, message }),
        }
        let alone = self.checkout_all(std::slice::from_ref(checkout)).await?;
        self.send_firsts(&alone).await;
        Ok(alone.into_iter().next().unwrap_or(Outcome::NotTaken))
    }

    async fn serve(self, members: Vec<Member<Checkout, Served>>) {
        let checkouts: Vec<Checkout> = members.iter().map(|m| m.item.clone()).collect();
        match self.checkout_all(&checkouts).await {
            Ok(outcomes) => {
                tokio::spawn(async move {
                    self.send_firsts(&outcomes).await;
                    members.into_iter().zip(outcomes).for_each(|(m, o)| m.answer(Served::Done(o)));
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, checkouts = checkouts.len(), "a batch of checkouts failed; each goes alone");
                let unavailable = match ApiError::from(e) {
                    ApiError::Unavailable { code, message } => Some((code, message)),
                    _ => None,
                };
                members.into_iter().for_each(|m| {
                    m.answer(match &unavailable {
                        Some((code, message)) => Served::Unavailable(*code, message.clone()),
                        None => Served::Done(Outcome::Again),
                    })
                });
            }
        }
    }

    /// Sends the first attempts of the orders made to the provider.
    async fn send_firsts(&self, outcomes: &[Outcome]) {
        let firsts: Vec<&Attempt> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Created { first: Some(attempt), .. } => Some(&**attempt),
                _ => None,
            })
            .collect();
        if !firsts.is_empty() {
            self.payments.send_first_attempts(&firsts).await;
        }
    }

    /// Checks out every request of `checkouts` in one transaction; answers
    /// each one's outcome, in their order.
    pub async fn checkout_all(&self, checkouts: &[Checkout]) -> Result<Vec<Outcome>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let order_ids: Vec<Uuid> = checkouts.iter().map(|_| Uuid::new_v4()).collect();
        let order_hashes: Vec<Vec<u8>> = checkouts.iter().map(|c| hash_secret(&c.order_secret)).collect();
        let requests: Vec<TakeOver> = checkouts
            .iter()
            .zip(&order_ids)
            .zip(&order_hashes)
            .map(|((c, &order_id), order_secret_hash)| TakeOver {
                hold_id: c.hold_id,
                hold_secret_hash: &c.hold_secret_hash,
                order_id,
                order_secret_hash,
            })
            .collect();
        let mut made: HashMap<Uuid, OrderView> =
            take_over_all(&mut tx, &requests, self.order_seconds).await?.into_iter().map(|o| (o.id, o)).collect();
        // The orders made, with the index of the request that made each, in the requests' order.
        let created: Vec<(usize, OrderView)> =
            order_ids.iter().enumerate().filter_map(|(i, id)| Some((i, made.remove(id)?))).collect();
        // A free order (total zero) has nothing to pay: no attempt, paid below.
        let amounts = created
            .iter()
            .filter(|(_, o)| o.amount_minor > 0)
            .map(|(_, o)| Ok((o.id, Money::stored(o.amount_minor, &o.currency)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let mut firsts: HashMap<Uuid, _> = self
            .payments
            .first_attempts_in(&mut tx, &amounts)
            .await?
            .into_iter()
            .map(|first| (first.0.order_id, first))
            .collect();
        let links: Vec<(Uuid, &str)> =
            created.iter().map(|(i, o)| (o.id, checkouts[*i].order_secret.as_str())).collect();
        links::remember_all(&mut *tx, self.link_key.as_ref(), &links).await?;
        // Free orders are paid at once, through the one function that makes
        // orders paid. This moves their counters before the keys are stored:
        // a key conflicts only with a twin request for the same hold, whose
        // lock this transaction took first, so no lock waits in a circle.
        let free: Vec<&OrderView> = created.iter().filter(|(_, o)| o.amount_minor == 0).map(|(_, o)| o).collect();
        let mut paid = if free.is_empty() { HashMap::new() } else { self.paid_free(&mut tx, &free).await? };

        let mut outcomes: Vec<Outcome> = checkouts.iter().map(|_| Outcome::NotTaken).collect();
        let (mut records, mut keyed) = (Vec::new(), Vec::new());
        for (i, mut order) in created {
            let first = firsts.remove(&order.id);
            order.secret = Some(checkouts[i].order_secret.clone());
            order.payment = first.as_ref().map(|(_, view)| view.clone());
            if let Some((paid_at, tickets)) = paid.remove(&order.id) {
                order.status = OrderStatus::Paid;
                order.paid_at = paid_at;
                order.tickets = tickets;
            }
            let view = CheckoutView { payment: order.payment.clone(), order };
            let body = serde_json::to_vec(&view).expect("a view serialises");
            if let Some(key) = &checkouts[i].key {
                records.push(key.record(StatusCode::CREATED, &body));
                keyed.push(i);
            }
            outcomes[i] = Outcome::Created { body, first: first.map(|(attempt, _)| Box::new(attempt)) };
        }
        if !records.is_empty() {
            let stored = idempotency::insert_answered(&mut *tx, &records).await?;
            if stored.len() < records.len() {
                drop(tx);
                let mut outcomes: Vec<Outcome> = checkouts.iter().map(|_| Outcome::Again).collect();
                for (i, record) in keyed.into_iter().zip(&records) {
                    if !stored.contains(&record.id) {
                        outcomes[i] = Outcome::KeyTaken;
                    }
                }
                return Ok(outcomes);
            }
        }
        tx.commit().await?;
        for (checkout, outcome) in checkouts.iter().zip(&outcomes) {
            if let (Some(key), Outcome::Created { .. }) = (&checkout.key, outcome) {
                key.mark_recorded();
            }
        }
        Ok(outcomes)
    }

    /// Makes the free orders of `orders`, made by this transaction, paid
    /// ([`make_paid`]); answers when and their tickets, as their buyers see them.
    async fn paid_free(
        &self,
        tx: &mut sqlx::PgConnection,
        orders: &[&OrderView],
    ) -> Result<HashMap<Uuid, (Option<OffsetDateTime>, Vec<TicketView>)>, sqlx::Error> {
        // The events' signing keys first: the counters' locks are not held over it.
        let ticket_keys = self.payments.paid.ticket_keys();
        let mut keys: HashMap<Uuid, EventKey> = HashMap::new();
        for order in orders {
            if !keys.contains_key(&order.event_id) {
                keys.insert(order.event_id, EventKey::for_event(&self.pool, ticket_keys, order.event_id).await?);
            }
        }
        let order_ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
        let (moved, issued) = make_paid(tx, ticket_keys, &order_ids).await?;
        let by_id: HashMap<Uuid, &OrderView> = orders.iter().map(|o| (o.id, *o)).collect();
        let mut paid: HashMap<Uuid, (Option<OffsetDateTime>, Vec<TicketView>)> =
            moved.into_iter().map(|m| (m.id, (m.paid_at, Vec::new()))).collect();
        for ticket in issued {
            let (Some(order), Some((_, tickets))) = (by_id.get(&ticket.order_id), paid.get_mut(&ticket.order_id))
            else {
                continue;
            };
            let name = order.lines.iter().find(|l| l.ticket_type_id == ticket.ticket_type_id);
            tickets.push(TicketView {
                signed_code: keys[&order.event_id].signed_code(&ticket.code),
                code: ticket.code,
                ticket_type_name: name.map(|l| l.ticket_type_name.clone()).unwrap_or_default(),
                ticket_type_id: ticket.ticket_type_id,
            });
        }
        Ok(paid)
    }
}

#[cfg(test)]
mod tests;

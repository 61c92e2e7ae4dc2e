//! The sale flow: events → holds → orders. Handlers and their SQL live together.

pub mod checkout;
pub mod event_pages;
pub mod event_rows;
pub mod events;
pub mod hoarding;
pub mod hold_batcher;
pub mod hold_rules;
pub mod holds;
pub mod lines;
pub mod order_status;
pub mod orders;
pub mod seats;
#[cfg(feature = "broken-oversell")]
mod unguarded;
pub mod views;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(events::list_events)
        .service(events::get_event)
        .service(holds::create_hold)
        .service(holds::get_hold)
        .service(holds::release_hold)
        .service(orders::ticket_qr);
}

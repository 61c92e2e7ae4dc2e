//! The sale flow: events → holds → orders. Handlers and their SQL live together.

pub mod event_pages;
pub mod events;
pub mod hoarding;
pub mod hold_batcher;
pub mod holds;
pub mod orders;
#[cfg(debug_assertions)]
mod unguarded;
pub mod views;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(events::list_events)
        .service(events::get_event)
        .service(holds::create_hold)
        .service(holds::get_hold)
        .service(holds::release_hold)
        .service(holds::checkout)
        .service(orders::get_order)
        .service(orders::create_payment)
        .service(orders::ticket_qr);
}

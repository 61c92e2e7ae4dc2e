//! The organiser's API: create events, see sales, the guest list, the demo.

pub mod audit;
pub mod demo;
pub mod disputes;
pub mod events;
pub mod guests;
pub mod refunds;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig, demo_enabled: bool) {
    cfg.service(events::create_event)
        .service(events::list_events)
        .service(guests::guest_list)
        .service(refunds::refund)
        .service(refunds::retry_refund)
        .service(refunds::list_refunds)
        .service(refunds::release_seats)
        .service(audit::payments_audit)
        .service(disputes::list_disputes);
    if demo_enabled {
        cfg.service(demo::reset);
    }
}

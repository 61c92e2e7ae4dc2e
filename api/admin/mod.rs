//! The organiser's API: create events, see sales, the guest list, the demo.

pub mod demo;
pub mod events;
pub mod guests;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig, demo_enabled: bool) {
    cfg.service(events::create_event).service(events::list_events).service(guests::guest_list);
    if demo_enabled {
        cfg.service(demo::reset);
    }
}

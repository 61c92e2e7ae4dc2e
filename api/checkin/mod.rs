//! Check-in at the door: devices, signed ticket codes, scans (online and
//! uploaded from offline gates), and the organiser's report.

pub mod at_rest;
pub mod codes;
pub mod devices;
pub mod door;
pub mod offline_time;
pub mod report;
pub mod scans;
pub mod ticket_keys;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(door::check_in)
        .service(door::upload_offline)
        .service(door::gate_state)
        .service(devices::create_device)
        .service(devices::list_devices)
        .service(devices::revoke_device)
        .service(report::checkin_report)
        .service(report::undo_checkin);
}

//! E-mail to buyers through a transactional outbox: rows written in the
//! transactions that make orders paid or refunded ([`outbox`]), sent by a
//! [`sender`] in every instance under a lease, built by [`message`] from what
//! [`content`] reads; order links carry the order's secret, kept sealed in
//! [`links`]. Buyers ask for their tickets again through [`resend`]; the
//! organiser sees the outbox through [`admin`].

pub mod admin;
pub mod content;
pub mod links;
pub mod message;
pub mod outbox;
pub mod qr;
pub mod resend;
pub mod sender;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resend::resend).service(admin::outbox).service(admin::retry);
}

//! nts: ticket sales that never get the money or the seats wrong.
//!
//! The sale flow lives in [`sales`], the money rules in [`payments`]; every
//! state machine is one enum in [`domain::status`].

pub mod admin;
pub mod auth;
pub mod batching;
pub mod body_limit;
pub mod checkin;
pub mod config;
pub mod cors;
pub mod db;
pub mod domain;
pub mod error;
pub mod fallback;
pub mod idempotency;
pub mod instance;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod payments;
pub mod rate_limit;
pub mod sales;
pub mod security_headers;
pub mod startup;
pub mod state;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod test_db;

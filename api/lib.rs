//! nts: ticket sales that never get the money or the seats wrong.
//!
//! The sale flow lives in [`sales`], the money rules in [`payments`]; every
//! state machine is one enum in [`domain::status`].

pub mod admin;
pub mod batching;
pub mod caller;
pub mod checkin;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod instance;
#[cfg(test)]
mod layering;
pub mod mail;
pub mod metrics;
pub mod payments;
pub mod sales;
pub mod startup;
pub mod state;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod test_db;

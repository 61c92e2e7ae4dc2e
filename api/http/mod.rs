//! The HTTP edge: everything between a request and a handler, and between an
//! error and its answer. It may import the domain and [`state`](crate::state);
//! nothing in the domain imports it.

pub mod auth;
pub mod body_limit;
pub mod cors;
pub mod error;
pub mod fallback;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod scrape;
pub mod security_headers;

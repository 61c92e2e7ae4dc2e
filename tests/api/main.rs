//! One integration test binary: real PostgreSQL, real HTTP servers.

mod admin;
mod concurrency;
mod events;
mod helpers;
mod holds;
mod idempotency;
mod ops;
mod orders;

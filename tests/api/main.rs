//! One integration test binary: real PostgreSQL, real HTTP servers.

mod abuse;
mod admin;
mod carts;
mod checkin;
mod concurrency;
mod disputes;
mod events;
mod hoarding;
mod holds;
mod hostile_input;
mod idempotency;
mod logs;
mod mail;
mod mail_server;
mod metrics;
mod ops;
mod orders;
mod provider_limits;
mod refunds;
mod resilience;
mod startup;
mod stripe;
mod stripe_emulator;
mod stripe_indeterminate;
mod stripe_standin;
mod stripe_strict;

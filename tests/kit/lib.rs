//! What every nts test and tool needs: a fresh database ([`db`]), nts
//! instances in-process ([`app`]) or as processes ([`process`]), and a typed
//! client of the HTTP API ([`client`]).

pub mod app;
pub mod client;
pub mod db;
pub mod process;
mod scenario;

pub use app::{config_for, new_app, spawn_app, spawn_app_with, TestApp};
pub use client::wire;
pub use client::{Answer, ApiError, ApiResult, Client, Expect, Reply};
pub use db::TestDb;
pub use process::NtsProcess;
pub use scenario::ada;

/// The admin token of every test instance.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";
/// The ticket key (`NTS_TICKET_KEY`) test instances run with unless a test sets its own.
pub const TICKET_KEY: &str = "test-ticket-key-0123456789abcdef01234";

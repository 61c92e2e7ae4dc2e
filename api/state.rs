//! What every handler may reach, shared by all workers. Built by
//! [`startup`](crate::startup); it names no handler module, so any module can
//! import it without importing the routes.

use std::path::PathBuf;

use sqlx::PgPool;

use crate::config::Config;
use crate::metrics::ScrapeCache;
use crate::payments::checkouts::CheckoutBatcher;
use crate::payments::PaymentService;
use crate::sales::event_pages::EventPages;
use crate::sales::hold_batcher::HoldBatcher;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub config: Config,
    pub pool: PgPool,
    pub payments: PaymentService,
    pub limits: Limits,
    pub static_dir: PathBuf,
    /// Group commit of holds: one queue per ticket type in this instance.
    pub holds: HoldBatcher,
    /// Group commit of checkouts in this instance.
    pub checkouts: CheckoutBatcher,
    /// Concurrent reads of one event page share one query.
    pub event_pages: EventPages,
    pub scrape_cache: ScrapeCache,
    /// This process's lease (see [`instance`](crate::instance)); Idempotency-Key claims name it.
    pub instance: uuid::Uuid,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { body_bytes: 64 * 1024 }
    }
}

//! Logging: human-readable lines, filtered by `RUST_LOG` (default `info`).
//! Nothing logged carries buyer secrets, tokens or card data.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let _ = fmt().with_env_filter(filter).with_target(false).try_init();
}

//! Nothing but the integration tests (`cargo test --test api`).

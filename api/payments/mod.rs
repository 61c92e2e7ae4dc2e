//! Money. The rules (DESIGN.md, "Rules that keep the money and the seats right"):
//! record intent before calling the provider, never hold a transaction across
//! a provider call, apply every provider answer as a guarded transition, cancel
//! at the provider before releasing seats, refund what cannot be honoured.

pub mod attempt;
pub mod attempts;
pub mod audit;
pub mod checkouts;
pub mod disputes;
pub mod gateway;
pub mod guard;
pub mod metered;
pub mod orders;
pub mod paid;
pub mod payment_status;
pub mod reconciler;
pub mod recovery;
pub mod refund_rows;
pub mod refunds;
pub mod service;
pub mod settle;
pub mod signature;
pub mod simulated;
pub mod simulated_routes;
pub mod stripe;
pub mod webhook;

pub use gateway::{PaymentGateway, Provider};
pub use service::PaymentService;

//! Values that can only hold valid data, and the state machines.

pub mod buyer;
pub mod currency;
pub mod dispute_policy;
pub mod money;
pub mod quantity;
pub mod secret;
pub mod status;

pub use buyer::{BuyerName, Email};
pub use currency::Currency;
pub use dispute_policy::DisputePolicy;
pub use money::Money;
pub use quantity::Quantity;

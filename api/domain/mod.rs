//! Values that can only hold valid data, and the state machines.

pub mod buyer;
pub mod currency;
pub mod money;
pub mod quantity;
pub mod secret;
pub mod status;

pub use buyer::{BuyerName, Email};
pub use currency::Currency;
pub use money::Money;
pub use quantity::Quantity;

//! A count of tickets in one request: at least 1. Parsed once, where a
//! request enters; past that, no count of seats is checked or cast again.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i32);

impl Quantity {
    /// Any count past this is past every ticket type's `max_per_order` and is
    /// refused as such by the sale, so larger requests are read as this one.
    pub const MAX: Quantity = Quantity(i32::MAX);

    pub fn parse(n: i64) -> Result<Self, &'static str> {
        if n < 1 {
            return Err("quantity must be at least 1");
        }
        Ok(Quantity(i32::try_from(n).unwrap_or(Self::MAX.0)))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_one_and_no_wrap_around() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-3).is_err());
        assert_eq!(Quantity::parse(4).unwrap().get(), 4);
        assert_eq!(Quantity::parse(i64::MAX).unwrap(), Quantity::MAX);
        assert_eq!(Quantity::parse(i64::from(i32::MAX) + 1).unwrap().get(), i32::MAX);
    }
}

//! ISO 4217 currency codes.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Codes nts accepts. A closed list, so a typo cannot create an event nobody can pay for.
    pub const KNOWN: &'static [&'static str] = &[
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "INR", "ISK", "JPY", "KRW", "MXN",
        "NOK", "NZD", "PLN", "SEK", "SGD", "TWD", "UGX", "USD", "ZAR",
    ];

    pub fn parse(raw: &str) -> Result<Self, String> {
        let upper = raw.trim().to_ascii_uppercase();
        if !Self::KNOWN.contains(&upper.as_str()) {
            return Err(format!("{raw:?} is not a supported ISO 4217 currency code ({})", Self::KNOWN.join(", ")));
        }
        let b = upper.as_bytes();
        Ok(Self([b[0], b[1], b[2]]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII by construction")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_codes_case_insensitively() {
        assert_eq!(Currency::parse("gbp").unwrap().as_str(), "GBP");
        assert!(Currency::parse("GB").is_err());
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("ÉUR").is_err());
    }
}

//! Amounts of money: a count of a currency's minor units as nts shows them
//! (ISO 4217 exponents: pence for GBP, whole krónur for ISK), and the one
//! place that turns them into what a payment provider expects and back.

use std::fmt;

use super::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// How Stripe reads `amount` for a currency (docs.stripe.com/currencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StripeRule {
    /// Stripe's minor unit is the ISO one.
    Iso,
    /// Zero-decimal for people, two-decimal in the API "for backwards
    /// compatibility": 1,500 kr is `amount=150000`, and the amount must be a
    /// multiple of 100 (ISK).
    WholeUnitsTimes100,
    /// Two-decimal in the API, but Stripe settles only whole units (payouts
    /// must be multiples of 100): nts charges whole units only (HUF, TWD).
    WholeUnitsOnly,
    /// Stripe's documentation gives contradicting readings (zero-decimal in
    /// one table, two-decimal "for backwards compatibility" in another): a
    /// wrong guess charges 100 times too much or too little, so nts does not
    /// take it through Stripe (UGX).
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0} cannot be charged through Stripe exactly; choose another currency for this event")]
    CurrencyNotChargeable(Currency),
    #[error("{currency} prices must be whole units through Stripe ({shown} is not)")]
    NotWholeUnits { currency: Currency, shown: String },
    #[error("amount out of range")]
    OutOfRange,
    #[error("Stripe's amount {amount} is not a whole number of {currency} minor units")]
    Inexact { amount: i64, currency: Currency },
}

impl Currency {
    /// Digits after the decimal point, as ISO 4217 (and every browser's Intl) shows the currency.
    pub fn exponent(self) -> u32 {
        match self.as_str() {
            "ISK" | "JPY" | "KRW" | "UGX" => 0,
            _ => 2,
        }
    }

    fn stripe_rule(self) -> StripeRule {
        match self.as_str() {
            "ISK" => StripeRule::WholeUnitsTimes100,
            "HUF" | "TWD" => StripeRule::WholeUnitsOnly,
            "UGX" => StripeRule::Refused,
            _ => StripeRule::Iso,
        }
    }
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::OutOfRange);
        }
        Ok(Self { minor, currency })
    }

    /// An amount as the database stores it (a price or an order's total in its event's currency).
    pub fn stored(minor: i64, currency: &str) -> Result<Self, sqlx::Error> {
        let currency = Currency::parse(currency).map_err(|e| sqlx::Error::Decode(e.into()))?;
        Money::new(minor, currency).map_err(|e| sqlx::Error::Decode(e.to_string().into()))
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// Whether Stripe can charge this amount exactly; checked when prices are set.
    pub fn check_stripe(self) -> Result<(), MoneyError> {
        self.stripe_amount().map(|_| ())
    }

    /// The `amount` Stripe must be sent to charge exactly this.
    pub fn stripe_amount(self) -> Result<i64, MoneyError> {
        match self.currency.stripe_rule() {
            StripeRule::Iso => Ok(self.minor),
            StripeRule::WholeUnitsTimes100 => self.minor.checked_mul(100).ok_or(MoneyError::OutOfRange),
            StripeRule::WholeUnitsOnly if self.minor % 100 == 0 => Ok(self.minor),
            StripeRule::WholeUnitsOnly => {
                Err(MoneyError::NotWholeUnits { currency: self.currency, shown: self.to_string() })
            }
            StripeRule::Refused => Err(MoneyError::CurrencyNotChargeable(self.currency)),
        }
    }

    /// What a Stripe `amount` in `currency` is in nts's minor units.
    pub fn from_stripe(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        let minor = match currency.stripe_rule() {
            StripeRule::Iso | StripeRule::WholeUnitsOnly => amount,
            StripeRule::WholeUnitsTimes100 if amount % 100 == 0 => amount / 100,
            StripeRule::WholeUnitsTimes100 | StripeRule::Refused => {
                return Err(MoneyError::Inexact { amount, currency })
            }
        };
        Self::new(minor, currency)
    }
}

/// Stripe's largest `amount`: eight digits, in Stripe's own units.
pub const STRIPE_MAX_AMOUNT: i64 = 99_999_999;

/// Stripe's minimum charge per presentment currency, in Stripe's own units
/// (what `stripe_amount` sends), from the table "Minimum and maximum charge
/// amounts" of Stripe's "Supported currencies" page (docs.stripe.com/currencies).
/// A first filter only: Stripe applies its minimum after converting the
/// charge to the account's settlement currency, so a price above these may
/// still be refused (`amount_too_small`), and currencies missing here have a
/// minimum nts cannot know in advance.
const STRIPE_MINIMUMS: &[(&str, i64)] = &[
    ("USD", 50),
    ("AED", 200),
    ("AUD", 50),
    ("BGN", 100),
    ("BRL", 50),
    ("CAD", 50),
    ("CHF", 50),
    ("CZK", 1500),
    ("DKK", 250),
    ("EUR", 50),
    ("GBP", 30),
    ("HKD", 400),
    ("HUF", 17500),
    ("INR", 50),
    ("JPY", 50),
    ("MXN", 1000),
    ("MYR", 200),
    ("NOK", 300),
    ("NZD", 50),
    ("PLN", 200),
    ("RON", 200),
    ("SEK", 300),
    ("SGD", 50),
    ("THB", 1000),
];

impl Currency {
    /// Stripe's documented minimum charge in this currency, as a `Money`
    /// (`None`: Stripe's table does not list the currency).
    pub fn stripe_minimum(self) -> Option<Money> {
        let (_, amount) = STRIPE_MINIMUMS.iter().find(|(code, _)| *code == self.as_str())?;
        Money::from_stripe(*amount, self).ok()
    }
}

/// Why Stripe would refuse to charge an amount, whatever the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeLimit {
    /// Under the currency's minimum charge (which it carries).
    BelowMinimum(Money),
    /// Over Stripe's largest `amount` (the largest chargeable `Money` in that currency).
    AboveMaximum(Money),
}

impl Money {
    /// Whether Stripe's documented limits let it charge this (non-zero)
    /// amount; see [`STRIPE_MINIMUMS`] for why this is a first filter only.
    pub fn check_stripe_limits(self) -> Result<(), StripeLimit> {
        let amount = self.stripe_amount().unwrap_or(i64::MAX);
        if amount > STRIPE_MAX_AMOUNT {
            // The largest amount chargeable exactly: whole units where Stripe wants them.
            let largest = [STRIPE_MAX_AMOUNT, STRIPE_MAX_AMOUNT - STRIPE_MAX_AMOUNT % 100]
                .into_iter()
                .filter_map(|amount| Money::from_stripe(amount, self.currency).ok())
                .find(|m| m.check_stripe().is_ok())
                .unwrap_or(self);
            return Err(StripeLimit::AboveMaximum(largest));
        }
        match self.currency.stripe_minimum() {
            Some(minimum) if self.minor < minimum.minor => Err(StripeLimit::BelowMinimum(minimum)),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.currency.exponent() {
            0 => write!(f, "{} {}", self.currency, self.minor),
            e => {
                let unit = 10i64.pow(e);
                write!(f, "{} {}.{:0width$}", self.currency, self.minor / unit, self.minor % unit, width = e as usize)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, code: &str) -> Money {
        Money::new(minor, Currency::parse(code).unwrap()).unwrap()
    }

    #[test]
    fn every_known_currency_has_a_stripe_rule_that_round_trips() {
        for code in Currency::KNOWN {
            let currency = Currency::parse(code).unwrap();
            let price = money(150_000, code);
            match price.stripe_amount() {
                Ok(amount) => assert_eq!(Money::from_stripe(amount, currency), Ok(price), "{code}"),
                Err(e) => assert_eq!(code, &"UGX", "only UGX is refused: {e}"),
            }
        }
    }

    #[test]
    fn two_decimal_currencies_are_sent_as_they_are() {
        for code in ["GBP", "EUR", "USD", "CHF", "SEK"] {
            assert_eq!(money(1999, code).stripe_amount(), Ok(1999), "{code}");
            assert_eq!(money(1999, code).to_string(), format!("{code} 19.99"));
        }
    }

    #[test]
    fn zero_decimal_currencies_are_sent_in_whole_units() {
        assert_eq!(money(1500, "JPY").stripe_amount(), Ok(1500));
        assert_eq!(money(1500, "KRW").stripe_amount(), Ok(1500));
        assert_eq!(money(1500, "JPY").to_string(), "JPY 1500");
    }

    #[test]
    fn isk_is_shown_without_decimals_and_sent_times_100() {
        let price = money(1500, "ISK");
        assert_eq!(price.to_string(), "ISK 1500");
        assert_eq!(price.stripe_amount(), Ok(150_000));
        assert_eq!(Money::from_stripe(150_000, price.currency()), Ok(price));
        assert!(Money::from_stripe(150_050, price.currency()).is_err(), "not a whole króna");
    }

    #[test]
    fn huf_and_twd_charge_whole_units_only() {
        for code in ["HUF", "TWD"] {
            assert_eq!(money(150_000, code).stripe_amount(), Ok(150_000), "{code}");
            assert!(
                matches!(money(150_050, code).stripe_amount(), Err(MoneyError::NotWholeUnits { .. })),
                "{code}: 1500.50 cannot be paid out"
            );
        }
    }

    #[test]
    fn ugx_is_refused_rather_than_guessed() {
        assert!(matches!(money(5000, "UGX").stripe_amount(), Err(MoneyError::CurrencyNotChargeable(_))));
        assert_eq!(money(5000, "UGX").to_string(), "UGX 5000");
    }

    /// Stripe's own list (docs.stripe.com/currencies), kept as a fixture: for
    /// every currency nts accepts, 12 whole units must reach Stripe as Stripe
    /// reads them. The audit compares Stripe's amounts with ours converted by
    /// this table, so the table is what must be right.
    #[test]
    fn every_known_currency_reaches_stripe_as_stripes_list_says() {
        let list: serde_json::Value = serde_json::from_str(include_str!("money/stripe_currencies.json")).unwrap();
        let listed = |key: &str, code: &str| list[key].as_array().unwrap().iter().any(|c| c == code);
        for code in Currency::KNOWN {
            let currency = Currency::parse(code).unwrap();
            let whole = money(12 * 10i64.pow(currency.exponent()), code);
            let stripe = whole.stripe_amount();
            match *code {
                // Two-decimal in Stripe's API whatever people see.
                "ISK" | "HUF" | "TWD" => assert_eq!(stripe, Ok(1200), "{code}"),
                "UGX" => assert!(stripe.is_err(), "UGX is ambiguous in Stripe's list"),
                _ if listed("zero_decimal", code) => {
                    assert_eq!((currency.exponent(), stripe), (0, Ok(12)), "{code} is zero-decimal at Stripe")
                }
                _ if listed("three_decimal", code) => assert_eq!(stripe, Ok(12_000), "{code} is three-decimal"),
                _ => assert_eq!((currency.exponent(), stripe), (2, Ok(1200)), "{code} is two-decimal at Stripe"),
            }
            assert!(list["special_cases"].get(code).is_some() || !matches!(*code, "ISK" | "HUF" | "TWD" | "UGX"));
        }
    }

    #[test]
    fn stripe_minimums_are_pinned_to_stripes_table() {
        let shown: Vec<String> = STRIPE_MINIMUMS
            .iter()
            .filter_map(|(code, _)| Currency::parse(code).ok()?.stripe_minimum().map(|m| m.to_string()))
            .collect();
        // The currencies nts accepts, as Stripe's table shows their minimums.
        assert_eq!(
            shown,
            [
                "USD 0.50",
                "AUD 0.50",
                "BRL 0.50",
                "CAD 0.50",
                "CHF 0.50",
                "CZK 15.00",
                "DKK 2.50",
                "EUR 0.50",
                "GBP 0.30",
                "HKD 4.00",
                "HUF 175.00",
                "INR 0.50",
                "JPY 50",
                "MXN 10.00",
                "NOK 3.00",
                "NZD 0.50",
                "PLN 2.00",
                "SEK 3.00",
                "SGD 0.50",
            ]
        );
        assert_eq!(
            STRIPE_MINIMUMS.iter().map(|(c, _)| *c).filter(|c| Currency::parse(c).is_err()).collect::<Vec<_>>(),
            ["AED", "BGN", "MYR", "RON", "THB"],
            "listed for when nts accepts them"
        );
        assert_eq!(STRIPE_MAX_AMOUNT, 99_999_999);
    }

    #[test]
    fn stripe_limits_compare_in_stripes_own_units() {
        assert_eq!(money(30, "GBP").check_stripe_limits(), Ok(()));
        assert_eq!(money(29, "GBP").check_stripe_limits(), Err(StripeLimit::BelowMinimum(money(30, "GBP"))));
        assert_eq!(money(49, "JPY").check_stripe_limits(), Err(StripeLimit::BelowMinimum(money(50, "JPY"))));
        assert_eq!(money(17_500, "HUF").check_stripe_limits(), Ok(()));
        assert!(money(1, "ISK").check_stripe_limits().is_ok(), "no documented ISK minimum");
        assert_eq!(money(99_999_999, "GBP").check_stripe_limits(), Ok(()));
        assert_eq!(
            money(100_000_000, "GBP").check_stripe_limits(),
            Err(StripeLimit::AboveMaximum(money(99_999_999, "GBP")))
        );
        // ISK goes to Stripe ×100: 999,999 kr is 99,999,900, one more króna is over.
        assert_eq!(money(999_999, "ISK").check_stripe_limits(), Ok(()));
        assert_eq!(
            money(1_000_000, "ISK").check_stripe_limits(),
            Err(StripeLimit::AboveMaximum(money(999_999, "ISK")))
        );
    }

    #[test]
    fn negative_amounts_do_not_exist() {
        assert_eq!(Money::new(-1, Currency::parse("GBP").unwrap()), Err(MoneyError::OutOfRange));
    }
}

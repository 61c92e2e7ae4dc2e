//! Who is buying: a name and an email address, parsed at the boundary.

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerName(String);

impl BuyerName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("name must not be empty".into());
        }
        if raw.chars().count() > MAX_NAME_CHARS {
            return Err(format!("name must be at most {MAX_NAME_CHARS} characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of the shape `local@domain.tld`; deliverability is not our call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let invalid = || format!("{trimmed:?} is not a valid email address");
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("email must be at most {MAX_EMAIL_CHARS} characters"));
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && local.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii());
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(BuyerName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(BuyerName::parse("   ").is_err());
        assert!(BuyerName::parse(&"a".repeat(201)).is_err());
        assert!(BuyerName::parse("a\u{0}b").is_err());
        assert!(BuyerName::parse(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for ok in ["a@b.co", "first.last+tag@example.org", "x@sub.domain.io"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "plain", "@b.co", "a@", "a@b", "a@b..co", "a b@c.io", "a@-b.io"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}

//! E-mail settings (`NTS_SMTP_URL`, `NTS_MAIL_*`).

use std::time::Duration;

use super::parse::{parse, secret_list};
use super::{ConfigError, MIN_ADMIN_TOKEN_LEN};

/// E-mail to buyers (`NTS_SMTP_URL`, `NTS_MAIL_*`). Without SMTP the outbox
/// still fills and nothing is sent. `Debug` never prints the SMTP password.
#[derive(Clone)]
pub struct MailSettings {
    /// For lettre: `smtp://` made STARTTLS-required unless `?tls=` says otherwise.
    pub smtp_url: Option<String>,
    pub from: Option<lettre::message::Mailbox>,
    /// For the order links: `Config::public_url`.
    pub public_url: Option<String>,
    /// Seals order secrets for the links in e-mails (`NTS_MAIL_KEY`, newest key first).
    pub link_key: Option<crate::mail::links::LinkKey>,
    /// How long a sender owns a claimed message; a sender that died is replaced after it.
    pub lease: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// After this many failed attempts a message is `failed` until an admin retries it.
    pub max_attempts: u32,
    pub poll: Duration,
    /// Resend requests allowed per hour per client address and per e-mail address.
    pub resend_per_hour: u32,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &self.smtp_url.is_some())
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

pub(super) fn mail_settings(
    get: impl Fn(&'static str) -> Option<String> + Copy,
    raw: impl Fn(&'static str) -> Option<String>,
    public_url: Option<&str>,
) -> Result<MailSettings, ConfigError> {
    let problem = |variable, problem: String| ConfigError { variable, problem };
    let smtp_url =
        get("NTS_SMTP_URL").map(|raw| smtp_url(raw.trim()).map_err(|p| problem("NTS_SMTP_URL", p))).transpose()?;
    let from = get("NTS_MAIL_FROM")
        .map(|raw| {
            raw.trim().parse::<lettre::message::Mailbox>().map_err(|_| {
                problem(
                    "NTS_MAIL_FROM",
                    format!("expected an address such as Tickets <tickets@example.com>, got {raw:?}"),
                )
            })
        })
        .transpose()?;
    if smtp_url.is_some() {
        for (variable, missing) in [("NTS_MAIL_FROM", from.is_none()), ("NTS_PUBLIC_URL", public_url.is_none())] {
            if missing {
                return Err(problem(
                    variable,
                    "missing: e-mail (NTS_SMTP_URL) needs NTS_MAIL_FROM and NTS_PUBLIC_URL".into(),
                ));
            }
        }
    }
    let link_key = link_keys(raw)?;
    if smtp_url.is_some() && link_key.is_none() {
        return Err(problem(
            "NTS_MAIL_KEY",
            format!(
                "missing: e-mail (NTS_SMTP_URL) needs a key of at least {MIN_ADMIN_TOKEN_LEN} characters to seal the \
                 order links it sends (several, comma-separated and newest first, while rotating)"
            ),
        ));
    }
    let retry_first = Duration::from_millis(parse(get, "NTS_MAIL_RETRY_MS", 5_000u64, 10..=3_600_000)?);
    Ok(MailSettings {
        smtp_url,
        from,
        public_url: public_url.map(str::to_owned),
        link_key,
        lease: Duration::from_secs(parse(get, "NTS_MAIL_LEASE_SECONDS", 120u64, 2..=86_400)?),
        retry_first,
        retry_max: Duration::from_millis(parse(get, "NTS_MAIL_RETRY_MAX_MS", 600_000u64, 10..=86_400_000)?)
            .max(retry_first),
        max_attempts: parse(get, "NTS_MAIL_MAX_ATTEMPTS", 12u32, 1..=1000)?,
        poll: Duration::from_millis(parse(get, "NTS_MAIL_POLL_MS", 1_000u64, 10..=600_000)?),
        resend_per_hour: parse(get, "NTS_MAIL_RESEND_PER_HOUR", 5u32, 0..=1_000_000)?,
    })
}

/// `NTS_MAIL_KEY`: comma-separated keys, newest first. New links are sealed
/// with the first; links sealed with any listed key still open, so a key is
/// rotated by putting a new one in front and dropping the old one once the
/// links it sealed no longer matter.
fn link_keys(raw: impl Fn(&'static str) -> Option<String>) -> Result<Option<crate::mail::links::LinkKey>, ConfigError> {
    const VARIABLE: &str = "NTS_MAIL_KEY";
    let Some(list) = raw(VARIABLE) else { return Ok(None) };
    let keys = secret_list(VARIABLE, &list, MIN_ADMIN_TOKEN_LEN)?;
    Ok(Some(crate::mail::links::LinkKey::from_secrets(&keys.iter().map(String::as_str).collect::<Vec<_>>())))
}

/// Checks `NTS_SMTP_URL` and says it the way lettre reads it: `smtp://`
/// requires STARTTLS unless `?tls=opportunistic` or `?tls=none` (a relay on
/// the same host, tests) is given; `smtps://` is TLS from the first byte.
fn smtp_url(raw: &str) -> Result<String, String> {
    let problem = || "expected smtp://[user:password@]host[:port] or smtps://…".to_owned();
    let (scheme, _) = raw.split_once("://").ok_or_else(problem)?;
    let url = match scheme {
        "smtps" => raw.to_owned(),
        "smtp" if raw.contains("tls=none") => {
            let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
            let rest: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && *p != "tls=none").collect();
            if rest.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", rest.join("&"))
            }
        }
        "smtp" if raw.contains("tls=") => raw.to_owned(),
        "smtp" => format!("{raw}{}tls=required", if raw.contains('?') { '&' } else { '?' }),
        _ => return Err(problem()),
    };
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&url).map_err(|_| problem())?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_default_to_starttls() {
        assert_eq!(
            smtp_url("smtp://u:p@mail.example.com:587").unwrap(),
            "smtp://u:p@mail.example.com:587?tls=required"
        );
        assert_eq!(smtp_url("smtp://127.0.0.1:2525?tls=none").unwrap(), "smtp://127.0.0.1:2525");
        assert_eq!(smtp_url("smtps://mail.example.com").unwrap(), "smtps://mail.example.com");
        assert!(smtp_url("smtp://h?tls=opportunistic").is_ok());
        for bad in ["mail.example.com", "http://mail.example.com", "smtp://h?tls=maybe"] {
            assert!(smtp_url(bad).is_err(), "{bad}");
        }
    }
}

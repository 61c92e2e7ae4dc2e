//! `NTS_TICKET_KEY`: the keys that make ticket codes and seal the events'
//! signing keys (`checkin::ticket_keys`).

use super::parse::secret_list;
use super::{ConfigError, MIN_ADMIN_TOKEN_LEN};
use crate::checkin::ticket_keys::TicketKeys;

const VARIABLE: &str = "NTS_TICKET_KEY";

/// Comma-separated keys, newest first: the first derives new tickets' codes
/// and seals new signing keys; every listed one still derives the codes and
/// opens the signing keys it made, so a key is rotated by putting a new one in
/// front. Required with real payments; with simulated ones (the demo, tests)
/// an unset key means the well-known development key, which the log says.
pub(super) fn ticket_keys(
    raw: impl Fn(&'static str) -> Option<String>,
    simulated: bool,
) -> Result<TicketKeys, ConfigError> {
    let Some(list) = raw(VARIABLE) else {
        if simulated {
            return Ok(TicketKeys::dev());
        }
        return Err(ConfigError {
            variable: VARIABLE,
            problem: format!(
                "missing: real payments need a key of at least {MIN_ADMIN_TOKEN_LEN} characters that makes the \
                 ticket codes and seals the events' signing keys, which the database never holds (generate one \
                 with `openssl rand -hex 32`; several, comma-separated and newest first, while rotating)"
            ),
        });
    };
    let keys = secret_list(VARIABLE, &list, MIN_ADMIN_TOKEN_LEN)?;
    Ok(TicketKeys::from_secrets(&keys.iter().map(String::as_str).collect::<Vec<_>>()))
}

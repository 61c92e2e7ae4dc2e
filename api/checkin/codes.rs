//! Signed ticket codes, verifiable at the door without the server.
//!
//! A ticket's code (24 URL-safe characters, derived from its id with a ticket
//! key: `ticket_keys`) identifies it. The code shown in its QR is
//! `<ticket code>.<signature>`: an Ed25519 signature, base64url, by the
//! event's key over `nts-ticket:v1:` ‖ event id (16 bytes) ‖ ticket code.
//! Signing is deterministic, so a ticket's signed code never changes and need
//! not be stored. A bare ticket code works only for tickets issued before codes
//! were derived (they may have been printed so), and only online.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

use super::ticket_keys::TicketKeys;
use crate::domain::secret::is_ticket_code;

const DOMAIN: &[u8] = b"nts-ticket:v1:";

/// What a scanner read, once its shape is known to be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannedCode {
    /// `<ticket>.<signature>`: checked against the event's key.
    Signed { ticket: String, signature: [u8; 64] },
    /// A bare ticket code, as issued before codes were signed.
    Plain { ticket: String },
}

impl ScannedCode {
    /// `None` for anything that is neither form (it can be no ticket of ours).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        match raw.split_once('.') {
            None => is_ticket_code(raw).then(|| ScannedCode::Plain { ticket: raw.to_owned() }),
            Some((ticket, signature)) => {
                if !is_ticket_code(ticket) || signature.len() != 86 {
                    return None;
                }
                let bytes = URL_SAFE_NO_PAD.decode(signature).ok()?;
                Some(ScannedCode::Signed { ticket: ticket.to_owned(), signature: bytes.try_into().ok()? })
            }
        }
    }

    pub fn ticket(&self) -> &str {
        match self {
            ScannedCode::Signed { ticket, .. } | ScannedCode::Plain { ticket } => ticket,
        }
    }
}

fn message(event_id: Uuid, ticket: &str) -> Vec<u8> {
    [DOMAIN, event_id.as_bytes(), ticket.as_bytes()].concat()
}

/// An event's signing key.
pub struct EventKey {
    event_id: Uuid,
    key: SigningKey,
}

/// An event's signing seed as `checkin_event_keys` keeps it: sealed with a
/// ticket key (`sealed_secret`, `key_id`), or plain (`secret_key`) as stored
/// before seeds were sealed, until the first start after that seals it.
pub struct StoredSeed<'a> {
    pub secret_key: Option<&'a [u8]>,
    pub sealed_secret: Option<&'a [u8]>,
    pub key_id: Option<&'a [u8]>,
}

impl EventKey {
    /// The code for the ticket's QR.
    pub fn signed_code(&self, ticket: &str) -> String {
        let signature = self.key.sign(&message(self.event_id, ticket));
        format!("{ticket}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Whether `signature` is this event's signature of `ticket`.
    pub fn verifies(&self, ticket: &str, signature: &[u8; 64]) -> bool {
        verify(&self.public_key(), self.event_id, ticket, signature)
    }

    /// The event's key, made on first use (its seed sealed with the newest
    /// ticket key). Instances racing to make it agree: the first insert wins
    /// and every instance reads the stored one.
    pub async fn for_event(pool: &PgPool, keys: &TicketKeys, event_id: Uuid) -> Result<EventKey, sqlx::Error> {
        if let Some(stored) = Self::stored(pool, keys, event_id).await? {
            return Ok(stored);
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let fresh = SigningKey::from_bytes(&secret);
        let (sealed, key_id) = keys.seal_seed(event_id, &secret);
        sqlx::query!(
            "INSERT INTO checkin_event_keys (event_id, public_key, sealed_secret, key_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (event_id) DO NOTHING",
            event_id,
            &fresh.verifying_key().to_bytes()[..],
            &sealed,
            &key_id[..]
        )
        .execute(pool)
        .await?;
        Self::stored(pool, keys, event_id).await?.ok_or(sqlx::Error::RowNotFound)
    }

    async fn stored(pool: &PgPool, keys: &TicketKeys, event_id: Uuid) -> Result<Option<EventKey>, sqlx::Error> {
        let stored = sqlx::query!(
            "SELECT secret_key, sealed_secret, key_id FROM checkin_event_keys WHERE event_id = $1",
            event_id
        )
        .fetch_optional(pool)
        .await?;
        stored
            .map(|s| {
                let seed = StoredSeed {
                    secret_key: s.secret_key.as_deref(),
                    sealed_secret: s.sealed_secret.as_deref(),
                    key_id: s.key_id.as_deref(),
                };
                Self::from_stored(keys, event_id, &seed)
            })
            .transpose()
    }

    /// The key from its stored seed. An error if it is sealed with a ticket key
    /// that is not listed (startup refuses to run so: `at_rest::prepare`).
    pub fn from_stored(keys: &TicketKeys, event_id: Uuid, seed: &StoredSeed<'_>) -> Result<EventKey, sqlx::Error> {
        let secret: [u8; 32] = match (seed.secret_key, seed.sealed_secret, seed.key_id) {
            (Some(plain), _, _) => plain
                .try_into()
                .map_err(|_| sqlx::Error::Decode("checkin_event_keys.secret_key is not 32 bytes".into()))?,
            (None, Some(sealed), Some(key_id)) => keys.open_seed(event_id, key_id, sealed).ok_or_else(|| {
                sqlx::Error::Decode(
                    format!(
                        "the signing key of event {event_id} is sealed with ticket key {} which NTS_TICKET_KEY \
                         does not list",
                        hex::encode(key_id)
                    )
                    .into(),
                )
            })?,
            _ => return Err(sqlx::Error::Decode("checkin_event_keys holds no seed".into())),
        };
        Ok(EventKey { event_id, key: SigningKey::from_bytes(&secret) })
    }
}

/// The event's public key, if it has one: all a door needs to check a signed code.
pub async fn public_key(pool: &PgPool, event_id: Uuid) -> Result<Option<[u8; 32]>, sqlx::Error> {
    let stored = sqlx::query_scalar!("SELECT public_key FROM checkin_event_keys WHERE event_id = $1", event_id)
        .fetch_optional(pool)
        .await?;
    Ok(stored.and_then(|k| k.try_into().ok()))
}

/// Verifies with a public key alone, as a scanner does.
pub fn verify(public_key: &[u8; 32], event_id: Uuid, ticket: &str, signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public_key)
        .is_ok_and(|key| key.verify(&message(event_id, ticket), &Signature::from_bytes(signature)).is_ok())
}

pub fn encode_key(public_key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(public_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::new_ticket_code;

    fn key(event_id: Uuid) -> EventKey {
        EventKey { event_id, key: SigningKey::from_bytes(&[7; 32]) }
    }

    #[test]
    fn a_signed_code_parses_and_verifies_for_its_event_only() {
        let (event, other) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = new_ticket_code();
        let code = key(event).signed_code(&ticket);
        assert_eq!(code.len(), 24 + 1 + 86);
        let Some(ScannedCode::Signed { ticket: t, signature }) = ScannedCode::parse(&code) else {
            panic!("not parsed: {code}")
        };
        assert_eq!(t, ticket);
        assert!(key(event).verifies(&ticket, &signature));
        assert!(!key(other).verifies(&ticket, &signature), "another event's key");
        assert!(!key(event).verifies(&new_ticket_code(), &signature), "another ticket");
        let mut forged = signature;
        forged[10] ^= 1;
        assert!(!key(event).verifies(&ticket, &forged));
    }

    #[test]
    fn shapes() {
        let ticket = new_ticket_code();
        assert_eq!(ScannedCode::parse(&ticket), Some(ScannedCode::Plain { ticket: ticket.clone() }));
        assert_eq!(ScannedCode::parse(&format!(" {ticket}\n")).map(|c| c.ticket().to_owned()), Some(ticket.clone()));
        for bad in
            ["", ".", "abc", &format!("{ticket}."), &format!("{ticket}.{}", "A".repeat(85)), "é".repeat(24).as_str()]
        {
            assert_eq!(ScannedCode::parse(bad), None, "{bad:?}");
        }
        // 86 characters that are not base64url
        assert_eq!(ScannedCode::parse(&format!("{ticket}.{}", "*".repeat(86))), None);
    }
}

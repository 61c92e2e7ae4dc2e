//! The server's ticket keys (`NTS_TICKET_KEY`), which the database never
//! holds: a dump alone lets nobody in.
//!
//! - A ticket's code is a MAC (HMAC-SHA256) of its event and id under a ticket
//!   key, cut to the code's shape (18 bytes, 24 URL-safe characters); the
//!   database keeps a SHA-256 of it (to find the ticket a scanner read) and
//!   which key made it (to show it again), never the code.
//! - An event's Ed25519 seed, which signs its codes, is kept sealed
//!   (ChaCha20-Poly1305, the event id as associated data) with a ticket key.
//! - A code issued before codes were derived cannot be derived again: it is
//!   kept sealed the same way, bound to its ticket.
//!
//! Keys rotate: the first listed derives and seals, every listed one opens and
//! derives again (by the key id stored beside what it made), so codes already
//! sent never change. A key is known by its id, 8 bytes of a hash of it.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const NONCE_LEN: usize = 12;
/// A ticket code's bytes: 144 bits, 24 base64url characters.
const CODE_BYTES: usize = 18;

/// Which ticket key made something (`tickets.key_id`, `checkin_event_keys.key_id`).
pub type KeyId = [u8; 8];

/// The well-known key a demo or a test runs with when `NTS_TICKET_KEY` is unset
/// (only with simulated payments: no real ticket is ever made with it).
const DEV_SECRET: &str = "nts-dev-ticket-key:not-secret:simulated-payments-only";

struct TicketKey {
    id: KeyId,
    mac: Hmac<Sha256>,
    seal: ChaCha20Poly1305,
}

impl TicketKey {
    fn new(secret: &str) -> Self {
        let part = |purpose: &[u8]| Sha256::new().chain_update(purpose).chain_update(secret.as_bytes()).finalize();
        let id = part(b"nts-ticket-key-id:v1\0");
        TicketKey {
            id: id[..8].try_into().expect("8 bytes"),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&part(b"nts-ticket-code:v1\0"))
                .expect("HMAC takes any key length"),
            seal: ChaCha20Poly1305::new(&part(b"nts-ticket-seal:v1\0")),
        }
    }

    fn code(&self, event_id: Uuid, ticket_id: Uuid) -> String {
        let mut mac = self.mac.clone();
        mac.update(event_id.as_bytes());
        mac.update(ticket_id.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..CODE_BYTES])
    }
}

/// The keys from `NTS_TICKET_KEY`, newest first: never empty.
#[derive(Clone)]
pub struct TicketKeys {
    keys: Arc<Vec<TicketKey>>,
    dev: bool,
}

/// A ticket's code as the database keeps it.
pub struct StoredCode<'a> {
    pub event_id: Uuid,
    pub ticket_id: Uuid,
    pub key_id: Option<&'a [u8]>,
    /// A code issued before codes were derived, sealed to its ticket.
    pub sealed_code: Option<&'a [u8]>,
    /// Such a code not sealed yet (between the migration and the first start after it).
    pub legacy_code: Option<&'a str>,
}

impl TicketKeys {
    /// Keys from server secrets, newest first: the first derives and seals, any opens.
    pub fn from_secrets(secrets: &[&str]) -> Self {
        assert!(!secrets.is_empty(), "at least one ticket key");
        TicketKeys { keys: Arc::new(secrets.iter().map(|s| TicketKey::new(s)).collect()), dev: false }
    }

    /// The well-known development key: for demos and tests only, never with real payments.
    pub fn dev() -> Self {
        TicketKeys { dev: true, ..Self::from_secrets(&[DEV_SECRET]) }
    }

    /// Whether this is the well-known development key.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// The id of the key that derives and seals now.
    pub fn newest_id(&self) -> KeyId {
        self.keys[0].id
    }

    /// The ids of every listed key.
    pub fn ids(&self) -> Vec<Vec<u8>> {
        self.keys.iter().map(|k| k.id.to_vec()).collect()
    }

    fn by_id(&self, id: &[u8]) -> Option<&TicketKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// A new ticket's code, derived with the newest key.
    pub fn new_code(&self, event_id: Uuid, ticket_id: Uuid) -> (String, KeyId) {
        (self.keys[0].code(event_id, ticket_id), self.keys[0].id)
    }

    /// The ticket's code, as it was first shown; `None` if the key that made it
    /// is not listed (any more).
    pub fn code_of(&self, stored: &StoredCode<'_>) -> Option<String> {
        if let Some(code) = stored.legacy_code {
            return Some(code.to_owned());
        }
        let key = self.by_id(stored.key_id?)?;
        match stored.sealed_code {
            None => Some(key.code(stored.event_id, stored.ticket_id)),
            Some(sealed) => open(key, &code_aad(stored.event_id, stored.ticket_id), sealed)
                .and_then(|plain| String::from_utf8(plain).ok()),
        }
    }

    /// As [`code_of`](Self::code_of), an error naming the key when it is not listed
    /// (which a start refuses: `at_rest::prepare`).
    pub fn require_code(&self, stored: &StoredCode<'_>) -> Result<String, sqlx::Error> {
        self.code_of(stored).ok_or_else(|| {
            sqlx::Error::Decode(
                format!(
                    "the code of ticket {} was made with ticket key {} which NTS_TICKET_KEY does not list",
                    stored.ticket_id,
                    stored.key_id.map(hex::encode).unwrap_or_default()
                )
                .into(),
            )
        })
    }

    /// A code issued before codes were derived, sealed to its ticket with the newest key.
    pub fn seal_code(&self, event_id: Uuid, ticket_id: Uuid, code: &str) -> (Vec<u8>, KeyId) {
        self.seal(&code_aad(event_id, ticket_id), code.as_bytes())
    }

    /// An event's signing seed, sealed with the newest key.
    pub fn seal_seed(&self, event_id: Uuid, seed: &[u8; 32]) -> (Vec<u8>, KeyId) {
        self.seal(&seed_aad(event_id), seed)
    }

    /// An event's signing seed; `None` if its key is not listed or it was not sealed for this event.
    pub fn open_seed(&self, event_id: Uuid, key_id: &[u8], sealed: &[u8]) -> Option<[u8; 32]> {
        open(self.by_id(key_id)?, &seed_aad(event_id), sealed)?.try_into().ok()
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> (Vec<u8>, KeyId) {
        let key = &self.keys[0];
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(key.seal.encrypt(&nonce, Payload { msg: plain, aad }).expect("encrypting in memory cannot fail"));
        (out, key.id)
    }
}

fn open(key: &TicketKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, msg) = sealed.split_at(NONCE_LEN);
    key.seal.decrypt(Nonce::from_slice(nonce), Payload { msg, aad }).ok()
}

fn code_aad(event_id: Uuid, ticket_id: Uuid) -> Vec<u8> {
    [b"nts-ticket-code\0".as_slice(), event_id.as_bytes(), ticket_id.as_bytes()].concat()
}

fn seed_aad(event_id: Uuid) -> Vec<u8> {
    [b"nts-event-seed\0".as_slice(), event_id.as_bytes()].concat()
}

/// What the database keeps to find a ticket by its code: a SHA-256 of it.
pub fn code_hash(code: &str) -> Vec<u8> {
    Sha256::digest(code.as_bytes()).to_vec()
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TicketKeys({} key(s), ***)", self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::is_ticket_code;

    const OLD: &str = "the ticket key codes were made with, long enough";
    const NEW: &str = "the ticket key that replaced it, also long enough";

    fn stored(event_id: Uuid, ticket_id: Uuid, key_id: &[u8]) -> StoredCode<'_> {
        StoredCode { event_id, ticket_id, key_id: Some(key_id), sealed_code: None, legacy_code: None }
    }

    #[test]
    fn codes_have_the_ticket_code_shape_and_depend_on_key_event_and_ticket() {
        let keys = TicketKeys::from_secrets(&[OLD]);
        let (event, ticket) = (Uuid::new_v4(), Uuid::new_v4());
        let (code, id) = keys.new_code(event, ticket);
        assert!(is_ticket_code(&code), "{code}");
        assert_eq!(keys.code_of(&stored(event, ticket, &id)), Some(code.clone()));
        assert_ne!(keys.new_code(event, Uuid::new_v4()).0, code);
        assert_ne!(keys.new_code(Uuid::new_v4(), ticket).0, code);
        assert_ne!(TicketKeys::from_secrets(&[NEW]).new_code(event, ticket).0, code);
        assert_eq!(code_hash(&code).len(), 32);
    }

    #[test]
    fn after_rotation_old_codes_and_seeds_stay_while_their_key_is_listed() {
        let (event, ticket) = (Uuid::new_v4(), Uuid::new_v4());
        let old = TicketKeys::from_secrets(&[OLD]);
        let (code, old_id) = old.new_code(event, ticket);
        let (sealed_seed, seed_id) = old.seal_seed(event, &[9; 32]);
        let rotated = TicketKeys::from_secrets(&[NEW, OLD]);
        assert_eq!(rotated.code_of(&stored(event, ticket, &old_id)), Some(code.clone()), "the same code");
        assert_eq!(rotated.open_seed(event, &seed_id, &sealed_seed), Some([9; 32]));
        let (fresh, new_id) = rotated.new_code(event, Uuid::new_v4());
        assert_ne!(new_id, old_id, "new tickets use the new key");
        assert!(is_ticket_code(&fresh));
        let dropped = TicketKeys::from_secrets(&[NEW]);
        assert_eq!(dropped.code_of(&stored(event, ticket, &old_id)), None, "a key no longer listed derives nothing");
        assert_eq!(dropped.open_seed(event, &seed_id, &sealed_seed), None);
    }

    #[test]
    fn sealed_codes_and_seeds_open_for_their_ticket_and_event_only() {
        let keys = TicketKeys::from_secrets(&[OLD]);
        let (event, ticket) = (Uuid::new_v4(), Uuid::new_v4());
        let (sealed, id) = keys.seal_code(event, ticket, "legacy-code-abcdefghijkl");
        assert!(!sealed.windows(6).any(|w| w == b"legacy"));
        let with = |ticket| StoredCode {
            event_id: event,
            ticket_id: ticket,
            key_id: Some(&id),
            sealed_code: Some(&sealed),
            legacy_code: None,
        };
        assert_eq!(keys.code_of(&with(ticket)).as_deref(), Some("legacy-code-abcdefghijkl"));
        assert_eq!(keys.code_of(&with(Uuid::new_v4())), None, "bound to its ticket");
        let (seed, id) = keys.seal_seed(event, &[1; 32]);
        assert_eq!(keys.open_seed(Uuid::new_v4(), &id, &seed), None, "bound to its event");
        assert_eq!(keys.open_seed(event, &id, &seed[..5]), None);
    }
}

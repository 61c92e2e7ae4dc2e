//! The order link in an e-mail needs the order's secret, of which the orders
//! table keeps only a hash. The secret is stored sealed (ChaCha20-Poly1305,
//! the order id as associated data) with a key the server has from its
//! settings, not from the database: a dump alone opens no order. Keys rotate:
//! the newest seals, every listed one opens.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const NONCE_LEN: usize = 12;

/// The keys from `NTS_MAIL_KEY`, newest first: never empty.
#[derive(Clone)]
pub struct LinkKey(Vec<ChaCha20Poly1305>);

impl LinkKey {
    /// A key derived from one server secret.
    pub fn from_secret(secret: &str) -> Self {
        Self::from_secrets(&[secret])
    }

    /// Keys derived from server secrets, newest first: the first seals, any opens.
    pub fn from_secrets(secrets: &[&str]) -> Self {
        assert!(!secrets.is_empty(), "at least one mail key");
        LinkKey(secrets.iter().map(|secret| Self::cipher(secret)).collect())
    }

    fn cipher(secret: &str) -> ChaCha20Poly1305 {
        let key = Sha256::new().chain_update(b"nts-mail-link:v1\0").chain_update(secret.as_bytes()).finalize();
        ChaCha20Poly1305::new(&key)
    }

    pub(crate) fn seal(&self, order_id: Uuid, secret: &str) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload { msg: secret.as_bytes(), aad: order_id.as_bytes() };
        let mut out = nonce.to_vec();
        out.extend(self.0[0].encrypt(&nonce, payload).expect("encrypting in memory cannot fail"));
        out
    }

    pub(crate) fn open(&self, order_id: Uuid, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, msg) = sealed.split_at(NONCE_LEN);
        let plain = self.0.iter().find_map(|cipher| {
            cipher.decrypt(Nonce::from_slice(nonce), Payload { msg, aad: order_id.as_bytes() }).ok()
        })?;
        String::from_utf8(plain).ok()
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

/// Keeps each order's secret (`(order id, secret)`) for its e-mails; the
/// first one stored stays (a repeated checkout derives the same secret anyway).
pub async fn remember_all(
    db: impl sqlx::PgExecutor<'_>,
    key: Option<&LinkKey>,
    orders: &[(Uuid, &str)],
) -> Result<(), sqlx::Error> {
    let Some(key) = key else { return Ok(()) };
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = orders.iter().map(|(id, _)| *id).collect();
    let sealed: Vec<Vec<u8>> = orders.iter().map(|(id, secret)| key.seal(*id, secret)).collect();
    sqlx::query!(
        "INSERT INTO order_links (order_id, sealed_secret)
         SELECT * FROM unnest($1::uuid[], $2::bytea[])
         ON CONFLICT (order_id) DO NOTHING",
        &ids,
        &sealed,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The order's secret, if it was stored under this key.
pub async fn recall(pool: &PgPool, key: Option<&LinkKey>, order_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let Some(key) = key else { return Ok(None) };
    let sealed = sqlx::query_scalar!("SELECT sealed_secret FROM order_links WHERE order_id = $1", order_id)
        .fetch_optional(pool)
        .await?;
    Ok(sealed.and_then(|s| key.open(order_id, &s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_order_only() {
        let key = LinkKey::from_secret("a server secret of some length, really");
        let (order, other) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = key.seal(order, "s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.open(order, &sealed).as_deref(), Some("s3cret"));
        assert_eq!(key.open(other, &sealed), None, "bound to its order");
        assert_eq!(LinkKey::from_secret("another server secret, quite long").open(order, &sealed), None);
        assert_eq!(key.open(order, &sealed[..5]), None);
    }

    #[test]
    fn after_rotation_old_links_open_while_their_key_is_listed() {
        const OLD: &str = "the key links were sealed with, long enough";
        const NEW: &str = "the key that replaced it, also long enough";
        let order = Uuid::new_v4();
        let sealed = LinkKey::from_secret(OLD).seal(order, "s3cret");
        let rotated = LinkKey::from_secrets(&[NEW, OLD]);
        assert_eq!(rotated.open(order, &sealed).as_deref(), Some("s3cret"), "the old key still opens");
        let fresh = rotated.seal(order, "fresh");
        assert_eq!(LinkKey::from_secret(NEW).open(order, &fresh).as_deref(), Some("fresh"), "the newest seals");
        assert_eq!(LinkKey::from_secret(OLD).open(order, &fresh), None);
        assert_eq!(LinkKey::from_secret(NEW).open(order, &sealed), None, "a key no longer listed opens nothing");
    }
}

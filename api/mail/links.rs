//! The order link in an e-mail needs the order's secret, of which the orders
//! table keeps only a hash. The secret is stored sealed (ChaCha20-Poly1305,
//! the order id as associated data) with a key the server has from its
//! settings, not from the database: a dump alone opens no order.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct LinkKey(ChaCha20Poly1305);

impl LinkKey {
    /// A key derived from a server secret (`NTS_MAIL_KEY` or `NTS_ADMIN_TOKEN`).
    pub fn from_secret(secret: &str) -> Self {
        let key = Sha256::new().chain_update(b"nts-mail-link:v1\0").chain_update(secret.as_bytes()).finalize();
        LinkKey(ChaCha20Poly1305::new(&key))
    }

    fn seal(&self, order_id: Uuid, secret: &str) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload { msg: secret.as_bytes(), aad: order_id.as_bytes() };
        let mut out = nonce.to_vec();
        out.extend(self.0.encrypt(&nonce, payload).expect("encrypting in memory cannot fail"));
        out
    }

    fn open(&self, order_id: Uuid, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, msg) = sealed.split_at(NONCE_LEN);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), Payload { msg, aad: order_id.as_bytes() }).ok()?;
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
}

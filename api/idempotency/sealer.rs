//! Stored answers are encrypted with a key only the client's Idempotency-Key
//! (and its scope) gives: a database dump alone replays nothing.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};

/// Encrypts stored answers with a key only the client's Idempotency-Key (and its scope) gives.
pub(super) struct Sealer(ChaCha20Poly1305);

const NONCE_LEN: usize = 12;

impl Sealer {
    pub(super) fn new(scope: &str, secret_key: &str) -> Self {
        let key = Sha256::new()
            .chain_update(b"nts idempotent answer\0")
            .chain_update(scope)
            .chain_update([0])
            .chain_update(secret_key)
            .finalize();
        Sealer(ChaCha20Poly1305::new(&key))
    }

    /// nonce ‖ ciphertext
    pub(super) fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(self.0.encrypt(&nonce, plain).expect("encrypting in memory cannot fail"));
        out
    }

    pub(super) fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.0.decrypt(Nonce::from_slice(nonce), ciphertext).ok()
    }
}

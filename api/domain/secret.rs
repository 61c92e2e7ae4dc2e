//! Unguessable buyer secrets and ticket codes. Secrets are stored hashed, so a
//! database dump does not give access to holds or orders.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// `bytes` of OS randomness, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A buyer secret: 256 bits.
pub fn new_buyer_secret() -> String {
    random_token(32)
}

/// A ticket code for the door: 144 bits, 24 URL-safe characters.
pub fn new_ticket_code() -> String {
    random_token(18)
}

/// Whether `code` has the shape of a ticket code (checked before it reaches SQL).
pub fn is_ticket_code(code: &str) -> bool {
    code.len() == 24 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `token` has the shape of a [`random_token`] of `bytes`: checked
/// before any query, so that a malformed credential costs no database connection.
pub fn is_random_token(token: &str, bytes: usize) -> bool {
    token.len() == (bytes * 4).div_ceil(3) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `token` can be a buyer secret: a hold's ([`new_buyer_secret`]) or
/// an order's ([`derive_secret`]), both 32 bytes in base64url.
pub fn is_buyer_secret(token: &str) -> bool {
    is_random_token(token, 32)
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A secret only the holder of `secret` can compute (256 bits, like a buyer
/// secret); `purpose` keeps secrets derived for different uses apart.
pub fn derive_secret(secret: &str, purpose: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::new().chain_update(purpose).chain_update([0]).chain_update(secret).finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_buyer_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_buyer_secret());
        assert_eq!(new_ticket_code().len(), 24);
        assert!(is_ticket_code(&new_ticket_code()));
        assert!(!is_ticket_code("abc") && !is_ticket_code(&format!("{}\0", "a".repeat(23))));
        assert_eq!(hash_secret("x").len(), 32);
    }

    #[test]
    fn buyer_secrets_have_one_shape() {
        let s = new_buyer_secret();
        assert!(is_buyer_secret(&s) && is_buyer_secret(&derive_secret(&s, "order")));
        assert!(is_random_token(&random_token(18), 18) && is_random_token(&random_token(7), 7));
        for bad in ["", "short", &s[1..], &format!("{s}x"), &format!("{}+", &s[1..]), &format!("{}=", &s[1..])] {
            assert!(!is_buyer_secret(bad), "{bad:?}");
        }
    }

    #[test]
    fn derived_secrets_are_stable_and_apart() {
        let s = new_buyer_secret();
        assert_eq!(derive_secret(&s, "order"), derive_secret(&s, "order"));
        assert_eq!(derive_secret(&s, "order").len(), 43);
        assert_ne!(derive_secret(&s, "order"), derive_secret(&s, "other"));
        assert_ne!(derive_secret(&s, "order"), derive_secret(&new_buyer_secret(), "order"));
        assert_ne!(derive_secret(&s, "order"), s);
    }
}

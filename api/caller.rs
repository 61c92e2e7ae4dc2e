//! Who is calling, as handlers take it: a buyer holding a hold or order
//! secret, the admin, a client address. How each is read from a request is
//! the HTTP edge's (`http::auth`, `http::rate_limit`).

use std::net::IpAddr;

use crate::domain::secret::{derive_secret, hash_secret};

/// The hash of the bearer secret a buyer sent. Handlers compare it with the
/// stored hash in their query; a missing or wrong secret answers 404 so that
/// nobody learns whether an id exists.
pub struct BuyerSecret {
    pub hash: Vec<u8>,
    token: String,
}

impl BuyerSecret {
    pub fn from_token(token: &str) -> Self {
        BuyerSecret { hash: hash_secret(token), token: token.to_owned() }
    }

    /// A secret derived from this one, for `purpose` (see `derive_secret`).
    pub fn derive(&self, purpose: &str) -> String {
        derive_secret(&self.token, purpose)
    }
}

/// Proof that the request carries the admin token (compared in constant time).
pub struct Admin;

/// The client a request comes from, as the rate limit counts it (IPv6 per /64):
/// an extractor for handlers that keep per-client records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(_) => write!(f, "{}/64", self.0),
            IpAddr::V4(_) => write!(f, "{}", self.0),
        }
    }
}

//! Reading who is calling from a request: a buyer's bearer secret, or the admin token.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::caller::{Admin, BuyerSecret};
use crate::domain::secret::is_buyer_secret;
use crate::error::ApiError;
use crate::state::AppState;

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequest for BuyerSecret {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match bearer(req) {
            // Anything but a secret's shape is no secret of ours: 404 at no query.
            Some(token) if is_buyer_secret(token) => Ok(BuyerSecret::from_token(token)),
            _ => Err(ApiError::NotFound("no such resource")),
        })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
        let expected = &state.config.admin_token.value;
        ready(match bearer(req) {
            None => Err(ApiError::Unauthorized),
            Some(token) if token_matches(token, expected) => Ok(Admin),
            Some(_) => Err(ApiError::Forbidden),
        })
    }
}

/// Compares in time that depends on the lengths only, never on where the first
/// wrong character is, so response times do not reveal the token bit by bit.
fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use super::token_matches;

    fn fastest(given: &str, expected: &str) -> Duration {
        (0..15)
            .map(|_| {
                let started = Instant::now();
                black_box(token_matches(black_box(given), black_box(expected)));
                started.elapsed()
            })
            .min()
            .unwrap()
    }

    #[test]
    fn a_wrong_token_takes_as_long_wherever_it_differs() {
        // A long token makes a short-circuiting comparison visible: it would stop
        // at the first byte in one case and compare a megabyte in the other.
        let expected = "t".repeat(1 << 20);
        let first_wrong = format!("x{}", &expected[1..]);
        let last_wrong = format!("{}x", &expected[1..]);
        assert!(token_matches(&expected.clone(), &expected));
        assert!(!token_matches(&first_wrong, &expected) && !token_matches(&last_wrong, &expected));
        let (early, late) = (fastest(&first_wrong, &expected), fastest(&last_wrong, &expected));
        let ratio = late.as_secs_f64() / early.as_secs_f64();
        assert!((0.33..3.0).contains(&ratio), "first byte wrong: {early:?}, last byte wrong: {late:?}");
    }
}

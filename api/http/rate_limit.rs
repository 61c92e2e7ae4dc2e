//! Per-client rate limit of public POSTs (holds, checkouts, payments): a
//! token bucket per client address (`NTS_RATE_LIMIT_PER_MINUTE`, burst
//! `NTS_RATE_LIMIT_BURST`, off at 0), answered with 429 and `Retry-After`.
//! Admin calls and provider webhooks are not limited. The client address is
//! the peer's, or, when the peer is a configured proxy (`NTS_TRUSTED_PROXIES`),
//! the nearest untrusted address in `X-Forwarded-For`. IPv6 clients are
//! counted per /64, the block one subscriber usually gets.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpRequest, ResponseError};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use crate::caller::ClientAddress;
use crate::config::EdgeConfig;
use crate::error::ApiError;

/// Forgotten buckets are dropped every this many limited requests.
const CLEANUP_EVERY: u64 = 4096;

pub struct ClientRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
    checked: AtomicU64,
}

impl ClientRateLimiter {
    pub fn new(edge: &EdgeConfig) -> Self {
        let limiter = NonZeroU32::new(edge.rate_limit_per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(edge.rate_limit_burst).unwrap_or(NonZeroU32::MIN);
            governor::RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        ClientRateLimiter { limiter, trusted_proxies: edge.trusted_proxies.clone(), checked: AtomicU64::new(0) }
    }

    /// Err(seconds to wait) when `client` is over its limit.
    fn check(&self, client: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.checked.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&bucket(client)).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// The address a request comes from: the peer, unless the peer is a trusted
/// proxy; then `X-Forwarded-For` is read from the right (the entry our proxy
/// appended) past every trusted hop. Entries a client wrote itself sit further
/// left and are never reached while an untrusted hop comes first.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // Garbage in the header: the last address we could trust to have added it stands.
            Err(_) => break,
        }
    }
    client
}

fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked above")),
        v4 => v4,
    }
}

impl FromRequest for ClientAddress {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(client_of(req)))
    }
}

/// The client a request comes from, as the rate limit counts it (IPv6 per /64).
fn client_of(req: &HttpRequest) -> ClientAddress {
    let peer = req.peer_addr().map_or(IpAddr::from([127, 0, 0, 1]), |p| p.ip());
    let trusted = req.app_data::<web::Data<ClientRateLimiter>>().map_or(&[][..], |l| &l.trusted_proxies[..]);
    // Several X-Forwarded-For headers are one list, in order.
    let forwarded: Vec<&str> = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    ClientAddress(bucket(client_address(peer, Some(&forwarded.join(",")), trusted)))
}

fn is_limited(req: &ServiceRequest) -> bool {
    let path = req.path();
    req.method() == Method::POST && !path.starts_with("/api/v1/admin/") && !path.starts_with("/api/v1/payments/stripe/")
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if is_limited(&req) {
        if let Some(limits) = req.app_data::<web::Data<ClientRateLimiter>>() {
            if let Err(retry_after_secs) = limits.check(client_of(req.request()).0) {
                return Ok(req.into_response(ApiError::RateLimited { retry_after_secs }.error_response()));
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // A client talking to us directly cannot choose its address.
        assert_eq!(client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        // Behind our proxy: the address the proxy appended, not what the client wrote before it.
        assert_eq!(client_address(ip("10.0.0.2"), Some("1.2.3.4, 198.51.100.7"), &trusted), ip("198.51.100.7"));
        // Through two of our proxies.
        assert_eq!(client_address(ip("10.0.0.2"), Some("198.51.100.7, 10.0.0.3"), &trusted), ip("198.51.100.7"));
        // A proxy that sent no header, or garbage: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), Some("nonsense"), &trusted), ip("10.0.0.2"));
        // Nobody trusted: the header is ignored.
        assert_eq!(client_address(ip("10.0.0.2"), Some("198.51.100.7"), &[]), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), bucket(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:3::1")));
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_how_long_to_wait() {
        let edge =
            EdgeConfig { rate_limit_per_minute: 2, rate_limit_burst: 3, trusted_proxies: vec![], cors_origins: vec![] };
        let limits = ClientRateLimiter::new(&edge);
        for _ in 0..3 {
            assert!(limits.check(ip("192.0.2.1")).is_ok());
        }
        let wait = limits.check(ip("192.0.2.1")).unwrap_err();
        assert!((1..=30).contains(&wait), "one token every 30 s: {wait}");
        assert!(limits.check(ip("192.0.2.2")).is_ok(), "another client has its own bucket");
        let off = ClientRateLimiter::new(&EdgeConfig { rate_limit_per_minute: 0, ..edge });
        assert!((0..100).all(|_| off.check(ip("192.0.2.1")).is_ok()));
    }
}

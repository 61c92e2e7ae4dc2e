//! Per-client rate limits of the public API, answered with 429 and
//! `Retry-After`: a token bucket per client address for writes (POST, DELETE:
//! holds, checkouts, payments; `NTS_RATE_LIMIT_PER_MINUTE`, burst
//! `NTS_RATE_LIMIT_BURST`) and another, more generous, for reads (GET, HEAD:
//! orders, holds, the door's state; `NTS_READ_RATE_LIMIT_*`), so that bogus
//! credentials from one client cannot take the database pool from everyone.
//! Each is off at 0. Admin calls and provider webhooks are not limited. The
//! client address is the peer's, or, when the peer is a configured proxy
//! (`NTS_TRUSTED_PROXIES`), the nearest untrusted address in
//! `X-Forwarded-For`. IPv6 clients are counted per /64, the block one
//! subscriber usually gets, and each IPv6 /48 also has a bucket of
//! `NTS_RATE_LIMIT_IPV6_48_TIMES` clients' worth, so that the 65,536 /64s of
//! one /48 do not each get a full limit.

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

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

pub struct ClientRateLimiter {
    writes: Limit,
    reads: Limit,
    trusted_proxies: Vec<IpNet>,
}

/// One limit: a bucket per client, and one per IPv6 /48 holding `times` clients' worth.
struct Limit {
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_48: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checked: AtomicU64,
}

impl Limit {
    fn new(per_minute: u32, burst: u32, times: u32) -> Self {
        let keyed = |per_minute: u32, burst: u32| {
            NonZeroU32::new(per_minute).map(|per_minute| {
                let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
                governor::RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
            })
        };
        let per_48 = if per_minute > 0 && times > 0 {
            keyed(per_minute.saturating_mul(times), burst.saturating_mul(times))
        } else {
            None
        };
        Limit { per_client: keyed(per_minute, burst), per_48, checked: AtomicU64::new(0) }
    }

    /// Err(seconds to wait) when `client` (or its /48) is over its limit.
    fn check(&self, client: IpAddr) -> Result<(), u64> {
        let Some(per_client) = &self.per_client else { return Ok(()) };
        if self.checked.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            per_client.retain_recent();
            self.per_48.iter().for_each(|l| l.retain_recent());
        }
        take(per_client, bucket(client))?;
        match (&self.per_48, network_48(client)) {
            (Some(per_48), Some(network)) => take(per_48, network),
            _ => Ok(()),
        }
    }
}

fn take(limiter: &DefaultKeyedRateLimiter<IpAddr>, key: IpAddr) -> Result<(), u64> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    })
}

impl ClientRateLimiter {
    pub fn new(edge: &EdgeConfig) -> Self {
        let times = edge.rate_limit_ipv6_48_times;
        ClientRateLimiter {
            writes: Limit::new(edge.rate_limit_per_minute, edge.rate_limit_burst, times),
            reads: Limit::new(edge.read_rate_limit_per_minute, edge.read_rate_limit_burst, times),
            trusted_proxies: edge.trusted_proxies.clone(),
        }
    }

    /// Err(seconds to wait) when `client` is over its limit of this kind.
    fn check(&self, kind: Kind, client: IpAddr) -> Result<(), u64> {
        match kind {
            Kind::Write => self.writes.check(client),
            Kind::Read => self.reads.check(client),
        }
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

/// The IPv6 /48 of a client (none for IPv4).
fn network_48(ip: IpAddr) -> Option<IpAddr> {
    match bucket(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0]))
        }
        IpAddr::V4(_) => None,
    }
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

/// Which limit `req` counts against, if any: the organiser's calls (their
/// token is checked without the database) and the provider's webhooks are not limited.
fn limit_of(req: &ServiceRequest) -> Option<Kind> {
    let path = req.path();
    if path.starts_with("/api/v1/admin/") || path.starts_with("/api/v1/payments/stripe/") {
        return None;
    }
    match *req.method() {
        Method::GET | Method::HEAD => Some(Kind::Read),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Some(Kind::Write),
        _ => None,
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(kind) = limit_of(&req) {
        if let Some(limits) = req.app_data::<web::Data<ClientRateLimiter>>() {
            if let Err(retry_after_secs) = limits.check(kind, client_of(req.request()).0) {
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

    fn edge(per_minute: u32, burst: u32, times: u32) -> EdgeConfig {
        EdgeConfig {
            rate_limit_per_minute: per_minute,
            rate_limit_burst: burst,
            read_rate_limit_per_minute: 0,
            read_rate_limit_burst: 1,
            rate_limit_ipv6_48_times: times,
            trusted_proxies: vec![],
            cors_origins: vec![],
        }
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_how_long_to_wait() {
        let edge = edge(2, 3, 0);
        let limits = ClientRateLimiter::new(&edge);
        for _ in 0..3 {
            assert!(limits.check(Kind::Write, ip("192.0.2.1")).is_ok());
        }
        let wait = limits.check(Kind::Write, ip("192.0.2.1")).unwrap_err();
        assert!((1..=30).contains(&wait), "one token every 30 s: {wait}");
        assert!(limits.check(Kind::Write, ip("192.0.2.2")).is_ok(), "another client has its own bucket");
        assert!(limits.check(Kind::Read, ip("192.0.2.1")).is_ok(), "reads have a limit of their own (off here)");
        let off = ClientRateLimiter::new(&EdgeConfig { rate_limit_per_minute: 0, ..edge });
        assert!((0..100).all(|_| off.check(Kind::Write, ip("192.0.2.1")).is_ok()));
    }

    #[test]
    fn reads_and_writes_are_counted_apart() {
        let edge = EdgeConfig { read_rate_limit_per_minute: 1, read_rate_limit_burst: 2, ..edge(1, 1, 0) };
        let limits = ClientRateLimiter::new(&edge);
        assert!(limits.check(Kind::Read, ip("192.0.2.1")).is_ok() && limits.check(Kind::Read, ip("192.0.2.1")).is_ok());
        assert!(limits.check(Kind::Read, ip("192.0.2.1")).is_err());
        assert!(limits.check(Kind::Write, ip("192.0.2.1")).is_ok(), "spent reads leave the writes");
        assert!(limits.check(Kind::Write, ip("192.0.2.1")).is_err());
    }

    #[test]
    fn the_64s_of_one_48_share_a_bucket_of_several_clients() {
        let limits = ClientRateLimiter::new(&edge(1, 2, 3));
        // Each /64 gets its burst of 2 until the /48 has had 3 × 2.
        let granted = (0..10u16)
            .flat_map(|i| [i, i])
            .filter(|i| limits.check(Kind::Write, ip(&format!("2001:db8:1:{i:x}::1"))).is_ok())
            .count();
        assert_eq!(granted, 6);
        assert!(limits.check(Kind::Write, ip("2001:db8:2::1")).is_ok(), "another /48 has its own");
        assert!(limits.check(Kind::Write, ip("192.0.2.1")).is_ok(), "IPv4 has no /48");
        let apart = ClientRateLimiter::new(&edge(1, 2, 0));
        assert!((0..10u16).all(|i| apart.check(Kind::Write, ip(&format!("2001:db8:1:{i:x}::1"))).is_ok()));
    }
}

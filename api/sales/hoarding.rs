//! Caps on what may be held without paying: unpaid holds and orders (both
//! keep seats off the market) per client address (IPv6 per /64) and, in
//! aggregate, per IPv6 /48 and (optionally) per IPv4 /24, so that a free /48's
//! 65,536 /64s do not each get a cap of their own. Without them one client
//! could hold a whole sale and renew it every few minutes. The check runs in
//! the transaction that stores the holds, after taking a transaction-scoped
//! advisory lock per address and network, so concurrent batches (in any
//! instance) from one place are counted one after the other and the caps are
//! exact.
//!
//! There is no cap per buyer e-mail: nobody proves an address is theirs, so
//! such a cap would let anyone lock its owner out and tell whether it has
//! unpaid holds, while a hoarder just types other addresses. Every cap refuses
//! with the same answer, so a refusal tells nothing about which one it was.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::caller::ClientAddress;
use crate::config::HoldCaps;
use crate::domain::status::{HoldStatus, OrderStatus};

/// What every cap answers, whichever it was.
pub const CAPPED: &str =
    "too many unpaid holds or orders come from where you are; pay for or release one before holding more";

/// Where a hold request comes from, as the caps count it (and as the hold and
/// its order keep it): the client address and its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client address as the rate limit counts it (`2001:db8:1:2::/64`, `192.0.2.7`).
    pub address: String,
    /// Its IPv6 /48 or IPv4 /24 (`2001:db8:1::/48`, `192.0.2.0/24`).
    pub network: String,
    family: Family,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Origin {
    pub fn of(client: ClientAddress) -> Self {
        let (family, prefix) = match client.0 {
            IpAddr::V4(_) => (Family::V4, 24),
            IpAddr::V6(_) => (Family::V6, 48),
        };
        let network = IpNet::new(client.0, prefix).expect("a valid prefix length").trunc();
        Origin { address: client.to_string(), network: network.to_string(), family }
    }
}

/// One hold request, as far as the caps are concerned.
#[derive(Clone, Copy)]
pub struct Claimant<'a> {
    pub id: Uuid,
    /// `None` when the request did not come over HTTP.
    pub origin: Option<&'a Origin>,
}

/// Which cap a request ran into (for the logs and tests; the buyer gets [`CAPPED`] whichever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Address,
    Network,
}

/// The requests that would take their client past a cap, counting the live
/// unpaid holds and orders of their address and network plus the requests
/// before them in `claimants` (arrival order). Locks each address and network
/// until the end of the transaction: the holds stored by it must be in the
/// count of the next.
pub async fn over_caps(
    tx: &mut PgConnection,
    caps: HoldCaps,
    claimants: &[Claimant<'_>],
) -> Result<HashMap<Uuid, Cap>, sqlx::Error> {
    let network_cap = |o: &Origin| match o.family {
        Family::V4 => caps.per_ipv4_24,
        Family::V6 => caps.per_ipv6_48,
    };
    let origins: Vec<&Origin> = claimants.iter().filter_map(|c| c.origin).collect();
    let addresses: Vec<String> =
        if caps.per_address > 0 { origins.iter().map(|o| o.address.clone()).collect() } else { Vec::new() };
    let networks: Vec<String> = origins.iter().filter(|o| network_cap(o) > 0).map(|o| o.network.clone()).collect();
    if addresses.is_empty() && networks.is_empty() {
        return Ok(HashMap::new());
    }
    let mut locks: Vec<i64> = addresses
        .iter()
        .map(|a| lock_key("address", a))
        .chain(networks.iter().map(|n| lock_key("network", n)))
        .collect();
    // One order for everyone, so two batches sharing clients cannot deadlock.
    locks.sort_unstable();
    locks.dedup();
    sqlx::query!("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::int8[]) AS k", &locks)
        .fetch_one(&mut *tx)
        .await?;
    let rows = sqlx::query!(
        r#"SELECT 'address' AS "kind!", client_address AS "key!", count(*) AS "n!" FROM (
               SELECT client_address FROM holds
               WHERE status = $3 AND expires_at > now() AND client_address = ANY($1)
               UNION ALL
               SELECT client_address FROM orders
               WHERE status = $4 AND expires_at > now() AND client_address = ANY($1)
           ) a GROUP BY client_address
           UNION ALL
           SELECT 'network', client_network, count(*) FROM (
               SELECT client_network FROM holds
               WHERE status = $3 AND expires_at > now() AND client_network = ANY($2)
               UNION ALL
               SELECT client_network FROM orders
               WHERE status = $4 AND expires_at > now() AND client_network = ANY($2)
           ) n GROUP BY client_network"#,
        &addresses,
        &networks,
        HoldStatus::Active as HoldStatus,
        OrderStatus::AwaitingPayment as OrderStatus,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut unpaid: HashMap<(String, String), i64> = rows.into_iter().map(|r| ((r.kind, r.key), r.n)).collect();
    let mut over = HashMap::new();
    for c in claimants {
        let Some(origin) = c.origin else { continue };
        let address = ("address".to_owned(), origin.address.clone());
        let network = ("network".to_owned(), origin.network.clone());
        let count = |key: &(String, String)| unpaid.get(key).copied().unwrap_or(0);
        let (per_address, per_network) = (caps.per_address, network_cap(origin));
        let cap = if per_address > 0 && count(&address) >= i64::from(per_address) {
            Some(Cap::Address)
        } else if per_network > 0 && count(&network) >= i64::from(per_network) {
            Some(Cap::Network)
        } else {
            None
        };
        match cap {
            Some(cap) => {
                over.insert(c.id, cap);
            }
            None => {
                for key in [address, network] {
                    *unpaid.entry(key).or_default() += 1;
                }
            }
        }
    }
    Ok(over)
}

fn lock_key(kind: &str, value: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"nts hoarding cap\0")
        .chain_update(kind)
        .chain_update(b"\0")
        .chain_update(value)
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(ip: &str) -> Origin {
        Origin::of(ClientAddress(ip.parse().unwrap()))
    }

    #[test]
    fn an_origin_is_its_address_and_its_network() {
        let v6 = origin("2001:db8:1:2::");
        assert_eq!((v6.address.as_str(), v6.network.as_str()), ("2001:db8:1:2::/64", "2001:db8:1::/48"));
        assert_eq!(origin("2001:db8:1:ffff::").network, v6.network, "every /64 of a /48 shares its network");
        assert_ne!(origin("2001:db8:2:2::").network, v6.network);
        let v4 = origin("192.0.2.7");
        assert_eq!((v4.address.as_str(), v4.network.as_str()), ("192.0.2.7", "192.0.2.0/24"));
        assert_eq!(v4.family, Family::V4);
    }
}

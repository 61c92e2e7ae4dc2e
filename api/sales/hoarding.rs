//! Caps on what one buyer may hold without paying: unpaid holds and orders
//! (both keep seats off the market) per client address and per buyer e-mail.
//! Without them one client could hold a whole sale and renew it every few
//! minutes. The check runs in the transaction that stores the holds, after
//! taking a transaction-scoped advisory lock per address and e-mail, so
//! concurrent batches (in any instance) for one client are counted one after
//! the other and the cap is exact.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::HoldCaps;
use crate::domain::status::{HoldStatus, OrderStatus};

/// One hold request, as far as the caps are concerned.
#[derive(Clone, Copy)]
pub struct Claimant<'a> {
    pub id: Uuid,
    /// The client address (IPv6 per /64); `None` when the request did not come over HTTP.
    pub address: Option<&'a str>,
    pub email: &'a str,
}

/// Which cap a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Address(u32),
    Email(u32),
}

impl Cap {
    pub fn message(self) -> String {
        match self {
            Cap::Address(n) => format!(
                "your address already has {n} unpaid holds or orders; pay for or release one before holding more"
            ),
            Cap::Email(n) => format!(
                "this e-mail address already has {n} unpaid holds or orders; pay for or release one before holding more"
            ),
        }
    }
}

/// The requests that would take their client past a cap, counting the
/// client's live unpaid holds and orders plus the requests before them in
/// `claimants` (arrival order). Locks each address and e-mail until the end
/// of the transaction: the holds stored by it must be in the count of the next.
pub async fn over_caps(
    tx: &mut PgConnection,
    caps: HoldCaps,
    claimants: &[Claimant<'_>],
) -> Result<HashMap<Uuid, Cap>, sqlx::Error> {
    let (by_address, by_email) = (caps.per_address > 0, caps.per_email > 0);
    if claimants.is_empty() || !(by_address || by_email) {
        return Ok(HashMap::new());
    }
    let addresses: Vec<String> =
        if by_address { claimants.iter().filter_map(|c| c.address.map(str::to_owned)).collect() } else { Vec::new() };
    let emails: Vec<String> =
        if by_email { claimants.iter().map(|c| c.email.to_lowercase()).collect() } else { Vec::new() };
    let mut locks: Vec<i64> =
        addresses.iter().map(|a| lock_key("address", a)).chain(emails.iter().map(|e| lock_key("email", e))).collect();
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
           SELECT 'email', email, count(*) FROM (
               SELECT lower(buyer_email) AS email FROM holds
               WHERE status = $3 AND expires_at > now() AND lower(buyer_email) = ANY($2)
               UNION ALL
               SELECT lower(buyer_email) FROM orders
               WHERE status = $4 AND expires_at > now() AND lower(buyer_email) = ANY($2)
           ) e GROUP BY email"#,
        &addresses,
        &emails,
        HoldStatus::Active as HoldStatus,
        OrderStatus::AwaitingPayment as OrderStatus,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut unpaid: HashMap<(String, String), i64> = rows.into_iter().map(|r| ((r.kind, r.key), r.n)).collect();
    let mut over = HashMap::new();
    for c in claimants {
        let address = c.address.filter(|_| by_address).map(|a| ("address".to_owned(), a.to_owned()));
        let email = Some(("email".to_owned(), c.email.to_lowercase())).filter(|_| by_email);
        let count = |key: &Option<(String, String)>| key.as_ref().map_or(0, |k| unpaid.get(k).copied().unwrap_or(0));
        let cap = if address.is_some() && count(&address) >= i64::from(caps.per_address) {
            Some(Cap::Address(caps.per_address))
        } else if email.is_some() && count(&email) >= i64::from(caps.per_email) {
            Some(Cap::Email(caps.per_email))
        } else {
            None
        };
        match cap {
            Some(cap) => {
                over.insert(c.id, cap);
            }
            None => {
                for key in [address, email].into_iter().flatten() {
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

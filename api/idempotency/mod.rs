//! `Idempotency-Key` on every POST, with Stripe's semantics: the same key and
//! the same request replay the first answer; the same key with another
//! request is a 422; the same key while the first is still running is a 409.
//!
//! A key belongs to a scope: the route (its template, with every UUID in the
//! path in canonical form) and the credential (bearer token) of the request,
//! so one client cannot read another's replay, and `/events/ABC…/holds` is the
//! same route as `/events/abc…/holds`. Answers with a 5xx status are not
//! stored: every operation behind a key is itself a guarded transition, so
//! running it again after a failure is safe, and storing the failure would
//! make the client's retry useless.
//!
//! Atomic phases: a key's answer commits in the transaction that makes its
//! effect, so after any crash a retry either replays the committed answer or
//! finds nothing done.
//! - Holds and checkouts (the middleware's `ATOMIC_ROUTES`) claim nothing beforehand: their
//!   transaction (for holds, the batch's group commit) inserts the key with
//!   its answer; a key that already exists makes the request replay instead.
//! - Other routes claim the key first, tied to this instance's lease (see
//!   [`instance`](crate::instance)). A request that calls a provider records
//!   its recovery point (its payment attempt) with the claim, in the
//!   transaction that creates the attempt. While the claiming instance lives
//!   the key is `in_use`, however long the provider takes; once its lease
//!   runs out (it died), the next retry takes the key over and resumes from
//!   the recovery point instead of starting over.
//!
//! A stored answer may carry a buyer secret (a new hold's, a new order's), so
//! the table keeps only a digest of each key with its scope, and the answer
//! encrypted with a key derived from the Idempotency-Key itself: a database
//! dump alone replays nothing.
//!
//! This module is what the sale's transactions and the middleware share: the
//! key of a request ([`KeyContext`]) and the table ([`store`]). The middleware
//! that reads the header and replays answers is the HTTP edge's.

use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use sealer::Sealer;

mod sealer;
pub mod store;

pub use store::insert_answered;

pub const HEADER: &str = "Idempotency-Key";
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// One keyed request, as its handler sees it (from the request's extensions).
pub struct KeyContext {
    id: KeyId,
    request_hash: Vec<u8>,
    sealer: Sealer,
    instance: Uuid,
    recovery_point: Option<Uuid>,
    state: Mutex<KeyState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Nothing recorded by the handler.
    Open,
    /// The handler's transaction stored the answer.
    Recorded,
    /// The key already had an answer (or a claim): the request must replay it.
    Taken,
}

/// What the table knows a key by: a digest of its scope and of the key, so
/// neither the key nor its scope (which names the credential) is stored.
pub type KeyId = [u8; 32];

/// A key and its answer, ready to be stored: `(id, request_hash, status, sealed body)`.
#[derive(Clone)]
pub struct KeyRecord {
    pub id: KeyId,
    pub request_hash: Vec<u8>,
    pub status: i16,
    pub body: Vec<u8>,
}

impl KeyContext {
    /// A request's key in its scope. The table keeps only a digest of the
    /// two, and answers sealed with a key derived from them.
    pub fn new(scope: String, secret_key: &str, request_hash: Vec<u8>, instance: Uuid) -> Self {
        KeyContext {
            id: key_id(&scope, secret_key),
            sealer: Sealer::new(&scope, secret_key),
            request_hash,
            instance,
            recovery_point: None,
            state: Mutex::new(KeyState::Open),
        }
    }

    /// The key of this request, if it has one.
    pub fn of(req: &HttpRequest) -> Option<Arc<KeyContext>> {
        req.extensions().get::<Arc<KeyContext>>().cloned()
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// What an earlier request with this key, whose instance died, got to.
    pub fn recovery_point(&self) -> Option<Uuid> {
        self.recovery_point
    }

    /// The answer to store with this key.
    pub fn record(&self, status: StatusCode, body: &[u8]) -> KeyRecord {
        KeyRecord {
            id: self.id,
            request_hash: self.request_hash.clone(),
            status: status.as_u16() as i16,
            body: self.sealer.seal(body),
        }
    }

    /// The handler's transaction stored the answer (call after it committed).
    pub fn mark_recorded(&self) {
        *self.state.lock().expect("key state poisoned") = KeyState::Recorded;
    }

    /// The key is someone else's: the middleware answers with what they stored.
    pub fn taken(&self) -> ApiError {
        *self.state.lock().expect("key state poisoned") = KeyState::Taken;
        in_use()
    }

    /// An earlier request with this key got this far before its instance died.
    pub fn resume_from(&mut self, recovery_point: Option<Uuid>) {
        self.recovery_point = recovery_point;
    }

    /// A stored answer, opened with this request's key; `None` if it is not the key it was sealed with.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.sealer.open(sealed)
    }

    pub fn state(&self) -> KeyState {
        *self.state.lock().expect("key state poisoned")
    }

    /// The error a request answers when it lost its claim.
    pub fn lost(&self) -> ApiError {
        in_use()
    }
}

/// The digest of the scope (a hex digest itself) and the key's own hex
/// digest, as migration 20261206000000 made it of the columns it replaced.
fn key_id(scope: &str, secret_key: &str) -> KeyId {
    let key = hex::encode(Sha256::digest(secret_key.as_bytes()));
    Sha256::new().chain_update(scope).chain_update(key).finalize().into()
}

/// Debug builds only: `NTS_DEBUG_STALL_AFTER=<point>` makes requests stop for
/// an hour at that point (after their effect committed, before they answer),
/// so tests can kill the process there.
pub async fn debug_stall(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("NTS_DEBUG_STALL_AFTER").is_ok_and(|p| p == point) {
        tracing::warn!(point, "stalling on purpose (NTS_DEBUG_STALL_AFTER)");
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    let _ = point;
}

pub fn in_use() -> ApiError {
    ApiError::conflict(
        ErrorCode::IdempotencyKeyInUse,
        format!("a request with this {HEADER} is still being processed; retry shortly"),
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use crate::test_db::TestDb;

    #[tokio::test]
    async fn a_key_id_is_the_digest_the_migration_made_of_the_old_columns() {
        let db = TestDb::new().await;
        let (scope, secret) = (hex::encode(Sha256::digest(b"POST /api/v1/events/{id}/holds")), "a-client-key");
        let migrated: Vec<u8> = sqlx::query_scalar("SELECT sha256(convert_to($1 || $2, 'UTF8'))")
            .bind(&scope)
            .bind(hex::encode(Sha256::digest(secret.as_bytes())))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(migrated, super::key_id(&scope, secret));
    }
}

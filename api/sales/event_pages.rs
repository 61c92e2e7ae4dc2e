//! The public event page under a flash sale: thousands of buyers reload the
//! same event. Concurrent reads of one event share one query (see
//! [`batching`](crate::batching)), started after each of them arrived, so
//! every reader still gets availability as it was during its request; the
//! answer is serialized once and the same bytes go to every reader.

use actix_web::web::Bytes;
use sqlx::PgPool;
use uuid::Uuid;

use super::event_rows::{event_view, fetch_rows};
use crate::batching::{Batches, Member};
use crate::error::{ApiError, ErrorCode};

/// Most readers answered by one query.
const MAX_BATCH: usize = 10_000;

#[derive(Clone, Debug)]
pub enum Page {
    /// The event as JSON.
    Found(Bytes),
    NotFound,
    /// The database cannot be reached: the reader fails at once, as it would alone.
    Unavailable {
        code: ErrorCode,
        message: String,
    },
    /// The shared query failed otherwise; the reader should read on its own.
    Failed,
}

/// The event page queues of one instance, one per event; cheap to clone.
#[derive(Clone)]
pub struct EventPages {
    pool: PgPool,
    batches: Batches<Uuid, (), Page>,
}

impl EventPages {
    pub fn new(pool: PgPool) -> Self {
        EventPages { pool, batches: Batches::new(MAX_BATCH) }
    }

    pub async fn read(&self, event_id: Uuid) -> Page {
        let pool = self.pool.clone();
        let serve = move |event_id, readers| serve(pool.clone(), event_id, readers);
        self.batches.join(event_id, (), serve).await.unwrap_or(Page::Failed)
    }
}

async fn serve(pool: PgPool, event_id: Uuid, readers: Vec<Member<(), Page>>) {
    let page = match fetch_rows(&pool, Some(event_id), None).await {
        Ok(rows) if rows.is_empty() => Page::NotFound,
        Ok(rows) => match serde_json::to_vec(&event_view(&rows)) {
            Ok(json) => Page::Found(Bytes::from(json)),
            Err(e) => {
                tracing::warn!(error = %e, "could not serialize an event page");
                Page::Failed
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, readers = readers.len(), "event page query failed");
            match ApiError::from(e) {
                ApiError::Unavailable { code, message } => Page::Unavailable { code, message },
                _ => Page::Failed,
            }
        }
    };
    for reader in readers {
        reader.answer(page.clone());
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::join_all;
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::test_db::TestDb;

    fn json(page: &Page) -> Value {
        match page {
            Page::Found(bytes) => serde_json::from_slice(bytes).unwrap(),
            other => panic!("no page: {other:?}"),
        }
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_exact_answer() {
        let db = TestDb::new().await;
        let (event, tt) = db.event(10, 4, 3600.0).await;
        let pages = EventPages::new(db.pool.clone());
        let answers = join_all((0..20).map(|_| pages.read(event))).await;
        let first = json(&answers[0]);
        assert!(answers.iter().all(|a| json(a) == first));
        assert_eq!(first["id"], event.to_string());
        assert_eq!(first["ticket_types"][0]["id"], tt.to_string());
        assert_eq!(first["ticket_types"][0]["available"], 10);

        // A read that starts after a change sees it: no reader is served by an older query.
        sqlx::query!("UPDATE ticket_types SET held = held + 3 WHERE id = $1", tt).execute(&db.pool).await.unwrap();
        assert_eq!(json(&pages.read(event).await)["ticket_types"][0]["available"], 7);
        assert!(matches!(pages.read(Uuid::new_v4()).await, Page::NotFound));
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_the_readers_at_once() {
        let db = TestDb::new().await;
        let (event, _) = db.event(10, 4, 3600.0).await;
        let pool = crate::db::connect(&db.url, 1).await.unwrap();
        let pages = EventPages::new(pool.clone());
        pool.close().await;
        assert!(matches!(pages.read(event).await, Page::Unavailable { code: ErrorCode::DatabaseUnavailable, .. }));
    }
}

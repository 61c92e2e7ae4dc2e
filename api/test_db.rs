//! Test support: a fresh database with nts's schema per test, dropped afterwards.

use sqlx::PgPool;
use uuid::Uuid;

/// A fresh database with nts's schema, dropped at the end of the test.
pub struct TestDb {
    name: String,
    pub url: String,
    pub pool: PgPool,
}

fn database_url(name: &str) -> String {
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (prefix, rest) = base.rsplit_once('/').expect("DATABASE_URL has a database name");
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("nts_test_{}", Uuid::new_v4().simple());
        let url = database_url(&name);
        let pool = crate::db::connect(&url, 10).await.expect("test database");
        TestDb { name, url, pool }
    }

    /// An event with one ticket type; answers (event, ticket type).
    pub async fn event(&self, capacity: i32, max_per_order: i32, starts_in_secs: f64) -> (Uuid, Uuid) {
        let (event, ticket_type) = (Uuid::new_v4(), Uuid::new_v4());
        sqlx::query!(
            "INSERT INTO events (id, name, venue, starts_at, currency)
             VALUES ($1, 'Batch test', 'Here', now() + make_interval(secs => $2), 'GBP')",
            event,
            starts_in_secs
        )
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query!(
            "INSERT INTO ticket_types (id, event_id, position, name, price_minor, capacity, max_per_order)
             VALUES ($1, $2, 0, 'General', 1500, $3, $4)",
            ticket_type,
            event,
            capacity,
            max_per_order
        )
        .execute(&self.pool)
        .await
        .unwrap();
        (event, ticket_type)
    }

    /// (held, active holds) of a ticket type.
    pub async fn counters(&self, ticket_type: Uuid) -> (i32, i64) {
        let r = sqlx::query!(
            r#"SELECT t.held, (SELECT COUNT(*) FROM holds h WHERE h.ticket_type_id = t.id AND h.status = 'active') AS "active!"
               FROM ticket_types t WHERE t.id = $1"#,
            ticket_type
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        (r.held, r.active)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), database_url("postgres"));
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(pool) = PgPool::connect(&admin).await {
                    let _ =
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&pool).await;
                }
            })
        })
        .join();
    }
}

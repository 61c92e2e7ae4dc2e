//! The run's databases: the kit's fresh ones, each with a pool for the checks.

use std::ops::Deref;
use std::time::Duration;

use anyhow::Context;
use nts_testkit::TestDb;
use sqlx::PgPool;

pub struct ScratchDb {
    db: TestDb,
    pub pool: PgPool,
}

impl Deref for ScratchDb {
    type Target = TestDb;

    fn deref(&self) -> &TestDb {
        &self.db
    }
}

impl ScratchDb {
    /// Creates `nts_bench_<tag>_<random>` with nts's schema.
    pub async fn create(server_url: &str, tag: &str) -> anyhow::Result<Self> {
        let db = TestDb::create_on(server_url, &format!("nts_bench_{tag}")).await?;
        let pool = db.pool(2).await?;
        Ok(ScratchDb { db, pool })
    }

    pub fn keep(self) {
        self.db.keep();
    }

    pub async fn drop_now(self) {
        self.pool.close().await;
        if let Err(e) = self.db.drop_now().await {
            eprintln!("nts-bench: could not drop {}: {e:#}", self.db.name);
        }
    }
}

pub async fn vacuum_analyze(pool: &PgPool) -> anyhow::Result<()> {
    // autovacuum may be off: measure on tables with fresh statistics and no leftovers.
    sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await.context("VACUUM ANALYZE")?;
    Ok(())
}

/// What autovacuum would do while a sale runs: statistics that follow the
/// tables' growth. Without it, a statement whose plan was cached while its
/// table was nearly empty keeps a sequential scan as the table grows; so do
/// the foreign-key checks PostgreSQL plans once per connection (`SELECT 1
/// FROM ONLY holds x WHERE id = $1 FOR KEY SHARE`, on every hold line), and
/// then every line written scans every hold. A sale's tables start empty and
/// grow manyfold in their first second, when autovacuum's rule (analyze
/// after 50 rows and then every 10 % of growth) would analyze them again and
/// again: so the first analyses come after 0.1 s, 0.2 s, 0.4 s, …, up to one
/// every `every`.
///
/// Each time, only the tables that rule picks, as autovacuum would: a bare
/// `ANALYZE` also reads every system catalog of the database (80–100 ms each
/// time on an idle machine), work no sale causes and no production server
/// does while one runs.
pub async fn analyze_every(pool: PgPool, every: Duration) {
    let mut wait = Duration::from_millis(100).min(every);
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(every);
        if let Err(e) = analyze_changed(&pool).await {
            eprintln!("nts-bench: ANALYZE failed: {e:#}");
        }
    }
}

/// `ANALYZE` of the user tables changed by more than autovacuum's threshold
/// (its defaults: 50 rows plus 10 % of the rows at the last analysis).
async fn analyze_changed(pool: &PgPool) -> anyhow::Result<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', s.schemaname, s.relname)
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0)",
    )
    .fetch_all(pool)
    .await
    .context("tables to analyze")?;
    if !tables.is_empty() {
        sqlx::raw_sql(&format!("ANALYZE {}", tables.join(", "))).execute(pool).await.context("ANALYZE")?;
    }
    Ok(())
}

//! Fresh databases for one run, dropped afterwards.

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

pub struct ScratchDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    server_url: String,
}

impl ScratchDb {
    /// Creates `nts_bench_<tag>_<random>` with nts's schema.
    pub async fn create(server_url: &str, tag: &str) -> anyhow::Result<Self> {
        let name = format!("nts_bench_{tag}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let url = with_database(server_url, &name)?;
        let pool = nts::db::connect(&url, 2).await.with_context(|| format!("creating database {name}"))?;
        Ok(ScratchDb { name, url, pool, server_url: server_url.to_owned() })
    }

    pub async fn drop_now(self) {
        self.pool.close().await;
        let Ok(admin) = with_database(&self.server_url, "postgres") else { return };
        let Ok(pool) = PgPool::connect(&admin).await else { return };
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = sqlx::raw_sql(&drop).execute(&pool).await {
            eprintln!("nts-bench: could not drop {}: {e}", self.name);
        }
        pool.close().await;
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").context("the database URL has no scheme (postgres://...)")? + 3;
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(format!("{host_part}/{name}{query}"))
}

pub async fn vacuum_analyze(pool: &PgPool) -> anyhow::Result<()> {
    // autovacuum may be off: measure on tables with fresh statistics and no leftovers.
    sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await.context("VACUUM ANALYZE")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(with_database("postgres://u@h:5432/a", "b").unwrap(), "postgres://u@h:5432/b");
        assert_eq!(with_database("postgres://u@h:5432", "b").unwrap(), "postgres://u@h:5432/b");
        assert_eq!(with_database("postgres://u@h/a?sslmode=disable", "b").unwrap(), "postgres://u@h/b?sslmode=disable");
        assert!(with_database("nonsense", "b").is_err());
    }
}

//! The one way tests and tools get a database: a fresh one per test or run,
//! with nts's schema, dropped afterwards.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The server tests use when `DATABASE_URL` is not set.
pub const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `DATABASE_URL`, else the local default: the server fresh databases are made on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| LOCAL_DATABASE_URL.into())
}

/// `url` with its database name replaced by `name` (query parameters kept); `url` may name no database.
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

/// A database of its own, dropped (even if nts is still connected) when this
/// value goes unless [`TestDb::keep`] was called.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
    kept: AtomicBool,
}

impl TestDb {
    /// A new name on `DATABASE_URL`'s server, not created yet: nts creates it when it starts.
    pub fn unborn() -> Self {
        Self::named(&server_url(), "nts_test").expect("DATABASE_URL is a PostgreSQL URL")
    }

    /// A fresh database on `DATABASE_URL`'s server with nts's schema.
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&server_url(), "nts_test").await
    }

    /// A fresh database with nts's schema as it was before migration `version`
    /// (for tests of what a migration does to the data it finds).
    pub async fn create_before(version: i64) -> anyhow::Result<Self> {
        let before = sqlx::migrate::Migrator {
            migrations: nts::db::MIGRATOR.migrations.iter().filter(|m| m.version < version).cloned().collect(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        Self::create_with(&server_url(), "nts_test", &before).await
    }

    /// A fresh database `<prefix>_<random>` with nts's schema on `server` (a URL with or without a database).
    pub async fn create_on(server: &str, prefix: &str) -> anyhow::Result<Self> {
        Self::create_with(server, prefix, &nts::db::MIGRATOR).await
    }

    async fn create_with(server: &str, prefix: &str, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<Self> {
        let db = Self::named(server, prefix)?;
        let mut admin = PgConnection::connect(&db.admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", db.admin_url))?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{}\"", db.name))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {}", db.name))?;
        admin.close().await?;
        let mut conn = PgConnection::connect(&db.url).await.context("connecting to the fresh database")?;
        migrator.run(&mut conn).await.context("applying the migrations")?;
        conn.close().await?;
        Ok(db)
    }

    fn named(server: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let url = with_database(server, &name)?;
        let admin_url = with_database(server, "postgres")?;
        Ok(TestDb { name, url, admin_url, kept: AtomicBool::new(false) })
    }

    pub async fn pool(&self, size: u32) -> anyhow::Result<PgPool> {
        PgPoolOptions::new().max_connections(size).connect(&self.url).await.context("connecting to the test database")
    }

    /// Leaves the database behind (for a look after a failed run).
    pub fn keep(&self) {
        self.kept.store(true, Ordering::SeqCst);
    }

    /// Drops the database now, whoever is connected to it.
    pub async fn drop_now(&self) -> anyhow::Result<()> {
        self.keep();
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut admin).await?;
        admin.close().await?;
        Ok(())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.kept.load(Ordering::SeqCst) {
            return;
        }
        // Best effort. Drop may run inside a runtime: use a thread with its own.
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        let kept = AtomicBool::new(false);
        let db = TestDb { name, url: String::new(), admin_url, kept };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let _ = rt.block_on(db.drop_now());
        })
        .join();
    }
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

//! The run's own database: created fresh, migrated, dropped at the end.

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

pub struct Database {
    server: String,
    pub name: String,
    pub url: String,
}

impl Database {
    /// Creates and migrates `nts_torture_<seed>_<random>`; with `break_inventory_guard`
    /// also drops the CHECK that would otherwise stop an oversell.
    pub async fn create(server: &str, seed: u64, break_inventory_guard: bool) -> anyhow::Result<Self> {
        let name = format!("nts_torture_{seed}_{:08x}", rand::random::<u32>());
        let mut conn = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .with_context(|| format!("connecting to PostgreSQL at {server} (--postgres)"))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
        conn.close().await?;
        let db = Database { server: server.to_owned(), url: format!("{server}/{name}"), name };
        let pool = db.pool(2).await?;
        nts::db::MIGRATOR.run(&pool).await.context("applying the migrations")?;
        if break_inventory_guard {
            sqlx::query("ALTER TABLE ticket_types DROP CONSTRAINT ticket_types_inventory").execute(&pool).await?;
        }
        pool.close().await;
        Ok(db)
    }

    pub async fn pool(&self, size: u32) -> anyhow::Result<PgPool> {
        PgPoolOptions::new().max_connections(size).connect(&self.url).await.context("connecting to the run's database")
    }

    pub async fn drop_it(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&format!("{}/postgres", self.server)).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut conn).await?;
        Ok(())
    }
}

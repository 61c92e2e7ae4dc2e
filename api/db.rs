//! Connecting to PostgreSQL: create the database if it is missing, size the
//! pool, apply the embedded migrations.
//!
//! Behind a pooler in transaction mode (PgBouncer, `NTS_DB_TRANSACTION_POOLING`)
//! each statement is sent self-contained (an unnamed statement parsed again
//! with its Bind, see vendor/sqlx-postgres), and the migrations, which hold a
//! session-level advisory lock, run over a direct connection
//! (`NTS_MIGRATION_DATABASE_URL`). nts itself takes only transaction-level
//! advisory locks and sets nothing per session, so any server connection
//! serves any transaction.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Where and how nts reaches PostgreSQL.
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub url: String,
    pub pool_size: u32,
    /// `DATABASE_URL` is a pooler that may give each transaction another server connection.
    pub transaction_pooling: bool,
    /// A direct connection for creating the database and migrating it (default: `url`).
    pub migration_url: Option<String>,
}

/// Straight to PostgreSQL, as tests and tools connect.
pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<PgPool> {
    connect_with(&DbSettings { url: database_url.into(), pool_size, transaction_pooling: false, migration_url: None })
        .await
}

pub async fn connect_with(settings: &DbSettings) -> anyhow::Result<PgPool> {
    let options = connect_options(&settings.url, "DATABASE_URL")?.unnamed_statements(settings.transaction_pooling);
    match &settings.migration_url {
        Some(url) => {
            let direct = connect_options(url, "NTS_MIGRATION_DATABASE_URL")?;
            create_database_if_missing(&direct).await?;
            let mut conn = sqlx::PgConnection::connect_with(&direct)
                .await
                .context("connecting to PostgreSQL to migrate (NTS_MIGRATION_DATABASE_URL)")?;
            MIGRATOR.run(&mut conn).await.context("applying database migrations")?;
            conn.close().await?;
        }
        None => create_database_if_missing(&options).await?,
    }
    let pool = pool(options, settings.pool_size).await?;
    if settings.migration_url.is_none() {
        MIGRATOR.run(&pool).await.context("applying database migrations")?;
    }
    Ok(pool)
}

fn connect_options(url: &str, variable: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .with_context(|| format!("{variable} is not a valid PostgreSQL URL"))?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// A pooled connection idle for longer is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

async fn pool(options: PgConnectOptions, pool_size: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        // sqlx pings every connection it hands out: a round trip before each
        // transaction, in line with the hold batches'. As pgxpool and HikariCP
        // do, only a connection idle for a while is pinged; a connection that
        // broke since is found by its next statement, whose request fails
        // like any other the database cut off. (The vendored sqlx-postgres
        // makes `ping` free on a connection that owes nothing, for the ping
        // sqlx sends when a connection is released; this one must reach the
        // server.)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    reach_server(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    Ok(pool)
}

/// One round trip: an empty query, answered empty. (Boxed: `before_acquire`
/// needs a future valid for any lifetime of its connection.)
fn reach_server(conn: &mut sqlx::PgConnection) -> futures_util::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move { sqlx::Executor::execute(conn, "").await.map(drop) })
}

async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else { return Ok(()) };
    let maintenance = options.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&maintenance)
        .await
        .context("connecting to PostgreSQL to check that the database exists (DATABASE_URL)")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another instance created it at the same moment.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e).context(format!("creating database {name}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

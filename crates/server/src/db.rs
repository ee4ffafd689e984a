//! Database access: the connection pool and the embedded migrations.

use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::time::Duration;

/// Every migration in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
}

/// A pool for refresh queries and REST writes. Connections are made lazily,
/// so the server starts (and reports not-ready) while the database is down.
pub async fn pool(url: &str, max_size: u32) -> Result<Pool<AsyncPgConnection>, DbError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(5))
        // No `SELECT 1` before every checkout: it would double the round
        // trips of each refresh. A dead connection fails its query instead,
        // which refreshes retry and REST writes answer with 503.
        .test_on_check_out(false)
        .build(manager)
        .await
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Applies pending migrations; returns the versions applied. Needs a
/// multi-threaded runtime (the harness blocks in place).
pub async fn migrate(url: &str) -> Result<Vec<String>, DbError> {
    let conn = AsyncPgConnection::establish(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migrate(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Reverts every applied migration (used by the migration round-trip test).
pub async fn revert_all(url: &str) -> Result<usize, DbError> {
    let conn = AsyncPgConnection::establish(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let reverted = harness
        .revert_all_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migrate(e.to_string()))?;
    Ok(reverted.len())
}

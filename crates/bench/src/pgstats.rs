//! PostgreSQL's statistics read around a run (pg_stat_database,
//! pg_stat_user_tables, and pg_stat_statements when it is loaded), and the
//! backends connected to a run's database.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::db;

/// Statistics of one database at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbStats {
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub tup_returned: i64,
    pub tup_fetched: i64,
    pub blks_hit: i64,
    pub blks_read: i64,
    /// Sums over the user tables.
    pub seq_scan: i64,
    pub seq_tup_read: i64,
    pub idx_scan: i64,
    pub idx_tup_fetch: i64,
    /// pg_stat_statements for this database, when loaded: calls and rows of
    /// statements that are not the bench's own.
    pub stmt_calls: Option<i64>,
    pub stmt_rows: Option<i64>,
    /// The backend that read the table statistics (not the server's).
    #[serde(skip)]
    pub reader_pid: i32,
}

/// Reads the statistics. The database-wide ones come from the admin
/// connection; the table ones need a connection to `db` (one short
/// transaction there).
pub async fn read_stats(admin: &tokio_postgres::Client, db_url: &str, db: &str) -> Result<DbStats> {
    admin
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .context("pg_stat_clear_snapshot")?;
    let row = admin
        .query_one(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, blks_hit, blks_read \
             FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .await
        .context("reading pg_stat_database")?;
    let mut s = DbStats {
        xact_commit: row.try_get(0)?,
        xact_rollback: row.try_get(1)?,
        tup_returned: row.try_get(2)?,
        tup_fetched: row.try_get(3)?,
        blks_hit: row.try_get(4)?,
        blks_read: row.try_get(5)?,
        ..DbStats::default()
    };
    // One simple-protocol query: exactly one transaction in `db`.
    let client = db::connect(db_url).await?;
    let msgs = client
        .simple_query(
            "SELECT coalesce(sum(seq_scan), 0), coalesce(sum(seq_tup_read), 0), \
                    coalesce(sum(idx_scan), 0), coalesce(sum(idx_tup_fetch), 0), \
                    pg_backend_pid() \
             FROM pg_stat_user_tables",
        )
        .await
        .context("reading pg_stat_user_tables")?;
    let row = msgs
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .context("pg_stat_user_tables: no row")?;
    let num = |i: usize| -> Result<i64> {
        row.try_get(i)?
            .unwrap_or("0")
            .parse::<i64>()
            .context("pg_stat_user_tables: not a number")
    };
    s.seq_scan = num(0)?;
    s.seq_tup_read = num(1)?;
    s.idx_scan = num(2)?;
    s.idx_tup_fetch = num(3)?;
    s.reader_pid = i32::try_from(num(4)?).unwrap_or(0);
    drop(client);
    if statements_available(admin).await {
        let row = admin
            .query_one(
                "SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(rows), 0)::bigint \
                 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
                 WHERE d.datname = $1 AND s.query NOT LIKE '%pglive-bench%'",
                &[&db],
            )
            .await;
        if let Ok(row) = row {
            s.stmt_calls = row.try_get(0).ok();
            s.stmt_rows = row.try_get(1).ok();
        }
    }
    Ok(s)
}

/// pg_stat_statements is usable only when preloaded (it usually is not on a
/// development cluster; then the report falls back to the table statistics).
pub async fn statements_available(admin: &tokio_postgres::Client) -> bool {
    let loaded = admin
        .query_one("SELECT current_setting('shared_preload_libraries')", &[])
        .await
        .ok()
        .and_then(|r| r.try_get::<_, String>(0).ok())
        .is_some_and(|s| s.contains("pg_stat_statements"));
    if !loaded {
        return false;
    }
    admin
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .is_ok()
}

/// Backend pids connected to `db`, other than `exclude`.
pub async fn backend_pids(
    admin: &tokio_postgres::Client,
    db: &str,
    exclude: &[i32],
) -> Result<Vec<i32>> {
    let rows = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
            &[&db],
        )
        .await
        .context("reading pg_stat_activity")?;
    let mut pids = Vec::new();
    for row in rows {
        let pid: i32 = row.try_get(0)?;
        if !exclude.contains(&pid) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Waits (up to `limit`) until no backend is connected to `db`, so that every
/// backend has flushed its statistics.
pub async fn wait_backends_gone(
    admin: &tokio_postgres::Client,
    db: &str,
    limit: Duration,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .await
            .context("reading pg_stat_activity")?;
        let n: i64 = row.try_get(0)?;
        if n == 0 {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

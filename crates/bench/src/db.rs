//! PostgreSQL: the admin URL, fresh databases per run, seeding, and the
//! statistics deltas (pg_stat_database, pg_stat_user_tables, and
//! pg_stat_statements when it is loaded).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::NoTls;

use crate::writer::Table;

pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(15), tokio_postgres::connect(url, NoTls))
            .await
            .with_context(|| format!("connecting to {} timed out", redact(url)))?
            .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        // Ends when the client is dropped; errors surface on the client side.
        let _ = connection.await;
    });
    Ok(client)
}

/// The URL without its password (for messages).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `url` with its database replaced by `db` (keeps any `?query`).
pub fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{}{}", &base[..path_start], db, query)
}

/// The admin URL: `--database-url` / `PGLIVE_BENCH_DATABASE_URL`, else
/// `DATABASE_URL`, else `PGLIVE_TEST_DATABASE_URL` (what `just test` sets),
/// else the project-local cluster from `dev/pg.sh start`.
pub fn admin_url(flag: Option<&str>, root: &Path) -> Result<String> {
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return Ok(url.to_string());
    }
    for var in ["DATABASE_URL", "PGLIVE_TEST_DATABASE_URL"] {
        if let Ok(url) = std::env::var(var)
            && !url.is_empty()
        {
            return Ok(url);
        }
    }
    let script = root.join("dev/pg.sh");
    anyhow::ensure!(
        script.exists(),
        "no database: set PGLIVE_BENCH_DATABASE_URL or DATABASE_URL (and {} is missing)",
        script.display()
    );
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} start", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} start failed ({})",
        script.display(),
        out.status
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(!url.is_empty(), "{} start printed no URL", script.display());
    Ok(url)
}

pub async fn create_database(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping old database {name}"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("creating database {name}"))?;
    Ok(())
}

pub async fn drop_database(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    drop_slots(admin, name).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping database {name}"))
}

/// Drops the replication slots of database `name` (pglive's WAL capture
/// makes one; PostgreSQL refuses to drop a database that has one). A slot
/// stays active until its walsender has noticed that its client is gone,
/// so this retries for a while.
async fn drop_slots(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = admin
            .query(
                "SELECT slot_name::text, active FROM pg_replication_slots WHERE database = $1",
                &[&name],
            )
            .await
            .context("listing replication slots")?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut busy = false;
        for row in rows {
            let slot: String = row.try_get(0)?;
            let active: bool = row.try_get(1)?;
            if active {
                busy = true;
                continue;
            }
            admin
                .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await
                .with_context(|| format!("dropping replication slot {slot}"))?;
        }
        if !busy {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "a replication slot of {name} is still active 15 s after its server stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Drops `pglive_bench_<pid>_…` databases left by bench processes that no
/// longer run.
pub async fn drop_leftovers(admin: &tokio_postgres::Client) -> Result<()> {
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pglive\\_bench\\_%'",
            &[],
        )
        .await
        .context("listing leftover bench databases")?;
    for row in rows {
        let name: String = row.try_get(0)?;
        let pid = name
            .strip_prefix("pglive_bench_")
            .and_then(|r| r.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("pglive-bench: dropping leftover database {name}");
            // A leftover that cannot go (e.g. a slot still held by an
            // orphaned server) must not stop this run.
            if let Err(e) = drop_database(admin, &name).await {
                eprintln!("pglive-bench: warning: {e:#}");
            }
        }
    }
    Ok(())
}

/// Loads `rows` rows into `table`, then vacuums/analyzes it and turns
/// autovacuum off for it (so background work does not land in the deltas).
pub async fn seed(url: &str, table: Table, rows: usize, pglive_schema: bool) -> Result<()> {
    let client = connect(url).await?;
    let n = i32::try_from(rows).context("too many rows")?;
    let name = match table {
        Table::Items => {
            client
                .execute(
                    "INSERT INTO items (name) SELECT 'seed-' || g FROM generate_series(1, $1::int) g ORDER BY g",
                    &[&n],
                )
                .await
                .context("seeding items")?;
            "items"
        }
        Table::Tasks { groups } => {
            anyhow::ensure!(pglive_schema, "the peer has no tasks table");
            let groups = i32::try_from(groups.max(1)).context("too many groups")?;
            client
                .execute(
                    "INSERT INTO tasks (title, status, priority, assignee) \
                     SELECT 'seed-task-' || g, (ARRAY['todo','in_progress','done'])[1 + g % 3], \
                            g % 4, 'user-' || ((g - 1) % $2::int) \
                     FROM generate_series(1, $1::int) g ORDER BY g",
                    &[&n, &groups],
                )
                .await
                .context("seeding tasks")?;
            "tasks"
        }
    };
    let mut tables = vec!["items"];
    if pglive_schema {
        tables.push("tasks");
    }
    for t in tables {
        client
            .batch_execute(&format!(
                "ALTER TABLE {t} SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
            ))
            .await
            .with_context(|| format!("disabling autovacuum on {t}"))?;
    }
    client
        .batch_execute(&format!("VACUUM ANALYZE {name}"))
        .await
        .context("VACUUM ANALYZE")?;
    Ok(())
}

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
    let client = connect(db_url).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database() {
        assert_eq!(
            url_with_db("postgres://postgres@127.0.0.1:54329/postgres", "x"),
            "postgres://postgres@127.0.0.1:54329/x"
        );
        assert_eq!(
            url_with_db("postgres://u:p@h:1/db?sslmode=disable", "x"),
            "postgres://u:p@h:1/x?sslmode=disable"
        );
        assert_eq!(url_with_db("postgres://h", "x"), "postgres://h/x");
    }

    #[test]
    fn redacts_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}

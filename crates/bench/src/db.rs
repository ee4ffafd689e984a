//! PostgreSQL: the admin URL, fresh databases per run, their schema
//! (`pglive migrate`) and seeding. The statistics read around a run are in
//! `pgstats`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::NoTls;

use crate::workload::Table;

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

/// Connects as a writer whose UPDATEs and DELETEs by key cost exactly one
/// index scan and one row each, whatever the table size, so that the table
/// statistics can subtract them (`enable_seqscan = off`, which only affects
/// this session); with the session's backend pid.
pub async fn connect_writer(url: &str) -> Result<(tokio_postgres::Client, i32)> {
    let client = connect(url).await?;
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .context("SET enable_seqscan")?;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .context("pg_backend_pid")?
        .try_get(0)?;
    Ok((client, pid))
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

/// `pglive migrate --database-url URL`.
pub async fn migrate(bin: &Path, db_url: &str) -> Result<()> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(bin)
            .args(["migrate", "--database-url", db_url])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("pglive migrate timed out after 120 s")?
    .with_context(|| format!("running {} migrate", bin.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "pglive migrate failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
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

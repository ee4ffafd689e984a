//! What RLS and RECONNECT set up and tear down around a run: the
//! database with its tenants' rows, the deadline, and the end of the run
//! (clients, writer and pglive stopped, the statistics flushed).

use std::time::Duration;

use anyhow::{Context, Result};

use super::clients::Clients;
use super::params::TParams;
use super::receiver::LiveOutcome;
use super::writer::TenantWriter;
use crate::ctx::Ctx;
use crate::db;
use crate::pgstats::{self, DbStats};
use crate::server::ServerProc;

/// The name of the database of run `p`, told apart by `suffix`.
pub fn db_name(p: &TParams, suffix: &str) -> String {
    format!(
        "pglive_bench_{}_{}_{suffix}",
        std::process::id(),
        p.name.to_ascii_lowercase().replace('-', "_")
    )
}

/// A fresh database with `rows` items spread over `tenants` (row g has
/// tenant `tenants[(g - 1) % len]`), autovacuum off, vacuumed.
pub async fn prepare_db(
    ctx: &Ctx,
    db_name: &str,
    rows: usize,
    tenants: &[String],
) -> Result<String> {
    let bin = ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?;
    db::create_database(&ctx.admin, db_name).await?;
    let db_url = db::url_with_db(&ctx.admin_url, db_name);
    db::migrate(&bin, &db_url).await?;
    let c = db::connect(&db_url).await?;
    let n = i32::try_from(rows).context("too many rows")?;
    c.execute(
        "INSERT INTO items (name, tenant) \
         SELECT 'seed-' || g, ($2::text[])[1 + (g - 1) % cardinality($2::text[])] \
         FROM generate_series(1, $1::int) g ORDER BY g",
        &[&n, &tenants],
    )
    .await
    .context("seeding items")?;
    for t in ["items", "tasks"] {
        c.batch_execute(&format!(
            "ALTER TABLE {t} SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
        ))
        .await
        .with_context(|| format!("disabling autovacuum on {t}"))?;
    }
    c.batch_execute("VACUUM ANALYZE items")
        .await
        .context("VACUUM ANALYZE")?;
    Ok(db_url)
}

/// Runs `inner` within the deadline, then drops the database; the error,
/// if it failed, for the report.
pub async fn guarded<F>(ctx: &Ctx, db_name: &str, deadline_s: f64, inner: F) -> Option<String>
where
    F: std::future::Future<Output = Result<()>>,
{
    let res = match tokio::time::timeout(Duration::from_secs_f64(deadline_s), inner).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "the run did not finish within its deadline of {deadline_s:.0} s; stopped"
        )),
    };
    if let Err(e) = db::drop_database(&ctx.admin, db_name).await {
        eprintln!("pglive-bench: could not drop {db_name}: {e:#}");
    }
    res.err().map(|e| format!("{e:#}"))
}

/// What a run has running at its end.
pub struct Running {
    pub clients: Clients,
    pub writer: TenantWriter,
    pub server: ServerProc,
}

/// Ends run `p`: the clients stop (what they saw is returned), then the
/// writer and pglive; once pglive's backends are gone (they flush their
/// statistics when they exit), the database's statistics are read.
pub async fn finish(
    ctx: &Ctx,
    p: &TParams,
    (db_name, db_url): (&str, &str),
    running: Running,
    notes: &mut Vec<String>,
) -> Result<(Vec<LiveOutcome>, DbStats)> {
    let Running {
        clients,
        writer,
        server,
    } = running;
    let outcomes = clients.stop(notes).await;
    drop(writer);
    server.stop(stop_grace(p)).await;
    if !pgstats::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        notes.push("backends still connected 15 s after the server stopped".into());
    }
    let after = pgstats::read_stats(&ctx.admin, db_url, db_name).await?;
    Ok((outcomes, after))
}

/// How long pglive gets after SIGTERM before SIGKILL. Its engine waits up
/// to 5 s for group tasks, which lingering groups outlast; the smoke does not
/// wait for that (its backends still exit, and flush their statistics, when
/// its connections close).
fn stop_grace(p: &TParams) -> Duration {
    Duration::from_secs(if p.smoke { 1 } else { 10 })
}

/// pglive's WebSocket endpoint.
pub fn ws_url(server: &ServerProc) -> String {
    format!("ws://127.0.0.1:{}/ws", server.port)
}

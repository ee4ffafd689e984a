//! Scenario REL (issue 21): clients on pages of tasks that include each
//! task's newest comments and their count, under comment inserts (REL) or
//! moves between tasks (REL-MOVE); measured as the other scenarios are,
//! then the whole nested query's cost per change (the Hasura approach) on
//! the same data. See `related` and docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::related::checks::{converge, deliveries};
use super::related::client::{Clients, RelOutcome, RelShared};
use super::related::nested::{self, fresh_pages};
use super::related::params::{COMMENTS_PER_TASK, RParams};
use super::related::report::{RProblems, RelReport};
use super::related::writer::CommentWriter;
use super::tenants::measure::Phase;
use super::tenants::setup::{guarded, ws_url};
use crate::ctx::Ctx;
use crate::report::percentiles;
use crate::{db, pgstats, server};

/// Re-runs of every distinct query the Hasura-style cost is averaged over.
const NESTED_RERUNS: usize = 3;

/// Runs `p`; never fails (errors land in the report), always drops its
/// database.
pub async fn run(ctx: &Ctx, p: &RParams) -> RelReport {
    let mut rep = RelReport {
        name: p.name.clone(),
        clients: p.clients,
        pages: p.pages,
        tasks: p.tasks,
        comments: p.comments,
        ..RelReport::default()
    };
    let db_name = format!(
        "pglive_bench_{}_{}_pglive",
        std::process::id(),
        p.name.to_ascii_lowercase().replace('-', "_")
    );
    rep.error = guarded(
        ctx,
        &db_name,
        p.schedule.deadline_s,
        inner(ctx, p, &db_name, &mut rep),
    )
    .await;
    rep.ok = rep.error.is_none();
    rep
}

/// A fresh database with `p.tasks` tasks (keys 1..=tasks) and
/// `COMMENTS_PER_TASK` comments on each, a second apart (no two comments
/// share a `created_at`, so every window has one order), autovacuum off,
/// vacuumed.
async fn prepare_db(ctx: &Ctx, p: &RParams, db_name: &str) -> Result<String> {
    let bin = ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?;
    db::create_database(&ctx.admin, db_name).await?;
    let db_url = db::url_with_db(&ctx.admin_url, db_name);
    db::migrate(&bin, &db_url).await?;
    let c = db::connect(&db_url).await?;
    let tasks = i32::try_from(p.tasks).context("too many tasks")?;
    let per = i32::try_from(COMMENTS_PER_TASK).context("too many comments")?;
    c.execute(
        "INSERT INTO tasks (title, status, priority, assignee) \
         SELECT 'seed-task-' || g, (ARRAY['todo','in_progress','done'])[1 + g % 3], \
                g % 4, 'user-' || (g % 50) \
         FROM generate_series(1, $1::int) g ORDER BY g",
        &[&tasks],
    )
    .await
    .context("seeding tasks")?;
    let (lo, hi): (i32, i32) = {
        let r = c
            .query_one("SELECT min(id), max(id) FROM tasks", &[])
            .await?;
        (r.try_get(0)?, r.try_get(1)?)
    };
    anyhow::ensure!(
        (lo, hi) == (1, tasks),
        "seeded task keys are {lo}..={hi}, not 1..={tasks}"
    );
    // Comment g is on task 1 + (g - 1) % tasks, g seconds before the start.
    c.execute(
        "INSERT INTO comments (task_id, author, body, created_at) \
         SELECT 1 + (g - 1) % $1::int, 'user-' || (g % 50), 'seed comment ' || g, \
                now() - make_interval(secs => g) \
         FROM generate_series(1, $1::int * $2::int) g",
        &[&tasks, &per],
    )
    .await
    .context("seeding comments")?;
    for t in ["items", "tasks", "comments"] {
        c.batch_execute(&format!(
            "ALTER TABLE {t} SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
        ))
        .await
        .with_context(|| format!("disabling autovacuum on {t}"))?;
    }
    // One statement each: VACUUM cannot run in a multi-statement batch.
    for t in ["tasks", "comments"] {
        c.batch_execute(&format!("VACUUM ANALYZE {t}"))
            .await
            .with_context(|| format!("VACUUM ANALYZE {t}"))?;
    }
    Ok(db_url)
}

async fn inner(ctx: &Ctx, p: &RParams, db_name: &str, rep: &mut RelReport) -> Result<()> {
    let bin = ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?;
    let t_seed = Instant::now();
    let db_url = prepare_db(ctx, p, db_name).await?;
    rep.notes.push(format!(
        "seeded {} tasks and {} comments in {:.1} s",
        p.tasks,
        p.comments,
        t_seed.elapsed().as_secs_f64()
    ));
    let log = ctx.out_dir.join(format!(
        "{}-pglive-{}.log",
        p.name.to_ascii_lowercase(),
        ctx.stamp
    ));
    let mut server = server::start_pglive(&bin, &db_url, &log, &[]).await?;
    rep.notes.push(format!("server log {}", log.display()));

    // Client i watches page i % pages: every page is a distinct query,
    // shared by clients / pages clients.
    let shared = Arc::new(RelShared::new());
    let page_of_client: Vec<usize> = (0..p.clients).map(|i| i % p.pages).collect();
    let queries = page_of_client.iter().map(|&pg| nested::query(pg)).collect();
    let mut clients = Clients::spawn(
        &shared,
        &ws_url(&server),
        queries,
        p.schedule.connect_concurrency,
    );
    (rep.connect_seconds, rep.ready) = clients
        .wait_ready(&p.name, &p.schedule, &mut server, &mut rep.notes)
        .await?;

    let watched = i64::try_from(p.pages * super::related::params::PAGE).unwrap_or(i64::MAX);
    let writer = CommentWriter::open(&db_url, watched, p.kind, p.schedule.seed, shared.t0).await?;
    if p.schedule.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.schedule.settle_s)).await;
    }
    let before = pgstats::read_stats(&ctx.admin, &db_url, db_name).await?;
    let phase = Phase::start(&server).await;
    shared.measuring.store(true, Ordering::Release);
    let t_writes = Instant::now();
    let ops = writer.write(p.writes, p.rate).await?;
    rep.writes = ops.len();
    rep.achieved_rate = ops.len() as f64 / t_writes.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "pglive-bench: {}: {} writes done ({:.1}/s); waiting for the tail",
        p.name, rep.writes, rep.achieved_rate
    );
    clients.tail(&p.schedule, &mut rep.notes).await;
    let cost = phase.end(&server).await;
    rep.server_cpu_seconds = cost.server_cpu_seconds;
    rep.bench_cpu_seconds = cost.bench_cpu_seconds;
    rep.server_rss_peak_mib = server::status_mib(server.pid, "VmHWM");
    rep.metrics = cost.metrics;

    // Clients, writer and pglive stop; once pglive's backends are gone
    // (they flush their statistics when they exit) the statistics are read.
    let outcomes = clients.stop(&mut rep.notes).await;
    drop(writer);
    if let Some(status) = server.exited() {
        rep.notes.push(format!(
            "pglive exited during the run ({status}); last log lines:\n{}",
            server::tail_of(&log, 30)
        ));
    }
    server
        .stop(Duration::from_secs(if p.smoke { 1 } else { 10 }))
        .await;
    if !pgstats::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        rep.notes
            .push("backends still connected 15 s after the server stopped".into());
    }
    let after = pgstats::read_stats(&ctx.admin, &db_url, db_name).await?;
    let w = rep.writes.max(1) as f64;
    rep.rows_read_per_write = ((after.seq_tup_read + after.idx_tup_fetch)
        - (before.seq_tup_read + before.idx_tup_fetch))
        .max(0) as f64
        / w;
    rep.scans_per_write =
        ((after.seq_scan + after.idx_scan) - (before.seq_scan + before.idx_scan)).max(0) as f64 / w;

    // The checks read the pages afresh (uncounted), after the statistics.
    let want = fresh_pages(&db_url, p.pages).await?;
    rep.convergence = converge(&outcomes, &page_of_client, &want);
    rep.deliveries = deliveries(&ops, &outcomes, &page_of_client);
    rep.problems = problems(&outcomes);
    let after_bytes: u64 = outcomes.iter().map(|o| o.bytes_after).sum();
    let after_frames: u64 = outcomes.iter().map(|o| o.frames_after).sum();
    let seen = rep.deliveries.seen.max(1) as f64;
    let n = rep.ready.max(1) as f64;
    rep.bytes_per_delivery = after_bytes as f64 / seen;
    rep.frames_per_delivery = after_frames as f64 / seen;
    rep.bytes_per_client_per_change = after_bytes as f64 / n / w;
    rep.initial_bytes_per_client = outcomes.iter().map(|o| o.bytes_before).sum::<u64>() as f64 / n;
    rep.server_cpu_us_per_delivery = rep
        .server_cpu_seconds
        .filter(|_| rep.deliveries.seen > 0)
        .map(|cpu| cpu * 1e6 / seen);
    rep.commit_round_trip_ms = percentiles(ops.iter().map(|o| o.round_trip_us).collect());
    if rep.ready < rep.clients {
        rep.notes.push(format!(
            "only {}/{} clients got their snapshot",
            rep.ready, rep.clients
        ));
    }

    // The Hasura-style cost, on the final data, nothing else connected.
    let reruns = if p.smoke { 1 } else { NESTED_RERUNS };
    let cost = nested::measure(ctx, &db_url, db_name, p.pages, &ops, reruns).await?;
    rep.nested = Some(cost);
    Ok(())
}

/// Sums the clients' problems, with a few examples.
fn problems(outcomes: &[RelOutcome]) -> RProblems {
    let mut p = RProblems::default();
    for o in outcomes {
        p.error_frames += o.error_frames;
        p.decode_errors += o.decode_errors;
        p.version_gaps += o.version_gaps;
        p.malformed_entries += o.malformed_entries;
        if o.conn.closed_early {
            p.closed_early += 1;
        }
        for e in [&o.conn.error, &o.example].into_iter().flatten() {
            if p.examples.len() < 5 && !p.examples.contains(e) {
                p.examples.push(e.clone());
            }
        }
    }
    p
}

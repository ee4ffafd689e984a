//! Scenario RLS: clients in tenants, each with its own JWT, all subscribed
//! to all of `items`; row-level security gives each only its tenant's rows.
//! Writes go to random tenants. Measures what a write costs the database
//! when every tenant is its own security context (one group each), and
//! checks every frame for rows of another tenant. See docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::tenants::checks::check;
use super::tenants::clients::spawn_clients;
use super::tenants::measure::{Phase, db_delta};
use super::tenants::params::TParams;
use super::tenants::receiver::{LiveShared, PHASE_WRITES};
use super::tenants::report::RlsReport;
use super::tenants::session::LiveSpec;
use super::tenants::setup::{Running, db_name, finish, guarded, prepare_db, ws_url};
use super::tenants::token::{JWT_SECRET, mint};
use super::tenants::writer::TenantWriter;
use crate::ctx::Ctx;
use crate::report::percentiles;
use crate::server;
use crate::{db, pgstats};

/// Runs RLS; never fails (errors land in the report), always drops its
/// database.
pub async fn run(ctx: &Ctx, p: &TParams) -> RlsReport {
    let mut rep = RlsReport {
        mode: if p.partition_hint {
            "partition hint".into()
        } else {
            "no partition hint".into()
        },
        clients: p.clients,
        tenants: p.tenants,
        ..RlsReport::default()
    };
    let db_name = db_name(p, "pglive");
    rep.error = guarded(
        ctx,
        &db_name,
        p.schedule.deadline_s,
        rls_inner(ctx, p, &db_name, &mut rep),
    )
    .await;
    rep.ok = rep.error.is_none();
    rep
}

async fn rls_inner(ctx: &Ctx, p: &TParams, db_name: &str, rep: &mut RlsReport) -> Result<()> {
    let bin = ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?;
    let tenants: Vec<String> = (0..p.tenants).map(|t| format!("t{t}")).collect();
    let db_url = prepare_db(ctx, db_name, p.rows, &tenants).await?;
    // The demo migrations watch items with the hint; the scenario sets the
    // mode it measures explicitly either way.
    let sql = if p.partition_hint {
        "SELECT pglive_watch('items', partition => 'tenant')"
    } else {
        "SELECT pglive_watch('items')"
    };
    let c = db::connect(&db_url).await?;
    c.batch_execute(sql).await.map_err(|e| {
        let detail = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        anyhow::anyhow!("`{sql}` failed: {detail}")
    })?;
    rep.notes
        .push(format!("set before the server started: {sql}"));
    let log = ctx.out_dir.join(format!(
        "{}-pglive-{}.log",
        p.name.to_ascii_lowercase(),
        ctx.stamp
    ));
    let mut server = server::start_pglive(
        &bin,
        &db_url,
        &log,
        &[
            "--jwt-secret",
            JWT_SECRET,
            "--jwt-context-claims",
            "tenant",
            // The bench connects as the cluster's superuser.
            "--allow-privileged-login",
        ],
    )
    .await?;
    rep.notes.push(format!("server log {}", log.display()));

    // Clients: client i is in tenant i % tenants.
    let prefix = format!("bm-{}-", ctx.run_id);
    let shared = Arc::new(LiveShared::new(prefix, p.writes));
    let url = ws_url(&server);
    let tenant_of: Vec<usize> = (0..p.clients).map(|i| i % p.tenants).collect();
    let mut specs = Vec::with_capacity(p.clients);
    for (i, &t) in tenant_of.iter().enumerate() {
        specs.push(LiveSpec {
            url: url.clone(),
            token: Some(mint(&format!("user-{i}"), &tenants[t])?),
            tenant: Some(tenants[t].clone()),
            resume: false,
            read_buffer: 8 << 10,
        });
    }
    let clients = spawn_clients(&shared, specs, p.schedule.connect_concurrency);
    (rep.connect_seconds, rep.ready) = clients
        .wait_ready(&p.name, &p.schedule, &mut server, &mut rep.notes)
        .await?;

    let writer = TenantWriter::open(&db_url, &tenants, &shared, p.schedule.seed).await?;
    if p.schedule.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.schedule.settle_s)).await;
    }
    let before = pgstats::read_stats(&ctx.admin, &db_url, db_name).await?;
    let phase = Phase::start(&server).await;
    shared.phase.store(PHASE_WRITES, Ordering::Release);
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

    let running = Running {
        clients,
        writer,
        server,
    };
    let (outcomes, after) = finish(ctx, p, (db_name, &db_url), running, &mut rep.notes).await?;
    rep.db = db_delta(&before, &after, &ops);
    // The final read comes after the statistics (it scans the table).
    let checked = check(&db_url, &tenants, &ops, &outcomes, &tenant_of).await?;
    rep.convergence = checked.convergence;
    rep.deliveries = checked.deliveries;
    rep.problems = checked.problems;
    let n = rep.ready.max(1) as f64;
    let w = rep.writes.max(1) as f64;
    let after_bytes: u64 = outcomes.iter().map(|o| o.bytes[PHASE_WRITES]).sum();
    let after_frames: u64 = outcomes.iter().map(|o| o.frames[PHASE_WRITES]).sum();
    rep.bytes_per_client_per_change = after_bytes as f64 / n / w;
    rep.frames_per_client_per_change = after_frames as f64 / n / w;
    rep.bytes_per_delivery = after_bytes as f64 / rep.deliveries.seen.max(1) as f64;
    rep.initial_bytes_per_client = outcomes.iter().map(|o| o.bytes[0]).sum::<u64>() as f64 / n;
    rep.commit_round_trip_ms = percentiles(ops.iter().map(|o| o.round_trip_us).collect());
    Ok(())
}

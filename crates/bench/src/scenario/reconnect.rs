//! Scenario RECONNECT: clients on all items; after some writes every
//! client drops its connection and comes back while writes go on,
//! resubscribing with `since` (resume) or without (snapshot), one run each.
//! See docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::tenants::checks::check;
use super::tenants::clients::spawn_clients;
use super::tenants::measure::{Phase, db_delta};
use super::tenants::params::TParams;
use super::tenants::receiver::{
    AnswerKind, LiveShared, PHASE_RECONNECT, PHASE_WRITES, STAGE_DROP, STAGE_RECONNECT,
};
use super::tenants::report::ReconnectReport;
use super::tenants::session::LiveSpec;
use super::tenants::setup::{Running, db_name, finish, guarded, prepare_db, ws_url};
use super::tenants::writer::TenantWriter;
use crate::ctx::Ctx;
use crate::pgstats;
use crate::report::percentiles;
use crate::server;

/// Runs RECONNECT, resuming (`since`) or not; never fails (errors land in
/// the report), always drops its database.
pub async fn run(ctx: &Ctx, p: &TParams, resume: bool) -> ReconnectReport {
    let mode = if resume { "resume" } else { "snapshot" };
    let mut rep = ReconnectReport {
        mode: mode.into(),
        clients: p.clients,
        writes_before: p.writes,
        writes_during: p.writes_during,
        ..ReconnectReport::default()
    };
    let db_name = db_name(p, mode);
    rep.error = guarded(
        ctx,
        &db_name,
        p.schedule.deadline_s,
        reconnect_inner(ctx, p, resume, &db_name, &mut rep),
    )
    .await;
    rep.ok = rep.error.is_none();
    rep
}

async fn reconnect_inner(
    ctx: &Ctx,
    p: &TParams,
    resume: bool,
    db_name: &str,
    rep: &mut ReconnectReport,
) -> Result<()> {
    let bin = ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?;
    let tenants = vec!["public".to_string()];
    let db_url = prepare_db(ctx, db_name, p.rows, &tenants).await?;
    let log = ctx.out_dir.join(format!(
        "{}-{}-pglive-{}.log",
        p.name.to_ascii_lowercase(),
        rep.mode,
        ctx.stamp
    ));
    let mut server = server::start_pglive(&bin, &db_url, &log, &[]).await?;
    rep.notes.push(format!("server log {}", log.display()));

    let prefix = format!("bm-{}-", ctx.run_id);
    let n_ops = p.writes + p.writes_during;
    let shared = Arc::new(LiveShared::new(prefix, n_ops));
    let url = ws_url(&server);
    let specs = (0..p.clients)
        .map(|_| LiveSpec {
            url: url.clone(),
            token: None,
            tenant: None,
            resume,
            // Snapshots of 10,000 rows are 1.2 MB: larger reads.
            read_buffer: 64 << 10,
        })
        .collect();
    let clients = spawn_clients(&shared, specs, p.schedule.connect_concurrency);
    (rep.connect_seconds, rep.ready) = clients
        .wait_ready(
            &format!("{} {}", p.name, rep.mode),
            &p.schedule,
            &mut server,
            &mut rep.notes,
        )
        .await?;

    // Phase A: writes with everyone connected.
    let writer = TenantWriter::open(&db_url, &tenants, &shared, p.schedule.seed).await?;
    shared.phase.store(PHASE_WRITES, Ordering::Release);
    let mut ops = writer.write(p.writes, p.rate).await?;
    clients.tail(&p.schedule, &mut rep.notes).await;
    if p.schedule.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.schedule.settle_s)).await;
    }

    // Phase B: drop, reconnect, while writes go on.
    let before = pgstats::read_stats(&ctx.admin, &db_url, db_name).await?;
    let phase = Phase::start(&server).await;
    shared.phase.store(PHASE_RECONNECT, Ordering::Release);
    let first_b = ops.len();
    let t_drop = Instant::now();
    clients.stage(STAGE_DROP);
    let orchestrate = async {
        // Every socket closed, and pglive has let go of them.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let open = shared.open.load(Ordering::Acquire);
            let conns =
                server::metrics(server.port, &["pglive_connections", "pglive_groups"]).await;
            let server_conns = conns
                .as_ref()
                .and_then(|v| v.first().copied().flatten())
                .unwrap_or(0.0);
            if (open == 0 && server_conns == 0.0) || Instant::now() >= deadline {
                rep.connections_after_drop = Some(server_conns);
                rep.groups_after_drop = conns.and_then(|v| v.get(1).copied().flatten());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rep.drop_ms = t_drop.elapsed().as_secs_f64() * 1000.0;
        let t_reconnect = shared.now_us();
        clients.stage(STAGE_RECONNECT);
        let deadline = Instant::now() + Duration::from_secs_f64(p.schedule.connect_timeout_s);
        while shared.caught_up.load(Ordering::Acquire) < rep.ready && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t_reconnect
    };
    let (written, t_reconnect) = tokio::join!(writer.write(p.writes_during, p.rate), orchestrate);
    ops.extend(written?);
    clients.tail(&p.schedule, &mut rep.notes).await;
    let cost = phase.end(&server).await;
    rep.server_cpu_seconds = cost.server_cpu_seconds;
    rep.bench_cpu_seconds = cost.bench_cpu_seconds;
    rep.metrics = cost.metrics;
    rep.full_queries = rep
        .metrics
        .get("refreshes")
        .zip(rep.metrics.get("refreshes_keyed"))
        .map(|(a, b)| a - b);

    let running = Running {
        clients,
        writer,
        server,
    };
    let (outcomes, after) = finish(ctx, p, (db_name, &db_url), running, &mut rep.notes).await?;
    rep.db = db_delta(&before, &after, &ops[first_b..]);
    let tenant_of = vec![0usize; outcomes.len()];
    let checked = check(&db_url, &tenants, &ops, &outcomes, &tenant_of).await?;
    rep.convergence = checked.convergence;
    rep.deliveries = checked.deliveries;
    rep.problems = checked.problems;

    let mut answer_us = Vec::new();
    let mut answered_max = None::<u64>;
    let mut caught_max = None::<u64>;
    let mut all_caught = true;
    let (mut a_bytes, mut a_frames) = (0u64, 0u64);
    for o in &outcomes {
        match o.answer.as_ref().filter(|a| a.answered_us > 0) {
            Some(a) => {
                match a.kind {
                    AnswerKind::Resumed => rep.answered_resumed += 1,
                    AnswerKind::Snapshot => rep.answered_snapshot += 1,
                }
                a_bytes += a.bytes;
                a_frames += a.frames;
                answer_us.push(
                    u32::try_from(a.answered_us.saturating_sub(a.sent_us)).unwrap_or(u32::MAX),
                );
                answered_max = Some(answered_max.unwrap_or(0).max(a.answered_us));
                match a.caught_up_us {
                    Some(c) => caught_max = Some(caught_max.unwrap_or(0).max(c)),
                    None => all_caught = false,
                }
            }
            None => rep.unanswered += 1,
        }
    }
    let answered = (rep.answered_resumed + rep.answered_snapshot).max(1) as f64;
    rep.resumed_fraction = rep.answered_resumed as f64 / p.clients.max(1) as f64;
    rep.answer_bytes_per_client = a_bytes as f64 / answered;
    rep.answer_frames_per_client = a_frames as f64 / answered;
    rep.reconnect_phase_bytes_per_client = outcomes
        .iter()
        .map(|o| o.bytes[PHASE_RECONNECT])
        .sum::<u64>() as f64
        / outcomes.len().max(1) as f64;
    rep.answer_ms = percentiles(answer_us);
    if rep.unanswered == 0 {
        rep.all_answered_after_reconnect_ms =
            answered_max.map(|a| a.saturating_sub(t_reconnect) as f64 / 1000.0);
        if all_caught {
            rep.all_caught_up_after_reconnect_ms =
                caught_max.map(|a| a.saturating_sub(t_reconnect) as f64 / 1000.0);
        }
    }
    Ok(())
}

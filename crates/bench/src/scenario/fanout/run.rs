//! One server's run of one S1–S6 scenario: fresh database, server, clients,
//! settle, writes, tail, statistics, teardown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::clients::{collect, tail, wait_ready};
use super::receiver::{self, ClientOutcome, Role};
use super::report::TargetReport;
use super::sample::{self, sample};
use super::target::Target;
use super::typed::{subscribe_query, typed_check};
use crate::connection::ClientSpec;
use crate::ctx::Ctx;
use crate::floor::Floor;
use crate::scenario::Params;
use crate::server::{self, ServerProc};
use crate::shared::Shared;
use crate::workload::Table;
use crate::writer::{Plan, Writer, WriterOutcome};
use crate::{db, pgstats};

/// Runs `target` in scenario `p`; never fails (errors land in the report),
/// always drops its database, always ends by `p.deadline()`.
pub async fn run_target(ctx: &Ctx, p: &Params, target: Target) -> TargetReport {
    let mut rep = TargetReport {
        target: target.name().to_string(),
        clients: p.clients,
        ..TargetReport::default()
    };
    let db_name = format!(
        "pglive_bench_{}_{}_{}",
        std::process::id(),
        p.name.to_ascii_lowercase(),
        target.db_suffix()
    );
    let res =
        tokio::time::timeout(p.deadline(), run_inner(ctx, p, target, &db_name, &mut rep)).await;
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => rep.error = Some(format!("{e:#}")),
        Err(_) => {
            rep.error = Some(format!(
                "the run did not finish within its deadline of {:.0} s; stopped",
                p.schedule.deadline_s
            ))
        }
    }
    if let Err(e) = db::drop_database(&ctx.admin, &db_name).await {
        rep.notes.push(format!("could not drop {db_name}: {e:#}"));
    }
    rep.ok = rep.error.is_none();
    rep
}

/// What a target runs from, resolved before its database is made.
enum Prepared {
    Pglive(PathBuf),
    Peer(PathBuf),
    Floor(Floor),
}

impl Prepared {
    fn of(ctx: &Ctx, target: Target) -> Result<Prepared> {
        Ok(match target {
            Target::Pglive => Prepared::Pglive(ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?),
            Target::Peer => Prepared::Peer(ctx.peer_dir.clone().map_err(anyhow::Error::msg)?),
            Target::Floor => Prepared::Floor(ctx.floor.clone().map_err(anyhow::Error::msg)?),
        })
    }

    /// Gives the fresh database at `db_url` the target's schema.
    async fn schema(&self, db_url: &str) -> Result<()> {
        match self {
            Prepared::Pglive(bin) => db::migrate(bin, db_url).await?,
            Prepared::Peer(dir) => {
                let sql = std::fs::read_to_string(dir.join("schema.sql"))
                    .context("reading the peer's schema.sql")?;
                let c = db::connect(db_url).await?;
                c.batch_execute(&sql)
                    .await
                    .context("applying the peer's schema.sql")?;
            }
            Prepared::Floor(floor) => {
                let c = db::connect(db_url).await?;
                c.batch_execute(&floor.prep_sql)
                    .await
                    .context("applying the floor's prep.sql")?;
            }
        }
        Ok(())
    }

    async fn start(&self, ctx: &Ctx, db_url: &str, log: &std::path::Path) -> Result<ServerProc> {
        match self {
            Prepared::Pglive(bin) => server::start_pglive(bin, db_url, log, &[]).await,
            Prepared::Peer(dir) => server::start_peer(&ctx.node, dir, db_url, log).await,
            Prepared::Floor(floor) => server::start_floor(&floor.bin, db_url, log).await,
        }
    }
}

async fn run_inner(
    ctx: &Ctx,
    p: &Params,
    target: Target,
    db_name: &str,
    rep: &mut TargetReport,
) -> Result<()> {
    let pglive = target == Target::Pglive;
    // Resolve what this target needs before touching the database.
    let what = Prepared::of(ctx, target)?;

    // 1. Fresh database with N rows.
    db::create_database(&ctx.admin, db_name).await?;
    let db_url = db::url_with_db(&ctx.admin_url, db_name);
    // Only pglive has `tasks`; the others always serve all of `items`.
    let table = if pglive { p.table } else { Table::Items };
    what.schema(&db_url).await?;
    db::seed(&db_url, table, p.rows, pglive).await?;

    // 2. The server.
    let log = ctx.out_dir.join(format!(
        "{}-{}-{}.log",
        p.name.to_ascii_lowercase(),
        target.name(),
        ctx.stamp
    ));
    rep.server_log = Some(log.display().to_string());
    let mut server = what.start(ctx, &db_url, &log).await?;

    // 3. Clients.
    let n_ops = p.writes * p.batch;
    let prefix = format!("bm-{}-", ctx.run_id);
    let shared = Arc::new(Shared::new(&prefix, n_ops, p.rows + n_ops + 1));
    // Owned by this run; every client holds a receiver and ends when the
    // run sends `true` (step 9) or drops the sender.
    let (stop_tx, stop_rx) = watch::channel(false);
    // The connect slots: each client holds a permit while it connects and
    // waits for its initial state. Dropped with the last client.
    let gate = Arc::new(Semaphore::new(p.schedule.connect_concurrency));
    let url = if pglive {
        format!("ws://127.0.0.1:{}/ws", server.port)
    } else {
        format!("ws://127.0.0.1:{}/", server.port)
    };
    // tungstenite zero-fills up to this much of its read buffer before every
    // read(2) (and caps each read at it): 128 KiB (the default) costs ~20 µs
    // per small frame. pglive's and the floor's frames are small; the peer's
    // are whole tables, where fewer, larger reads win.
    let read_buffer = if target == Target::Peer {
        64 << 10
    } else {
        8 << 10
    };
    let mut groups = Vec::with_capacity(p.clients);
    let mut set: JoinSet<(usize, ClientOutcome)> = JoinSet::new();
    let t_connect = Instant::now();
    for i in 0..p.clients {
        let group = match (pglive, p.table) {
            (true, Table::Tasks { groups }) => u32::try_from(i % groups.max(1)).unwrap_or(0),
            _ => 0,
        };
        groups.push(group);
        let spec = ClientSpec {
            url: url.clone(),
            subscribe: if pglive {
                Some(subscribe_query(p, i)?)
            } else {
                None
            },
            read_buffer,
        };
        let role = Role {
            group,
            raw: target == Target::Floor,
        };
        let fut = receiver::run(
            Arc::clone(&shared),
            spec,
            role,
            Arc::clone(&gate),
            stop_rx.clone(),
        );
        set.spawn(async move { (i, fut.await) });
    }
    wait_ready(p, target, &shared, &mut server, &log, t_connect, rep).await?;
    rep.connect_seconds = t_connect.elapsed().as_secs_f64();
    eprintln!(
        "pglive-bench: {} {}: {}/{} clients ready in {:.1} s",
        p.name,
        target.name(),
        shared.ready.load(Ordering::Acquire),
        p.clients,
        rep.connect_seconds
    );

    // 4. The writer connects now, then everything settles.
    let plan = Plan {
        url: db_url.clone(),
        table,
        rows: p.rows,
        writes: p.writes,
        batch: p.batch,
        rate: p.rate,
        mix: p.mix,
        seed: p.schedule.seed,
        prefix,
    };
    let writer = WriterThread::start(plan, Arc::clone(&shared))?;
    let writer_pid = writer.ready.await.context("writer thread ended")??;
    if p.schedule.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.schedule.settle_s)).await;
    }

    // 5. Before: statistics and CPU.
    let before_stats = pgstats::read_stats(&ctx.admin, &db_url, db_name).await?;
    let exclude = [writer_pid, before_stats.reader_pid];
    let before = sample(ctx, &server, db_name, &exclude, pglive).await;
    let t_measure = Instant::now();
    shared.measuring.store(true, Ordering::Release);
    writer.go.send(true).context("writer thread ended")?;

    // 6. Writes.
    let wout = writer
        .done
        .await
        .context("the writer thread ended without a result")?;
    if let Some(e) = &wout.error {
        rep.error = Some(format!("writer: {e}"));
    }
    eprintln!(
        "pglive-bench: {} {}: {} writes done ({:.1}/s); waiting for the tail",
        p.name,
        target.name(),
        wout.transactions,
        wout.achieved_rate
    );

    // 7. Tail: until no client got a frame for `quiet`, or the tail timeout.
    tail(p, &shared, rep).await;

    // 8. After: CPU (including the tail), memory, metrics.
    let after = sample(ctx, &server, db_name, &exclude, pglive).await;
    rep.measured_seconds = t_measure.elapsed().as_secs_f64();
    sample::fill(rep, &server, &before, &after);

    // 8b. pglive: a contract-typed client checks every row and its order.
    if pglive {
        match typed_check(
            p,
            format!("ws://127.0.0.1:{}/ws", server.port),
            db_url.clone(),
        )
        .await
        {
            Ok(rows) => rep.notes.push(format!(
                "typed check: a contract client's {rows} rows equal a fresh query, in order"
            )),
            Err(e) => rep.error = Some(format!("{e:#}")),
        }
    }

    // 9. Clients stop; collect what they saw.
    let _ = stop_tx.send(true);
    let outcomes = collect(set, p.clients, rep).await;

    // 10. The server stops (its connections close and flush their statistics).
    if let Some(status) = server.exited() {
        rep.notes.push(format!(
            "{} exited during the run ({status}); last log lines:\n{}",
            target.name(),
            server::tail_of(&log, 30)
        ));
    }
    rep.server_end = Some(server.stop(Duration::from_secs(10)).await);
    if !pgstats::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        rep.notes.push(
            "backends still connected 15 s after the server stopped: statistics may be incomplete"
                .into(),
        );
    }
    let after_stats = pgstats::read_stats(&ctx.admin, &db_url, db_name).await?;
    // Ours since "before": the writes, plus the "before" table-stats query.
    rep.set_db_deltas(&before_stats, &after_stats, &wout, wout.transactions + 1);

    // 11. Numbers.
    rep.add_clients(&outcomes, &shared, &groups, wout);
    Ok(())
}

/// The writer on its own OS thread (see `writer.rs`), driven by three
/// channels.
struct WriterThread {
    /// Its backend pid once connected and prepared, or why it could not.
    /// Sent once by the thread, which drops it then.
    ready: tokio::sync::oneshot::Receiver<Result<i32>>,
    /// `true` starts the writes. Owned by the run; the thread waits on it
    /// once, and gives up when it is dropped unsent.
    go: std::sync::mpsc::Sender<bool>,
    /// What the writes did. Sent once by the thread when they are done.
    done: tokio::sync::oneshot::Receiver<WriterOutcome>,
}

impl WriterThread {
    fn start(plan: Plan, shared: Arc<Shared>) -> Result<WriterThread> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<i32>>();
        let (go, go_rx) = std::sync::mpsc::channel::<bool>();
        let (done_tx, done) = tokio::sync::oneshot::channel::<WriterOutcome>();
        std::thread::Builder::new()
            .name("pglive-bench-writer".into())
            .spawn(move || match Writer::open(&plan) {
                Ok(w) => {
                    let _ = ready_tx.send(Ok(w.backend_pid));
                    if go_rx.recv() == Ok(true) {
                        let _ = done_tx.send(w.run(&plan, &shared));
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .context("starting the writer thread")?;
        Ok(WriterThread { ready, go, done })
    }
}

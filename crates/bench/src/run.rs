//! One server's run of one scenario: fresh database, server, clients, settle,
//! writes, tail, statistics, teardown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pglive_schema::tables::{ItemsQuery, TasksFilter, TasksQuery};
use pglive_schema::{ClientMessage, LiveQuery, SubscriptionId};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::client::{self, ClientOutcome, ClientSpec};
use crate::db;
use crate::report::{self, TargetReport};
use crate::scenario::Params;
use crate::server::{self, ServerProc};
use crate::shared::Shared;
use crate::writer::{Plan, Table, Writer, WriterOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pglive,
    /// The article's Node.js server (`../shared/peers/seed-node`).
    Peer,
    /// The fan-out floor (`../shared/peers/floor-rs`).
    Floor,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Pglive => "pglive",
            Target::Peer => "seed-node",
            Target::Floor => "floor",
        }
    }

    /// The suffix of its databases' names.
    fn db_suffix(self) -> &'static str {
        match self {
            Target::Pglive => "pglive",
            Target::Peer => "peer",
            Target::Floor => "floor",
        }
    }
}

/// What every run needs.
pub struct Ctx {
    pub admin: tokio_postgres::Client,
    pub admin_url: String,
    pub out_dir: PathBuf,
    pub pglive_bin: Result<PathBuf, String>,
    /// The prepared copy of the peer, or why it is unavailable.
    pub peer_dir: Result<PathBuf, String>,
    /// The floor's binary and its prep.sql, or why it is unavailable.
    pub floor: Result<crate::floor::Floor, String>,
    pub node: String,
    pub run_id: String,
    pub stamp: String,
}

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
                p.deadline_s
            ))
        }
    }
    if let Err(e) = db::drop_database(&ctx.admin, &db_name).await {
        rep.notes.push(format!("could not drop {db_name}: {e:#}"));
    }
    rep.ok = rep.error.is_none();
    rep
}

/// The bench's clients only scan frames for markers. This one is the test
/// kit's typed client: it decodes every message as the contract's
/// `ServerMessage`, applies diffs with the server's own code, subscribes as
/// client 0 did, and must hold exactly what a fresh query returns.
async fn typed_check(p: &Params, ws_url: String, db_url: String) -> Result<usize> {
    let frame: serde_json::Value = serde_json::from_str(&subscribe_frame(p, 0)?)?;
    let query = frame["query"].clone();
    let table = p.table;
    // The fresh query must not count as pglive's reads in the table
    // statistics read after the run (it would add the whole table to "rows
    // read / write"): its session does not track counts (the bench connects
    // as a superuser, who may turn that off).
    let sep = if db_url.contains('?') { '&' } else { '?' };
    let db_url = format!("{db_url}{sep}options=-c%20track_counts%3Doff");
    let check = tokio::spawn(async move {
        let mut c = pglive_testkit::Client::connect_url(&ws_url).await;
        c.subscribe("check", query).await;
        let want = match table {
            Table::Items => {
                pglive_testkit::fresh_at::<pglive_schema::Item>(
                    &db_url,
                    "SELECT * FROM items ORDER BY id",
                )
                .await
            }
            Table::Tasks { .. } => {
                pglive_testkit::fresh_at::<pglive_schema::Task>(
                    &db_url,
                    "SELECT * FROM tasks WHERE assignee = 'user-0' ORDER BY id",
                )
                .await
            }
        };
        let ok = c.until(|c| c.has("check") && c.rows("check") == want).await;
        (ok, c.len("check"), want.len())
    });
    // The test kit fails loudly (it panics); here that is an error in the report.
    let (ok, got, want) = check
        .await
        .map_err(|e| anyhow::anyhow!("typed check failed: {e}"))?;
    anyhow::ensure!(
        ok,
        "typed check: the contract client holds {got} rows, a fresh query returns {want} (or they differ)"
    );
    Ok(got)
}

fn subscribe_frame(p: &Params, i: usize) -> Result<String> {
    let query = match p.table {
        Table::Items => LiveQuery::Items(ItemsQuery::default()),
        Table::Tasks { groups } => LiveQuery::Tasks(TasksQuery {
            filter: Some(TasksFilter {
                assignee_eq: Some(format!("user-{}", i % groups.max(1))),
                ..TasksFilter::default()
            }),
            ..TasksQuery::default()
        }),
    };
    let msg = ClientMessage::Subscribe {
        id: SubscriptionId("a".into()),
        query: Box::new(query),
        since: None,
    };
    serde_json::to_string(&msg).context("encoding subscribe")
}

/// pglive's counters read before and after (deltas go to the JSON).
const METRICS: &[&str] = &[
    "pglive_refreshes_total",
    "pglive_rows_read_total",
    "pglive_refreshes_keyed_total",
    "pglive_refresh_errors_total",
    "pglive_notifications_total",
    "pglive_snapshots_total",
    "pglive_diffs_total",
    "pglive_frames_sent_total",
    "pglive_bytes_sent_total",
    "pglive_frames_dropped_total",
    "pglive_lagging_resyncs_total",
    "pglive_slow_clients_closed_total",
    "pglive_client_errors_total",
];

struct ProcSample {
    machine_busy: Option<f64>,
    server_cpu: Option<f64>,
    bench_cpu: Option<f64>,
    pg_cpu: HashMap<i32, f64>,
    metrics: Option<Vec<Option<f64>>>,
}

async fn sample(
    ctx: &Ctx,
    server: &ServerProc,
    db_name: &str,
    exclude: &[i32],
    pglive: bool,
) -> ProcSample {
    let pids = db::backend_pids(&ctx.admin, db_name, exclude)
        .await
        .unwrap_or_default();
    let pg_cpu = pids
        .into_iter()
        .filter_map(|pid| {
            let cpu = server::cpu_seconds(u32::try_from(pid).ok()?)?;
            Some((pid, cpu))
        })
        .collect();
    let metrics = if pglive {
        server::metrics(server.port, METRICS).await
    } else {
        None
    };
    ProcSample {
        machine_busy: server::machine_busy_seconds(),
        server_cpu: server::cpu_seconds(server.pid),
        bench_cpu: server::cpu_seconds(std::process::id()),
        pg_cpu,
        metrics,
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
    let what = match target {
        Target::Pglive => Prepared::Pglive(ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?),
        Target::Peer => Prepared::Peer(ctx.peer_dir.clone().map_err(anyhow::Error::msg)?),
        Target::Floor => Prepared::Floor(ctx.floor.clone().map_err(anyhow::Error::msg)?),
    };

    // 1. Fresh database with N rows.
    db::create_database(&ctx.admin, db_name).await?;
    let db_url = db::url_with_db(&ctx.admin_url, db_name);
    // Only pglive has `tasks`; the others always serve all of `items`.
    let table = if pglive { p.table } else { Table::Items };
    match &what {
        Prepared::Pglive(bin) => migrate(bin, &db_url).await?,
        Prepared::Peer(dir) => {
            let sql = std::fs::read_to_string(dir.join("schema.sql"))
                .context("reading the peer's schema.sql")?;
            let c = db::connect(&db_url).await?;
            c.batch_execute(&sql)
                .await
                .context("applying the peer's schema.sql")?;
        }
        Prepared::Floor(floor) => {
            let c = db::connect(&db_url).await?;
            c.batch_execute(&floor.prep_sql)
                .await
                .context("applying the floor's prep.sql")?;
        }
    }
    db::seed(&db_url, table, p.rows, pglive).await?;

    // 2. The server.
    let log = ctx.out_dir.join(format!(
        "{}-{}-{}.log",
        p.name.to_ascii_lowercase(),
        target.name(),
        ctx.stamp
    ));
    rep.server_log = Some(log.display().to_string());
    let mut server = match &what {
        Prepared::Pglive(bin) => server::start_pglive(bin, &db_url, &log, &[]).await?,
        Prepared::Peer(dir) => server::start_peer(&ctx.node, dir, &db_url, &log).await?,
        Prepared::Floor(floor) => server::start_floor(&floor.bin, &db_url, &log).await?,
    };

    // 3. Clients.
    let n_ops = p.writes * p.batch;
    let prefix = format!("bm-{}-", ctx.run_id);
    let shared = Arc::new(Shared::new(&prefix, n_ops, p.rows + n_ops + 1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(p.connect_concurrency));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
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
            addr,
            url: url.clone(),
            subscribe: if pglive {
                Some(subscribe_frame(p, i)?)
            } else {
                None
            },
            raw: target == Target::Floor,
            group,
            read_buffer,
        };
        let fut = client::run(
            Arc::clone(&shared),
            spec,
            Arc::clone(&gate),
            stop_rx.clone(),
        );
        set.spawn(async move { (i, fut.await) });
    }
    let connect_deadline = t_connect + Duration::from_secs_f64(p.connect_timeout_s);
    loop {
        let ready = shared.ready.load(Ordering::Acquire);
        let gave_up = shared.finished.load(Ordering::Acquire);
        if ready + gave_up >= p.clients {
            break;
        }
        if Instant::now() >= connect_deadline {
            rep.notes.push(format!(
                "connect phase timed out after {:.0} s with {ready}/{} clients ready",
                p.connect_timeout_s, p.clients
            ));
            break;
        }
        if let Some(status) = server.exited() {
            anyhow::bail!(
                "{} exited during the connect phase ({status}); log {}:\n{}",
                target.name(),
                log.display(),
                server::tail_of(&log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        seed: p.seed,
        prefix,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<i32>>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<WriterOutcome>();
    let writer_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("pglive-bench-writer".into())
        .spawn(move || match Writer::open(&plan) {
            Ok(w) => {
                let _ = ready_tx.send(Ok(w.backend_pid));
                if go_rx.recv() == Ok(true) {
                    let _ = done_tx.send(w.run(&plan, &writer_shared));
                }
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .context("starting the writer thread")?;
    let writer_pid = ready_rx.await.context("writer thread ended")??;
    if p.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.settle_s)).await;
    }

    // 5. Before: statistics and CPU.
    let before_stats = db::read_stats(&ctx.admin, &db_url, db_name).await?;
    let exclude = [writer_pid, before_stats.reader_pid];
    let before = sample(ctx, &server, db_name, &exclude, pglive).await;
    let t_measure = Instant::now();
    shared.measuring.store(true, Ordering::Release);
    go_tx.send(true).context("writer thread ended")?;

    // 6. Writes.
    let wout = done_rx
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
    let tail_deadline = Instant::now() + Duration::from_secs_f64(p.tail_timeout_s);
    let quiet = Duration::from_secs_f64(p.quiet_s);
    let mut last_count = shared.frames.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let c = shared.frames.load(Ordering::Relaxed);
        if c != last_count {
            last_count = c;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= quiet {
            break;
        }
        if Instant::now() >= tail_deadline {
            rep.notes.push(format!(
                "still sending {:.0} s after the last commit: tail cut off",
                p.tail_timeout_s
            ));
            break;
        }
    }

    // 8. After: CPU (including the tail), memory, metrics.
    let after = sample(ctx, &server, db_name, &exclude, pglive).await;
    rep.measured_seconds = t_measure.elapsed().as_secs_f64();
    rep.server_rss_peak_mib = server::status_mib(server.pid, "VmHWM");
    rep.server_rss_end_mib = server::status_mib(server.pid, "VmRSS");
    rep.server_cpu_total_seconds = after.server_cpu;
    rep.server_cpu_seconds = after.server_cpu.zip(before.server_cpu).map(|(a, b)| a - b);
    rep.bench_cpu_seconds = after.bench_cpu.zip(before.bench_cpu).map(|(a, b)| a - b);
    let mut pg_cpu = 0.0;
    for (pid, cpu) in &after.pg_cpu {
        pg_cpu += cpu - before.pg_cpu.get(pid).copied().unwrap_or(0.0);
    }
    let gone = before
        .pg_cpu
        .keys()
        .filter(|k| !after.pg_cpu.contains_key(k))
        .count();
    if gone > 0 {
        rep.notes.push(format!(
            "{gone} PostgreSQL backend(s) of the server ended during the run: their CPU is not counted"
        ));
    }
    rep.postgres_cpu_seconds = Some(pg_cpu);
    // Everything else the machine did meanwhile (the writer's backend,
    // other PostgreSQL processes, and anything else running): a noise gauge.
    rep.machine_busy_seconds = after
        .machine_busy
        .zip(before.machine_busy)
        .map(|(a, b)| a - b);
    rep.other_cpu_seconds = rep.machine_busy_seconds.map(|m| {
        (m - rep.server_cpu_seconds.unwrap_or(0.0) - rep.bench_cpu_seconds.unwrap_or(0.0) - pg_cpu)
            .max(0.0)
    });
    if let (Some(a), Some(b)) = (&after.metrics, &before.metrics) {
        let delta = |i: usize| {
            a.get(i)
                .copied()
                .flatten()
                .zip(b.get(i).copied().flatten())
                .map(|(x, y)| x - y)
        };
        rep.metrics_refreshes = delta(0);
        rep.metrics_rows_read = delta(1);
        for (i, name) in METRICS.iter().enumerate() {
            if let Some(d) = delta(i) {
                rep.metrics_deltas.insert((*name).to_string(), d);
            }
        }
    }

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
    let mut outcomes: Vec<Option<ClientOutcome>> = (0..p.clients).map(|_| None).collect();
    let collect = async {
        while let Some(res) = set.join_next().await {
            if let Ok((i, o)) = res {
                outcomes[i] = Some(o);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .is_err()
    {
        rep.notes
            .push("some clients did not stop within 60 s".into());
        set.abort_all();
    }
    let outcomes: Vec<ClientOutcome> = outcomes
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();

    // 10. The server stops (its connections close and flush their statistics).
    if let Some(status) = server.exited() {
        rep.notes.push(format!(
            "{} exited during the run ({status}); last log lines:\n{}",
            target.name(),
            server::tail_of(&log, 30)
        ));
    }
    rep.server_end = Some(server.stop(Duration::from_secs(10)).await);
    if !db::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        rep.notes.push(
            "backends still connected 15 s after the server stopped: statistics may be incomplete"
                .into(),
        );
    }
    let after_stats = db::read_stats(&ctx.admin, &db_url, db_name).await?;
    // Ours since "before": the writes, plus the "before" table-stats query.
    rep.set_db_deltas(&before_stats, &after_stats, &wout, wout.transactions + 1);

    // 11. Numbers.
    let sample_errors = |f: &dyn Fn(&ClientOutcome) -> Option<String>| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for o in &outcomes {
            if let Some(e) = f(o)
                && !v.contains(&e)
                && v.len() < 5
            {
                v.push(e);
            }
        }
        v
    };
    rep.connected = outcomes.iter().filter(|o| o.connected).count();
    rep.ready = outcomes.iter().filter(|o| o.ready).count();
    rep.closed_early = outcomes.iter().filter(|o| o.closed_early).count();
    rep.client_error_samples = sample_errors(&|o| o.error.clone());
    rep.error_frames = shared.error_frames.load(Ordering::Relaxed);
    rep.error_frame_samples = shared
        .error_samples
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let ready = rep.ready.max(1) as f64;
    let changes = wout.transactions.max(1) as f64;
    rep.initial_bytes_per_client =
        outcomes.iter().map(|o| o.bytes_before).sum::<u64>() as f64 / ready;
    rep.bytes_after_first_write = outcomes.iter().map(|o| o.bytes_after).sum();
    rep.frames_after_first_write = outcomes.iter().map(|o| o.frames_after).sum();
    rep.bytes_per_client_per_change = rep.bytes_after_first_write as f64 / ready / changes;
    rep.frames_per_client_per_change = rep.frames_after_first_write as f64 / ready / changes;
    rep.deliveries = report::deliveries(&shared, &outcomes, &groups, &wout);
    rep.bytes_per_delivery = rep.bytes_after_first_write as f64 / rep.deliveries.seen.max(1) as f64;
    rep.server_cpu_us_per_delivery = rep
        .server_cpu_seconds
        .filter(|_| rep.deliveries.seen > 0)
        .map(|cpu| cpu * 1e6 / rep.deliveries.seen as f64);
    rep.commit_round_trip_ms = report::percentiles(wout.round_trips_us.clone());
    rep.writer = wout;
    if rep.ready < p.clients {
        rep.notes.push(format!(
            "only {}/{} clients got their initial state",
            rep.ready, p.clients
        ));
    }
    if rep.deliveries.missing > 0 {
        rep.notes.push(format!(
            "{} of {} deliveries never arrived (clients with missing ones, first few: {:?})",
            rep.deliveries.missing, rep.deliveries.expected, rep.deliveries.missing_examples
        ));
    }
    if rep.error_frames > 0 {
        rep.notes.push(format!(
            "{} error frames, e.g. {:?}",
            rep.error_frames,
            rep.error_frame_samples.first()
        ));
    }
    Ok(())
}

/// What a target runs from, resolved before its database is made.
enum Prepared {
    Pglive(PathBuf),
    Peer(PathBuf),
    Floor(crate::floor::Floor),
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

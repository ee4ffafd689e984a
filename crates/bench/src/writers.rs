//! Scenario W (writers): what watching a table costs the transactions that
//! write to it (issue 10, item 5).
//!
//! N writer connections run single-row autocommit INSERTs or UPDATEs (a
//! random id of the seeded rows) back to back for a fixed time, pgbench-like,
//! against an unwatched copy of `items` (same columns, indexes, defaults and
//! `updated_at` trigger, no pglive triggers, its own sequence, no server),
//! against the watched `items` with pglive on NOTIFY capture, and with
//! `pglive --capture wal` when the server has that flag; the watched cases
//! run with no subscribers and with N subscribed WebSocket clients. The
//! result is transactions per second and its ratio to the unwatched copy.
//!
//! With subscribers, every write carries a marker `<prefix><case>.<w>.<n>`
//! (writer w's n-th write of the case). After the writers stop, one fence
//! write (`<case>.0.0` on row 1) is committed; the bench waits until every
//! subscriber has received it, then checks each subscriber against the
//! table: for every row whose value the case wrote last, the subscriber must
//! have received that final value. That is convergence of the rows the case
//! touched (it does not re-check rows the case did not touch, nor order).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use memchr::memmem;
use pglive_schema::tables::ItemsQuery;
use pglive_schema::{ClientMessage, LiveQuery, SubscriptionId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::client::{self, ClientSpec, ConnOutcome, FrameSink};
use crate::db;
use crate::report::{Percentiles, percentiles};
use crate::run::{self, Ctx};
use crate::scan::{self, FrameKind};
use crate::server::{self, ServerProc};
use crate::writer::Table;

/// How the written table is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `items_unwatched`: no pglive triggers, no server.
    Unwatched,
    /// `items` with pglive's NOTIFY triggers, pglive running (its default).
    Notify,
    /// `items`, pglive running with `--capture wal`.
    Wal,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Unwatched => "unwatched",
            Mode::Notify => "notify",
            Mode::Wal => "wal",
        }
    }
}

/// The single-row statement each transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    Update,
    Insert,
}

impl WriteOp {
    fn name(self) -> &'static str {
        match self {
            WriteOp::Update => "update",
            WriteOp::Insert => "insert",
        }
    }
}

/// Scenario W's parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub writers: Vec<usize>,
    pub ops: Vec<WriteOp>,
    pub modes: Vec<Mode>,
    /// Subscribers of the "with subscribers" cases (0 = only without).
    pub subscribers: usize,
    /// Seeded rows; UPDATE picks a random one of them.
    pub rows: usize,
    /// Seconds of writing per case.
    pub duration_s: f64,
    pub connect_concurrency: usize,
    /// Longest wait for every subscriber to have the fence write.
    pub catch_up_timeout_s: f64,
    /// After the fence, frames may still be in flight to subscribers that
    /// missed it; this much silence ends the wait for them.
    pub quiet_s: f64,
}

fn parse_list<T>(list: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    let v: Vec<T> = list
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| f(x).with_context(|| format!("{what}: unknown value {x:?}")))
        .collect::<Result<_>>()?;
    anyhow::ensure!(!v.is_empty(), "{what}: empty list");
    Ok(v)
}

impl Config {
    #[allow(clippy::too_many_arguments)]
    pub fn from_flags(
        writers: &str,
        ops: &str,
        modes: &str,
        clients: Option<usize>,
        rows: Option<usize>,
        duration: Option<f64>,
        connect_concurrency: Option<usize>,
        tail_timeout: Option<f64>,
        quiet: Option<f64>,
    ) -> Result<Config> {
        Ok(Config {
            writers: parse_list(writers, "--writers", |x| {
                x.parse::<usize>().ok().filter(|n| (1..=256).contains(n))
            })?,
            ops: parse_list(ops, "--ops", |x| match x {
                "update" => Some(WriteOp::Update),
                "insert" => Some(WriteOp::Insert),
                _ => None,
            })?,
            modes: parse_list(modes, "--modes", |x| match x {
                "unwatched" => Some(Mode::Unwatched),
                "notify" => Some(Mode::Notify),
                "wal" => Some(Mode::Wal),
                _ => None,
            })?,
            subscribers: clients.unwrap_or(1_000),
            rows: rows.unwrap_or(10_000).max(2),
            duration_s: duration.unwrap_or(10.0).max(0.1),
            connect_concurrency: connect_concurrency.unwrap_or(128).max(1),
            catch_up_timeout_s: tail_timeout.unwrap_or(60.0),
            quiet_s: quiet.unwrap_or(2.0),
        })
    }

    pub fn description(&self) -> String {
        format!(
            "writers {:?} × {} for {} s per case on {} rows; modes {}; subscribers 0 and {}",
            self.writers,
            self.ops
                .iter()
                .map(|o| o.name())
                .collect::<Vec<_>>()
                .join("/"),
            self.duration_s,
            self.rows,
            self.modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join("/"),
            self.subscribers
        )
    }

    /// The setups: one database and server each.
    fn setups(&self) -> Vec<(Mode, usize)> {
        let mut v = Vec::new();
        for &m in &self.modes {
            v.push((m, 0));
            if m != Mode::Unwatched && self.subscribers > 0 {
                v.push((m, self.subscribers));
            }
        }
        v
    }

    fn cases_per_setup(&self) -> usize {
        self.writers.len() * self.ops.len()
    }

    fn setup_deadline_s(&self, subscribers: usize) -> f64 {
        let per_case = self.duration_s + 30.0 + self.catch_up_timeout_s + self.quiet_s;
        90.0 + subscribers as f64 / 50.0 + per_case * self.cases_per_setup() as f64
    }

    /// An upper bound for the whole scenario (for the watchdog).
    pub fn deadline_s(&self) -> f64 {
        self.setups()
            .iter()
            .map(|&(_, s)| self.setup_deadline_s(s))
            .sum()
    }
}

/// The cluster settings that decide what a commit costs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgSettings {
    pub fsync: String,
    pub synchronous_commit: String,
    pub full_page_writes: String,
    pub wal_level: String,
}

/// One measured case.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseResult {
    pub mode: String,
    pub subscribers: usize,
    pub op: String,
    pub writers: usize,
    /// Why it has no numbers ("n/a …" when the server lacks WAL capture).
    pub skipped: Option<String>,
    pub error: Option<String>,
    pub transactions: u64,
    pub seconds: f64,
    pub tps: f64,
    pub ratio_to_unwatched: Option<f64>,
    /// Commit round trip of each transaction.
    pub commit_ms: Percentiles,
    /// pglive's CPU over the case (writes and catch-up).
    pub server_cpu_s: Option<f64>,
    pub subscribers_ready: usize,
    /// Subscribers that had every final value the case wrote.
    pub converged: Option<usize>,
    /// Rows whose final value the case wrote (each checked per subscriber).
    pub rows_checked: usize,
    /// When the last subscriber had the fence, after the fence's commit.
    pub fence_all_ms: Option<f64>,
    pub frames_per_subscriber: f64,
    pub bytes_per_subscriber: f64,
    /// Deltas of pglive's counters over the case.
    pub metrics: BTreeMap<String, f64>,
    pub notes: Vec<String>,
}

/// Scenario W's results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WritersResult {
    pub config: Option<Config>,
    pub settings: PgSettings,
    pub capture_supported: Option<bool>,
    pub cases: Vec<CaseResult>,
    pub notes: Vec<String>,
}

impl WritersResult {
    /// Any error, or a subscriber that did not converge.
    pub fn failed(&self) -> bool {
        self.cases.iter().any(|c| {
            c.error.is_some()
                || c.converged
                    .is_some_and(|n| n < c.subscribers || c.subscribers_ready < c.subscribers)
        })
    }
}

const W_METRICS: &[&str] = &[
    "pglive_notifications_total",
    "pglive_refreshes_total",
    "pglive_diffs_total",
    "pglive_snapshots_total",
    "pglive_frames_sent_total",
    "pglive_frames_dropped_total",
    "pglive_lagging_resyncs_total",
    "pglive_slow_clients_closed_total",
];

/// Runs scenario W; never fails (errors land in the result).
pub async fn run(ctx: &Ctx, cfg: &Config) -> WritersResult {
    let mut res = WritersResult {
        config: Some(cfg.clone()),
        ..WritersResult::default()
    };
    match read_settings(&ctx.admin).await {
        Ok(s) => {
            if s.fsync != "on" || s.synchronous_commit != "on" {
                let note = format!(
                    "this cluster runs with fsync = {}, synchronous_commit = {}: commits cost \
                     less than on a durable server, so these figures are not comparable with \
                     issue 10's pgbench ones (start the cluster with PGLIVE_PG_DURABLE=1 dev/pg.sh start)",
                    s.fsync, s.synchronous_commit
                );
                eprintln!("pglive-bench: W: warning: {note}");
                res.notes.push(note);
            }
            res.settings = s;
        }
        Err(e) => res
            .notes
            .push(format!("could not read the settings: {e:#}")),
    }
    let bin = match &ctx.pglive_bin {
        Ok(b) => Some(b.clone()),
        Err(e) => {
            res.notes.push(e.clone());
            None
        }
    };
    let capture = match &bin {
        Some(b) if cfg.modes.contains(&Mode::Wal) => match server::pglive_has_capture(b).await {
            Ok(c) => Some(c),
            Err(e) => {
                res.notes.push(format!("{e:#}"));
                Some(false)
            }
        },
        _ => None,
    };
    res.capture_supported = capture;
    let prefix = format!("bm-{}-w", ctx.run_id);
    let mut case_no: u32 = 1;
    for (mode, subs) in cfg.setups() {
        let mut cases = Vec::new();
        for &op in &cfg.ops {
            for &w in &cfg.writers {
                cases.push(CaseResult {
                    mode: mode.name().into(),
                    subscribers: subs,
                    op: op.name().into(),
                    writers: w,
                    ..CaseResult::default()
                });
            }
        }
        if mode == Mode::Wal && capture != Some(true) {
            for c in &mut cases {
                c.skipped = Some("n/a (server lacks --capture)".into());
            }
            res.cases.extend(cases);
            continue;
        }
        let Some(bin) = bin.as_deref() else {
            for c in &mut cases {
                c.error = Some("no pglive binary".into());
            }
            res.cases.extend(cases);
            continue;
        };
        let db_name = format!(
            "pglive_bench_{}_w_{}_{}",
            std::process::id(),
            mode.name(),
            subs
        );
        let first_case = case_no;
        case_no += u32::try_from(cases.len()).unwrap_or(0);
        let setup = Setup {
            ctx,
            cfg,
            bin,
            mode,
            subscribers: subs,
            db_name: &db_name,
            prefix: &prefix,
            first_case,
        };
        let limit = Duration::from_secs_f64(cfg.setup_deadline_s(subs));
        match tokio::time::timeout(limit, setup.run(&mut cases)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let e = format!("{e:#}");
                for c in cases
                    .iter_mut()
                    .filter(|c| c.tps == 0.0 && c.error.is_none())
                {
                    c.error = Some(e.clone());
                }
            }
            Err(_) => {
                for c in cases
                    .iter_mut()
                    .filter(|c| c.tps == 0.0 && c.error.is_none())
                {
                    c.error = Some(format!(
                        "the setup did not finish within {:.0} s",
                        limit.as_secs_f64()
                    ));
                }
            }
        }
        if let Err(e) = db::drop_database(&ctx.admin, &db_name).await {
            res.notes.push(format!("could not drop {db_name}: {e:#}"));
        }
        res.cases.extend(cases);
    }
    // Another `dev/pg.sh start` (without PGLIVE_PG_DURABLE) may have
    // reloaded the cluster meanwhile.
    if let Ok(after) = read_settings(&ctx.admin).await
        && (after.fsync != res.settings.fsync
            || after.synchronous_commit != res.settings.synchronous_commit)
    {
        res.notes.push(format!(
            "the cluster's settings changed during the run: fsync {} → {}, synchronous_commit {} → {}",
            res.settings.fsync, after.fsync, res.settings.synchronous_commit, after.synchronous_commit
        ));
    }
    // Ratios to the unwatched copy with the same statement and writers.
    let base: Vec<(String, usize, f64)> = res
        .cases
        .iter()
        .filter(|c| c.mode == "unwatched" && c.tps > 0.0)
        .map(|c| (c.op.clone(), c.writers, c.tps))
        .collect();
    for c in &mut res.cases {
        if c.tps > 0.0 {
            c.ratio_to_unwatched = base
                .iter()
                .find(|(o, w, _)| *o == c.op && *w == c.writers)
                .map(|(_, _, t)| c.tps / t);
        }
    }
    res
}

async fn read_settings(admin: &tokio_postgres::Client) -> Result<PgSettings> {
    let get = |name: &'static str| async move {
        admin
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .with_context(|| format!("SHOW {name}"))?
            .try_get::<_, String>(0)
            .context(name)
    };
    Ok(PgSettings {
        fsync: get("fsync").await?,
        synchronous_commit: get("synchronous_commit").await?,
        full_page_writes: get("full_page_writes").await?,
        wal_level: get("wal_level").await?,
    })
}

/// One database, one server (unless unwatched), its subscribers, and the
/// cases run against them one after the other.
struct Setup<'a> {
    ctx: &'a Ctx,
    cfg: &'a Config,
    bin: &'a Path,
    mode: Mode,
    subscribers: usize,
    db_name: &'a str,
    prefix: &'a str,
    first_case: u32,
}

/// What the subscribers share with the coordinator.
struct SubShared {
    finder: memmem::Finder<'static>,
    /// The case being measured; markers of other cases are ignored.
    case: AtomicU32,
    ready: AtomicUsize,
    connected: AtomicUsize,
    finished: AtomicUsize,
    /// Subscribers that have the current case's fence.
    fenced: AtomicUsize,
    /// When the last of them got it (µs since t0).
    fenced_last_us: AtomicU64,
    error_frames: AtomicU64,
    t0: Instant,
}

/// What one subscriber has seen of the current case.
#[derive(Default)]
struct Seen {
    case: u32,
    /// Per writer, a bitset of the n's received.
    bits: Vec<Vec<u64>>,
    fence: bool,
    frames: u64,
    bytes: u64,
}

impl Seen {
    fn set(&mut self, w: usize, n: usize) {
        if self.bits.len() <= w {
            self.bits.resize_with(w + 1, Vec::new);
        }
        let words = &mut self.bits[w];
        if words.len() <= n / 64 {
            words.resize(n / 64 + 1, 0);
        }
        words[n / 64] |= 1 << (n % 64);
    }

    fn has(&self, w: usize, n: usize) -> bool {
        self.bits
            .get(w)
            .and_then(|b| b.get(n / 64))
            .is_some_and(|word| word & (1 << (n % 64)) != 0)
    }
}

struct Subscriber {
    shared: Arc<SubShared>,
    seen: Arc<Mutex<Seen>>,
    ready: bool,
}

impl FrameSink for Subscriber {
    fn on_frame(&mut self, frame: &[u8]) {
        let kind = scan::classify(frame);
        if kind == FrameKind::Error {
            self.shared.error_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.ready && matches!(kind, FrameKind::Full | FrameKind::Diff) {
            self.ready = true;
            self.shared.ready.fetch_add(1, Ordering::Release);
        }
        let case = self.shared.case.load(Ordering::Acquire);
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.case != case {
            *seen = Seen {
                case,
                ..Seen::default()
            };
        }
        seen.frames += 1;
        seen.bytes += frame.len() as u64;
        let mut fence = false;
        scan::for_each_triple(frame, &self.shared.finder, |c, w, n| {
            if c == u64::from(case)
                && let (Ok(w), Ok(n)) = (usize::try_from(w), usize::try_from(n))
            {
                seen.set(w, n);
                fence |= w == 0 && n == 0;
            }
        });
        if fence && !seen.fence {
            seen.fence = true;
            let now = u64::try_from(self.shared.t0.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.shared.fenced_last_us.fetch_max(now, Ordering::AcqRel);
            self.shared.fenced.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn is_ready(&self) -> bool {
        self.ready
    }
}

impl Setup<'_> {
    fn table(&self) -> &'static str {
        match self.mode {
            Mode::Unwatched => "items_unwatched",
            Mode::Notify | Mode::Wal => "items",
        }
    }

    async fn run(&self, cases: &mut [CaseResult]) -> Result<()> {
        let ctx = self.ctx;
        eprintln!(
            "pglive-bench: W: {} with {} subscribers",
            self.mode.name(),
            self.subscribers
        );
        db::create_database(&ctx.admin, self.db_name).await?;
        let url = db::url_with_db(&ctx.admin_url, self.db_name);
        run::migrate(self.bin, &url).await?;
        db::seed(&url, Table::Items, self.cfg.rows, true).await?;
        if self.mode == Mode::Unwatched {
            make_unwatched_copy(&url).await?;
        }
        let mut server = if self.mode == Mode::Unwatched {
            None
        } else {
            let log = ctx.out_dir.join(format!(
                "w-{}-{}-pglive-{}.log",
                self.mode.name(),
                self.subscribers,
                ctx.stamp
            ));
            let extra: &[&str] = if self.mode == Mode::Wal {
                &["--capture", "wal"]
            } else {
                &[]
            };
            Some(server::start_pglive(self.bin, &url, &log, extra).await?)
        };
        let out = self.with_server(server.as_mut(), &url, cases).await;
        if let Some(s) = server {
            s.stop(Duration::from_secs(10)).await;
        }
        out
    }

    async fn with_server(
        &self,
        mut server: Option<&mut ServerProc>,
        url: &str,
        cases: &mut [CaseResult],
    ) -> Result<()> {
        let shared = Arc::new(SubShared {
            finder: memmem::Finder::new(self.prefix.as_bytes()).into_owned(),
            case: AtomicU32::new(0),
            ready: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            fenced: AtomicUsize::new(0),
            fenced_last_us: AtomicU64::new(0),
            error_frames: AtomicU64::new(0),
            t0: Instant::now(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut seens = Vec::with_capacity(self.subscribers);
        let mut set: JoinSet<ConnOutcome> = JoinSet::new();
        if let (Some(srv), true) = (server.as_deref(), self.subscribers > 0) {
            let gate = Arc::new(Semaphore::new(self.cfg.connect_concurrency));
            let subscribe = serde_json::to_string(&ClientMessage::Subscribe {
                id: SubscriptionId("a".into()),
                query: Box::new(LiveQuery::Items(ItemsQuery::default())),
                since: None,
            })
            .context("encoding subscribe")?;
            let spec = ClientSpec {
                addr: ([127, 0, 0, 1], srv.port).into(),
                url: format!("ws://127.0.0.1:{}/ws", srv.port),
                subscribe: Some(subscribe),
                raw: false,
                group: 0,
                read_buffer: 8 << 10,
            };
            for _ in 0..self.subscribers {
                let seen = Arc::new(Mutex::new(Seen::default()));
                seens.push(Arc::clone(&seen));
                let mut sink = Subscriber {
                    shared: Arc::clone(&shared),
                    seen,
                    ready: false,
                };
                let spec = spec.clone();
                let gate = Arc::clone(&gate);
                let mut stop = stop_rx.clone();
                let shared = Arc::clone(&shared);
                set.spawn(async move {
                    let mut conn = ConnOutcome::default();
                    client::session(
                        &mut sink,
                        &mut conn,
                        &spec,
                        &gate,
                        &shared.connected,
                        &mut stop,
                    )
                    .await;
                    if !sink.ready {
                        shared.finished.fetch_add(1, Ordering::Release);
                    }
                    conn
                });
            }
            let deadline =
                Instant::now() + Duration::from_secs_f64(30.0 + self.subscribers as f64 / 100.0);
            loop {
                let ready = shared.ready.load(Ordering::Acquire);
                if ready + shared.finished.load(Ordering::Acquire) >= self.subscribers
                    || Instant::now() >= deadline
                {
                    break;
                }
                if let Some(status) = server.as_deref_mut().and_then(ServerProc::exited) {
                    anyhow::bail!("pglive exited during the connect phase ({status})");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            eprintln!(
                "pglive-bench: W: {}/{} subscribers ready",
                shared.ready.load(Ordering::Acquire),
                self.subscribers
            );
        }
        for (case_no, case) in (self.first_case..).zip(cases.iter_mut()) {
            let op = if case.op == "insert" {
                WriteOp::Insert
            } else {
                WriteOp::Update
            };
            case.subscribers_ready = shared.ready.load(Ordering::Acquire);
            let r = self
                .run_case(server.as_deref(), url, &shared, &seens, case_no, op, case)
                .await;
            if let Err(e) = r {
                case.error = Some(format!("{e:#}"));
            }
            if let Some(status) = server.as_deref_mut().and_then(ServerProc::exited) {
                anyhow::bail!("pglive exited during the run ({status})");
            }
        }
        let _ = stop_tx.send(true);
        let collect = async {
            let mut closed = 0usize;
            while let Some(r) = set.join_next().await {
                if r.is_ok_and(|c| c.closed_early) {
                    closed += 1;
                }
            }
            closed
        };
        match tokio::time::timeout(Duration::from_secs(30), collect).await {
            Ok(closed) if closed > 0 => {
                if let Some(last) = cases.last_mut() {
                    last.notes.push(format!(
                        "{closed} subscribers were closed by the server or failed during the run"
                    ));
                }
            }
            Ok(_) => {}
            Err(_) => set.abort_all(),
        }
        let errors = shared.error_frames.load(Ordering::Relaxed);
        if errors > 0
            && let Some(last) = cases.last_mut()
        {
            last.notes.push(format!("{errors} error frames"));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_case(
        &self,
        server: Option<&ServerProc>,
        url: &str,
        shared: &Arc<SubShared>,
        seens: &[Arc<Mutex<Seen>>],
        case_no: u32,
        op: WriteOp,
        case: &mut CaseResult,
    ) -> Result<()> {
        let table = self.table();
        // Every case starts from the same state of the table's pages and of
        // the WAL: no dead rows from the previous case, no checkpoint due.
        let c = db::connect(url).await?;
        c.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .context("VACUUM")?;
        drop(c);
        self.ctx
            .admin
            .batch_execute("CHECKPOINT")
            .await
            .context("CHECKPOINT")?;
        shared.case.store(case_no, Ordering::Release);
        shared.fenced.store(0, Ordering::Release);
        shared.fenced_last_us.store(0, Ordering::Release);
        let metrics_before = match server {
            Some(s) => server::metrics(s.port, W_METRICS).await,
            None => None,
        };
        let cpu_before = server.and_then(|s| server::cpu_seconds(s.pid));
        eprintln!(
            "pglive-bench: W: case {case_no}: {} writers, {}, {}, {} subscribers, {} s",
            case.writers,
            op.name(),
            self.mode.name(),
            self.subscribers,
            self.cfg.duration_s
        );
        let job = WriteJob {
            url: url.to_string(),
            table,
            op,
            writers: case.writers,
            rows: self.cfg.rows,
            duration: Duration::from_secs_f64(self.cfg.duration_s),
            prefix: format!("{}{case_no}.", self.prefix),
            seed: u64::from(case_no),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("pglive-bench-writers".into())
            .spawn(move || {
                let _ = tx.send(job.run());
            })
            .context("starting the writers' thread")?;
        let out = rx.await.context("the writers' thread ended")??;
        case.transactions = out.transactions;
        case.seconds = out.seconds;
        case.tps = if out.seconds > 0.0 {
            out.transactions as f64 / out.seconds
        } else {
            0.0
        };
        case.commit_ms = percentiles(out.round_trips_us);
        eprintln!(
            "pglive-bench: W: case {case_no}: {} transactions in {:.2} s: {:.0} tx/s",
            case.transactions, case.seconds, case.tps
        );

        if self.subscribers > 0 && server.is_some() {
            self.check_subscribers(url, shared, seens, case_no, case)
                .await?;
        }
        case.server_cpu_s = server
            .and_then(|s| server::cpu_seconds(s.pid))
            .zip(cpu_before)
            .map(|(a, b)| a - b);
        if let (Some(s), Some(before)) = (server, metrics_before)
            && let Some(after) = server::metrics(s.port, W_METRICS).await
        {
            for (i, name) in W_METRICS.iter().enumerate() {
                if let (Some(Some(a)), Some(Some(b))) = (after.get(i), before.get(i)) {
                    case.metrics.insert((*name).to_string(), a - b);
                }
            }
        }
        Ok(())
    }

    /// Fence, wait for every subscriber to have it, then compare each
    /// subscriber with the table's final values.
    async fn check_subscribers(
        &self,
        url: &str,
        shared: &Arc<SubShared>,
        seens: &[Arc<Mutex<Seen>>],
        case_no: u32,
        case: &mut CaseResult,
    ) -> Result<()> {
        let c = db::connect(url).await?;
        let fence = format!("{}{case_no}.0.0", self.prefix);
        c.execute(
            "/* pglive-bench */ UPDATE items SET name = $1 WHERE id = 1",
            &[&fence],
        )
        .await
        .context("the fence write")?;
        let fence_us = u64::try_from(shared.t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        let ready = shared.ready.load(Ordering::Acquire);
        let deadline = Instant::now() + Duration::from_secs_f64(self.cfg.catch_up_timeout_s);
        while shared.fenced.load(Ordering::Acquire) < ready && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let fenced = shared.fenced.load(Ordering::Acquire);
        if fenced >= ready {
            let last = shared.fenced_last_us.load(Ordering::Acquire);
            case.fence_all_ms = Some(last.saturating_sub(fence_us) as f64 / 1000.0);
        } else {
            case.notes.push(format!(
                "only {fenced}/{ready} subscribers had the fence write {:.0} s after it: the server did not keep up",
                self.cfg.catch_up_timeout_s
            ));
            // Let whatever is still in flight arrive before checking.
            tokio::time::sleep(Duration::from_secs_f64(self.cfg.quiet_s)).await;
        }
        // The final value of every row this case wrote last.
        let pattern = format!("{}{case_no}.%", self.prefix);
        let rows = c
            .query(
                "/* pglive-bench */ SELECT name FROM items WHERE name LIKE $1",
                &[&pattern],
            )
            .await
            .context("reading the final values")?;
        let finder = memmem::Finder::new(self.prefix.as_bytes());
        let mut want: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0)?;
            scan::for_each_triple(name.as_bytes(), &finder, |_, w, n| {
                if let (Ok(w), Ok(n)) = (usize::try_from(w), usize::try_from(n)) {
                    want.push((w, n));
                }
            });
        }
        case.rows_checked = want.len();
        let mut converged = 0;
        let mut frames = 0u64;
        let mut bytes = 0u64;
        let mut worst_missing = 0usize;
        for seen in seens {
            let Ok(seen) = seen.lock() else { continue };
            let current = seen.case == case_no;
            if current {
                frames += seen.frames;
                bytes += seen.bytes;
            }
            let missing = if current {
                want.iter().filter(|&&(w, n)| !seen.has(w, n)).count()
            } else {
                want.len()
            };
            if missing == 0 {
                converged += 1;
            }
            worst_missing = worst_missing.max(missing);
        }
        case.converged = Some(converged);
        let n = seens.len().max(1) as f64;
        case.frames_per_subscriber = frames as f64 / n;
        case.bytes_per_subscriber = bytes as f64 / n;
        if converged < seens.len() {
            case.notes.push(format!(
                "{} of {} subscribers lack final values (worst: {worst_missing} of {} rows)",
                seens.len() - converged,
                seens.len(),
                want.len()
            ));
        }
        Ok(())
    }
}

/// `items_unwatched`: a copy of `items` with the same columns, indexes,
/// defaults and `updated_at` trigger but none of pglive's triggers, with its
/// own sequence, holding the same rows.
async fn make_unwatched_copy(url: &str) -> Result<()> {
    let c = db::connect(url).await?;
    c.batch_execute(
        "CREATE TABLE items_unwatched (LIKE items INCLUDING ALL);
         CREATE SEQUENCE items_unwatched_id_seq OWNED BY items_unwatched.id;
         ALTER TABLE items_unwatched ALTER COLUMN id SET DEFAULT nextval('items_unwatched_id_seq');
         CREATE TRIGGER pglive_touch_updated_at BEFORE UPDATE ON items_unwatched
             FOR EACH ROW EXECUTE FUNCTION pglive_touch();
         INSERT INTO items_unwatched SELECT * FROM items ORDER BY id;
         SELECT setval('items_unwatched_id_seq', (SELECT max(id) FROM items_unwatched));
         ALTER TABLE items_unwatched SET (autovacuum_enabled = off, toast.autovacuum_enabled = off);",
    )
    .await
    .context("creating items_unwatched")?;
    // Separately: a multi-statement batch is one transaction, and VACUUM
    // refuses to run in one.
    c.batch_execute("VACUUM ANALYZE items_unwatched")
        .await
        .context("VACUUM items_unwatched")?;
    Ok(())
}

/// N writers for a fixed time, on their own OS thread and runtime (a
/// runtime busy with subscriber sockets would slow them down).
struct WriteJob {
    url: String,
    table: &'static str,
    op: WriteOp,
    writers: usize,
    rows: usize,
    duration: Duration,
    /// `<prefix><case>.`: each write's value is this plus `<w>.<n>`.
    prefix: String,
    seed: u64,
}

struct WriteOutcome {
    transactions: u64,
    seconds: f64,
    round_trips_us: Vec<u32>,
}

impl WriteJob {
    fn run(self) -> Result<WriteOutcome> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("writers' runtime")?;
        rt.block_on(self.run_async())
    }

    async fn run_async(self) -> Result<WriteOutcome> {
        let sql = match self.op {
            WriteOp::Insert => format!(
                "/* pglive-bench */ INSERT INTO {} (name) VALUES ($1)",
                self.table
            ),
            WriteOp::Update => format!(
                "/* pglive-bench */ UPDATE {} SET name = $1 WHERE id = $2",
                self.table
            ),
        };
        // Connections and statements are ready before the clock starts,
        // like pgbench's; the cluster's settings are used as they are.
        let mut conns = Vec::with_capacity(self.writers);
        for _ in 0..self.writers {
            let c = db::connect(&self.url).await?;
            let st = c.prepare(&sql).await.context("prepare")?;
            conns.push((c, st));
        }
        let start = Instant::now();
        let deadline = start + self.duration;
        let rows = i64::try_from(self.rows).context("too many rows")?;
        let mut tasks = JoinSet::new();
        for (i, (c, st)) in conns.into_iter().enumerate() {
            let w = i + 1;
            let prefix = self.prefix.clone();
            let op = self.op;
            let mut rng = StdRng::seed_from_u64(self.seed * 1_000 + w as u64);
            tasks.spawn(async move {
                let mut n: u64 = 0;
                let mut rts = Vec::new();
                while Instant::now() < deadline {
                    n += 1;
                    let value = format!("{prefix}{w}.{n}");
                    let began = Instant::now();
                    let done = match op {
                        WriteOp::Insert => c.execute(&st, &[&value]).await,
                        WriteOp::Update => {
                            let id: i64 = rng.random_range(1..=rows);
                            c.execute(&st, &[&value, &id]).await
                        }
                    };
                    done.with_context(|| format!("writer {w}: {}", op.name()))?;
                    rts.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                anyhow::Ok((n, rts, Instant::now()))
            });
        }
        let mut transactions = 0;
        let mut round_trips_us = Vec::new();
        let mut end = start;
        while let Some(r) = tasks.join_next().await {
            let (n, rts, finished) = r.context("a writer panicked")??;
            transactions += n;
            round_trips_us.extend(rts);
            end = end.max(finished);
        }
        Ok(WriteOutcome {
            transactions,
            seconds: end.duration_since(start).as_secs_f64(),
            round_trips_us,
        })
    }
}

fn fmt_tps(v: f64) -> String {
    let whole = v.round() as u64;
    let s = whole.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The results table: one row per case.
pub fn table(res: &WritersResult, markdown: bool) -> String {
    let header = [
        "op",
        "writers",
        "capture",
        "subscribers",
        "tx/s",
        "vs unwatched",
        "commit p50 / p99",
        "pglive CPU s",
        "subscribers converged",
        "fence at all after",
        "frames / subscriber",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &res.cases {
        let mut r = vec![
            c.op.clone(),
            c.writers.to_string(),
            c.mode.clone(),
            c.subscribers.to_string(),
        ];
        if c.skipped.is_some() {
            r.push("n/a".into());
            r.extend(std::iter::repeat_n("-".to_string(), header.len() - 5));
        } else if c.error.is_some() && c.tps == 0.0 {
            r.push("error".into());
            r.extend(std::iter::repeat_n("-".to_string(), header.len() - 5));
        } else {
            r.push(fmt_tps(c.tps));
            r.push(
                c.ratio_to_unwatched
                    .map_or("n/a".into(), |x| format!("{:.0} %", x * 100.0)),
            );
            r.push(format!(
                "{:.2} / {:.2} ms",
                c.commit_ms.p50, c.commit_ms.p99
            ));
            r.push(c.server_cpu_s.map_or("-".into(), |v| format!("{v:.1}")));
            r.push(match c.converged {
                Some(n) => format!("{n}/{} ({} rows each)", c.subscribers, c.rows_checked),
                None => "-".into(),
            });
            r.push(c.fence_all_ms.map_or("-".into(), |v| format!("{v:.0} ms")));
            r.push(if c.subscribers > 0 {
                format!("{:.0}", c.frames_per_subscriber)
            } else {
                "-".into()
            });
        }
        rows.push(r);
    }
    let mut out = String::new();
    let s = &res.settings;
    let settings = format!(
        "cluster: fsync = {}, synchronous_commit = {}, full_page_writes = {}, wal_level = {}",
        s.fsync, s.synchronous_commit, s.full_page_writes, s.wal_level
    );
    if markdown {
        out.push_str(&format!("| {} |\n|", header.join(" | ")));
        for i in 0..header.len() {
            out.push_str(if i < 4 { "---|" } else { "---:|" });
        }
        out.push('\n');
        for r in &rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out.push_str(&format!("\n{settings}\n"));
    } else {
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(4)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i < 4 {
                    l.push_str(c);
                    l.push_str(&" ".repeat(pad + 2));
                } else {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(c);
                    l.push_str("  ");
                }
            }
            l.trim_end().to_string() + "\n"
        };
        out.push_str(&line(header.to_vec()));
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out.push_str(&format!("{settings}\n"));
    }
    // Below the table: notes, skipped modes and errors, one per line (a
    // Markdown list in Markdown).
    let mut lines: Vec<String> = res.notes.iter().map(|n| format!("note: {n}")).collect();
    for c in &res.cases {
        if let Some(s) = &c.skipped {
            let line = format!("{}: {s}", c.mode);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    for c in &res.cases {
        let tag = format!("{} {}×{} {}", c.mode, c.op, c.writers, c.subscribers);
        if let Some(e) = &c.error {
            lines.push(format!("{tag}: error: {}", e.replace('\n', " ")));
        }
        for n in &c.notes {
            lines.push(format!("{tag}: note: {n}"));
        }
    }
    let bullet = if markdown { "- " } else { "" };
    for l in lines {
        out.push_str(&format!("{bullet}{l}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_bits() {
        let mut s = Seen::default();
        assert!(!s.has(0, 0));
        s.set(0, 0);
        s.set(3, 130);
        assert!(s.has(0, 0) && s.has(3, 130));
        assert!(!s.has(3, 129) && !s.has(2, 130) && !s.has(9, 9));
    }

    #[test]
    fn setups_and_flags() -> Result<()> {
        let c = Config::from_flags(
            "1,8",
            "update,insert",
            "unwatched,notify,wal",
            None,
            None,
            None,
            None,
            None,
            None,
        )?;
        assert_eq!(
            c.setups(),
            vec![
                (Mode::Unwatched, 0),
                (Mode::Notify, 0),
                (Mode::Notify, 1_000),
                (Mode::Wal, 0),
                (Mode::Wal, 1_000)
            ]
        );
        assert_eq!(
            (c.rows, c.duration_s, c.cases_per_setup()),
            (10_000, 10.0, 4)
        );
        assert!(
            Config::from_flags("0", "update", "notify", None, None, None, None, None, None)
                .is_err()
        );
        assert!(
            Config::from_flags("1", "delete", "notify", None, None, None, None, None, None)
                .is_err()
        );
        assert_eq!(fmt_tps(16_757.4), "16,757");
        assert_eq!(fmt_tps(999.0), "999");
        Ok(())
    }
}

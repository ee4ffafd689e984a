//! Scenarios RLS and RECONNECT (pglive only; the peer and the floor have
//! neither row-level security nor resume).
//!
//! - **RLS**: clients in tenants, each with its own JWT, all subscribed to
//!   all of `items`; row-level security gives each only its tenant's rows.
//!   Writes go to random tenants. Measures what a write costs the database
//!   when every tenant is its own security context (one group each), and
//!   checks every frame for rows of another tenant.
//! - **RECONNECT**: clients on all items; after some writes every client
//!   drops its connection and comes back while writes go on, resubscribing
//!   with `since` (resume) or without (snapshot), one run each.
//!
//! See docs/benchmarks.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::db::{self, DbStats};
use crate::live::{
    self, AnswerKind, LiveOutcome, LiveShared, LiveSpec, OpRecord, PHASE_RECONNECT, PHASE_WRITES,
    STAGE_DROP, STAGE_RECONNECT, STAGE_STOP, TenantWriter,
};
use crate::report::{self, Percentiles, bytes, ms, num};
use crate::run::Ctx;
use crate::server::{self, ServerProc};

/// The secret the bench signs its tokens with and passes to pglive.
const JWT_SECRET: &str = "pglive-bench-secret-for-hs256-tokens-not-for-production";

pub const NAMES: [&str; 4] = ["RLS", "RLS-SMOKE", "RECONNECT", "RECONNECT-SMOKE"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Rls,
    Reconnect,
}

/// One scenario with every parameter resolved.
#[derive(Debug, Clone, Serialize)]
pub struct TParams {
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub smoke: bool,
    pub clients: usize,
    /// RLS: tenants (clients are spread evenly over them).
    pub tenants: usize,
    /// Seeded rows (RLS: spread evenly over the tenants).
    pub rows: usize,
    pub rate: f64,
    /// RLS: all writes; RECONNECT: writes before the drop.
    pub writes: usize,
    /// RECONNECT: writes from the drop on.
    pub writes_during: usize,
    pub seed: u64,
    pub connect_concurrency: usize,
    pub settle_s: f64,
    pub quiet_s: f64,
    pub tail_timeout_s: f64,
    pub connect_timeout_s: f64,
    pub deadline_s: f64,
    /// RLS: `SELECT pglive_watch('items', partition => 'tenant')` first.
    pub partition_hint: bool,
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct TOverrides {
    pub clients: Option<usize>,
    pub tenants: Option<usize>,
    pub rows: Option<usize>,
    pub rate: Option<f64>,
    pub writes: Option<usize>,
    pub duration: Option<f64>,
    pub seed: Option<u64>,
    pub connect_concurrency: Option<usize>,
    pub settle: Option<f64>,
    pub quiet: Option<f64>,
    pub tail_timeout: Option<f64>,
    pub deadline: Option<f64>,
    pub partition_hint: bool,
}

pub fn is_name(name: &str) -> bool {
    NAMES.contains(&name.to_ascii_uppercase().as_str())
}

pub fn params(name: &str, o: &TOverrides) -> Result<TParams> {
    let upper = name.to_ascii_uppercase();
    // (kind, clients, tenants, rows, rate, writes, writes during)
    let (kind, clients, tenants, rows, rate, writes, during) = match upper.as_str() {
        "RLS" => (Kind::Rls, 1_000, 100, 10_000, 20.0, 600, 0),
        "RLS-SMOKE" => (Kind::Rls, 20, 4, 200, 40.0, 20, 0),
        "RECONNECT" => (Kind::Reconnect, 1_000, 1, 10_000, 20.0, 50, 60),
        "RECONNECT-SMOKE" => (Kind::Reconnect, 10, 1, 200, 40.0, 10, 20),
        other => anyhow::bail!("unknown scenario {other:?}"),
    };
    let smoke = upper.ends_with("-SMOKE");
    let clients = o.clients.unwrap_or(clients).max(1);
    let tenants = match kind {
        Kind::Rls => o.tenants.unwrap_or(tenants).clamp(1, clients),
        Kind::Reconnect => 1,
    };
    let rows = o.rows.unwrap_or(rows).max(tenants);
    let rate = o.rate.unwrap_or(rate).max(0.0);
    let writes = match (o.writes, o.duration) {
        (Some(w), _) => w,
        (None, Some(d)) if rate > 0.0 && kind == Kind::Rls => (rate * d).round() as usize,
        _ => writes,
    }
    .max(1);
    let settle_s = o.settle.unwrap_or(if smoke { 0.0 } else { 11.0 });
    let quiet_s = o.quiet.unwrap_or(if smoke { 0.5 } else { 2.0 });
    let tail_timeout_s = o.tail_timeout.unwrap_or(if smoke { 10.0 } else { 60.0 });
    let connect_timeout_s = 30.0 + clients as f64 / 50.0;
    let total_writes = (writes + during) as f64;
    let write_s = if rate > 0.0 {
        total_writes / rate * 1.5 + 10.0
    } else {
        total_writes * 0.02 + 10.0
    };
    let rounds = if kind == Kind::Reconnect { 2.0 } else { 1.0 };
    let deadline_s = o.deadline.unwrap_or(
        connect_timeout_s * rounds
            + settle_s
            + write_s
            + tail_timeout_s * rounds
            + if smoke { 30.0 } else { 90.0 },
    );
    let description = match kind {
        Kind::Rls => format!(
            "{clients} clients in {tenants} tenants, each with its own JWT, on all items under row-level security ({rows} rows); {writes} writes at {rate}/s to random tenants; {}",
            if o.partition_hint {
                "partition hint on (pglive_watch('items', partition => 'tenant'))"
            } else {
                "no partition hint"
            }
        ),
        Kind::Reconnect => format!(
            "{clients} clients on all items ({rows} rows); {writes} writes, then every client drops and reconnects while {during} more writes go on at {rate}/s; resume (since) vs snapshot"
        ),
    };
    Ok(TParams {
        name: upper,
        kind,
        description,
        smoke,
        clients,
        tenants,
        rows,
        rate,
        writes,
        writes_during: if kind == Kind::Reconnect {
            during.max(1)
        } else {
            0
        },
        seed: o.seed.unwrap_or(42),
        connect_concurrency: o.connect_concurrency.unwrap_or(128).max(1),
        settle_s,
        quiet_s,
        tail_timeout_s,
        connect_timeout_s,
        deadline_s,
        partition_hint: o.partition_hint && kind == Kind::Rls,
    })
}

/// pglive's counters and gauges read around a phase.
const METRICS: &[&str] = &[
    "pglive_refreshes_total",
    "pglive_refreshes_keyed_total",
    "pglive_rows_read_total",
    "pglive_notifications_total",
    "pglive_snapshots_total",
    "pglive_resumes_total",
    "pglive_resume_misses_total",
    "pglive_diffs_total",
    "pglive_frames_sent_total",
    "pglive_bytes_sent_total",
    "pglive_client_errors_total",
    "pglive_lagging_resyncs_total",
    "pglive_refresh_errors_total",
];

async fn metrics(port: u16) -> Option<Vec<Option<f64>>> {
    server::metrics(port, METRICS).await
}

fn metric_deltas(
    before: Option<&Vec<Option<f64>>>,
    after: Option<&Vec<Option<f64>>>,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let (Some(b), Some(a)) = (before, after) {
        for (i, name) in METRICS.iter().enumerate() {
            if let (Some(Some(x)), Some(Some(y))) = (a.get(i), b.get(i)) {
                out.insert(
                    name.trim_start_matches("pglive_")
                        .trim_end_matches("_total")
                        .to_string(),
                    x - y,
                );
            }
        }
    }
    out
}

/// Database statistics over a phase (see "The reported numbers").
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbDelta {
    /// Δ(seq_tup_read + idx_tup_fetch) minus the writer's keyed UPDATEs.
    pub rows_read: i64,
    /// Δ(seq_scan + idx_scan) minus the writer's.
    pub table_scans: i64,
    /// Δ(xact_commit + xact_rollback) minus the writer's and the bench's
    /// statistics read.
    pub server_transactions: i64,
}

fn db_delta(before: &DbStats, after: &DbStats, ops: &[OpRecord]) -> DbDelta {
    let updates = ops.iter().filter(|o| !o.insert).count() as i64;
    let writes = ops.len() as i64;
    DbDelta {
        rows_read: (after.seq_tup_read + after.idx_tup_fetch)
            - (before.seq_tup_read + before.idx_tup_fetch)
            - updates,
        table_scans: (after.seq_scan + after.idx_scan)
            - (before.seq_scan + before.idx_scan)
            - updates,
        server_transactions: (after.xact_commit + after.xact_rollback)
            - (before.xact_commit + before.xact_rollback)
            - writes
            - 1,
    }
}

/// What the clients' states are checked against.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Convergence {
    pub clients_converged: usize,
    pub clients_diverged: usize,
    pub examples: Vec<String>,
    /// The last client's last change of rows, after the last commit.
    pub all_converged_after_last_commit_ms: Option<f64>,
}

/// Compares every client's rows with `want[tenant]` (a fresh read).
fn converge(
    outcomes: &[LiveOutcome],
    tenant_of: &[usize],
    want: &[HashMap<i64, u64>],
    last_commit_us: u64,
) -> Convergence {
    let mut c = Convergence::default();
    let mut last_change = 0u64;
    for (i, o) in outcomes.iter().enumerate() {
        let w = &want[tenant_of[i]];
        if &o.rows == w {
            c.clients_converged += 1;
            last_change = last_change.max(o.last_change_us);
        } else {
            c.clients_diverged += 1;
            if c.examples.len() < 5 {
                let missing = w.keys().filter(|k| !o.rows.contains_key(k)).count();
                let extra = o.rows.keys().filter(|k| !w.contains_key(k)).count();
                let differ = w
                    .iter()
                    .filter(|(k, v)| o.rows.get(k).is_some_and(|x| x != *v))
                    .count();
                c.examples.push(format!(
                    "client {i}: {} rows, want {}: {missing} missing, {extra} extra, {differ} different",
                    o.rows.len(),
                    w.len()
                ));
            }
        }
    }
    if c.clients_diverged == 0 {
        c.all_converged_after_last_commit_ms =
            Some(last_change.saturating_sub(last_commit_us) as f64 / 1000.0);
    }
    c
}

/// A fresh read of `items` as the table owner (no policies), per tenant.
async fn final_rows(db_url: &str, tenants: &[String]) -> Result<Vec<HashMap<i64, u64>>> {
    let url = db_url.to_string();
    // The test kit's typed read (the server's own row type and decoding).
    let values = tokio::spawn(async move {
        pglive_testkit::fresh_at::<pglive_schema::Item>(&url, "SELECT * FROM items ORDER BY id")
            .await
    })
    .await
    .map_err(|e| anyhow::anyhow!("final read failed: {e}"))?;
    let index: HashMap<&str, usize> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut want = vec![HashMap::new(); tenants.len()];
    for v in values {
        // As a client decodes it: the server's own serialization of the row.
        let text = v.to_string();
        let row: live::Row<'_> =
            serde_json::from_str(&text).context("decoding a row of the final read")?;
        if let Some(&t) = index.get(row.tenant.as_ref()) {
            want[t].insert(row.id.0, live::row_sig(&row));
        }
    }
    Ok(want)
}

/// Deliveries of the writes to the clients that should see them (RLS: the
/// tenant's clients; RECONNECT: all).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TDeliveries {
    pub expected: u64,
    pub seen: u64,
    pub missing: u64,
    pub latency_ms: Percentiles,
    /// Writes that reached a client of another tenant (must be 0).
    pub foreign_deliveries: u64,
}

fn deliveries(
    ops: &[OpRecord],
    outcomes: &[LiveOutcome],
    tenant_of: &[usize],
    first_op: usize,
) -> TDeliveries {
    let mut d = TDeliveries::default();
    let mut lat = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let eff = live::effective_receipts(ops, &o.recv);
        for (s, op) in ops.iter().enumerate() {
            let mine = op.tenant as usize == tenant_of[i];
            let got = eff[s];
            if !mine {
                if o.recv.get(s).is_some_and(|&r| r != 0) {
                    d.foreign_deliveries += 1;
                }
                continue;
            }
            if s < first_op {
                continue;
            }
            d.expected += 1;
            if got == 0 {
                d.missing += 1;
            } else {
                d.seen += 1;
                let recv_us = u64::from(got - 1);
                lat.push(u32::try_from(recv_us.saturating_sub(op.commit_us)).unwrap_or(u32::MAX));
            }
        }
    }
    d.latency_ms = report::percentiles(lat);
    d
}

/// Client-side problems, summed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientProblems {
    pub foreign_rows: u64,
    pub foreign_example: Option<String>,
    pub error_frames: u64,
    pub decode_errors: u64,
    pub version_gaps: u64,
    pub unknown_deletes: u64,
    pub closed_early: usize,
    pub examples: Vec<String>,
}

fn problems(outcomes: &[LiveOutcome]) -> ClientProblems {
    let mut p = ClientProblems::default();
    for o in outcomes {
        p.foreign_rows += o.foreign_rows;
        if p.foreign_example.is_none() {
            p.foreign_example.clone_from(&o.foreign_example);
        }
        p.error_frames += o.error_frames;
        p.decode_errors += o.decode_errors;
        p.version_gaps += o.version_gaps;
        p.unknown_deletes += o.unknown_deletes;
        if o.closed_early {
            p.closed_early += 1;
        }
        for e in [&o.error, &o.error_example].into_iter().flatten() {
            if p.examples.len() < 5 && !p.examples.contains(e) {
                p.examples.push(e.clone());
            }
        }
    }
    p
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RlsReport {
    pub mode: String,
    pub ok: bool,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub clients: usize,
    pub tenants: usize,
    pub ready: usize,
    pub connect_seconds: f64,
    pub writes: usize,
    pub achieved_rate: f64,
    pub deliveries: TDeliveries,
    pub convergence: Convergence,
    pub problems: ClientProblems,
    pub bytes_per_client_per_change: f64,
    pub bytes_per_delivery: f64,
    pub frames_per_client_per_change: f64,
    pub initial_bytes_per_client: f64,
    pub db: DbDelta,
    pub metrics: BTreeMap<String, f64>,
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU over the same window (it decodes every
    /// frame, on the same cores).
    pub bench_cpu_seconds: Option<f64>,
    pub server_rss_peak_mib: Option<f64>,
    pub commit_round_trip_ms: Percentiles,
}

impl RlsReport {
    /// Whether the smoke (and `--strict`) must fail.
    pub fn failed(&self) -> bool {
        !self.ok
            || self.deliveries.missing > 0
            || self.deliveries.foreign_deliveries > 0
            || self.convergence.clients_diverged > 0
            || self.problems.foreign_rows > 0
            || self.problems.error_frames > 0
            || self.problems.decode_errors > 0
            || self.problems.version_gaps > 0
            || self.ready < self.clients
    }
}

struct Clients {
    shared: Arc<LiveShared>,
    ctl: watch::Sender<u8>,
    set: JoinSet<(usize, LiveOutcome)>,
    n: usize,
}

impl Clients {
    /// Waits until every client has its first snapshot (or gave up).
    async fn wait_ready(
        &self,
        server: &mut ServerProc,
        timeout_s: f64,
        notes: &mut Vec<String>,
    ) -> Result<f64> {
        let t = Instant::now();
        let deadline = t + Duration::from_secs_f64(timeout_s);
        loop {
            let ready = self.shared.ready.load(Ordering::Acquire);
            let gave_up = self.shared.finished.load(Ordering::Acquire);
            if ready + gave_up >= self.n {
                break;
            }
            if Instant::now() >= deadline {
                notes.push(format!(
                    "connect phase timed out after {timeout_s:.0} s with {ready}/{} clients ready",
                    self.n
                ));
                break;
            }
            if let Some(status) = server.exited() {
                anyhow::bail!("pglive exited during the connect phase ({status})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(t.elapsed().as_secs_f64())
    }

    /// Until no client got a frame for `quiet`, or `timeout`.
    async fn tail(&self, quiet_s: f64, timeout_s: f64, notes: &mut Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
        let quiet = Duration::from_secs_f64(quiet_s);
        let mut last = self.shared.frames.load(Ordering::Relaxed);
        let mut changed = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let c = self.shared.frames.load(Ordering::Relaxed);
            if c != last {
                last = c;
                changed = Instant::now();
            }
            if changed.elapsed() >= quiet {
                return;
            }
            if Instant::now() >= deadline {
                notes.push(format!(
                    "still receiving {timeout_s:.0} s after the last commit: tail cut off"
                ));
                return;
            }
        }
    }

    async fn stop(mut self, notes: &mut Vec<String>) -> Vec<LiveOutcome> {
        let _ = self.ctl.send(STAGE_STOP);
        let mut outcomes: Vec<Option<LiveOutcome>> = (0..self.n).map(|_| None).collect();
        let collect = async {
            while let Some(res) = self.set.join_next().await {
                if let Ok((i, o)) = res {
                    outcomes[i] = Some(o);
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), collect)
            .await
            .is_err()
        {
            notes.push("some clients did not stop within 60 s".into());
            self.set.abort_all();
        }
        outcomes
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }
}

fn spawn_clients(shared: &Arc<LiveShared>, specs: Vec<LiveSpec>, concurrency: usize) -> Clients {
    let (ctl, ctl_rx) = watch::channel(live::STAGE_RUN);
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let n = specs.len();
    for (i, spec) in specs.into_iter().enumerate() {
        let fut = live::run(Arc::clone(shared), spec, Arc::clone(&gate), ctl_rx.clone());
        set.spawn(async move { (i, fut.await) });
    }
    Clients {
        shared: Arc::clone(shared),
        ctl,
        set,
        n,
    }
}

/// A fresh database with `rows` items spread over `tenants` (row g has
/// tenant `tenants[(g - 1) % len]`), autovacuum off, vacuumed.
async fn prepare_db(ctx: &Ctx, db_name: &str, rows: usize, tenants: &[String]) -> Result<String> {
    let bin = ctx.pglive_bin.clone().map_err(anyhow::Error::msg)?;
    db::create_database(&ctx.admin, db_name).await?;
    let db_url = db::url_with_db(&ctx.admin_url, db_name);
    crate::run::migrate(&bin, &db_url).await?;
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

/// Runs `inner` within the deadline, then drops the database.
async fn guarded<F>(ctx: &Ctx, db_name: &str, deadline_s: f64, inner: F) -> Result<()>
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
    res
}

/// How long pglive gets after SIGTERM before SIGKILL. Its engine waits up
/// to 5 s for group tasks, which lingering groups outlast; the smoke does not
/// wait for that (its backends still exit, and flush their statistics, when
/// its connections close).
fn stop_grace(p: &TParams) -> Duration {
    Duration::from_secs(if p.smoke { 1 } else { 10 })
}

fn mint(sub: &str, tenant: &str) -> Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 6 * 3600;
    let claims = serde_json::json!({
        "sub": sub,
        "role": "pglive_user",
        "tenant": tenant,
        "exp": exp,
    });
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes())
        .context("the bench's JWT key")?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .context("signing a token")
}

fn ws_addr(server: &ServerProc) -> (std::net::SocketAddr, String) {
    (
        ([127, 0, 0, 1], server.port).into(),
        format!("ws://127.0.0.1:{}/ws", server.port),
    )
}

// ---------------------------------------------------------------- RLS

pub async fn run_rls(ctx: &Ctx, p: &TParams) -> RlsReport {
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
    let db_name = format!(
        "pglive_bench_{}_{}_pglive",
        std::process::id(),
        p.name.to_ascii_lowercase().replace('-', "_")
    );
    let res = guarded(
        ctx,
        &db_name,
        p.deadline_s,
        rls_inner(ctx, p, &db_name, &mut rep),
    )
    .await;
    if let Err(e) = res {
        rep.error = Some(format!("{e:#}"));
    }
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
        &["--jwt-secret", JWT_SECRET, "--jwt-context-claims", "tenant"],
    )
    .await?;
    rep.notes.push(format!("server log {}", log.display()));

    // Clients: client i is in tenant i % tenants.
    let prefix = format!("bm-{}-", ctx.run_id);
    let shared = Arc::new(LiveShared::new(prefix.clone(), p.writes));
    let (addr, url) = ws_addr(&server);
    let tenant_of: Vec<usize> = (0..p.clients).map(|i| i % p.tenants).collect();
    let mut specs = Vec::with_capacity(p.clients);
    for (i, &t) in tenant_of.iter().enumerate() {
        specs.push(LiveSpec {
            addr,
            url: url.clone(),
            token: Some(mint(&format!("user-{i}"), &tenants[t])?),
            tenant: Some(tenants[t].clone()),
            resume: false,
            read_buffer: 8 << 10,
        });
    }
    let clients = spawn_clients(&shared, specs, p.connect_concurrency);
    rep.connect_seconds = clients
        .wait_ready(&mut server, p.connect_timeout_s, &mut rep.notes)
        .await?;
    rep.ready = shared.ready.load(Ordering::Acquire);
    eprintln!(
        "pglive-bench: {}: {}/{} clients ready in {:.1} s",
        p.name, rep.ready, p.clients, rep.connect_seconds
    );

    let writer = TenantWriter::open(&db_url, tenants.clone(), prefix, p.seed, shared.t0).await?;
    if p.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.settle_s)).await;
    }
    let before = db::read_stats(&ctx.admin, &db_url, db_name).await?;
    let m_before = metrics(server.port).await;
    let cpu_before = server::cpu_seconds(server.pid);
    let bench_before = server::cpu_seconds(std::process::id());
    shared.phase.store(PHASE_WRITES, Ordering::Release);
    let t_writes = Instant::now();
    let ops = writer.write(p.writes, p.rate).await?;
    rep.writes = ops.len();
    rep.achieved_rate = ops.len() as f64 / t_writes.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "pglive-bench: {}: {} writes done ({:.1}/s); waiting for the tail",
        p.name, rep.writes, rep.achieved_rate
    );
    clients
        .tail(p.quiet_s, p.tail_timeout_s, &mut rep.notes)
        .await;
    let m_after = metrics(server.port).await;
    rep.server_cpu_seconds = server::cpu_seconds(server.pid)
        .zip(cpu_before)
        .map(|(a, b)| a - b);
    rep.bench_cpu_seconds = server::cpu_seconds(std::process::id())
        .zip(bench_before)
        .map(|(a, b)| a - b);
    rep.server_rss_peak_mib = server::status_mib(server.pid, "VmHWM");
    rep.metrics = metric_deltas(m_before.as_ref(), m_after.as_ref());

    let outcomes = clients.stop(&mut rep.notes).await;
    drop(writer);
    server.stop(stop_grace(p)).await;
    if !db::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        rep.notes
            .push("backends still connected 15 s after the server stopped".into());
    }
    let after = db::read_stats(&ctx.admin, &db_url, db_name).await?;
    rep.db = db_delta(&before, &after, &ops);
    // The final read comes after the statistics (it scans the table).
    let want = final_rows(&db_url, &tenants).await?;
    let last_commit = ops.iter().map(|o| o.commit_us).max().unwrap_or(0);
    rep.convergence = converge(&outcomes, &tenant_of, &want, last_commit);
    rep.deliveries = deliveries(&ops, &outcomes, &tenant_of, 0);
    rep.problems = problems(&outcomes);
    let n = rep.ready.max(1) as f64;
    let w = rep.writes.max(1) as f64;
    let after_bytes: u64 = outcomes.iter().map(|o| o.bytes[PHASE_WRITES]).sum();
    let after_frames: u64 = outcomes.iter().map(|o| o.frames[PHASE_WRITES]).sum();
    rep.bytes_per_client_per_change = after_bytes as f64 / n / w;
    rep.frames_per_client_per_change = after_frames as f64 / n / w;
    rep.bytes_per_delivery = after_bytes as f64 / rep.deliveries.seen.max(1) as f64;
    rep.initial_bytes_per_client = outcomes.iter().map(|o| o.bytes[0]).sum::<u64>() as f64 / n;
    rep.commit_round_trip_ms = report::percentiles(ops.iter().map(|o| o.round_trip_us).collect());
    Ok(())
}

// ---------------------------------------------------------------- RECONNECT

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconnectReport {
    /// `resume` (subscribe with `since`) or `snapshot` (without).
    pub mode: String,
    pub ok: bool,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub clients: usize,
    pub ready: usize,
    pub connect_seconds: f64,
    pub writes_before: usize,
    pub writes_during: usize,
    /// pglive's open connections and live groups once every client had
    /// dropped (the group lingers).
    pub connections_after_drop: Option<f64>,
    pub groups_after_drop: Option<f64>,
    pub drop_ms: f64,
    pub answered_resumed: usize,
    pub answered_snapshot: usize,
    pub unanswered: usize,
    pub resumed_fraction: f64,
    /// Mean bytes per client of the answer (`resumed` + catch-up diffs, or
    /// the snapshot).
    pub answer_bytes_per_client: f64,
    pub answer_frames_per_client: f64,
    /// Everything a client received from the drop to the end, mean.
    pub reconnect_phase_bytes_per_client: f64,
    /// Subscribe → answer, over clients.
    pub answer_ms: Percentiles,
    /// From the reconnect signal until every client had its answer / was
    /// caught up with it.
    pub all_answered_after_reconnect_ms: Option<f64>,
    pub all_caught_up_after_reconnect_ms: Option<f64>,
    pub deliveries: TDeliveries,
    pub convergence: Convergence,
    pub problems: ClientProblems,
    /// Over the reconnect phase (drop to end of tail).
    pub db: DbDelta,
    pub metrics: BTreeMap<String, f64>,
    /// pglive's full reads (refreshes − keyed) over the reconnect phase.
    pub full_queries: Option<f64>,
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU over the reconnect phase (it decodes
    /// every frame, snapshots included, on the same cores).
    pub bench_cpu_seconds: Option<f64>,
}

impl ReconnectReport {
    pub fn failed(&self, require_resumed: bool) -> bool {
        !self.ok
            || self.unanswered > 0
            || self.deliveries.missing > 0
            || self.convergence.clients_diverged > 0
            || self.problems.error_frames > 0
            || self.problems.decode_errors > 0
            || self.problems.version_gaps > 0
            || self.ready < self.clients
            || (require_resumed && self.answered_resumed < self.clients)
    }
}

pub async fn run_reconnect(ctx: &Ctx, p: &TParams, resume: bool) -> ReconnectReport {
    let mode = if resume { "resume" } else { "snapshot" };
    let mut rep = ReconnectReport {
        mode: mode.into(),
        clients: p.clients,
        writes_before: p.writes,
        writes_during: p.writes_during,
        ..ReconnectReport::default()
    };
    let db_name = format!(
        "pglive_bench_{}_{}_{mode}",
        std::process::id(),
        p.name.to_ascii_lowercase().replace('-', "_")
    );
    let res = guarded(
        ctx,
        &db_name,
        p.deadline_s,
        reconnect_inner(ctx, p, resume, &db_name, &mut rep),
    )
    .await;
    if let Err(e) = res {
        rep.error = Some(format!("{e:#}"));
    }
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
    let shared = Arc::new(LiveShared::new(prefix.clone(), n_ops));
    let (addr, url) = ws_addr(&server);
    let specs = (0..p.clients)
        .map(|_| LiveSpec {
            addr,
            url: url.clone(),
            token: None,
            tenant: None,
            resume,
            // Snapshots of 10,000 rows are 1.2 MB: larger reads.
            read_buffer: 64 << 10,
        })
        .collect();
    let clients = spawn_clients(&shared, specs, p.connect_concurrency);
    rep.connect_seconds = clients
        .wait_ready(&mut server, p.connect_timeout_s, &mut rep.notes)
        .await?;
    rep.ready = shared.ready.load(Ordering::Acquire);
    eprintln!(
        "pglive-bench: {} {}: {}/{} clients ready in {:.1} s",
        p.name, rep.mode, rep.ready, p.clients, rep.connect_seconds
    );

    // Phase A: writes with everyone connected.
    let writer = TenantWriter::open(&db_url, tenants.clone(), prefix, p.seed, shared.t0).await?;
    shared.phase.store(PHASE_WRITES, Ordering::Release);
    let mut ops = writer.write(p.writes, p.rate).await?;
    clients
        .tail(p.quiet_s, p.tail_timeout_s, &mut rep.notes)
        .await;
    if p.settle_s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(p.settle_s)).await;
    }

    // Phase B: drop, reconnect, while writes go on.
    let before = db::read_stats(&ctx.admin, &db_url, db_name).await?;
    let m_before = metrics(server.port).await;
    let cpu_before = server::cpu_seconds(server.pid);
    let bench_before = server::cpu_seconds(std::process::id());
    shared.phase.store(PHASE_RECONNECT, Ordering::Release);
    let first_b = ops.len();
    let t_drop = Instant::now();
    let _ = clients.ctl.send(STAGE_DROP);
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
        let _ = clients.ctl.send(STAGE_RECONNECT);
        let deadline = Instant::now() + Duration::from_secs_f64(p.connect_timeout_s);
        while shared.caught_up.load(Ordering::Acquire) < rep.ready && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t_reconnect
    };
    let (written, t_reconnect) = tokio::join!(writer.write(p.writes_during, p.rate), orchestrate);
    ops.extend(written?);
    clients
        .tail(p.quiet_s, p.tail_timeout_s, &mut rep.notes)
        .await;
    let m_after = metrics(server.port).await;
    rep.server_cpu_seconds = server::cpu_seconds(server.pid)
        .zip(cpu_before)
        .map(|(a, b)| a - b);
    rep.bench_cpu_seconds = server::cpu_seconds(std::process::id())
        .zip(bench_before)
        .map(|(a, b)| a - b);
    rep.metrics = metric_deltas(m_before.as_ref(), m_after.as_ref());
    rep.full_queries = rep
        .metrics
        .get("refreshes")
        .zip(rep.metrics.get("refreshes_keyed"))
        .map(|(a, b)| a - b);

    let outcomes = clients.stop(&mut rep.notes).await;
    drop(writer);
    server.stop(stop_grace(p)).await;
    if !db::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        rep.notes
            .push("backends still connected 15 s after the server stopped".into());
    }
    let after = db::read_stats(&ctx.admin, &db_url, db_name).await?;
    rep.db = db_delta(&before, &after, &ops[first_b..]);
    let want = final_rows(&db_url, &tenants).await?;
    let tenant_of = vec![0usize; outcomes.len()];
    let last_commit = ops.iter().map(|o| o.commit_us).max().unwrap_or(0);
    rep.convergence = converge(&outcomes, &tenant_of, &want, last_commit);
    rep.deliveries = deliveries(&ops, &outcomes, &tenant_of, 0);
    rep.problems = problems(&outcomes);

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
    rep.answer_ms = report::percentiles(answer_us);
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

// ---------------------------------------------------------------- tables

fn render(labels_cols: &[(String, Vec<String>)], header: &[String], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str(&format!("| metric | {} |\n", header.join(" | ")));
        out.push_str(&format!(
            "|---|{}\n",
            header.iter().map(|_| "---:|").collect::<String>()
        ));
        for (label, cells) in labels_cols {
            out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
        }
    } else {
        let w0 = labels_cols.iter().map(|(l, _)| l.len()).max().unwrap_or(6);
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                labels_cols
                    .iter()
                    .map(|(_, cells)| cells.get(c).map_or(0, |s| s.chars().count()))
                    .chain(std::iter::once(header[c].len()))
                    .max()
                    .unwrap_or(8)
            })
            .collect();
        out.push_str(&format!("{:w0$}", "metric"));
        for (c, h) in header.iter().enumerate() {
            out.push_str(&format!("  {:>w$}", h, w = widths[c]));
        }
        out.push('\n');
        for (label, cells) in labels_cols {
            out.push_str(&format!("{label:w0$}"));
            for (c, cell) in cells.iter().enumerate() {
                out.push_str(&format!("  {:>w$}", cell, w = widths[c]));
            }
            out.push('\n');
        }
    }
    out
}

/// A table row: its label and how to render one report's cell.
type Cell<'a, R> = (&'static str, Box<dyn Fn(&R) -> String + 'a>);

/// Renders `rows` with one column per report (both scenarios' tables).
fn table<R>(rows: &[Cell<'_, R>], reports: &[&R], header: &[String], markdown: bool) -> String {
    let cols: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|(l, f)| (l.to_string(), reports.iter().map(|r| f(r)).collect()))
        .collect();
    render(&cols, header, markdown)
}

/// The "error frames / version gaps / closed early" cell.
fn problems_cell(p: &ClientProblems) -> String {
    format!(
        "{} / {} / {}",
        p.error_frames, p.version_gaps, p.closed_early
    )
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

fn int(v: f64) -> String {
    format!("{v:.0}")
}

fn metric(r: &BTreeMap<String, f64>, k: &str) -> Option<f64> {
    r.get(k).copied()
}

pub fn rls_table(reports: &[&RlsReport], markdown: bool) -> String {
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("pglive ({})", r.mode))
        .collect();
    let per_write = |r: &RlsReport, v: f64| v / r.writes.max(1) as f64;
    let rows: Vec<Cell<'_, RlsReport>> = vec![
        (
            "clients ready / tenants",
            Box::new(|r| format!("{}/{} / {}", r.ready, r.clients, r.tenants)),
        ),
        (
            "writes / achieved rate",
            Box::new(|r| format!("{} / {:.1}/s", r.writes, r.achieved_rate)),
        ),
        (
            "deliveries seen / expected",
            Box::new(|r| format!("{}/{}", r.deliveries.seen, r.deliveries.expected)),
        ),
        ("latency p50", Box::new(|r| ms(r.deliveries.latency_ms.p50))),
        ("latency p99", Box::new(|r| ms(r.deliveries.latency_ms.p99))),
        ("latency max", Box::new(|r| ms(r.deliveries.latency_ms.max))),
        (
            "rows read / write (pg_stat)",
            Box::new(move |r| num(per_write(r, r.db.rows_read as f64))),
        ),
        (
            "table scans / write (pg_stat)",
            Box::new(move |r| num(per_write(r, r.db.table_scans as f64))),
        ),
        (
            "server transactions / write",
            Box::new(move |r| num(per_write(r, r.db.server_transactions as f64))),
        ),
        (
            "refreshes / write (/metrics)",
            Box::new(move |r| {
                opt(
                    metric(&r.metrics, "refreshes").map(|v| per_write(r, v)),
                    num,
                )
            }),
        ),
        (
            "rows read / write (/metrics)",
            Box::new(move |r| {
                opt(
                    metric(&r.metrics, "rows_read").map(|v| per_write(r, v)),
                    num,
                )
            }),
        ),
        (
            "bytes / client / change",
            Box::new(|r| bytes(r.bytes_per_client_per_change)),
        ),
        (
            "bytes / delivery",
            Box::new(|r| bytes(r.bytes_per_delivery)),
        ),
        (
            "initial state / client",
            Box::new(|r| bytes(r.initial_bytes_per_client)),
        ),
        (
            "clients converged (= their tenant's rows)",
            Box::new(|r| format!("{}/{}", r.convergence.clients_converged, r.clients)),
        ),
        (
            "converged after last commit",
            Box::new(|r| opt(r.convergence.all_converged_after_last_commit_ms, ms)),
        ),
        (
            "rows of another tenant received",
            Box::new(|r| format!("{}", r.problems.foreign_rows)),
        ),
        (
            "writes seen by another tenant's client",
            Box::new(|r| format!("{}", r.deliveries.foreign_deliveries)),
        ),
        (
            "server CPU s (writes + tail)",
            Box::new(|r| opt(r.server_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "bench CPU s (writes + tail)",
            Box::new(|r| opt(r.bench_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "server peak RSS",
            Box::new(|r| opt(r.server_rss_peak_mib, |v| format!("{v:.0} MiB"))),
        ),
        (
            "commit round trip p50/p99",
            Box::new(|r| {
                format!(
                    "{} / {}",
                    ms(r.commit_round_trip_ms.p50),
                    ms(r.commit_round_trip_ms.p99)
                )
            }),
        ),
        (
            "error frames / version gaps / closed early",
            Box::new(|r| problems_cell(&r.problems)),
        ),
    ];
    let mut out = table(&rows, reports, &header, markdown);
    for r in reports {
        if let Some(e) = &r.error {
            out.push_str(&format!("- {}: ERROR: {e}\n", r.mode));
        }
        for n in r
            .notes
            .iter()
            .chain(&r.convergence.examples)
            .chain(&r.problems.examples)
        {
            out.push_str(&format!("- {}: {n}\n", r.mode));
        }
        if let Some(f) = &r.problems.foreign_example {
            out.push_str(&format!("- {}: {f}\n", r.mode));
        }
    }
    out
}

pub fn reconnect_table(reports: &[&ReconnectReport], markdown: bool) -> String {
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("pglive ({})", r.mode))
        .collect();
    let rows: Vec<Cell<'_, ReconnectReport>> = vec![
        (
            "clients ready",
            Box::new(|r| format!("{}/{}", r.ready, r.clients)),
        ),
        (
            "writes before / during reconnect",
            Box::new(|r| format!("{} / {}", r.writes_before, r.writes_during)),
        ),
        (
            "connections / groups once all dropped",
            Box::new(|r| {
                format!(
                    "{} / {}",
                    opt(r.connections_after_drop, int),
                    opt(r.groups_after_drop, int)
                )
            }),
        ),
        (
            "answered resumed / snapshot / none",
            Box::new(|r| {
                format!(
                    "{} / {} / {}",
                    r.answered_resumed, r.answered_snapshot, r.unanswered
                )
            }),
        ),
        (
            "resumed fraction",
            Box::new(|r| format!("{:.1} %", r.resumed_fraction * 100.0)),
        ),
        (
            "answer bytes / client",
            Box::new(|r| bytes(r.answer_bytes_per_client)),
        ),
        (
            "answer frames / client",
            Box::new(|r| num(r.answer_frames_per_client)),
        ),
        (
            "bytes / client, drop to end",
            Box::new(|r| bytes(r.reconnect_phase_bytes_per_client)),
        ),
        (
            "subscribe → answer p50 / p99",
            Box::new(|r| format!("{} / {}", ms(r.answer_ms.p50), ms(r.answer_ms.p99))),
        ),
        (
            "all answered after reconnect",
            Box::new(|r| opt(r.all_answered_after_reconnect_ms, ms)),
        ),
        (
            "all caught up after reconnect",
            Box::new(|r| opt(r.all_caught_up_after_reconnect_ms, ms)),
        ),
        (
            "clients converged (= final read)",
            Box::new(|r| format!("{}/{}", r.convergence.clients_converged, r.clients)),
        ),
        (
            "converged after last commit",
            Box::new(|r| opt(r.convergence.all_converged_after_last_commit_ms, ms)),
        ),
        (
            "deliveries seen / expected",
            Box::new(|r| format!("{}/{}", r.deliveries.seen, r.deliveries.expected)),
        ),
        (
            "full queries, reconnect phase (/metrics)",
            Box::new(|r| opt(r.full_queries, int)),
        ),
        (
            "refreshes / keyed (/metrics)",
            Box::new(|r| {
                format!(
                    "{} / {}",
                    opt(metric(&r.metrics, "refreshes"), int),
                    opt(metric(&r.metrics, "refreshes_keyed"), int)
                )
            }),
        ),
        (
            "rows read (/metrics)",
            Box::new(|r| opt(metric(&r.metrics, "rows_read"), int)),
        ),
        (
            "rows read (pg_stat, minus writer)",
            Box::new(|r| format!("{}", r.db.rows_read)),
        ),
        (
            "server transactions (pg_stat, minus writer)",
            Box::new(|r| format!("{}", r.db.server_transactions)),
        ),
        (
            "snapshots / resumes / misses (/metrics)",
            Box::new(|r| {
                format!(
                    "{} / {} / {}",
                    opt(metric(&r.metrics, "snapshots"), int),
                    opt(metric(&r.metrics, "resumes"), int),
                    opt(metric(&r.metrics, "resume_misses"), int)
                )
            }),
        ),
        (
            "bytes sent by pglive, reconnect phase",
            Box::new(|r| opt(metric(&r.metrics, "bytes_sent"), bytes)),
        ),
        (
            "server CPU s, reconnect phase",
            Box::new(|r| opt(r.server_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "bench CPU s, reconnect phase",
            Box::new(|r| opt(r.bench_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "error frames / version gaps / closed early",
            Box::new(|r| problems_cell(&r.problems)),
        ),
    ];
    let mut out = table(&rows, reports, &header, markdown);
    let resume = reports.iter().find(|r| r.mode == "resume");
    let snap = reports.iter().find(|r| r.mode == "snapshot");
    if let (Some(a), Some(b)) = (resume, snap)
        && b.answer_bytes_per_client > 0.0
    {
        let pct = a.answer_bytes_per_client / b.answer_bytes_per_client * 100.0;
        out.push_str(&format!(
            "\nresume answer bytes = {pct:.2} % of snapshot answer bytes (target ≤ 2 %: {}); full queries while resuming: {} (target 0: {})\n",
            if pct <= 2.0 { "met" } else { "missed" },
            opt(a.full_queries, int),
            if a.full_queries == Some(0.0) { "met" } else { "missed" },
        ));
    }
    for r in reports {
        if let Some(e) = &r.error {
            out.push_str(&format!("- {}: ERROR: {e}\n", r.mode));
        }
        for n in r
            .notes
            .iter()
            .chain(&r.convergence.examples)
            .chain(&r.problems.examples)
        {
            out.push_str(&format!("- {}: {n}\n", r.mode));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_defaults() -> Result<()> {
        let rls = params("rls", &TOverrides::default())?;
        assert_eq!(
            (rls.clients, rls.tenants, rls.rows, rls.writes),
            (1_000, 100, 10_000, 600)
        );
        assert!(!rls.partition_hint);
        let smoke = params(
            "RLS-SMOKE",
            &TOverrides {
                partition_hint: true,
                ..TOverrides::default()
            },
        )?;
        assert!(smoke.smoke && smoke.partition_hint);
        let rc = params("reconnect", &TOverrides::default())?;
        assert_eq!(
            (rc.clients, rc.rows, rc.writes, rc.writes_during),
            (1_000, 10_000, 50, 60)
        );
        assert!(
            !params(
                "reconnect",
                &TOverrides {
                    partition_hint: true,
                    ..TOverrides::default()
                }
            )?
            .partition_hint
        );
        assert!(params("nope", &TOverrides::default()).is_err());
        Ok(())
    }

    #[test]
    fn tokens_carry_the_claims() -> Result<()> {
        let token = mint("user-1", "t7")?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.required_spec_claims.clear();
        let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes())?;
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v)?;
        assert_eq!(data.claims["tenant"], "t7");
        assert_eq!(data.claims["role"], "pglive_user");
        assert_eq!(data.claims["sub"], "user-1");
        Ok(())
    }
}

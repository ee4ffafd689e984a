//! The decoding client and the tenant-aware writer of scenarios RLS and
//! RECONNECT (see `tenants.rs`).
//!
//! Unlike the marker-scanning client of S1–S6, this client decodes every
//! frame as JSON (rows as `items` rows, their text borrowed from the frame,
//! timestamps compared as the server wrote them), keeps its
//! subscription's rows (key → hash of the row's content), checks that every
//! row of every frame belongs to its tenant, tracks the epoch and version it
//! could resume from, and can drop its connection and come back with
//! `since`. Its frame rates are low (RLS: a tenant's writes only; RECONNECT:
//! 20 diffs/s per client), so decoding costs little next to the server.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use pglive_schema::Int8;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Phases of a run; bytes and frames are counted per phase.
pub const PHASE_CONNECT: usize = 0;
pub const PHASE_WRITES: usize = 1;
pub const PHASE_RECONNECT: usize = 2;

/// Control stages every client follows (a `watch` channel).
pub const STAGE_RUN: u8 = 0;
/// Drop the connection (abruptly: the socket is closed, no close frame).
pub const STAGE_DROP: u8 = 1;
/// Connect again and resubscribe (with `since` when resuming).
pub const STAGE_RECONNECT: u8 = 2;
pub const STAGE_STOP: u8 = 3;

/// An `items` row as it travels (the contract's `Item`), its text borrowed
/// from the frame when it has no escapes.
#[derive(Debug, Deserialize)]
pub struct Row<'a> {
    pub id: Int8,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub tenant: Cow<'a, str>,
    #[serde(borrow)]
    pub created_at: Cow<'a, str>,
    #[serde(borrow)]
    pub updated_at: Cow<'a, str>,
}

/// A row's key and content, hashed: two rows are equal when their hashes are.
pub fn row_sig(row: &Row<'_>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    row.id.0.hash(&mut h);
    row.name.hash(&mut h);
    row.tenant.hash(&mut h);
    row.created_at.hash(&mut h);
    row.updated_at.hash(&mut h);
    h.finish()
}

/// State shared by every client of one run.
pub struct LiveShared {
    pub t0: Instant,
    pub prefix: String,
    pub n_ops: usize,
    pub phase: AtomicUsize,
    /// Frames received by all clients (quiet detection).
    pub frames: AtomicU64,
    /// Clients with their first snapshot.
    pub ready: AtomicUsize,
    /// Clients that ended without a first snapshot.
    pub finished: AtomicUsize,
    /// Clients whose connection is currently open.
    pub open: AtomicUsize,
    /// Reconnected clients that got the answer to their resubscribe
    /// (`resumed` or `snapshot`), and those caught up with it.
    pub answered: AtomicUsize,
    pub caught_up: AtomicUsize,
}

impl LiveShared {
    pub fn new(prefix: String, n_ops: usize) -> LiveShared {
        LiveShared {
            t0: Instant::now(),
            prefix,
            n_ops,
            phase: AtomicUsize::new(PHASE_CONNECT),
            frames: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            caught_up: AtomicUsize::new(0),
        }
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What one client connects to and as whom.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    pub addr: std::net::SocketAddr,
    pub url: String,
    /// Sent as `{"type":"auth","token":…}` before subscribing.
    pub token: Option<String>,
    /// Every row the client receives must have this tenant.
    pub tenant: Option<String>,
    /// Resubscribe with `since` after a reconnect (else: a fresh snapshot).
    pub resume: bool,
    pub read_buffer: usize,
}

/// How a reconnected client's resubscribe was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    Resumed,
    Snapshot,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub kind: AnswerKind,
    /// Subscribe sent (µs since t0).
    pub sent_us: u64,
    /// The `resumed`/`snapshot` frame arrived.
    pub answered_us: u64,
    /// Caught up: a snapshot at once; a resume once the diffs up to its
    /// `to` arrived.
    pub caught_up_us: Option<u64>,
    /// Bytes and frames of the answer: the `resumed` frame and the catch-up
    /// diffs up to its `to`, or the snapshot.
    pub bytes: u64,
    pub frames: u64,
    /// `resumed.to` (catch-up target).
    #[serde(skip)]
    target: u64,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct LiveOutcome {
    pub connected: bool,
    pub ready: bool,
    pub error: Option<String>,
    pub closed_early: bool,
    /// Per operation: first time (µs since t0, +1) a frame carried its marker.
    pub recv: Vec<u32>,
    /// Key → row hash: the client's current rows.
    pub rows: HashMap<i64, u64>,
    pub epoch: Option<String>,
    pub version: u64,
    pub bytes: [u64; 3],
    pub frames: [u64; 3],
    /// Rows received (in any frame) whose tenant is not the client's.
    pub foreign_rows: u64,
    pub foreign_example: Option<String>,
    /// Deleted keys the client did not hold.
    pub unknown_deletes: u64,
    pub error_frames: u64,
    pub error_example: Option<String>,
    pub decode_errors: u64,
    /// Diffs whose `from` was not the client's version.
    pub version_gaps: u64,
    /// The last frame that changed the rows (µs since t0).
    pub last_change_us: u64,
    pub snapshots: u64,
    pub diffs: u64,
    /// The resubscribe after the reconnect.
    pub since_sent: Option<(String, u64)>,
    pub answer: Option<Answer>,
    pub reconnected: bool,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    to: Option<u64>,
    #[serde(default, borrow)]
    rows: Option<Vec<Row<'a>>>,
    #[serde(default, borrow)]
    upserts: Option<Vec<Placed<'a>>>,
    #[serde(default)]
    deletes: Option<Vec<Int8>>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Placed<'a> {
    #[serde(borrow)]
    row: Row<'a>,
}

struct State {
    shared: Arc<LiveShared>,
    tenant: Option<String>,
    out: LiveOutcome,
    /// Waiting for the answer to the resubscribe.
    awaiting: bool,
    authenticated: bool,
}

fn us32(us: u64) -> u32 {
    u32::try_from(us.saturating_add(1)).unwrap_or(u32::MAX)
}

impl State {
    fn mark(&mut self, name: &str, now32: u32) {
        if let Some(seq) = name
            .strip_prefix(self.shared.prefix.as_str())
            .and_then(|s| s.parse::<usize>().ok())
            && let Some(cell) = self.out.recv.get_mut(seq)
            && *cell == 0
        {
            *cell = now32;
        }
    }

    fn check_tenant(&mut self, item: &Row<'_>) {
        if let Some(t) = &self.tenant
            && item.tenant != t.as_str()
        {
            self.out.foreign_rows += 1;
            if self.out.foreign_example.is_none() {
                self.out.foreign_example = Some(format!(
                    "client of tenant {t} got row {} of tenant {}",
                    item.id.0, item.tenant
                ));
            }
        }
    }

    fn caught_up(&mut self, now: u64) {
        if let Some(a) = self.out.answer.as_mut()
            && a.caught_up_us.is_none()
            && self.out.version >= a.target
        {
            a.caught_up_us = Some(now);
            self.awaiting = false;
            self.shared.caught_up.fetch_add(1, Ordering::Release);
        }
    }

    fn on_frame(&mut self, frame: &[u8]) {
        let shared = Arc::clone(&self.shared);
        let now = shared.now_us();
        let now32 = us32(now);
        shared.frames.fetch_add(1, Ordering::Relaxed);
        let phase = shared.phase.load(Ordering::Acquire).min(2);
        let len = frame.len() as u64;
        self.out.bytes[phase] += len;
        self.out.frames[phase] += 1;
        let answering = self.out.reconnected
            && (self.awaiting
                || self
                    .out
                    .answer
                    .as_ref()
                    .is_some_and(|a| a.caught_up_us.is_none()));
        let f: Frame = match serde_json::from_slice(frame) {
            Ok(f) => f,
            Err(e) => {
                self.out.decode_errors += 1;
                if self.out.error_example.is_none() {
                    self.out.error_example = Some(format!(
                        "undecodable frame ({e}): {}",
                        String::from_utf8_lossy(&frame[..frame.len().min(200)])
                    ));
                }
                return;
            }
        };
        match f.kind.as_ref() {
            "snapshot" => {
                let rows = f.rows.unwrap_or_default();
                self.out.rows.clear();
                self.out.rows.reserve(rows.len());
                for item in &rows {
                    self.check_tenant(item);
                    self.mark(&item.name, now32);
                    self.out.rows.insert(item.id.0, row_sig(item));
                }
                self.out.epoch = f.epoch;
                self.out.version = f.version.unwrap_or(0);
                self.out.snapshots += 1;
                self.out.last_change_us = now;
                if !self.out.ready {
                    self.out.ready = true;
                    shared.ready.fetch_add(1, Ordering::Release);
                }
                if self.out.reconnected && self.awaiting {
                    self.awaiting = false;
                    self.out.answer = Some(Answer {
                        kind: AnswerKind::Snapshot,
                        sent_us: self.out.answer.as_ref().map_or(0, |a| a.sent_us),
                        answered_us: now,
                        caught_up_us: None,
                        bytes: len,
                        frames: 1,
                        target: self.out.version,
                    });
                    shared.answered.fetch_add(1, Ordering::Release);
                    self.caught_up(now);
                }
            }
            "resumed" => {
                let from = f.from.unwrap_or(0);
                if from != self.out.version {
                    self.out.version_gaps += 1;
                }
                self.out.version = from;
                if let Some(e) = f.epoch {
                    self.out.epoch = Some(e);
                }
                if self.out.reconnected && self.awaiting {
                    self.awaiting = false;
                    self.out.answer = Some(Answer {
                        kind: AnswerKind::Resumed,
                        sent_us: self.out.answer.as_ref().map_or(0, |a| a.sent_us),
                        answered_us: now,
                        caught_up_us: None,
                        bytes: len,
                        frames: 1,
                        target: f.to.unwrap_or(from),
                    });
                    shared.answered.fetch_add(1, Ordering::Release);
                    self.caught_up(now);
                }
            }
            "diff" => {
                if f.from.unwrap_or(0) != self.out.version {
                    self.out.version_gaps += 1;
                }
                for key in f.deletes.unwrap_or_default() {
                    if self.out.rows.remove(&key.0).is_none() {
                        self.out.unknown_deletes += 1;
                    }
                }
                for p in f.upserts.unwrap_or_default() {
                    self.check_tenant(&p.row);
                    self.mark(&p.row.name, now32);
                    self.out.rows.insert(p.row.id.0, row_sig(&p.row));
                }
                self.out.version = f.to.unwrap_or(self.out.version);
                self.out.diffs += 1;
                self.out.last_change_us = now;
                if answering && let Some(a) = self.out.answer.as_mut() {
                    a.bytes += len;
                    a.frames += 1;
                }
                self.caught_up(now);
            }
            "authenticated" => self.authenticated = true,
            "error" => {
                self.out.error_frames += 1;
                if self.out.error_example.is_none() {
                    self.out.error_example = Some(format!(
                        "error frame: {} {}",
                        f.code.unwrap_or_default(),
                        f.message.unwrap_or_default()
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Runs one client: connect, subscribe, follow the control stages (drop,
/// reconnect) until `STAGE_STOP`.
pub async fn run(
    shared: Arc<LiveShared>,
    spec: LiveSpec,
    gate: Arc<Semaphore>,
    mut ctl: watch::Receiver<u8>,
) -> LiveOutcome {
    let mut st = State {
        shared: Arc::clone(&shared),
        tenant: spec.tenant.clone(),
        out: LiveOutcome {
            recv: vec![0; shared.n_ops],
            ..LiveOutcome::default()
        },
        awaiting: false,
        authenticated: false,
    };
    let first = session(&mut st, &spec, &gate, &mut ctl, None, STAGE_DROP).await;
    if let Err(e) = first {
        st.out.error = Some(format!("{e:#}"));
        st.out.closed_early = true;
    }
    if !st.out.ready {
        shared.finished.fetch_add(1, Ordering::Release);
    }
    if st.out.error.is_none() && *ctl.borrow() < STAGE_STOP {
        // Dropped; wait for the signal to come back.
        while *ctl.borrow_and_update() < STAGE_RECONNECT {
            if ctl.changed().await.is_err() {
                return st.out;
            }
        }
        if *ctl.borrow() < STAGE_STOP {
            let since = if spec.resume {
                st.out.epoch.clone().map(|e| (e, st.out.version))
            } else {
                None
            };
            st.out.reconnected = true;
            st.out.since_sent = since.clone();
            if let Err(e) = session(&mut st, &spec, &gate, &mut ctl, since, STAGE_STOP).await {
                st.out.error = Some(format!("reconnect: {e:#}"));
                st.out.closed_early = true;
            }
        }
    }
    st.out
}

fn subscribe_frame(since: Option<&(String, u64)>) -> String {
    let mut msg = serde_json::json!({
        "type": "subscribe",
        "id": "a",
        "query": {"table": "items"},
    });
    if let Some((epoch, version)) = since {
        msg["since"] = serde_json::json!({"epoch": epoch, "version": version});
    }
    msg.to_string()
}

/// One connection: until the control stage reaches `until` (then the socket
/// is dropped) or the connection ends (an error).
async fn session(
    st: &mut State,
    spec: &LiveSpec,
    gate: &Semaphore,
    ctl: &mut watch::Receiver<u8>,
    since: Option<(String, u64)>,
    until: u8,
) -> Result<()> {
    let permit = gate.acquire().await.context("connect gate closed")?;
    let tcp = tokio::time::timeout(Duration::from_secs(15), TcpStream::connect(spec.addr))
        .await
        .context("TCP connect timed out")?
        .context("TCP connect")?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let config = WebSocketConfig::default()
        .read_buffer_size(spec.read_buffer)
        .write_buffer_size(0);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::client_async_with_config(spec.url.as_str(), tcp, Some(config)),
    )
    .await
    .context("WebSocket handshake timed out")?
    .context("WebSocket handshake")?;
    st.out.connected = true;
    st.shared.open.fetch_add(1, Ordering::AcqRel);
    let res = session_frames(st, spec, &mut ws, permit, ctl, since, until).await;
    st.shared.open.fetch_sub(1, Ordering::AcqRel);
    // Dropping `ws` closes the socket without a close frame.
    res
}

async fn session_frames(
    st: &mut State,
    spec: &LiveSpec,
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    permit: tokio::sync::SemaphorePermit<'_>,
    ctl: &mut watch::Receiver<u8>,
    since: Option<(String, u64)>,
    until: u8,
) -> Result<()> {
    st.authenticated = false;
    let mut subscribed = false;
    if let Some(token) = &spec.token {
        let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
        ws.send(Message::text(auth)).await.context("send auth")?;
    }
    let mut permit = Some(permit);
    let gate_deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if !subscribed && (spec.token.is_none() || st.authenticated) {
            if st.out.reconnected {
                st.awaiting = true;
                st.out.answer = Some(Answer {
                    kind: AnswerKind::Snapshot,
                    sent_us: st.shared.now_us(),
                    answered_us: 0,
                    caught_up_us: None,
                    bytes: 0,
                    frames: 0,
                    target: u64::MAX,
                });
            }
            ws.send(Message::text(subscribe_frame(since.as_ref())))
                .await
                .context("send subscribe")?;
            subscribed = true;
        }
        if *ctl.borrow_and_update() >= until {
            return Ok(());
        }
        let next = tokio::select! {
            biased;
            changed = ctl.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                continue;
            }
            _ = tokio::time::sleep_until(gate_deadline), if permit.is_some() => {
                permit = None;
                continue;
            }
            next = ws.next() => next,
        };
        match next {
            Some(Ok(Message::Text(text))) => st.on_frame(text.as_bytes()),
            Some(Ok(Message::Binary(bytes))) => st.on_frame(&bytes),
            Some(Ok(Message::Close(frame))) => {
                anyhow::bail!("server closed the connection: {frame:?}");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(anyhow::Error::new(e).context("WebSocket read")),
            None => anyhow::bail!("connection ended"),
        }
        let answered = if st.out.reconnected {
            !st.awaiting
        } else {
            st.out.ready
        };
        if answered {
            permit = None;
        }
    }
}

/// One write as the writer did it.
#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    /// Index into the writer's tenant list.
    pub tenant: u32,
    pub id: i64,
    pub insert: bool,
    /// When its COMMIT returned (µs since t0).
    pub commit_us: u64,
    pub round_trip_us: u32,
}

struct Job {
    writes: usize,
    rate: f64,
    reply: tokio::sync::oneshot::Sender<Result<Vec<OpRecord>>>,
}

/// Single-row UPDATEs (70 %) and INSERTs (30 %) on `items`, each with the
/// marker `<prefix><seq>` as its name, on a tenant picked at random, at an
/// open-loop rate, on an OS thread of its own (as the S1–S6 writer).
pub struct TenantWriter {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl TenantWriter {
    /// Connects (as the admin role: it owns `items` and bypasses its
    /// policies) and loads every row's tenant.
    pub async fn open(
        url: &str,
        tenants: Vec<String>,
        prefix: String,
        seed: u64,
        t0: Instant,
    ) -> Result<TenantWriter> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<i32>>();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("pglive-bench-tenant-writer".into())
            .spawn(move || writer_thread(&url, &tenants, &prefix, seed, t0, &rx, ready_tx))
            .context("starting the writer thread")?;
        ready_rx.await.context("writer thread ended")??;
        Ok(TenantWriter { jobs })
    }

    /// Runs `writes` writes at `rate` per second; the next markers follow
    /// on from the previous call's.
    pub async fn write(&self, writes: usize, rate: f64) -> Result<Vec<OpRecord>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                writes,
                rate,
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the writer thread ended"))?;
        rx.await.context("the writer thread ended")?
    }
}

fn writer_thread(
    url: &str,
    tenants: &[String],
    prefix: &str,
    seed: u64,
    t0: Instant,
    jobs: &std::sync::mpsc::Receiver<Job>,
    ready: tokio::sync::oneshot::Sender<Result<i32>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(anyhow::Error::new(e).context("writer runtime")));
            return;
        }
    };
    let opened = rt.block_on(async {
        let client = crate::db::connect(url).await?;
        // One index scan and one row per keyed UPDATE, so that the table
        // statistics can subtract them (as in S1–S6).
        client
            .batch_execute("SET enable_seqscan = off")
            .await
            .context("SET enable_seqscan")?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .context("pg_backend_pid")?
            .try_get(0)?;
        let mut ids: Vec<Vec<i64>> = vec![Vec::new(); tenants.len()];
        let index: HashMap<&str, usize> = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        for row in client
            .query("SELECT id::bigint, tenant FROM items ORDER BY id", &[])
            .await
            .context("reading the rows' tenants")?
        {
            let id: i64 = row.try_get(0)?;
            let tenant: String = row.try_get(1)?;
            if let Some(&i) = index.get(tenant.as_str()) {
                ids[i].push(id);
            }
        }
        let ins = client
            .prepare("/* pglive-bench */ INSERT INTO items (name, tenant) VALUES ($1, $2) RETURNING id::bigint")
            .await
            .context("prepare INSERT")?;
        let upd = client
            .prepare("/* pglive-bench */ UPDATE items SET name = $1 WHERE id = $2::bigint")
            .await
            .context("prepare UPDATE")?;
        anyhow::Ok((client, pid, ids, ins, upd))
    });
    let (client, pid, mut ids, ins, upd) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(pid));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = 0usize;
    while let Ok(job) = jobs.recv() {
        let res = rt.block_on(async {
            let mut out = Vec::with_capacity(job.writes);
            let start = tokio::time::Instant::now();
            for k in 0..job.writes {
                if job.rate > 0.0 {
                    let at = start + Duration::from_secs_f64(k as f64 / job.rate);
                    tokio::time::sleep_until(at).await;
                }
                let t = rng.random_range(0..tenants.len().max(1));
                let name = format!("{prefix}{seq}");
                let insert = ids[t].is_empty() || rng.random_range(0..100u32) < 30;
                let sent = Instant::now();
                let id = if insert {
                    let row = client
                        .query_one(&ins, &[&name, &tenants[t]])
                        .await
                        .context("INSERT")?;
                    let id: i64 = row.try_get(0)?;
                    ids[t].push(id);
                    id
                } else {
                    let id = ids[t][rng.random_range(0..ids[t].len())];
                    client
                        .execute(&upd, &[&name, &id])
                        .await
                        .context("UPDATE")?;
                    id
                };
                let done = Instant::now();
                out.push(OpRecord {
                    tenant: u32::try_from(t).unwrap_or(u32::MAX),
                    id,
                    insert,
                    commit_us: u64::try_from(done.duration_since(t0).as_micros())
                        .unwrap_or(u64::MAX),
                    round_trip_us: u32::try_from(done.duration_since(sent).as_micros())
                        .unwrap_or(u32::MAX),
                });
                seq += 1;
            }
            anyhow::Ok(out)
        });
        let _ = job.reply.send(res);
    }
}

/// Per client, per operation: when the client had that write or a later
/// write to the same row (µs since t0, +1; 0 = never). A later write to the
/// same row stands for an earlier one that a coalesced diff skipped.
pub fn effective_receipts(ops: &[OpRecord], recv: &[u32]) -> Vec<u32> {
    let mut next_on_row: HashMap<i64, usize> = HashMap::new();
    let mut succ = vec![usize::MAX; ops.len()];
    for (s, op) in ops.iter().enumerate().rev() {
        if let Some(&n) = next_on_row.get(&op.id) {
            succ[s] = n;
        }
        next_on_row.insert(op.id, s);
    }
    let mut eff = vec![0u32; ops.len()];
    for s in (0..ops.len()).rev() {
        let own = recv.get(s).copied().unwrap_or(0);
        eff[s] = if own != 0 {
            own
        } else if succ[s] != usize::MAX {
            eff[succ[s]]
        } else {
            0
        };
    }
    eff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: i64) -> OpRecord {
        OpRecord {
            tenant: 0,
            id,
            insert: false,
            commit_us: 0,
            round_trip_us: 0,
        }
    }

    #[test]
    fn superseded_writes_count_when_the_later_one_arrives() {
        let ops = vec![op(1), op(2), op(1), op(1)];
        // Op 0 was coalesced into op 2; op 3 never arrived.
        let eff = effective_receipts(&ops, &[0, 5, 9, 0]);
        assert_eq!(eff, vec![9, 5, 9, 0]);
    }

    #[test]
    fn subscribe_frames() {
        assert_eq!(
            subscribe_frame(None),
            r#"{"id":"a","query":{"table":"items"},"type":"subscribe"}"#
        );
        let s = subscribe_frame(Some(&("e1".into(), 7)));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(v["since"]["epoch"], "e1");
        assert_eq!(v["since"]["version"], 7);
    }

    #[test]
    fn frames_update_rows_and_catch_foreign_ones() {
        let shared = Arc::new(LiveShared::new("bm-x-".into(), 4));
        let mut st = State {
            shared: Arc::clone(&shared),
            tenant: Some("t1".into()),
            out: LiveOutcome {
                recv: vec![0; 4],
                ..LiveOutcome::default()
            },
            awaiting: false,
            authenticated: false,
        };
        let row = |id: u32, name: &str, tenant: &str| {
            format!(
                r#"{{"id":"{id}","name":"{name}","created_at":"2026-11-30T00:00:00Z","updated_at":"2026-11-30T00:00:00Z","tenant":"{tenant}"}}"#
            )
        };
        st.on_frame(
            format!(
                r#"{{"type":"snapshot","id":"a","epoch":"e","version":3,"table":"items","rows":[{},{}]}}"#,
                row(1, "seed-1", "t1"),
                row(2, "seed-2", "t1")
            )
            .as_bytes(),
        );
        assert!(st.out.ready);
        assert_eq!(st.out.rows.len(), 2);
        st.on_frame(
            format!(
                r#"{{"type":"diff","id":"a","from":3,"to":4,"table":"items","upserts":[{{"at":0,"row":{}}}],"deletes":["2"]}}"#,
                row(1, "bm-x-2", "t1")
            )
            .as_bytes(),
        );
        assert_eq!(st.out.version, 4);
        assert_eq!(st.out.rows.len(), 1);
        assert_ne!(st.out.recv[2], 0);
        assert_eq!(st.out.version_gaps, 0);
        assert_eq!(st.out.foreign_rows, 0);
        st.on_frame(
            format!(
                r#"{{"type":"diff","id":"a","from":5,"to":6,"table":"items","upserts":[{{"at":0,"row":{}}}],"deletes":[]}}"#,
                row(9, "x", "t2")
            )
            .as_bytes(),
        );
        assert_eq!(st.out.foreign_rows, 1);
        assert_eq!(st.out.version_gaps, 1);
    }
}

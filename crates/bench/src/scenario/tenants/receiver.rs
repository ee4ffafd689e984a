//! What an RLS or RECONNECT client makes of each frame it receives.
//!
//! Unlike the marker-scanning clients of S1–S6, these clients decode every
//! frame as JSON (rows as `items` rows, their text borrowed from the frame,
//! timestamps compared as the server wrote them), keep their
//! subscription's rows (key → hash of the row's content), check that every
//! row of every frame belongs to their tenant, and track the epoch and
//! version they could resume from. Their frame rates are low (RLS: a
//! tenant's writes only; RECONNECT: 20 diffs/s per client), so decoding
//! costs little next to the server. The connection is `session`'s.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use pglive_schema::Int8;
use pglive_schema::wire::Since;
use serde::{Deserialize, Serialize};

use super::row::{Row, row_sig};

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
    pub since_sent: Option<Since>,
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

/// One client's state across its connections; `session` drives it.
pub struct State {
    pub shared: Arc<LiveShared>,
    tenant: Option<String>,
    pub out: LiveOutcome,
    /// Waiting for the answer to the resubscribe.
    awaiting: bool,
    /// This connection's `auth` was answered.
    pub authenticated: bool,
}

fn us32(us: u64) -> u32 {
    u32::try_from(us.saturating_add(1)).unwrap_or(u32::MAX)
}

impl State {
    /// A client that must only ever see `tenant`'s rows (when it has one).
    pub fn new(shared: Arc<LiveShared>, tenant: Option<String>) -> State {
        let recv = vec![0; shared.n_ops];
        State {
            shared,
            tenant,
            out: LiveOutcome {
                recv,
                ..LiveOutcome::default()
            },
            awaiting: false,
            authenticated: false,
        }
    }

    /// The reconnected client sends its resubscribe now: the answer is
    /// awaited from here.
    pub fn resubscribing(&mut self) {
        self.awaiting = true;
        self.out.answer = Some(Answer {
            kind: AnswerKind::Snapshot,
            sent_us: self.shared.now_us(),
            answered_us: 0,
            caught_up_us: None,
            bytes: 0,
            frames: 0,
            target: u64::MAX,
        });
    }

    /// It has what it subscribed for: its first snapshot, or after a
    /// reconnect the answer to its resubscribe.
    pub fn answered(&self) -> bool {
        if self.out.reconnected {
            !self.awaiting
        } else {
            self.out.ready
        }
    }

    /// The resubscribe's answer arrived at `now`: a frame of `len` bytes,
    /// to be caught up with once the client has version `target`.
    fn answer(&mut self, kind: AnswerKind, now: u64, len: u64, target: u64) {
        self.awaiting = false;
        self.out.answer = Some(Answer {
            kind,
            sent_us: self.out.answer.as_ref().map_or(0, |a| a.sent_us),
            answered_us: now,
            caught_up_us: None,
            bytes: len,
            frames: 1,
            target,
        });
        self.shared.answered.fetch_add(1, Ordering::Release);
        self.caught_up(now);
    }

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

    pub fn on_frame(&mut self, frame: &[u8]) {
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
                    let target = self.out.version;
                    self.answer(AnswerKind::Snapshot, now, len, target);
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
                    let target = f.to.unwrap_or(from);
                    self.answer(AnswerKind::Resumed, now, len, target);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_update_rows_and_catch_foreign_ones() {
        let shared = Arc::new(LiveShared::new("bm-x-".into(), 4));
        let mut st = State::new(Arc::clone(&shared), Some("t1".into()));
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

//! What a REL client makes of each frame: it decodes every frame as JSON
//! (task keys, related entries with their count and comment keys, the
//! comments' keys borrowed from the frame), keeps its page's tasks and
//! each task's window and count as the wire says to (an entry replaces the
//! one of the same task), and logs every entry that arrives during the
//! writes with its time. The log is what deliveries are counted from: a
//! write has reached a client when the client's count of each affected
//! task it watches is the one that write left (see `checks`). The
//! connection is `connection::session`'s.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::connection::{self, ClientSpec, ConnOutcome, FrameSink};
use crate::scenario::Schedule;
use crate::server::ServerProc;

/// State shared by every client of one run.
pub struct RelShared {
    pub t0: Instant,
    /// Set just before the first write: bytes and entries count from here.
    pub measuring: AtomicBool,
    /// Frames received by all clients (quiet detection).
    pub frames: AtomicU64,
    pub ready: AtomicUsize,
    /// Clients that ended without their snapshot.
    pub finished: AtomicUsize,
    pub connected: AtomicUsize,
}

impl RelShared {
    pub fn new() -> RelShared {
        RelShared {
            t0: Instant::now(),
            measuring: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
        }
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Default for RelShared {
    fn default() -> Self {
        RelShared::new()
    }
}

/// A task's related comments as the client holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub count: u64,
    /// The comments' keys, in the server's order (newest first).
    pub comments: Vec<String>,
}

/// One related entry received during the writes.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub task: i64,
    pub count: u64,
    /// When it arrived (µs since t0).
    pub at_us: u64,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct RelOutcome {
    pub conn: ConnOutcome,
    pub ready: bool,
    /// The page's task keys, in order.
    pub tasks: Vec<i64>,
    /// Task key → its window; a task without an entry has none.
    pub windows: HashMap<i64, Window>,
    /// Entries received once the writes began, in arrival order.
    pub log: Vec<Entry>,
    pub version: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub frames_after: u64,
    pub error_frames: u64,
    pub decode_errors: u64,
    /// Diffs whose `from` was not the client's version.
    pub version_gaps: u64,
    /// Entries of another relation or without a count.
    pub malformed_entries: u64,
    pub example: Option<String>,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    rows: Option<Vec<TaskKey>>,
    #[serde(default)]
    upserts: Option<Vec<Placed>>,
    #[serde(default)]
    deletes: Option<Vec<i64>>,
    #[serde(default, borrow)]
    related: Option<Vec<Related<'a>>>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct TaskKey {
    id: i64,
}

#[derive(Deserialize)]
struct Placed {
    at: usize,
    row: TaskKey,
}

#[derive(Deserialize)]
struct Related<'a> {
    #[serde(borrow)]
    relation: Cow<'a, str>,
    of: Value,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default, borrow)]
    rows: Vec<CommentKey<'a>>,
}

#[derive(Deserialize)]
struct CommentKey<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// One client: its outcome, fed frame by frame.
pub struct RelState {
    shared: Arc<RelShared>,
    pub out: RelOutcome,
}

impl RelState {
    pub fn new(shared: Arc<RelShared>) -> RelState {
        RelState {
            shared,
            out: RelOutcome::default(),
        }
    }

    fn note(&mut self, what: String) {
        if self.out.example.is_none() {
            self.out.example = Some(what);
        }
    }

    fn entries(&mut self, related: Vec<Related<'_>>, now: u64, measuring: bool) {
        for r in related {
            let (Some(task), Some(count)) = (r.of.as_i64(), r.count) else {
                self.out.malformed_entries += 1;
                self.note(format!(
                    "related entry without a task key or count: of {}",
                    r.of
                ));
                continue;
            };
            if r.relation != "comments" {
                self.out.malformed_entries += 1;
                continue;
            }
            let comments = r.rows.iter().map(|c| c.id.to_string()).collect();
            self.out.windows.insert(task, Window { count, comments });
            if measuring {
                self.out.log.push(Entry {
                    task,
                    count,
                    at_us: now,
                });
            }
        }
    }
}

impl FrameSink for RelState {
    fn on_frame(&mut self, frame: &[u8]) {
        let now = self.shared.now_us();
        self.shared.frames.fetch_add(1, Ordering::Relaxed);
        let measuring = self.shared.measuring.load(Ordering::Acquire);
        if measuring {
            self.out.bytes_after += frame.len() as u64;
            self.out.frames_after += 1;
        } else {
            self.out.bytes_before += frame.len() as u64;
        }
        let f: Frame<'_> = match serde_json::from_slice(frame) {
            Ok(f) => f,
            Err(e) => {
                self.out.decode_errors += 1;
                self.note(format!(
                    "undecodable frame ({e}): {}",
                    String::from_utf8_lossy(&frame[..frame.len().min(200)])
                ));
                return;
            }
        };
        match f.kind.as_ref() {
            "snapshot" => {
                self.out.tasks = f.rows.unwrap_or_default().iter().map(|t| t.id).collect();
                self.out.windows.clear();
                self.out.version = f.version.unwrap_or(0);
                self.entries(f.related.unwrap_or_default(), now, measuring);
                if !self.out.ready {
                    self.out.ready = true;
                    self.shared.ready.fetch_add(1, Ordering::Release);
                }
            }
            "diff" => {
                if f.from.unwrap_or(0) != self.out.version {
                    self.out.version_gaps += 1;
                }
                self.out.version = f.to.unwrap_or(self.out.version);
                let deletes = f.deletes.unwrap_or_default();
                let mut upserts = f.upserts.unwrap_or_default();
                self.out
                    .tasks
                    .retain(|k| !deletes.contains(k) && !upserts.iter().any(|p| p.row.id == *k));
                upserts.sort_by_key(|p| p.at);
                for p in upserts {
                    let at = p.at.min(self.out.tasks.len());
                    self.out.tasks.insert(at, p.row.id);
                }
                self.entries(f.related.unwrap_or_default(), now, measuring);
            }
            "error" => {
                self.out.error_frames += 1;
                self.note(format!(
                    "error frame: {} {}",
                    f.code.unwrap_or_default(),
                    f.message.unwrap_or_default()
                ));
            }
            _ => {}
        }
    }

    fn is_ready(&self) -> bool {
        self.out.ready
    }
}

/// A run's clients, spawned together and stopped together.
pub struct Clients {
    shared: Arc<RelShared>,
    /// `true` stops every client; they also end when this is dropped.
    stop: watch::Sender<bool>,
    set: JoinSet<(usize, RelOutcome)>,
    n: usize,
}

impl Clients {
    /// Spawns one client per query; `concurrency` of them connect at once.
    pub fn spawn(
        shared: &Arc<RelShared>,
        url: &str,
        queries: Vec<Value>,
        concurrency: usize,
    ) -> Clients {
        let (stop, stop_rx) = watch::channel(false);
        // The connect slots (see `connection::session`); dropped with the
        // last client.
        let gate = Arc::new(Semaphore::new(concurrency));
        let mut set = JoinSet::new();
        let n = queries.len();
        for (i, q) in queries.into_iter().enumerate() {
            let spec = ClientSpec {
                url: url.to_string(),
                subscribe: Some(q),
                read_buffer: 8 << 10,
            };
            let shared = Arc::clone(shared);
            let gate = Arc::clone(&gate);
            let mut stop_rx = stop_rx.clone();
            set.spawn(async move {
                let mut st = RelState::new(Arc::clone(&shared));
                let mut conn = ConnOutcome::default();
                connection::session(
                    &mut st,
                    &mut conn,
                    &spec,
                    &gate,
                    &shared.connected,
                    &mut stop_rx,
                )
                .await;
                if !st.out.ready {
                    shared.finished.fetch_add(1, Ordering::Release);
                }
                st.out.conn = conn;
                (i, st.out)
            });
        }
        Clients {
            shared: Arc::clone(shared),
            stop,
            set,
            n,
        }
    }

    /// Waits until every client has its snapshot, or the connect timeout
    /// passed; the seconds it took and the clients ready.
    pub async fn wait_ready(
        &mut self,
        name: &str,
        schedule: &Schedule,
        server: &mut ServerProc,
        notes: &mut Vec<String>,
    ) -> Result<(f64, usize)> {
        let t = Instant::now();
        let deadline = t + Duration::from_secs_f64(schedule.connect_timeout_s);
        loop {
            let ready = self.shared.ready.load(Ordering::Acquire);
            // Clients that ended without a snapshot are not waited for.
            let ended = self.shared.finished.load(Ordering::Acquire);
            if ready + ended >= self.n {
                break;
            }
            if Instant::now() >= deadline {
                notes.push(format!(
                    "connect phase timed out after {:.0} s with {ready}/{} clients ready",
                    schedule.connect_timeout_s, self.n
                ));
                break;
            }
            if let Some(status) = server.exited() {
                anyhow::bail!("pglive exited during the connect phase ({status})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = t.elapsed().as_secs_f64();
        let ready = self.shared.ready.load(Ordering::Acquire);
        eprintln!(
            "pglive-bench: {name}: {ready}/{} clients ready in {seconds:.1} s",
            self.n
        );
        Ok((seconds, ready))
    }

    /// Until no client got a frame for the schedule's quiet time, or its
    /// tail timeout.
    pub async fn tail(&self, schedule: &Schedule, notes: &mut Vec<String>) {
        if !schedule.tail(&self.shared.frames).await {
            notes.push(format!(
                "still receiving {:.0} s after the last commit: tail cut off",
                schedule.tail_timeout_s
            ));
        }
    }

    pub async fn stop(mut self, notes: &mut Vec<String>) -> Vec<RelOutcome> {
        let _ = self.stop.send(true);
        let mut outcomes: Vec<Option<RelOutcome>> = (0..self.n).map(|_| None).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_replace_windows_and_are_logged_while_measuring() {
        let shared = Arc::new(RelShared::new());
        let mut st = RelState::new(Arc::clone(&shared));
        st.on_frame(
            br#"{"type":"snapshot","id":"a","epoch":"e","version":1,"related":[{"relation":"comments","of":1,"count":5,"table":"comments","rows":[{"id":"u1"},{"id":"u2"}]}],"table":"tasks","rows":[{"id":1},{"id":2}]}"#,
        );
        assert!(st.out.ready);
        assert_eq!(st.out.tasks, vec![1, 2]);
        assert_eq!(st.out.windows[&1].count, 5);
        assert!(st.out.log.is_empty());
        shared.measuring.store(true, Ordering::Release);
        st.on_frame(
            br#"{"type":"diff","id":"a","from":1,"to":2,"related":[{"relation":"comments","of":2,"count":1,"table":"comments","rows":[{"id":"u3"}]}],"table":"tasks","upserts":[],"deletes":[]}"#,
        );
        assert_eq!(st.out.windows[&2].comments, vec!["u3".to_string()]);
        assert_eq!(st.out.log.len(), 1);
        assert_eq!((st.out.log[0].task, st.out.log[0].count), (2, 1));
        assert_eq!(st.out.version_gaps, 0);
        assert_eq!(st.out.decode_errors, 0);
    }
}

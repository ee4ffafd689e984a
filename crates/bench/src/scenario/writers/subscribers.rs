//! Scenario W's subscribers: WebSocket clients on all of `items` that
//! record which of the current case's writes reached them, and the check
//! that each has the final value of every row the case wrote.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use memchr::memmem;
use pglive_schema::LiveQuery;
use pglive_schema::tables::ItemsQuery;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::config::Config;
use super::result::CaseResult;
use crate::connection::{self, ClientSpec, ConnOutcome, FrameSink};
use crate::db;
use crate::scan::{self, FrameKind};
use crate::server::ServerProc;

/// What the subscribers share with the coordinator.
pub struct SubShared {
    finder: memmem::Finder<'static>,
    /// The case being measured; markers of other cases are ignored.
    case: AtomicU32,
    pub ready: AtomicUsize,
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

/// A setup's subscribers (none when it has no server or no subscribers:
/// the cases still mark and count through the shared state).
pub struct Subscribers {
    /// The markers' prefix: a write's value is `<prefix><case>.<w>.<n>`.
    prefix: String,
    pub shared: Arc<SubShared>,
    /// What each subscriber has seen; locked by it per frame and by the
    /// coordinator once per case, when it checks them.
    seens: Vec<Arc<Mutex<Seen>>>,
    set: JoinSet<ConnOutcome>,
    /// Owned here; every subscriber holds a receiver and ends when
    /// [`Subscribers::stop`] sends `true` (or this is dropped).
    stop: watch::Sender<bool>,
}

impl Subscribers {
    pub fn new(prefix: &str) -> Subscribers {
        let shared = Arc::new(SubShared {
            finder: memmem::Finder::new(prefix.as_bytes()).into_owned(),
            case: AtomicU32::new(0),
            ready: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            fenced: AtomicUsize::new(0),
            fenced_last_us: AtomicU64::new(0),
            error_frames: AtomicU64::new(0),
            t0: Instant::now(),
        });
        let (stop, _) = watch::channel(false);
        Subscribers {
            prefix: prefix.to_owned(),
            shared,
            seens: Vec::new(),
            set: JoinSet::new(),
            stop,
        }
    }

    /// Connects `n` subscribers to `server` and waits until each has its
    /// snapshot or gave up (or the connect phase's time is up).
    pub async fn connect(&mut self, server: &mut ServerProc, n: usize, cfg: &Config) -> Result<()> {
        // The connect slots (see `connection::session`); dropped with the
        // last subscriber.
        let gate = Arc::new(Semaphore::new(cfg.connect_concurrency));
        let spec = ClientSpec {
            url: format!("ws://127.0.0.1:{}/ws", server.port),
            subscribe: Some(
                serde_json::to_value(LiveQuery::Items(ItemsQuery::default()))
                    .context("encoding the subscription's query")?,
            ),
            read_buffer: 8 << 10,
        };
        self.seens.reserve(n);
        for _ in 0..n {
            let seen = Arc::new(Mutex::new(Seen::default()));
            self.seens.push(Arc::clone(&seen));
            let mut sink = Subscriber {
                shared: Arc::clone(&self.shared),
                seen,
                ready: false,
            };
            let spec = spec.clone();
            let gate = Arc::clone(&gate);
            let mut stop = self.stop.subscribe();
            let shared = Arc::clone(&self.shared);
            self.set.spawn(async move {
                let mut conn = ConnOutcome::default();
                connection::session(
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
        let shared = &self.shared;
        let deadline = Instant::now() + Duration::from_secs_f64(30.0 + n as f64 / 100.0);
        loop {
            let ready = shared.ready.load(Ordering::Acquire);
            if ready + shared.finished.load(Ordering::Acquire) >= n || Instant::now() >= deadline {
                break;
            }
            if let Some(status) = server.exited() {
                anyhow::bail!("pglive exited during the connect phase ({status})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "pglive-bench: W: {}/{n} subscribers ready",
            shared.ready.load(Ordering::Acquire),
        );
        Ok(())
    }

    /// From now on, the subscribers record case `case_no`'s writes.
    pub fn start_case(&self, case_no: u32) {
        let shared = &self.shared;
        shared.case.store(case_no, Ordering::Release);
        shared.fenced.store(0, Ordering::Release);
        shared.fenced_last_us.store(0, Ordering::Release);
    }

    /// Fence, wait for every subscriber to have it, then compare each
    /// subscriber with the table's final values.
    pub async fn check(
        &self,
        url: &str,
        cfg: &Config,
        case_no: u32,
        case: &mut CaseResult,
    ) -> Result<()> {
        let shared = &self.shared;
        let seens = &self.seens;
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
        let deadline = Instant::now() + Duration::from_secs_f64(cfg.catch_up_timeout_s);
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
                cfg.catch_up_timeout_s
            ));
            // Let whatever is still in flight arrive before checking.
            tokio::time::sleep(Duration::from_secs_f64(cfg.quiet_s)).await;
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

    /// Stops the subscribers; notes on the last case those that ended
    /// early and the error frames.
    pub async fn stop(mut self, cases: &mut [CaseResult]) {
        let _ = self.stop.send(true);
        let set = &mut self.set;
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
            Err(_) => self.set.abort_all(),
        }
        let errors = self.shared.error_frames.load(Ordering::Relaxed);
        if errors > 0
            && let Some(last) = cases.last_mut()
        {
            last.notes.push(format!("{errors} error frames"));
        }
    }
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
}

//! A run's RLS or RECONNECT clients as one: spawned, waited for, told to
//! drop, reconnect and stop, and collected.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::receiver::{LiveOutcome, LiveShared, STAGE_RUN, STAGE_STOP};
use super::session::{self, LiveSpec};
use crate::server::ServerProc;

/// A run's clients, spawned together and stopped together.
pub struct Clients {
    shared: Arc<LiveShared>,
    /// The control stage (`STAGE_*`): owned here, a receiver in every
    /// client; the clients end at `STAGE_STOP` or when this is dropped.
    ctl: watch::Sender<u8>,
    set: JoinSet<(usize, LiveOutcome)>,
    n: usize,
}

impl Clients {
    /// Moves every client on to `stage` (`STAGE_DROP`, `STAGE_RECONNECT`).
    pub fn stage(&self, stage: u8) {
        let _ = self.ctl.send(stage);
    }

    /// Waits until every client has its first snapshot (or gave up).
    pub async fn wait_ready(
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
    pub async fn tail(&self, quiet_s: f64, timeout_s: f64, notes: &mut Vec<String>) {
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

    pub async fn stop(mut self, notes: &mut Vec<String>) -> Vec<LiveOutcome> {
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

/// Spawns one client per spec; `concurrency` of them connect at once.
pub fn spawn_clients(
    shared: &Arc<LiveShared>,
    specs: Vec<LiveSpec>,
    concurrency: usize,
) -> Clients {
    // The control stages: see `Clients::ctl`.
    let (ctl, ctl_rx) = watch::channel(STAGE_RUN);
    // The connect slots (see `session::run`); dropped with the last client.
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let n = specs.len();
    for (i, spec) in specs.into_iter().enumerate() {
        let fut = session::run(Arc::clone(shared), spec, Arc::clone(&gate), ctl_rx.clone());
        set.spawn(async move { (i, fut.await) });
    }
    Clients {
        shared: Arc::clone(shared),
        ctl,
        set,
        n,
    }
}

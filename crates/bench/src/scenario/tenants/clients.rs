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
use crate::scenario::Schedule;
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

    /// Waits until every client has its first snapshot (or gave up, or the
    /// connect timeout passed), and says so as run `name`; with the connect
    /// phase's seconds and the clients ready.
    pub async fn wait_ready(
        &self,
        name: &str,
        schedule: &Schedule,
        server: &mut ServerProc,
        notes: &mut Vec<String>,
    ) -> Result<(f64, usize)> {
        let timeout_s = schedule.connect_timeout_s;
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

//! A run's S1–S6 clients as a whole: the connect phase, the tail after the
//! last write, and what they saw once stopped.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::task::JoinSet;

use super::receiver::ClientOutcome;
use super::report::TargetReport;
use super::target::Target;
use crate::scenario::Params;
use crate::server::{self, ServerProc};
use crate::shared::Shared;

/// The connect phase: until every client has its initial state or gave up,
/// or the connect timeout.
pub async fn wait_ready(
    p: &Params,
    target: Target,
    shared: &Shared,
    server: &mut ServerProc,
    log: &std::path::Path,
    t_connect: Instant,
    rep: &mut TargetReport,
) -> Result<()> {
    let connect_deadline = t_connect + Duration::from_secs_f64(p.schedule.connect_timeout_s);
    loop {
        let ready = shared.ready.load(Ordering::Acquire);
        let gave_up = shared.finished.load(Ordering::Acquire);
        if ready + gave_up >= p.clients {
            return Ok(());
        }
        if Instant::now() >= connect_deadline {
            rep.notes.push(format!(
                "connect phase timed out after {:.0} s with {ready}/{} clients ready",
                p.schedule.connect_timeout_s, p.clients
            ));
            return Ok(());
        }
        if let Some(status) = server.exited() {
            anyhow::bail!(
                "{} exited during the connect phase ({status}); log {}:\n{}",
                target.name(),
                log.display(),
                server::tail_of(log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The tail: until no client got a frame for `quiet`, or the tail timeout.
pub async fn tail(p: &Params, shared: &Shared, rep: &mut TargetReport) {
    if !p.schedule.tail(&shared.frames).await {
        rep.notes.push(format!(
            "still sending {:.0} s after the last commit: tail cut off",
            p.schedule.tail_timeout_s
        ));
    }
}

/// What every client saw, in client order (a default outcome for a client
/// that did not stop within 60 s).
pub async fn collect(
    mut set: JoinSet<(usize, ClientOutcome)>,
    n: usize,
    rep: &mut TargetReport,
) -> Vec<ClientOutcome> {
    let mut outcomes: Vec<Option<ClientOutcome>> = (0..n).map(|_| None).collect();
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
    outcomes
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

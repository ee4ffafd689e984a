//! Whether changes reach clients right now, as the server tells them: live,
//! or delayed with a reason (capture down, database unreachable). Every
//! connection gets the status when it opens and whenever it changes, so a
//! view never claims to be live while changes cannot reach it.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use pglive_schema::wire::{DelayReason, LiveState, Status};
use tokio::sync::watch;

use crate::capture::CaptureStatus;

/// How often the database's reachability is checked.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The status clients see. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    /// Written only by [`run`]; sessions hold receivers.
    status: Arc<watch::Sender<Status>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            status: Arc::new(watch::Sender::new(Status {
                id: None,
                state: LiveState::Delayed,
                reason: Some(DelayReason::CaptureDown),
            })),
        }
    }
}

impl Health {
    /// Follows the status.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }
}

fn status(capture_up: bool, database_up: bool) -> Status {
    let reason = match (database_up, capture_up) {
        (false, _) => Some(DelayReason::DatabaseUnreachable),
        (true, false) => Some(DelayReason::CaptureDown),
        (true, true) => None,
    };
    Status {
        id: None,
        state: if reason.is_some() {
            LiveState::Delayed
        } else {
            LiveState::Live
        },
        reason,
    }
}

/// Keeps the status current until `shutdown` flips: follows capture, and
/// probes the database (at `database_url`) every two seconds.
pub async fn run(
    health: Health,
    capture: Arc<CaptureStatus>,
    pool: Pool<AsyncPgConnection>,
    database_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut capture_up = capture.watch();
    let mut database_up = true;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = probe.tick() => {
                let was_up = database_up;
                database_up = reachable(&pool).await;
                if was_up && !database_up {
                    let cause = unreachable_because(&database_url).await;
                    tracing::warn!(%cause, "the database does not answer");
                }
            }
            changed = capture_up.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => break,
        }
        let now = status(*capture_up.borrow(), database_up);
        health.status.send_if_modified(|current| {
            let changed = *current != now;
            if changed {
                tracing::info!(status = ?now, "live status changed");
                *current = now.clone();
            }
            changed
        });
    }
}

/// Why the database cannot be reached, found by connecting once: the pool
/// reports only that no connection came in time, not why.
async fn unreachable_because(database_url: &str) -> String {
    match tokio::time::timeout(PROBE_TIMEOUT, crate::db::connect(database_url)).await {
        Ok(Err(err)) => crate::db::Causes(&err).to_string(),
        Ok(Ok(_)) => "the pool's connections fail, although a new connection works".to_owned(),
        Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
    }
}

async fn reachable(pool: &Pool<AsyncPgConnection>) -> bool {
    let probe = async {
        let mut conn = pool.get().await.ok()?;
        conn.batch_execute("SELECT 1").await.ok()
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_what_is_most_broken() {
        assert_eq!(status(true, true).state, LiveState::Live);
        assert_eq!(status(false, true).reason, Some(DelayReason::CaptureDown));
        assert_eq!(
            status(false, false).reason,
            Some(DelayReason::DatabaseUnreachable)
        );
        assert_eq!(
            status(true, false).reason,
            Some(DelayReason::DatabaseUnreachable)
        );
    }
}

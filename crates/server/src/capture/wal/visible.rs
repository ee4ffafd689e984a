//! Commits between the replication stream and the hub: a commit reaches
//! the stream a moment before it is visible to new snapshots, so its changes
//! wait here ([`Unseen`]) until a check on the control connection finds it
//! ended ([`wait`]), and the changes of commits published together are
//! merged per table ([`Merged`]).

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use pgwire_replication::Lsn;
use tokio::sync::watch;

use super::settings::QUERY_TIMEOUT;
use crate::capture::error::CaptureError;
use crate::engine::Change;
use crate::metrics::Metrics;

/// Unseen commits are checked and published when the stream pauses and the
/// oldest has waited `UNSEEN_WAIT` (so that one check covers the commits of
/// a couple of milliseconds: under steady writes a check per commit cost
/// both pglive and PostgreSQL a tenth of a core), and at once when
/// `UNSEEN_MAX` wait or the oldest has waited `UNSEEN_AGE`.
const UNSEEN_WAIT: Duration = Duration::from_millis(2);
const UNSEEN_MAX: usize = 256;
const UNSEEN_AGE: Duration = Duration::from_millis(5);

/// A commit received but not yet handed to the hub.
struct Commit {
    /// Its top-level xid; `None` when it changed no live table (or is a
    /// keepalive position), so there is nothing to wait for.
    xid: Option<u32>,
    changes: Vec<Change>,
    end: Lsn,
}

/// Commits waiting to be visible (bounded by `UNSEEN_MAX`).
#[derive(Default)]
pub(super) struct Unseen {
    commits: Vec<Commit>,
    since: Option<tokio::time::Instant>,
}

impl Unseen {
    pub(super) fn push(&mut self, xid: Option<u32>, changes: Vec<Change>, end: Lsn) {
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.commits.push(Commit { xid, changes, end });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// When the pause-time check is due (far in the future when empty).
    pub(super) fn check_at(&self) -> tokio::time::Instant {
        match self.since {
            Some(since) if !self.commits.is_empty() => since + UNSEEN_WAIT,
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        }
    }

    pub(super) fn due(&self) -> bool {
        self.commits.len() >= UNSEEN_MAX || self.since.is_some_and(|t| t.elapsed() >= UNSEEN_AGE)
    }

    /// The xids to wait for before the commits may be published.
    pub(super) fn xids(&self) -> Vec<i64> {
        self.commits
            .iter()
            .filter_map(|c| c.xid)
            .map(i64::from)
            .collect()
    }

    /// Empties the waiting commits: their changes merged per table (each
    /// counted in `notifications`), and the end of the last of them (`Lsn(0)`
    /// when none waited).
    pub(super) fn take(&mut self, metrics: &Metrics) -> (Vec<Change>, Lsn) {
        let mut changes = Merged::default();
        let mut end = Lsn(0);
        for commit in self.commits.drain(..) {
            for change in commit.changes {
                metrics.notifications.inc();
                changes.add(change);
            }
            end = end.max(commit.end);
        }
        self.since = None;
        (changes.into_changes(), end)
    }
}

/// The changes of the commits published together, one per table (the
/// reader would merge them anyway; merged, they wake it once).
#[derive(Default)]
struct Merged {
    everything: bool,
    /// `None`: the whole table.
    tables: Vec<(&'static str, Option<Vec<serde_json::Value>>)>,
}

impl Merged {
    fn add(&mut self, change: Change) {
        let (table, keys) = match change {
            Change::Everything => {
                self.everything = true;
                return;
            }
            Change::Table { table } => (table, None),
            // WAL capture knows no partitions: every context reads.
            Change::Rows { table, keys, .. } => (table, Some(keys)),
        };
        match self.tables.iter_mut().find(|(t, _)| *t == table) {
            None => self.tables.push((table, keys)),
            Some((_, held)) => match (held.as_mut(), keys) {
                (Some(held), Some(keys)) => held.extend(keys),
                _ => *held = None,
            },
        }
    }

    fn into_changes(self) -> Vec<Change> {
        if self.everything {
            return vec![Change::Everything];
        }
        self.tables
            .into_iter()
            .map(|(table, keys)| match keys {
                Some(keys) => Change::Rows {
                    table,
                    keys,
                    parts: None,
                },
                None => Change::Table { table },
            })
            .collect()
    }
}

#[derive(diesel::QueryableByName)]
struct Running {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    running: bool,
}

/// Whether any of `xids` (top-level, 32-bit) is still in progress for a new
/// snapshot: at or past its `xmax` (not completed yet: a transaction that
/// committed in WAL but has not ended is there, not in `xip`), or in its
/// `xip`. The 32-bit comparison with `xmax` is modular, as PostgreSQL's own.
async fn still_running(conn: &mut AsyncPgConnection, xids: &[i64]) -> Result<bool, CaptureError> {
    use diesel_async::RunQueryDsl;
    let found: Running = diesel::sql_query(
        "WITH s AS (SELECT pg_current_snapshot() AS snap), \
              m AS (SELECT pg_snapshot_xmax(snap)::text::bigint & 4294967295 AS xmax FROM s) \
         SELECT EXISTS ( \
             SELECT 1 FROM unnest($1::bigint[]) AS x, m \
              WHERE (x - m.xmax + 4294967296) % 4294967296 < 2147483648 \
                 OR x IN (SELECT xip::text::bigint & 4294967295 FROM s, pg_snapshot_xip(s.snap) AS xip) \
         ) AS running",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(xids)
    .get_result(conn)
    .await?;
    Ok(found.running)
}

/// How [`wait`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waited {
    /// None of the transactions is running any more.
    Visible,
    /// `shutdown` flipped first.
    Shutdown,
}

/// Waits until none of `xids` is still running for new snapshots (see
/// [`still_running`]), asking again after a pause that doubles from 1 ms up
/// to 50 ms, and warning while the wait lasts past 10 s.
pub(super) async fn wait(
    conn: &mut AsyncPgConnection,
    xids: &[i64],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Waited, CaptureError> {
    let mut pause = Duration::from_millis(1);
    let started = tokio::time::Instant::now();
    while !xids.is_empty() {
        let running = tokio::time::timeout(QUERY_TIMEOUT, still_running(conn, xids))
            .await
            .map_err(|_| CaptureError::Unanswered)??;
        if !running {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            tracing::warn!(xids = ?xids, "committed transactions are still not visible after 10 s (waiting for synchronous replication?)");
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return Ok(Waited::Shutdown),
        }
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    Ok(Waited::Visible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_published_together_merge_per_table() {
        use serde_json::json;
        let mut m = Merged::default();
        m.add(Change::Rows {
            table: "items",
            keys: vec![json!(1)],
            parts: None,
        });
        m.add(Change::Rows {
            table: "tasks",
            keys: vec![json!(2)],
            parts: None,
        });
        m.add(Change::Rows {
            table: "items",
            keys: vec![json!(3)],
            parts: None,
        });
        m.add(Change::Table { table: "tasks" });
        m.add(Change::Rows {
            table: "tasks",
            keys: vec![json!(4)],
            parts: None,
        });
        assert_eq!(
            m.into_changes(),
            vec![
                Change::Rows {
                    table: "items",
                    keys: vec![json!(1), json!(3)],
                    parts: None,
                },
                Change::Table { table: "tasks" },
            ]
        );
        let mut m = Merged::default();
        m.add(Change::Table { table: "items" });
        m.add(Change::Everything);
        assert_eq!(m.into_changes(), vec![Change::Everything]);
    }
}

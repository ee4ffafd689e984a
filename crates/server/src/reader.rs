//! The change reader: one task per live table that reads the rows a notice
//! names once, and hands them to every group of the table.
//!
//! Without it, each group would re-read the changed keys itself: with 2,000
//! filtered subscriptions on one table, one write would cost 2,000 queries.
//! With it, a write costs one keyed read per table; each group then decides in
//! memory, with [`LiveTable::matches`], whether the rows enter, change or
//! leave its result, and only limited queries that are actually affected
//! re-run.
//!
//! The reader is also the table's point of order: whole-table changes
//! (TRUNCATE, keyless notices, a listener resync) pass through it as well, so
//! every group sees keyed batches and "refresh all" in the order the reader
//! read them. A batch that was read before some commit is always followed by
//! the batch or refresh that the commit's own notice causes.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::hub::{Hub, HubInner, ReadError};
use crate::metrics::Metrics;
use crate::table::{Key, LiveTable};

/// Rows read for a set of changed keys. Keys without a row were deleted (or
/// moved away by a primary-key update).
#[derive(Debug)]
pub struct Fetched<R> {
    pub keys: HashSet<Key>,
    pub rows: Vec<Arc<R>>,
}

/// A batch as groups receive it; each group's task downcasts it to its
/// table's `Fetched<Row>`.
pub type Batch = Arc<dyn Any + Send + Sync>;

#[derive(Debug, Default)]
struct Pending {
    all: bool,
    keys: HashSet<Key>,
}

/// The part of a reader shared with the hub.
#[derive(Debug, Default)]
pub struct ReaderShared {
    /// Written by the listener (through the hub), taken by the reader task.
    /// Never held across an `.await`.
    pending: Mutex<Pending>,
    /// Wakes the reader; one stored permit coalesces any number of notices
    /// that arrive during a read into one follow-up read.
    wake: Notify,
}

fn lock(m: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    // Each critical section is one merge or take; a panic cannot leave it
    // half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReaderShared {
    /// Records changed keys (`None`: the whole table) and wakes the reader.
    pub fn mark(&self, keys: Option<&[Key]>, max_keys: usize) {
        {
            let mut pending = lock(&self.pending);
            match keys {
                Some(keys) if !pending.all => {
                    pending.keys.extend(keys.iter().copied());
                    if pending.keys.len() > max_keys {
                        pending.all = true;
                        pending.keys = HashSet::new();
                    }
                }
                Some(_) => {}
                None => {
                    pending.all = true;
                    pending.keys = HashSet::new();
                }
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// Reads changed rows of table `T` until the hub is gone.
pub async fn run<T: LiveTable>(hub: Weak<HubInner>, shared: Arc<ReaderShared>) {
    let mut failures: u32 = 0;
    loop {
        shared.wake.notified().await;
        let Some(inner) = hub.upgrade() else { break };
        let hub = Hub::from_inner(inner);
        let pending = shared.take();
        if pending.all {
            hub.deliver_all(T::NAME);
            continue;
        }
        if pending.keys.is_empty() {
            continue;
        }
        match read::<T>(&hub, &pending.keys).await {
            Ok(rows) => {
                failures = 0;
                let batch: Batch = Arc::new(Fetched {
                    keys: pending.keys,
                    rows,
                });
                hub.deliver_batch(T::NAME, &batch);
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                Metrics::inc(&hub.metrics().refresh_errors_total);
                tracing::warn!(table = T::NAME, error = %err, failures, "reading changed rows failed; will retry");
                // Nothing is lost: the keys go back and the read is retried
                // after a capped backoff.
                let keys: Vec<Key> = pending.keys.into_iter().collect();
                shared.mark(Some(&keys), usize::MAX);
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)))
                    .min(Duration::from_secs(5));
                drop(hub);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

async fn read<T: LiveTable>(hub: &Hub, keys: &HashSet<Key>) -> Result<Vec<Arc<T::Row>>, ReadError> {
    let keys: Vec<Key> = keys.iter().copied().collect();
    let (_permit, mut conn) = hub.checkout().await?;
    let started = Instant::now();
    let rows = T::fetch(&mut conn, &keys).await;
    let rows = hub.record_read(started, rows);
    if rows.is_ok() {
        Metrics::inc(&hub.metrics().refreshes_keyed_total);
    }
    rows
}

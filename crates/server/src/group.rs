//! A subscription group: one distinct query, its members, its last result
//! and its version, kept current by one task.
//!
//! Invariants:
//! - At most one refresh per group is in flight: the group's task runs them
//!   one after another. Changes that arrive meanwhile accumulate in `pending`
//!   (keys merged, or escalated to "all") and wake the task exactly once more,
//!   so database work per group is bounded by query time, not write rate.
//! - A member joins before the group's next query, and a joiner is served the
//!   group's current result as its snapshot; every later change reaches it as
//!   a diff from that version. No change can fall in between.
//! - Each body is encoded once and shared; a member whose outbox is full
//!   misses diffs (it is marked stale) and gets a fresh snapshot once its
//!   connection has drained, never blocking the group or other members.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pglive_schema::ErrorCode;
use tokio::sync::{Notify, mpsc};

use crate::diff::{self, Changes};
use crate::frame::{self, Frame, Kind};
use crate::hub::{Hub, ReadError};
use crate::metrics::Metrics;
use crate::reader::{Batch, Fetched};
use crate::table::{Key, LiveTable};

/// Identifies a member within its group.
pub type MemberId = u64;

/// State shared by a connection's session, writer and the groups it is in.
#[derive(Debug, Default)]
pub struct ConnShared {
    /// Set by a group that dropped a frame for this connection; cleared by the
    /// writer once the outbox has drained, which then asks for a resync.
    pub lagged: AtomicBool,
    /// Woken by the writer when a lagging connection has drained.
    pub resync: Notify,
}

/// A subscription as its group sees it.
#[derive(Debug)]
pub struct Member {
    /// The subscription id, JSON-encoded once.
    pub id_json: Arc<str>,
    /// The connection's bounded outbox. The group only ever `try_send`s.
    pub outbox: mpsc::Sender<Frame>,
    pub conn: Arc<ConnShared>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// Joined; waiting for its first snapshot.
    NeedsSnapshot,
    /// Has the group's current version.
    Live,
    /// Missed a message; gets a snapshot when its connection asks.
    Stale,
}

#[derive(Debug)]
struct Slot {
    member: Member,
    state: MemberState,
}

/// Batches a group holds before it re-runs its query instead.
const MAX_PENDING_BATCHES: usize = 64;

/// Changes not yet reflected in the group's result, in the order its table's
/// reader delivered them.
#[derive(Debug, Default)]
struct Pending {
    /// Re-run the whole query (it reads after every batch below was read).
    all: bool,
    /// Changed rows to apply in memory.
    batches: Vec<Batch>,
    /// Some stale member's connection has drained and wants a snapshot.
    resync: bool,
}

/// The part of a group shared with the hub and with sessions.
#[derive(Debug)]
pub struct GroupShared {
    pub key: String,
    pub table: &'static str,
    /// Written by the listener (through the hub) and by sessions; taken by the
    /// group task at the start of each round. Never held across an `.await`.
    pending: Mutex<Pending>,
    /// Wakes the group task. `Notify` keeps one permit while the task is busy,
    /// which is what turns any number of changes during a refresh into exactly
    /// one follow-up round.
    wake: Notify,
    /// Members by id. Written by sessions (join, leave) and by the group task
    /// (state changes, removal of closed outboxes); never held across an
    /// `.await`. Taken after the hub's lock when both are needed.
    members: Mutex<Members>,
    /// Set once the group has been removed from the hub; it takes no members.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Members {
    next: MemberId,
    slots: HashMap<MemberId, Slot>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a short update that cannot be left half
    // done by a panic, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupShared {
    pub fn new(key: String, table: &'static str) -> GroupShared {
        GroupShared {
            key,
            table,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            members: Mutex::new(Members::default()),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn add(&self, member: Member) -> MemberId {
        let mut members = lock(&self.members);
        members.next += 1;
        let id = members.next;
        members.slots.insert(
            id,
            Slot {
                member,
                state: MemberState::NeedsSnapshot,
            },
        );
        id
    }

    /// Removes a member; returns whether it was present.
    pub(crate) fn remove(&self, id: MemberId) -> bool {
        lock(&self.members).slots.remove(&id).is_some()
    }

    pub(crate) fn close_if_empty(&self) -> bool {
        let members = lock(&self.members);
        if members.slots.is_empty() {
            self.closed.store(true, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The whole query must re-run.
    pub(crate) fn mark_all(&self) {
        {
            let mut pending = lock(&self.pending);
            pending.all = true;
            pending.batches = Vec::new();
        }
        self.wake();
    }

    /// Changed rows from the table's reader.
    pub(crate) fn offer(&self, batch: &Batch) {
        {
            let mut pending = lock(&self.pending);
            if !pending.all {
                pending.batches.push(Arc::clone(batch));
                if pending.batches.len() > MAX_PENDING_BATCHES {
                    pending.all = true;
                    pending.batches = Vec::new();
                }
            }
        }
        self.wake();
    }

    /// A stale member's connection has drained: send it a fresh snapshot.
    pub fn request_resync(&self) {
        lock(&self.pending).resync = true;
        self.wake();
    }

    fn take_pending(&self) -> Pending {
        std::mem::take(&mut *lock(&self.pending))
    }

    fn member_count(&self) -> usize {
        lock(&self.members).slots.len()
    }
}

/// What a group task needs from the rest of the server.
#[derive(Debug)]
pub struct GroupContext {
    pub hub: Hub,
    pub shared: Arc<GroupShared>,
}

/// The group's result at `version`, and its snapshot body once encoded.
struct Current<R> {
    version: u64,
    rows: Vec<Arc<R>>,
    snapshot: Option<Bytes>,
}

/// Keeps one group's result current until its last member leaves.
pub async fn run<T: LiveTable>(ctx: GroupContext, query: T::Query) {
    let shared = Arc::clone(&ctx.shared);
    let metrics = Arc::clone(ctx.hub.metrics());
    let mut current: Option<Current<T::Row>> = None;
    let mut failures: u32 = 0;
    tracing::debug!(group = %shared.key, "group started");
    loop {
        shared.wake.notified().await;
        if shared.member_count() == 0 && ctx.hub.remove_if_empty(&shared) {
            break;
        }
        let pending = shared.take_pending();
        let mut full = current.is_none() || pending.all;
        let mut next: Option<Vec<Arc<T::Row>>> = None;
        if let (false, Some(now)) = (full, current.as_ref()) {
            match apply_batches::<T>(&query, &now.rows, &pending.batches) {
                Applied::Unchanged => {}
                Applied::Rows(rows) => next = Some(rows),
                Applied::NeedsQuery => full = true,
            }
        }
        if full {
            match refresh::<T>(&ctx, &query).await {
                Ok(rows) => {
                    failures = 0;
                    next = Some(rows);
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    Metrics::inc(&metrics.refresh_errors_total);
                    tracing::warn!(group = %shared.key, error = %err, failures, "refresh failed; will retry");
                    // Nothing is lost: the whole query runs again after a
                    // capped backoff. Members keep their last state meanwhile.
                    shared.mark_all();
                    let backoff =
                        Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)))
                            .min(Duration::from_secs(5));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        if let Some(rows) = next {
            if rows.len() > ctx.hub.limits().max_rows as usize {
                refuse_all(
                    &ctx,
                    ErrorCode::ResultTooLarge,
                    "the query's result has more rows than the server serves live; add a filter or a limit",
                );
                break;
            }
            current = Some(publish::<T>(&shared, &metrics, current.take(), rows));
        }
        if let Some(current) = current.as_mut() {
            serve_snapshots::<T>(&shared, &metrics, current, pending.resync);
        }
    }
    tracing::debug!(group = %shared.key, "group dropped");
}

/// What applying changed rows did to a group's result.
enum Applied<R> {
    Unchanged,
    Rows(Vec<Arc<R>>),
    /// A limited query is affected: only re-running it gives the new window.
    NeedsQuery,
}

/// Applies the reader's batches, in order, to `old`. A batch affects the
/// group when one of its keys is in the result (the row changed or left) or
/// one of its rows passes the filter (the row entered or changed).
fn apply_batches<T: LiveTable>(
    query: &T::Query,
    old: &[Arc<T::Row>],
    batches: &[Batch],
) -> Applied<T::Row> {
    let mut rows: Option<Vec<Arc<T::Row>>> = None;
    for batch in batches {
        let Some(batch) = batch.downcast_ref::<Fetched<T::Row>>() else {
            return Applied::NeedsQuery;
        };
        let base = rows.as_deref().unwrap_or(old);
        let entering: Vec<&Arc<T::Row>> =
            batch.rows.iter().filter(|r| T::matches(query, r)).collect();
        let present = base.iter().any(|r| batch.keys.contains(&T::key(r)));
        if entering.is_empty() && !present {
            continue;
        }
        if T::limit(query).is_some() {
            return Applied::NeedsQuery;
        }
        rows = Some(merge::<T>(query, base, &batch.keys, entering));
    }
    rows.map_or(Applied::Unchanged, Applied::Rows)
}

/// Runs the group's whole query. Returns the complete result, in order.
async fn refresh<T: LiveTable>(
    ctx: &GroupContext,
    query: &T::Query,
) -> Result<Vec<Arc<T::Row>>, ReadError> {
    let max_rows = i64::from(ctx.hub.limits().max_rows) + 1;
    let (_permit, mut conn) = ctx.hub.checkout().await?;
    let started = Instant::now();
    let rows = T::load(&mut conn, query, max_rows).await;
    ctx.hub.record_read(started, rows)
}

/// The result after changed rows were read: rows with `touched` keys are
/// replaced by the `entering` ones (touched rows that no longer pass the
/// filter, or no longer exist, leave), placed by the query's order.
fn merge<T: LiveTable>(
    query: &T::Query,
    old: &[Arc<T::Row>],
    touched: &HashSet<Key>,
    entering: Vec<&Arc<T::Row>>,
) -> Vec<Arc<T::Row>> {
    let mut rows: Vec<Arc<T::Row>> = old
        .iter()
        .filter(|r| !touched.contains(&T::key(r)))
        .cloned()
        .collect();
    for row in entering {
        let at = rows.partition_point(|r| T::compare(query, r, row).is_lt());
        rows.insert(at, Arc::clone(row));
    }
    rows
}

/// Makes `rows` the group's result: sends the diff to live members, or, when
/// the diff would be larger than the result, a snapshot to everyone.
fn publish<T: LiveTable>(
    shared: &GroupShared,
    metrics: &Metrics,
    previous: Option<Current<T::Row>>,
    rows: Vec<Arc<T::Row>>,
) -> Current<T::Row> {
    let Some(previous) = previous else {
        return Current {
            version: 1,
            rows,
            snapshot: None,
        };
    };
    let changes: Changes<T::Row> = diff::diff(&previous.rows, &rows, |r| T::key(r));
    if changes.is_empty() {
        return previous;
    }
    let version = previous.version + 1;
    let as_snapshot = changes.len() >= rows.len().max(1);
    let body = if as_snapshot {
        None
    } else {
        match frame::diff_body(T::NAME, previous.version, version, &changes) {
            Ok(body) => Some(body),
            Err(err) => {
                tracing::error!(group = %shared.key, error = %err, "could not encode diff; sending snapshots");
                None
            }
        }
    };
    let mut members = lock(&shared.members);
    match body {
        Some(body) => {
            Metrics::inc(&metrics.diffs_total);
            members.slots.retain(|_, slot| {
                if slot.state != MemberState::Live {
                    return true;
                }
                let frame = Frame::Shared {
                    kind: Kind::Diff,
                    id_json: Arc::clone(&slot.member.id_json),
                    body: body.clone(),
                };
                offer(slot, frame, metrics)
            });
        }
        None => {
            for slot in members.slots.values_mut() {
                if slot.state == MemberState::Live {
                    slot.state = MemberState::NeedsSnapshot;
                }
            }
        }
    }
    Current {
        version,
        rows,
        snapshot: None,
    }
}

/// Tries to queue `frame` for a member. Returns false when the member's
/// connection is gone (drop the member); a full outbox marks it stale.
fn offer(slot: &mut Slot, frame: Frame, metrics: &Metrics) -> bool {
    match slot.member.outbox.try_send(frame) {
        Ok(()) => {
            slot.state = MemberState::Live;
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            Metrics::inc(&metrics.frames_dropped_total);
            slot.state = MemberState::Stale;
            slot.member.conn.lagged.store(true, Ordering::SeqCst);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Sends the current result to members that need it: new joiners, members
/// switched to a snapshot by a large change, and (on request) stale members.
fn serve_snapshots<T: LiveTable>(
    shared: &GroupShared,
    metrics: &Metrics,
    current: &mut Current<T::Row>,
    resync: bool,
) {
    let mut members = lock(&shared.members);
    let wanted = |state: MemberState| {
        state == MemberState::NeedsSnapshot || (resync && state == MemberState::Stale)
    };
    if !members.slots.values().any(|s| wanted(s.state)) {
        return;
    }
    let body = match &current.snapshot {
        Some(body) => body.clone(),
        None => match frame::snapshot_body(T::NAME, current.version, &current.rows) {
            Ok(body) => {
                Metrics::inc(&metrics.snapshots_total);
                current.snapshot = Some(body.clone());
                body
            }
            Err(err) => {
                tracing::error!(group = %shared.key, error = %err, "could not encode snapshot");
                return;
            }
        },
    };
    members.slots.retain(|_, slot| {
        if !wanted(slot.state) {
            return true;
        }
        if slot.state == MemberState::Stale {
            Metrics::inc(&metrics.lagging_resyncs_total);
        }
        let frame = Frame::Shared {
            kind: Kind::Snapshot,
            id_json: Arc::clone(&slot.member.id_json),
            body: body.clone(),
        };
        offer(slot, frame, metrics)
    });
}

/// Empties and drops the group, then tells every member its subscription
/// ended with `code`. The group is gone before the error is sent, so a client
/// may reuse the subscription id as soon as it reads the error.
fn refuse_all(ctx: &GroupContext, code: ErrorCode, message: &str) {
    let slots: Vec<Slot> = {
        let mut members = lock(&ctx.shared.members);
        members.slots.drain().map(|(_, s)| s).collect()
    };
    ctx.hub.remove_if_empty(&ctx.shared);
    for slot in slots {
        let id: String = serde_json::from_str(&slot.member.id_json).unwrap_or_default();
        let id = pglive_schema::SubscriptionId(id);
        let _ = slot
            .member
            .outbox
            .try_send(Frame::error(Some(&id), code, message));
        Metrics::dec(&ctx.hub.metrics().subscriptions);
    }
}

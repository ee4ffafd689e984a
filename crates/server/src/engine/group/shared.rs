//! The part of a group that others reach: the [`Batch`]es its table's
//! reader offers, the changes it has not applied yet, its members, and the
//! flag that ends it. The group's task, its table's `Groups` and its
//! members' sessions all hold the same [`GroupShared`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use pglive_schema::wire::{DelayReason, LiveState, Status};
use pglive_schema::{ErrorCode, ServerMessage};
use tokio::sync::Notify;

use crate::engine::budget::Account;
use crate::engine::frame::Frame;
use crate::engine::outbox::{Member, MemberId, Slot};
use crate::engine::reads::Reads;
use crate::engine::table::{Context, Key, LiveTable, Noticed};

/// Changed rows of one table, read once for one context: every key the
/// notices named, and the rows that now have them (a key without a row was
/// deleted, or moved away by a key update).
#[derive(Debug)]
pub struct Batch<T: LiveTable> {
    /// Shared by the batches of every context read for the same changes.
    pub keys: Arc<HashSet<Key<T>>>,
    pub rows: Vec<Arc<T>>,
    /// When the earliest of the changes was noticed.
    pub noticed: Option<Noticed>,
}

/// Batches a group holds before it re-runs its query instead.
const MAX_PENDING_BATCHES: usize = 64;

/// A [`Batch`] of a table the group's query includes, type-erased: the
/// include of that table's row type downcasts it (see `related`).
pub type RelatedBatch = Arc<dyn std::any::Any + Send + Sync>;

/// Batches of one table the group's query includes, read in the group's
/// context by that table's reader, in order; or `None`: any row of it may
/// have changed.
pub(super) type RelatedBatches = Option<Vec<RelatedBatch>>;

/// Changes not yet in the group's result, in the order its reader delivered them.
pub(super) struct Pending<T: LiveTable> {
    /// Changes to included tables, by table.
    pub(super) related: HashMap<&'static str, RelatedBatches>,
    /// Re-run the whole query (it reads after every batch below was read).
    pub(super) all: bool,
    pub(super) batches: Vec<Arc<Batch<T>>>,
    /// Some stale member's connection has drained and wants a snapshot.
    pub(super) resync: bool,
    /// When the earliest change not yet in the result was noticed.
    pub(super) noticed: Option<Noticed>,
}

impl<T: LiveTable> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            related: HashMap::new(),
            all: false,
            batches: Vec::new(),
            resync: false,
            noticed: None,
        }
    }
}

/// Locks one of a group's mutexes (or its table's map).
pub(super) fn lock<M>(m: &Mutex<M>) -> MutexGuard<'_, M> {
    // Every critical section in the group's modules is a short update that
    // a panic cannot leave half done, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The part of a group shared by its task, its table's `Groups`, its
/// table's reader and its members' sessions.
pub struct GroupShared<T: LiveTable> {
    /// The normalized query as canonical JSON.
    pub key: String,
    pub ctx: Arc<Context>,
    /// The tables the query includes (its relations' targets).
    pub(super) targets: Vec<&'static str>,
    /// This incarnation of the group: its versions mean nothing to another.
    pub epoch: Arc<str>,
    /// The identity that made the group exist: its groups, rows held and
    /// history are charged there, once, however many share the group.
    pub(super) account: Arc<Account>,
    /// Written by the reader and by sessions (resync), taken by the group
    /// task at the start of each round. Never held across an `.await`.
    pending: Mutex<Pending<T>>,
    /// Wakes the group task. One stored permit turns any number of changes
    /// during a read into exactly one follow-up round.
    pub(super) wake: Notify,
    /// Members by id. Written by joins and leaves (under the table's map
    /// lock, taken first) and by the group task; never held across an `.await`.
    pub(super) members: Mutex<HashMap<MemberId, Slot>>,
    /// Set once, when the group ends (emptied, refused or failed); an ended
    /// group takes no members and its task stops. Only changed under the
    /// members lock.
    pub(super) closed: AtomicBool,
    /// When the last member left, while the group lingers for members who
    /// come back. Written by leaves and read by the sweep, both under the
    /// table's map lock; a join makes the group non-empty, which is what
    /// the sweep checks first.
    pub(super) emptied_at: Mutex<Option<Instant>>,
}

impl<T: LiveTable> std::fmt::Debug for GroupShared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupShared")
            .field("table", &T::NAME)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<T: LiveTable> GroupShared<T> {
    pub(super) fn new(
        key: String,
        ctx: Arc<Context>,
        targets: Vec<&'static str>,
        epoch: Arc<str>,
        account: Arc<Account>,
    ) -> GroupShared<T> {
        GroupShared {
            key,
            ctx,
            targets,
            epoch,
            account,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            members: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            emptied_at: Mutex::new(None),
        }
    }

    /// Adds a member unless the group has ended; then the member comes back.
    pub(super) fn add(&self, member: Member) -> Result<(), Member> {
        let mut members = lock(&self.members);
        if self.is_closed() {
            return Err(member);
        }
        members.insert(member.id, Slot::new(member));
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The whole query must re-run.
    pub fn mark_all(&self, noticed: Option<Noticed>) {
        {
            let mut pending = lock(&self.pending);
            pending.noticed = Noticed::earliest(pending.noticed, noticed);
            pending.all = true;
            pending.batches = Vec::new();
        }
        self.wake();
    }

    /// Changed rows from the table's reader.
    pub fn offer(&self, batch: &Arc<Batch<T>>) {
        {
            let mut pending = lock(&self.pending);
            pending.noticed = Noticed::earliest(pending.noticed, batch.noticed);
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

    /// Changed rows of `table`, which the query includes, read in this
    /// group's context by that table's reader (`None`: any row may have
    /// changed, or reading them failed).
    pub(super) fn offer_related(
        &self,
        table: &'static str,
        batch: Option<&RelatedBatch>,
        noticed: Option<Noticed>,
    ) {
        {
            let mut pending = lock(&self.pending);
            pending.noticed = Noticed::earliest(pending.noticed, noticed);
            let entry = pending.related.entry(table).or_insert(Some(Vec::new()));
            match (entry.as_mut(), batch) {
                (Some(batches), Some(batch)) if batches.len() < MAX_PENDING_BATCHES => {
                    batches.push(Arc::clone(batch));
                }
                _ => *entry = None,
            }
        }
        self.wake();
    }

    /// A stale member's connection has drained: send it a fresh snapshot.
    pub(super) fn request_resync(&self) {
        lock(&self.pending).resync = true;
        self.wake();
    }

    pub(super) fn take_pending(&self) -> Pending<T> {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Tells every member whether its subscription is delayed by its own
    /// query (`reason`) or live again (`None`).
    pub(super) fn tell_status(&self, reads: &Reads, reason: Option<DelayReason>) {
        let mut members = lock(&self.members);
        members.retain(|_, slot| {
            let status = ServerMessage::Status(Status {
                id: Some(slot.member.sub.clone()),
                state: if reason.is_some() {
                    LiveState::Delayed
                } else {
                    LiveState::Live
                },
                reason,
            });
            let kept = slot.tell(Frame::message(&status), &reads.metrics);
            if !kept {
                reads.unsubscribed(&slot.member);
            }
            kept
        });
    }

    /// Ends the group: no more members, and every current member is told
    /// `code` and forgotten by its session.
    pub(super) fn end(&self, reads: &Reads, code: ErrorCode, message: &str) {
        let slots: Vec<Slot> = {
            let mut members = lock(&self.members);
            self.closed.store(true, Ordering::SeqCst);
            members.drain().map(|(_, slot)| slot).collect()
        };
        for slot in slots {
            let frame = Frame::error(Some(&slot.member.sub), code, message);
            reads.unsubscribed(&slot.member);
            slot.end(frame);
        }
    }
}

//! Groups: one per distinct (normalized query, security context) of a table.
//! A group holds its members, its current result and version; its task keeps
//! the result current and offers every change, encoded once, to every member.
//!
//! [`Groups`] is a table's map of groups and owns their lifecycle: a group
//! enters it on its first join and leaves it when its last member leaves (or,
//! once its task has ended it, when a member leaves or a join replaces it). A
//! group task never touches the map; it only ends its own group.
//!
//! Changes reach a group as [`Batch`]es of changed rows from its table's
//! reader, or as "re-run everything". A group applies batches in memory: rows
//! whose keys it holds are replaced by the fetched rows that pass its filter,
//! placed by its order. It runs its whole query only when it must: on its
//! first member, on "re-run", and for a limited query whose known rows no
//! longer fill its window (it keeps a few rows past the window, so that rows
//! leaving the window are replaced from memory, not by a query).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pglive_schema::wire::{DelayReason, LiveState, Resumed, Status};
use pglive_schema::{ErrorCode, ServerMessage};
use tokio::sync::Notify;

use super::diff::{self, Changes, Touched};
use super::frame::{self, Frame, Kind};
use super::outbox::{Member, MemberId, MemberState, Slot};
use super::reads::{ReadError, Reads};
use super::table::{Context, Key, LiveTable, Noticed};

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

/// Changes not yet in the group's result, in the order its reader delivered them.
struct Pending<T: LiveTable> {
    /// Re-run the whole query (it reads after every batch below was read).
    all: bool,
    batches: Vec<Arc<Batch<T>>>,
    /// Some stale member's connection has drained and wants a snapshot.
    resync: bool,
    /// When the earliest change not yet in the result was noticed.
    noticed: Option<Noticed>,
}

impl<T: LiveTable> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            all: false,
            batches: Vec::new(),
            resync: false,
            noticed: None,
        }
    }
}

fn lock<M>(m: &Mutex<M>) -> MutexGuard<'_, M> {
    // Every critical section in this module is a short update that a panic
    // cannot leave half done, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The part of a group shared by its task, its table's [`Groups`], its
/// table's reader and its members' sessions.
pub struct GroupShared<T: LiveTable> {
    /// The normalized query as canonical JSON.
    pub key: String,
    pub ctx: Arc<Context>,
    /// This incarnation of the group: its versions mean nothing to another.
    pub epoch: Arc<str>,
    /// Written by the reader and by sessions (resync), taken by the group
    /// task at the start of each round. Never held across an `.await`.
    pending: Mutex<Pending<T>>,
    /// Wakes the group task. One stored permit turns any number of changes
    /// during a read into exactly one follow-up round.
    wake: Notify,
    /// Members by id. Written by joins and leaves (under the table's map
    /// lock, taken first) and by the group task; never held across an `.await`.
    members: Mutex<HashMap<MemberId, Slot>>,
    /// Set once, when the group ends (emptied, refused or failed); an ended
    /// group takes no members and its task stops. Only changed under the
    /// members lock.
    closed: AtomicBool,
    /// When the last member left, while the group lingers for members who
    /// come back. Written by leaves and read by the sweep, both under the
    /// table's map lock; a join makes the group non-empty, which is what
    /// the sweep checks first.
    emptied_at: Mutex<Option<Instant>>,
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
    fn new(key: String, ctx: Arc<Context>, epoch: Arc<str>) -> GroupShared<T> {
        GroupShared {
            key,
            ctx,
            epoch,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            members: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            emptied_at: Mutex::new(None),
        }
    }

    /// Adds a member unless the group has ended; then the member comes back.
    fn add(&self, member: Member) -> Result<(), Member> {
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

    fn wake(&self) {
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

    /// A stale member's connection has drained: send it a fresh snapshot.
    fn request_resync(&self) {
        lock(&self.pending).resync = true;
        self.wake();
    }

    fn take_pending(&self) -> Pending<T> {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Tells every member whether its subscription is delayed by its own
    /// query (`reason`) or live again (`None`).
    fn tell_status(&self, reads: &Reads, reason: Option<DelayReason>) {
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
                reads.metrics.subscriptions.dec();
            }
            kept
        });
    }

    /// Ends the group: no more members, and every current member is told
    /// `code` and forgotten by its session.
    fn end(&self, reads: &Reads, code: ErrorCode, message: &str) {
        let slots: Vec<Slot> = {
            let mut members = lock(&self.members);
            self.closed.store(true, Ordering::SeqCst);
            members.drain().map(|(_, slot)| slot).collect()
        };
        for slot in slots {
            let frame = Frame::error(Some(&slot.member.sub), code, message);
            reads.metrics.subscriptions.dec();
            slot.end(frame);
        }
    }
}

/// Why a subscription could not join a group.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("the server holds as many live queries as it may")]
    Busy,
}

/// A subscription's place in a group, as its session holds it.
pub trait Membership: Send + Sync + std::fmt::Debug {
    fn member(&self) -> MemberId;
    /// Asks the group for a snapshot for this member if it went stale.
    fn request_resync(&self);
    /// Whether the group has ended (the subscription is gone).
    fn ended(&self) -> bool;
    /// Leaves the group; the last member to leave ends it.
    fn leave(self: Box<Self>);
}

/// A table's groups, by context and normalized query. Shared by the
/// table's registry entry (joins), its reader (delivery) and memberships
/// (leaves).
pub struct Groups<T: LiveTable> {
    /// Locked briefly by joins, leaves and the reader's delivery; never held
    /// across an `.await`. Taken before any group's members lock.
    map: Mutex<Map<T>>,
    reads: Arc<Reads>,
}

impl<T: LiveTable> std::fmt::Debug for Groups<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("table", &T::NAME)
            .finish_non_exhaustive()
    }
}

/// Groups by context, then by normalized query.
type Map<T> = HashMap<Arc<Context>, HashMap<String, Arc<GroupShared<T>>>>;

/// A context and its groups, as the reader delivers to them.
pub type ContextGroups<T> = (Arc<Context>, Vec<Arc<GroupShared<T>>>);

impl<T: LiveTable> Groups<T> {
    pub fn new(reads: Arc<Reads>) -> Arc<Groups<T>> {
        Arc::new(Groups {
            map: Mutex::new(HashMap::new()),
            reads,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Map<T>> {
        lock(&self.map)
    }

    /// Adds `member` to the group of (`ctx`, `query`), creating the group if
    /// there is none or the one there has ended. `query` must be normalized.
    /// The member is in the group before the group next reads, so no change
    /// can fall between its snapshot and its first diff.
    pub fn join(
        self: &Arc<Self>,
        ctx: Arc<Context>,
        query: T::Query,
        member: Member,
    ) -> Result<Box<dyn Membership>, JoinError> {
        let key = serde_json::to_string(&query).unwrap_or_default();
        let mut map = self.lock();
        let mut member = member;
        // At most two rounds: a group that ends between the lookup and the
        // add (its task runs concurrently) is replaced by a new one.
        for _ in 0..2 {
            let existing = map
                .get(&ctx)
                .and_then(|groups| groups.get(&key))
                .filter(|group| !group.is_closed())
                .cloned();
            let group = match existing {
                Some(group) => group,
                None => {
                    if let Some(groups) = map.get_mut(&ctx)
                        && groups.remove(&key).is_some()
                    {
                        self.forget_group();
                    }
                    // A full budget first makes a lingering group (nobody's
                    // any more) give way.
                    let admitted = self.reads.budget.try_group()
                        || (self.evict_lingering(&mut map) && self.reads.budget.try_group());
                    if !admitted {
                        return Err(JoinError::Busy);
                    }
                    self.reads.metrics.groups.inc();
                    let group = Arc::new(GroupShared::new(
                        key.clone(),
                        Arc::clone(&ctx),
                        self.reads.next_epoch(),
                    ));
                    map.entry(Arc::clone(&ctx))
                        .or_default()
                        .insert(key.clone(), Arc::clone(&group));
                    let task = GroupTask {
                        shared: Arc::clone(&group),
                        reads: Arc::clone(&self.reads),
                        query: query.clone(),
                    };
                    self.reads.tasks.spawn(task.run());
                    group
                }
            };
            let id = member.id;
            match group.add(member) {
                Ok(()) => {
                    drop(map);
                    self.reads.metrics.subscriptions.inc();
                    group.wake();
                    return Ok(Box::new(Joined {
                        groups: Arc::clone(self),
                        group,
                        member: id,
                    }));
                }
                Err(back) => member = back,
            }
        }
        // Unreachable in practice: a group created under this lock cannot
        // have ended yet. Refuse rather than loop.
        Err(JoinError::Busy)
    }

    fn forget_group(&self) {
        self.reads.budget.release_group();
        self.reads.metrics.groups.dec();
    }

    fn leave(&self, group: &Arc<GroupShared<T>>, member: MemberId) {
        let mut map = self.lock();
        let removed = lock(&group.members).remove(&member).is_some();
        if removed {
            self.reads.metrics.subscriptions.dec();
        }
        let linger = !self.reads.limits.group_linger.is_zero();
        let ended = {
            let members = lock(&group.members);
            if members.is_empty() && !group.is_closed() {
                if linger {
                    // The group stays current for members who come back;
                    // the table's reader sweeps it once the linger is over.
                    *lock(&group.emptied_at) = Some(Instant::now());
                } else {
                    group.closed.store(true, Ordering::SeqCst);
                }
            }
            group.is_closed()
        };
        if ended && let Some(groups) = map.get_mut(&group.ctx) {
            if groups
                .get(&group.key)
                .is_some_and(|g| Arc::ptr_eq(g, group))
            {
                groups.remove(&group.key);
                self.forget_group();
            }
            if groups.is_empty() {
                map.remove(&group.ctx);
            }
        }
        drop(map);
        group.wake();
    }

    /// The contexts that have groups now, with their groups.
    pub fn by_context(&self) -> Vec<ContextGroups<T>> {
        self.lock()
            .iter()
            .map(|(ctx, groups)| (Arc::clone(ctx), groups.values().cloned().collect()))
            .collect()
    }

    /// Ends the groups that have had no member for the linger time (or ended
    /// on their own with nobody left to leave them). Called by the table's
    /// reader, which holds this map for delivery anyway.
    pub fn sweep(&self) {
        let linger = self.reads.limits.group_linger;
        let mut ended = Vec::new();
        let mut map = self.lock();
        for groups in map.values_mut() {
            groups.retain(|_, group| {
                let members = lock(&group.members);
                let expired = members.is_empty()
                    && (group.is_closed()
                        || lock(&group.emptied_at).is_some_and(|at| at.elapsed() >= linger));
                if expired {
                    group.closed.store(true, Ordering::SeqCst);
                    ended.push(Arc::clone(group));
                }
                !expired
            });
        }
        map.retain(|_, groups| !groups.is_empty());
        drop(map);
        for group in ended {
            self.forget_group();
            // Its task sees it closed and stops.
            group.wake();
        }
    }

    /// Ends the group that has lingered longest, if any; true when one was
    /// ended. The caller holds the map.
    fn evict_lingering(&self, map: &mut Map<T>) -> bool {
        let oldest = map
            .iter()
            .flat_map(|(ctx, groups)| groups.iter().map(move |(key, g)| (ctx, key, g)))
            .filter_map(|(ctx, key, group)| {
                let members = lock(&group.members);
                let at = (*lock(&group.emptied_at))?;
                members
                    .is_empty()
                    .then(|| (at, Arc::clone(ctx), key.clone()))
            })
            .min_by_key(|(at, _, _)| *at);
        let Some((_, ctx, key)) = oldest else {
            return false;
        };
        let Some(groups) = map.get_mut(&ctx) else {
            return false;
        };
        let Some(group) = groups.remove(&key) else {
            return false;
        };
        if groups.is_empty() {
            map.remove(&ctx);
        }
        {
            let _members = lock(&group.members);
            group.closed.store(true, Ordering::SeqCst);
        }
        self.forget_group();
        group.wake();
        true
    }

    /// Every group must re-run its query.
    pub fn mark_all(&self, noticed: Option<Noticed>) {
        for (_, groups) in self.by_context() {
            for group in groups {
                group.mark_all(noticed);
            }
        }
    }
}

/// A member of a group of table `T`.
struct Joined<T: LiveTable> {
    groups: Arc<Groups<T>>,
    group: Arc<GroupShared<T>>,
    member: MemberId,
}

impl<T: LiveTable> std::fmt::Debug for Joined<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined")
            .field("group", &self.group)
            .field("member", &self.member)
            .finish()
    }
}

impl<T: LiveTable> Membership for Joined<T> {
    fn member(&self) -> MemberId {
        self.member
    }

    fn request_resync(&self) {
        self.group.request_resync();
    }

    fn ended(&self) -> bool {
        self.group.is_closed()
    }

    fn leave(self: Box<Self>) {
        self.groups.leave(&self.group, self.member);
    }
}

/// Rows in a query's order, shared: an unlimited query's published rows
/// are its whole window, and sharing the vector (instead of copying it)
/// saves a pass of reference-count increments over every row per change.
type Rows<T> = Arc<Vec<Arc<T>>>;

/// The rows a group knows: a prefix of its query's full ordered result.
struct Window<T> {
    /// In the query's order.
    prefix: Rows<T>,
    /// `None`: `prefix` is the whole result. `Some(row)`: `prefix` holds
    /// exactly the result's rows that sort at or before `row` (which need
    /// not be in it any more); rows after it are unknown.
    boundary: Option<Arc<T>>,
}

/// The group's published result at `version`, and what it knows past it.
struct Current<T> {
    version: u64,
    window: Window<T>,
    /// The published rows: the first `limit` rows of the window (the same
    /// vector as the window's when there is no limit).
    rows: Rows<T>,
    /// The snapshot body of `rows`, once encoded.
    snapshot: Option<Bytes>,
    /// Recent diffs, for resuming clients.
    history: History,
}

/// What applying changed rows did to a group's window.
enum Applied<T: LiveTable> {
    Unchanged,
    /// The new window, and the keys of the batches that changed it.
    Changed(Window<T>, HashSet<Key<T>>),
    /// A limited query lost rows it cannot replace from memory.
    NeedsQuery,
}

/// Rows past a limited window that a group keeps, so that rows leaving the
/// window are replaced from memory. A quarter of the limit, within bounds.
fn lookahead(limit: u32) -> usize {
    (limit as usize / 4).clamp(8, 256)
}

struct GroupTask<T: LiveTable> {
    shared: Arc<GroupShared<T>>,
    reads: Arc<Reads>,
    query: T::Query,
}

impl<T: LiveTable> GroupTask<T> {
    /// Keeps the group's result current until the group ends.
    async fn run(self) {
        let GroupTask {
            shared,
            reads,
            query,
        } = self;
        let limit = T::limit(&query);
        let mut current: Option<Current<T>> = None;
        let mut held = 0usize;
        let mut failures: u32 = 0;
        let mut backoff = crate::backoff::policy();
        tracing::debug!(table = T::NAME, group = %shared.key, "group started");
        loop {
            // A lingering group has no member whose leaving would close it:
            // shutdown ends it directly.
            tokio::select! {
                () = shared.wake.notified() => {}
                () = reads.shutdown.cancelled() => break,
            }
            if shared.is_closed() {
                break;
            }
            let pending = shared.take_pending();
            let mut full = current.is_none() || pending.all;
            let mut next: Option<Window<T>> = None;
            // The keys the batches touched, when they alone changed the
            // result (not a re-run): the diff need only look at them.
            let mut touched: Option<HashSet<Key<T>>> = None;
            if let (false, Some(now)) = (full, current.as_ref()) {
                match apply::<T>(&query, limit, &now.window, &pending.batches) {
                    Applied::Unchanged => {}
                    Applied::Changed(window, keys) => {
                        next = Some(window);
                        touched = Some(keys);
                    }
                    Applied::NeedsQuery => full = true,
                }
            }
            if full {
                touched = None;
            }
            if full {
                match load::<T>(&reads, &shared.ctx, &query).await {
                    Ok(window) => {
                        if failures > 0 {
                            shared.tell_status(&reads, None);
                        }
                        failures = 0;
                        backoff = crate::backoff::policy();
                        next = Some(window);
                    }
                    Err(err) => {
                        if matches!(err, ReadError::ShuttingDown) || shared.is_closed() {
                            break;
                        }
                        let unavailable =
                            matches!(err, ReadError::Unavailable(_)) || !reads.probe().await;
                        if !unavailable {
                            failures += 1;
                            if failures == 1 {
                                shared.tell_status(&reads, Some(DelayReason::QueryFailing));
                            }
                            tracing::debug!(table = T::NAME, group = %shared.key, error = %err, failures, "query refused");
                            if failures >= reads.limits.max_query_failures {
                                reads.metrics.query_failures.inc();
                                tracing::info!(table = T::NAME, error = %err, "a live query kept failing; its subscribers were told query_failed");
                                let message = format!(
                                    "the query failed {failures} times in a row ({}); the subscription was stopped",
                                    err.class()
                                );
                                shared.end(&reads, ErrorCode::QueryFailed, &message);
                                break;
                            }
                        }
                        // Nothing is lost: the whole query runs again after a
                        // capped backoff. Members keep their last state meanwhile.
                        shared.mark_all(pending.noticed);
                        let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = reads.shutdown.cancelled() => break,
                        }
                        continue;
                    }
                }
            }
            if let Some(window) = next {
                let rows: Rows<T> = match limit {
                    None => Arc::clone(&window.prefix),
                    Some(limit) => {
                        Arc::new(window.prefix.iter().take(limit as usize).cloned().collect())
                    }
                };
                if rows.len() > reads.limits.max_rows as usize {
                    shared.end(
                        &reads,
                        ErrorCode::ResultTooLarge,
                        "the query's result has more rows than the server serves live; add a filter or a limit",
                    );
                    break;
                }
                let want = window.prefix.len();
                if !reads.budget.try_rows(held, want) {
                    shared.end(
                        &reads,
                        ErrorCode::ServerBusy,
                        "the server holds as many live rows as it may; try again later or narrow the query",
                    );
                    break;
                }
                reads.metrics.rows_held.set(reads.budget.rows() as i64);
                held = want;
                // A limited result also loses rows no batch touched (pushed
                // past the limit): only an unlimited one takes the short cut.
                let touched = touched.as_ref().filter(|_| limit.is_none());
                current = Some(publish::<T>(
                    &shared,
                    &reads,
                    current.take(),
                    (window, rows),
                    touched,
                    pending.noticed,
                ));
            }
            if let Some(current) = current.as_mut() {
                serve_snapshots::<T>(&shared, &reads, current, pending.resync);
            }
        }
        reads.budget.try_rows(held, 0);
        reads.metrics.rows_held.set(reads.budget.rows() as i64);
        if let Some(mut current) = current {
            current.history.clear(&reads);
        }
        tracing::debug!(table = T::NAME, group = %shared.key, "group ended");
    }
}

/// Runs the group's whole query: the window, and a few rows past it for a
/// limited query.
async fn load<T: LiveTable>(
    reads: &Reads,
    ctx: &Context,
    query: &T::Query,
) -> Result<Window<T>, ReadError> {
    let max_rows = i64::from(reads.limits.max_rows);
    match T::limit(query) {
        None => {
            let prefix = reads.load::<T>(ctx, query, max_rows + 1).await?;
            Ok(Window {
                prefix: Arc::new(prefix),
                boundary: None,
            })
        }
        Some(limit) => {
            let want = limit as usize + lookahead(limit);
            let prefix = reads.load::<T>(ctx, query, want as i64).await?;
            Ok(loaded(prefix, limit))
        }
    }
}

/// The window a limited query's load gives: when it returned every row it
/// asked for, more may follow the last one.
fn loaded<T>(prefix: Vec<Arc<T>>, limit: u32) -> Window<T> {
    let want = limit as usize + lookahead(limit);
    let boundary = (prefix.len() >= want)
        .then(|| prefix.last().cloned())
        .flatten();
    Window {
        prefix: Arc::new(prefix),
        boundary,
    }
}

/// Applies the reader's batches, in order, to the window. A batch affects
/// the group when one of its keys is in the window (the row changed or left)
/// or one of its rows passes the filter within the window (it entered or
/// changed).
fn apply<T: LiveTable>(
    query: &T::Query,
    limit: Option<u32>,
    window: &Window<T>,
    batches: &[Arc<Batch<T>>],
) -> Applied<T> {
    let mut prefix: Option<Vec<Arc<T>>> = None;
    let within = |row: &T| {
        window
            .boundary
            .as_ref()
            .is_none_or(|b| T::compare(query, row, b).is_le())
    };
    let mut touched: HashSet<Key<T>> = HashSet::new();
    for batch in batches {
        let base = prefix.as_deref().unwrap_or(&window.prefix);
        let entering: Vec<&Arc<T>> = batch
            .rows
            .iter()
            .filter(|r| T::matches(query, r) && within(r))
            .collect();
        let keys = Touched::new(&batch.keys);
        let present = base.iter().any(|r| keys.contains(&r.key()));
        if entering.is_empty() && !present {
            continue;
        }
        touched.extend(batch.keys.iter().cloned());
        prefix = Some(merge::<T>(query, base, &keys, entering));
    }
    let Some(mut prefix) = prefix else {
        return Applied::Unchanged;
    };
    let mut boundary = window.boundary.clone();
    if let Some(limit) = limit {
        let limit = limit as usize;
        if boundary.is_some() && prefix.len() < limit {
            return Applied::NeedsQuery;
        }
        // Rows entering before the boundary grow the prefix; keep it bounded.
        let keep = limit + lookahead(limit as u32);
        if prefix.len() > keep + lookahead(limit as u32) {
            prefix.truncate(keep);
            boundary = prefix.last().cloned();
        }
    }
    Applied::Changed(
        Window {
            prefix: Arc::new(prefix),
            boundary,
        },
        touched,
    )
}

/// `old` with the rows whose keys are `touched` replaced by `entering`
/// (touched rows that no longer pass the filter, or no longer exist,
/// leave), placed by the query's order.
fn merge<T: LiveTable>(
    query: &T::Query,
    old: &[Arc<T>],
    touched: &Touched<'_, Key<T>>,
    entering: Vec<&Arc<T>>,
) -> Vec<Arc<T>> {
    let mut rows: Vec<Arc<T>> = old
        .iter()
        .filter(|r| !touched.contains(&r.key()))
        .cloned()
        .collect();
    for row in entering {
        let at = rows.partition_point(|r| T::compare(query, r, row).is_lt());
        rows.insert(at, Arc::clone(row));
    }
    rows
}

/// Makes `rows` the group's result: sends the diff to live members, or, when
/// the diff would be as large as the result, a snapshot to everyone.
fn publish<T: LiveTable>(
    shared: &GroupShared<T>,
    reads: &Reads,
    previous: Option<Current<T>>,
    (window, rows): (Window<T>, Rows<T>),
    touched: Option<&HashSet<Key<T>>>,
    noticed: Option<Noticed>,
) -> Current<T> {
    let Some(mut previous) = previous else {
        return Current {
            version: 1,
            window,
            rows,
            snapshot: None,
            history: History::default(),
        };
    };
    let changes: Changes<T, Key<T>> = match touched {
        Some(touched) => diff::diff_touched(&previous.rows, &rows, touched, T::key),
        None => diff::diff(&previous.rows, &rows, T::key),
    };
    if changes.is_empty() {
        // The rows past the window may have changed; the result did not.
        return Current { window, ..previous };
    }
    let version = previous.version + 1;
    let as_snapshot = changes.len() >= rows.len().max(1);
    let body = if as_snapshot {
        None
    } else {
        match frame::diff_body(
            T::NAME,
            previous.version,
            version,
            noticed.map(|n| n.0),
            &changes,
        ) {
            Ok(body) => Some(body),
            Err(err) => {
                tracing::error!(group = %shared.key, error = %err, "could not encode a diff; sending snapshots");
                None
            }
        }
    };
    let mut history = std::mem::take(&mut previous.history);
    match &body {
        Some(body) => history.push(previous.version, version, body.clone(), reads),
        // A change sent as snapshots cannot be replayed: resuming across it
        // needs a snapshot too.
        None => history.clear(reads),
    }
    let mut members = lock(&shared.members);
    match body {
        Some(body) => {
            reads.metrics.diffs.inc();
            members.retain(|_, slot| {
                if slot.state != MemberState::Live {
                    return true;
                }
                let frame = slot.member.headers.frame(Kind::Diff, &body);
                offer(slot, frame, reads)
            });
        }
        None => {
            for slot in members.values_mut() {
                if slot.state == MemberState::Live {
                    slot.state = MemberState::NeedsSnapshot;
                }
            }
        }
    }
    Current {
        version,
        window,
        rows,
        snapshot: None,
        history,
    }
}

/// A group's recent diff bodies, as sent, for clients that resume after a
/// reconnect. Contiguous: each diff starts at the version the previous one
/// ended at. Bounded by count and bytes per group, and by the budget of all
/// groups together.
#[derive(Default)]
struct History {
    diffs: VecDeque<(u64, u64, Bytes)>,
    bytes: usize,
}

impl History {
    fn push(&mut self, from: u64, to: u64, body: Bytes, reads: &Reads) {
        if self.diffs.back().is_some_and(|d| d.1 != from) {
            self.clear(reads);
        }
        let limits = &reads.limits;
        if limits.history_diffs == 0 || body.len() > limits.history_bytes {
            self.clear(reads);
            return;
        }
        while self.diffs.len() >= limits.history_diffs
            || self.bytes + body.len() > limits.history_bytes
        {
            self.pop(reads);
        }
        if !reads.budget.try_history(body.len()) {
            // Every group's history together is at its bound: this group
            // keeps none rather than a gap.
            self.clear(reads);
            return;
        }
        self.bytes += body.len();
        self.diffs.push_back((from, to, body));
        reads
            .metrics
            .history_bytes
            .set(reads.budget.history() as i64);
    }

    fn pop(&mut self, reads: &Reads) {
        if let Some((_, _, body)) = self.diffs.pop_front() {
            self.bytes -= body.len();
            reads.budget.release_history(body.len());
        }
    }

    fn clear(&mut self, reads: &Reads) {
        while !self.diffs.is_empty() {
            self.pop(reads);
        }
        reads
            .metrics
            .history_bytes
            .set(reads.budget.history() as i64);
    }

    /// The diffs from `version` to the newest, if this history holds them all.
    fn since(&self, version: u64, current: u64) -> Option<Vec<Bytes>> {
        if version == current {
            return Some(Vec::new());
        }
        let start = self.diffs.iter().position(|d| d.0 == version)?;
        Some(self.diffs.iter().skip(start).map(|d| d.2.clone()).collect())
    }
}

/// Sends the current result to members that need it: new joiners, members
/// switched to a snapshot by a large change, and (on request) stale members.
fn serve_snapshots<T: LiveTable>(
    shared: &GroupShared<T>,
    reads: &Reads,
    current: &mut Current<T>,
    resync: bool,
) {
    let mut members = lock(&shared.members);
    let wanted = |state: MemberState| {
        state == MemberState::NeedsSnapshot || (resync && state == MemberState::Stale)
    };
    if !members.values().any(|s| wanted(s.state)) {
        return;
    }
    // Members that resume get what they missed from the history, at no
    // cost to the database; the others (and resumes the history cannot
    // cover) get the snapshot.
    members.retain(|_, slot| {
        if slot.state != MemberState::NeedsSnapshot {
            return true;
        }
        let Some(since) = slot.member.since.take() else {
            return true;
        };
        let missed = (since.epoch.as_str() == &*shared.epoch && since.version <= current.version)
            .then(|| current.history.since(since.version, current.version))
            .flatten();
        let Some(missed) = missed else {
            reads.metrics.resume_misses.inc();
            return true;
        };
        reads.metrics.resumes.inc();
        let resumed = Frame::message(&ServerMessage::Resumed(Resumed {
            id: slot.member.sub.clone(),
            epoch: shared.epoch.to_string(),
            from: since.version,
            to: current.version,
        }));
        if !offer(slot, resumed, reads) {
            return false;
        }
        for body in missed {
            let frame = slot.member.headers.frame(Kind::Diff, &body);
            if !offer(slot, frame, reads) {
                return false;
            }
        }
        true
    });
    if !members.values().any(|s| wanted(s.state)) {
        return;
    }
    let body = match &current.snapshot {
        Some(body) => body.clone(),
        None => {
            match frame::snapshot_body(T::NAME, &shared.epoch, current.version, &current.rows) {
                Ok(body) => {
                    reads.metrics.snapshots.inc();
                    current.snapshot = Some(body.clone());
                    body
                }
                Err(err) => {
                    tracing::error!(group = %shared.key, error = %err, "could not encode a snapshot");
                    return;
                }
            }
        }
    };
    members.retain(|_, slot| {
        if !wanted(slot.state) {
            return true;
        }
        if slot.state == MemberState::Stale {
            reads.metrics.lagging_resyncs.inc();
        }
        slot.member.since = None;
        let frame = slot.member.headers.frame(Kind::Snapshot, &body);
        offer(slot, frame, reads)
    });
}

/// Offers a frame to a member; false drops the member, whose connection is gone.
fn offer(slot: &mut Slot, frame: Frame, reads: &Reads) -> bool {
    let kept = slot.offer(frame, &reads.metrics);
    if !kept {
        reads.metrics.subscriptions.dec();
    }
    kept
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pglive_schema::SubscriptionId;
    use pglive_schema::tables::ItemsQuery;
    use tokio::sync::mpsc;

    use super::super::outbox;
    use super::super::reads::EngineLimits;
    use crate::metrics::Metrics;

    use chrono::{DateTime, NaiveDate, Utc};
    use pglive_schema::live::Direction;
    use pglive_schema::tables::{TasksFilter, TasksOrder, TasksOrderBy, TasksQuery};
    use pglive_schema::{Task, TaskStatus};
    use proptest::prelude::*;

    use super::*;

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1 + d).unwrap()
    }

    fn task() -> impl Strategy<Value = (i32, Task)> {
        (
            1..80i32,
            prop::sample::select(vec!["a", "b", "A", "a_", "é", "zz"]),
            prop::sample::select(TaskStatus::ALL.to_vec()),
            0..4i16,
            prop::option::of(prop::sample::select(vec!["alice", "bob"])),
            prop::option::of(0..4u32),
            0..3i64,
        )
            .prop_map(|(id, title, status, priority, assignee, due, t)| {
                let at: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000 + t, 0).unwrap();
                (
                    id,
                    Task {
                        id,
                        title: title.into(),
                        status,
                        priority,
                        assignee: assignee.map(Into::into),
                        due_date: due.map(date),
                        created_at: at,
                        updated_at: at,
                        tenant: "public".into(),
                    },
                )
            })
    }

    fn query() -> impl Strategy<Value = TasksQuery> {
        let by = prop::sample::select(vec![
            TasksOrderBy::Id,
            TasksOrderBy::Title,
            TasksOrderBy::Status,
            TasksOrderBy::Priority,
            TasksOrderBy::Assignee,
            TasksOrderBy::DueDate,
            TasksOrderBy::CreatedAt,
        ]);
        (
            by,
            any::<bool>(),
            prop::option::of(1..8u32),
            prop::option::of(prop::sample::select(vec!["a", "_", "z"])),
            prop::option::of(0..4i16),
            prop::option::of(any::<bool>()),
            prop::option::of(0..4u32),
        )
            .prop_map(|(by, desc, limit, contains, priority, unassigned, due)| {
                TasksQuery {
                    filter: Some(TasksFilter {
                        title_contains: contains.map(Into::into),
                        priority_gte: priority,
                        assignee_is_null: unassigned,
                        due_date_lt: due.map(date),
                        ..TasksFilter::default()
                    }),
                    order: Some(TasksOrder {
                        by,
                        dir: Some(if desc {
                            Direction::Desc
                        } else {
                            Direction::Asc
                        }),
                    }),
                    limit,
                }
            })
    }

    /// What a fresh run of the query gives: filter, sort, nothing more.
    fn naive(query: &TasksQuery, db: &BTreeMap<i32, Task>) -> Vec<Arc<Task>> {
        let mut rows: Vec<Arc<Task>> = db
            .values()
            .filter(|r| Task::matches(query, r))
            .cloned()
            .map(Arc::new)
            .collect();
        rows.sort_by(|a, b| Task::compare(query, a, b));
        rows
    }

    fn load(query: &TasksQuery, db: &BTreeMap<i32, Task>) -> Window<Task> {
        let all = naive(query, db);
        match query.limit {
            None => Window {
                prefix: Arc::new(all),
                boundary: None,
            },
            Some(limit) => {
                let want = limit as usize + lookahead(limit);
                loaded(all.into_iter().take(want).collect(), limit)
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Applying changed rows in memory (with the window and its rows past
        /// the limit) always publishes what a fresh query would return, row
        /// for row and in order, and the window stays an exact prefix.
        #[test]
        fn in_memory_merge_equals_a_fresh_query(
            initial in prop::collection::vec(task(), 0..70),
            query in query(),
            steps in prop::collection::vec(
                (prop::collection::vec(task(), 0..14), prop::collection::vec(0..24usize, 0..12), prop::option::of((1..80i32, 100..130i32))),
                1..12,
            ),
        ) {
            let mut db: BTreeMap<i32, Task> = initial.into_iter().collect();
            let mut window = load(&query, &db);
            let limit = query.limit.map_or(usize::MAX, |l| l as usize);
            for (upserts, deletes, rekey) in steps {
                let mut touched = HashSet::new();
                for (id, row) in upserts {
                    touched.insert(id);
                    db.insert(id, row);
                }
                // Deletes name rows by their place in the result, so that they
                // hit the window (and drain what it keeps past the limit).
                let ranked: Vec<i32> = naive(&query, &db).iter().map(|r| r.id).collect();
                for at in deletes {
                    if let Some(&id) = ranked.get(at) {
                        touched.insert(id);
                        db.remove(&id);
                    }
                }
                if let Some((old, new)) = rekey
                    && let Some(mut row) = db.remove(&old)
                {
                    row.id = new;
                    db.insert(new, row);
                    touched.insert(old);
                    touched.insert(new);
                }
                let batch = Arc::new(Batch {
                    rows: touched.iter().filter_map(|k| db.get(k)).cloned().map(Arc::new).collect(),
                    keys: Arc::new(touched),
                    noticed: None,
                });
                window = match apply::<Task>(&query, query.limit, &window, &[batch]) {
                    Applied::Unchanged => window,
                    Applied::Changed(w, _) => w,
                    Applied::NeedsQuery => load(&query, &db),
                };
                let fresh = naive(&query, &db);
                let published: Vec<&Task> = window.prefix.iter().take(limit).map(|r| &**r).collect();
                let want: Vec<&Task> = fresh.iter().take(limit).map(|r| &**r).collect();
                prop_assert_eq!(published, want);
                let exact: Vec<&Task> = match &window.boundary {
                    None => fresh.iter().map(|r| &**r).collect(),
                    Some(b) => fresh.iter().filter(|r| Task::compare(&query, r, b).is_le()).map(|r| &**r).collect(),
                };
                let prefix: Vec<&Task> = window.prefix.iter().map(|r| &**r).collect();
                prop_assert_eq!(prefix, exact, "the window is an exact prefix");
            }
        }
    }

    /// The race behind a query that stayed unanswered: a group ends (its
    /// result was too large, or its query kept failing) while a subscriber
    /// joins the same query. The joiner must get a new group, never the
    /// ended one, whatever order leaves and joins come in.
    #[tokio::test]
    async fn a_join_never_lands_in_an_ended_group() {
        // No database is needed: nothing here waits for a query.
        let pool = crate::db::pool("postgres://nobody@127.0.0.1:9/none", 1)
            .await
            .unwrap();
        let reads = Arc::new(Reads::new(
            pool,
            Arc::new(Metrics::default()),
            // Without lingering, the last leave ends a group at once.
            EngineLimits {
                group_linger: std::time::Duration::ZERO,
                ..EngineLimits::default()
            },
        ));
        let groups = Groups::<pglive_schema::Item>::new(Arc::clone(&reads));
        let ctx = Arc::new(Context::default());
        let query = pglive_schema::Item::normalized(&ItemsQuery::default());
        let conn = outbox::new_connection();
        let (tx, mut rx) = mpsc::channel(8);
        let member = |id: &str| {
            Member::new(
                SubscriptionId(id.into()),
                tx.clone(),
                Arc::clone(&conn),
                None,
            )
        };

        let a = groups
            .join(Arc::clone(&ctx), query.clone(), member("a"))
            .unwrap();
        let first = Arc::clone(&groups.by_context()[0].1[0]);
        first.end(&reads, ErrorCode::ResultTooLarge, "too large");
        assert!(a.ended());

        // Joining before anyone left the ended group: a new, live group.
        let b = groups
            .join(Arc::clone(&ctx), query.clone(), member("b"))
            .unwrap();
        assert!(!b.ended());
        let now = groups.by_context();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].1.len(), 1);
        assert!(
            !Arc::ptr_eq(&now[0].1[0], &first),
            "the ended group was replaced"
        );

        // The ended member was told, and its session learns to forget it.
        let Some(Frame::Text(error)) = rx.recv().await else {
            panic!("no error frame")
        };
        assert!(String::from_utf8_lossy(&error).contains("result_too_large"));
        assert_eq!(
            conn.take_ended(),
            vec![(SubscriptionId("a".into()), a.member())]
        );

        // Its session leaving afterwards does not disturb the new group.
        a.leave();
        assert_eq!(groups.by_context()[0].1.len(), 1);
        assert!(!b.ended());
        b.leave();
        assert!(groups.by_context().is_empty(), "the emptied group is gone");
        reads.close();
    }
}

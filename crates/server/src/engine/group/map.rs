//! A table's map of groups and their lifecycle: a group enters it on its
//! first join and leaves it when its last member leaves (or lingers, for
//! members who come back, until the table's reader sweeps it). A session
//! holds its place in a group as a [`Membership`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::engine::budget::{Account, Resource};
use crate::engine::outbox::{Member, MemberId};
use crate::engine::reads::Reads;
use crate::engine::table::{Context, LiveTable, Noticed};

use super::shared::{GroupShared, RelatedBatch, lock};
use super::task::GroupTask;

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

/// A table's groups as the reader of a table they include sees them: it
/// reads that table's changed rows in the contexts these groups have, and
/// hands each group the batch of its context (see `related`).
pub trait Including: Send + Sync {
    /// The contexts that have groups whose query includes `table`.
    fn contexts_including(&self, table: &str) -> Vec<Arc<Context>>;
    /// Rows of `table` changed, read in `ctx` (`None`: any row may have
    /// changed, or reading them failed): the groups of `ctx` that include it.
    fn offer_related(
        &self,
        ctx: &Context,
        table: &'static str,
        batch: Option<&RelatedBatch>,
        noticed: Option<Noticed>,
    );
    /// Any row of `table` may have changed, in every context.
    fn related_changed_all(&self, table: &'static str, noticed: Option<Noticed>);
}

impl<T: LiveTable> Including for Groups<T> {
    fn contexts_including(&self, table: &str) -> Vec<Arc<Context>> {
        self.lock()
            .iter()
            .filter(|(_, groups)| groups.values().any(|g| g.targets.contains(&table)))
            .map(|(ctx, _)| Arc::clone(ctx))
            .collect()
    }

    fn offer_related(
        &self,
        ctx: &Context,
        table: &'static str,
        batch: Option<&RelatedBatch>,
        noticed: Option<Noticed>,
    ) {
        for group in self.including(table, Some(ctx)) {
            group.offer_related(table, batch, noticed);
        }
    }

    fn related_changed_all(&self, table: &'static str, noticed: Option<Noticed>) {
        for group in self.including(table, None) {
            group.offer_related(table, None, noticed);
        }
    }
}

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
                        && let Some(ended) = groups.remove(&key)
                    {
                        self.forget_group(&ended);
                    }
                    // A full budget first makes a lingering group (nobody's
                    // any more) give way.
                    let budget = &self.reads.budget;
                    let account = &member.account;
                    let admitted = budget.take(account, Resource::Groups, 1)
                        || (self.evict_lingering(&mut map, account)
                            && budget.take(account, Resource::Groups, 1));
                    if !admitted {
                        return Err(JoinError::Busy);
                    }
                    self.reads.metrics.groups.inc();
                    let group = Arc::new(GroupShared::new(
                        key.clone(),
                        Arc::clone(&ctx),
                        super::related::targets::<T>(&query),
                        self.reads.next_epoch(),
                        Arc::clone(account),
                    ));
                    map.entry(Arc::clone(&ctx))
                        .or_default()
                        .insert(key.clone(), Arc::clone(&group));
                    self.count_contexts(&map);
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
            if !self.reads.subscribed(&member) {
                // Its identity holds as many subscriptions as it may. A
                // group made for it just now ends with nobody in it.
                if lock(&group.members).is_empty() && !group.is_closed() {
                    self.end_empty(&mut map, &group);
                }
                return Err(JoinError::Busy);
            }
            match group.add(member) {
                Ok(()) => {
                    drop(map);
                    group.wake();
                    return Ok(Box::new(Joined {
                        groups: Arc::clone(self),
                        group,
                        member: id,
                    }));
                }
                Err(back) => {
                    self.reads.unsubscribed(&back);
                    member = back;
                }
            }
        }
        // Unreachable in practice: a group created under this lock cannot
        // have ended yet. Refuse rather than loop.
        Err(JoinError::Busy)
    }

    fn forget_group(&self, group: &GroupShared<T>) {
        self.reads
            .budget
            .release(&group.account, Resource::Groups, 1);
        self.reads.metrics.groups.dec();
    }

    /// Ends a group that has no member, under the map lock.
    fn end_empty(&self, map: &mut Map<T>, group: &Arc<GroupShared<T>>) {
        {
            let _members = lock(&group.members);
            group.closed.store(true, Ordering::SeqCst);
        }
        self.remove(map, group);
        group.wake();
    }

    /// Takes an ended group out of the map (if it is still the one there).
    fn remove(&self, map: &mut Map<T>, group: &Arc<GroupShared<T>>) {
        if let Some(groups) = map.get_mut(&group.ctx) {
            if groups
                .get(&group.key)
                .is_some_and(|g| Arc::ptr_eq(g, group))
            {
                groups.remove(&group.key);
                self.forget_group(group);
            }
            if groups.is_empty() {
                map.remove(&group.ctx);
                self.count_contexts(map);
            }
        }
    }

    /// Publishes how many contexts have groups on this table.
    fn count_contexts(&self, map: &Map<T>) {
        self.reads.metrics.set_contexts(T::NAME, map.len());
    }

    fn leave(&self, group: &Arc<GroupShared<T>>, member: MemberId) {
        let mut map = self.lock();
        if let Some(slot) = lock(&group.members).remove(&member) {
            self.reads.unsubscribed(&slot.member);
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
        if ended {
            self.remove(&mut map, group);
        }
        drop(map);
        group.wake();
    }

    /// The groups whose query includes `table`: in `ctx`, or in every
    /// context for `None`.
    fn including(&self, table: &str, ctx: Option<&Context>) -> Vec<Arc<GroupShared<T>>> {
        let map = self.lock();
        let groups: Box<dyn Iterator<Item = &HashMap<String, Arc<GroupShared<T>>>>> = match ctx {
            Some(ctx) => Box::new(map.get(ctx).into_iter()),
            None => Box::new(map.values()),
        };
        groups
            .flat_map(|groups| groups.values())
            .filter(|g| g.targets.contains(&table))
            .cloned()
            .collect()
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
        self.count_contexts(&map);
        drop(map);
        for group in ended {
            self.forget_group(&group);
            // Its task sees it closed and stops.
            group.wake();
        }
    }

    /// Ends the group that has lingered longest, if any, preferring one of
    /// `account`'s own (which frees its share as well as the server's);
    /// true when one was ended. The caller holds the map.
    fn evict_lingering(&self, map: &mut Map<T>, account: &Arc<Account>) -> bool {
        let oldest = map
            .iter()
            .flat_map(|(ctx, groups)| groups.iter().map(move |(key, g)| (ctx, key, g)))
            .filter_map(|(ctx, key, group)| {
                let members = lock(&group.members);
                let at = (*lock(&group.emptied_at))?;
                let others = !Arc::ptr_eq(&group.account, account);
                members
                    .is_empty()
                    .then(|| ((others, at), Arc::clone(ctx), key.clone()))
            })
            .min_by_key(|(order, _, _)| *order);
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
            self.count_contexts(map);
        }
        {
            let _members = lock(&group.members);
            group.closed.store(true, Ordering::SeqCst);
        }
        self.forget_group(&group);
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

#[cfg(test)]
mod tests {
    use pglive_schema::tables::ItemsQuery;
    use pglive_schema::{ErrorCode, SubscriptionId};
    use tokio::sync::mpsc;

    use crate::engine::frame::Frame;
    use crate::engine::outbox;
    use crate::engine::reads::EngineLimits;
    use crate::metrics::Metrics;

    use super::*;

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
                reads.budget.account(None),
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

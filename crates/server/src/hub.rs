//! The hub: every subscription group, keyed by table and normalized query.
//!
//! Sessions join and leave groups through the hub; the listener routes change
//! notices through it to the groups of the changed table; group tasks remove
//! their group through it when the last member has left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use diesel::QueryResult;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::bb8::PooledConnection;
use pglive_schema::LiveQuery;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::group::{GroupContext, GroupShared, Member, MemberId};
use crate::metrics::Metrics;
use crate::reader::{Batch, ReaderShared};
use crate::table::{Key, Registry};

/// Bounds on the engine's work, from configuration.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Concurrent refresh queries across all groups.
    pub max_concurrent_refreshes: usize,
    /// Rows a full query may return before the subscription is refused.
    pub max_rows: u32,
    /// Changed keys a group remembers before escalating to "refresh all".
    pub max_pending_keys: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_concurrent_refreshes: 8,
            max_rows: 50_000,
            max_pending_keys: 1_000,
        }
    }
}

/// A change to route: the table and the touched keys, or `None` for "every row
/// may have changed".
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: &'static str,
    pub keys: Option<Vec<Key>>,
}

/// Cheap to clone: every clone shares one hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("tables", &self.inner.registry)
            .finish()
    }
}

/// The hub's state; readers hold it weakly so that they end with the hub.
pub struct HubInner {
    registry: Registry,
    /// Groups by table, then by group key. Locked briefly by sessions (join),
    /// group tasks (removal) and the listener (routing); never held across an
    /// `.await`. Lock order: this lock before any group's member lock.
    groups: Mutex<HashMap<&'static str, HashMap<String, Arc<GroupShared>>>>,
    /// Bounds refresh queries in flight across all groups. Group tasks hold a
    /// permit only while their query runs; the semaphore is never closed.
    refresh_permits: Semaphore,
    /// One change reader per live table, created with the hub.
    readers: HashMap<&'static str, Arc<ReaderShared>>,
    pool: Pool<AsyncPgConnection>,
    metrics: Arc<Metrics>,
    limits: EngineLimits,
}

/// Why a subscription could not join a group.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("table {0:?} is not live")]
    UnknownTable(String),
}

/// Why a refresh query did not run or failed; the caller retries.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("database pool: {0}")]
    Pool(String),
    #[error("query: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("shutting down")]
    ShuttingDown,
}

/// A member's place in a group; leaving consumes it.
#[derive(Debug)]
pub struct Membership {
    pub group: Arc<GroupShared>,
    pub member: MemberId,
}

impl Hub {
    /// Creates the hub and starts one change reader per registered table.
    pub fn new(
        registry: Registry,
        pool: Pool<AsyncPgConnection>,
        metrics: Arc<Metrics>,
        limits: EngineLimits,
    ) -> Hub {
        let readers: HashMap<&'static str, Arc<ReaderShared>> = registry
            .engines()
            .map(|e| (e.name(), Arc::new(ReaderShared::default())))
            .collect();
        let hub = Hub {
            inner: Arc::new(HubInner {
                readers,
                groups: Mutex::new(HashMap::new()),
                refresh_permits: Semaphore::new(limits.max_concurrent_refreshes.max(1)),
                registry,
                pool,
                metrics,
                limits,
            }),
        };
        for engine in hub.inner.registry.engines() {
            if let Some(reader) = hub.inner.readers.get(engine.name()) {
                engine.spawn_reader(Arc::downgrade(&hub.inner), Arc::clone(reader));
            }
        }
        hub
    }

    pub(crate) fn from_inner(inner: Arc<HubInner>) -> Hub {
        Hub { inner }
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn pool(&self) -> &Pool<AsyncPgConnection> {
        &self.inner.pool
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn limits(&self) -> &EngineLimits {
        &self.inner.limits
    }

    /// A pooled connection for one refresh query, and the permit that
    /// bounds how many run at once. Readers and groups both read through here.
    pub(crate) async fn checkout(
        &self,
    ) -> Result<(SemaphorePermit<'_>, PooledConnection<'_, AsyncPgConnection>), ReadError> {
        let permit = self
            .inner
            .refresh_permits
            .acquire()
            .await
            .map_err(|_| ReadError::ShuttingDown)?;
        let conn = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| ReadError::Pool(e.to_string()))?;
        Ok((permit, conn))
    }

    /// Counts a refresh query that started at `started`, and shares its rows.
    pub(crate) fn record_read<R>(
        &self,
        started: Instant,
        rows: QueryResult<Vec<R>>,
    ) -> Result<Vec<Arc<R>>, ReadError> {
        let metrics = &self.inner.metrics;
        Metrics::add(
            &metrics.refresh_micros_total,
            started.elapsed().as_micros() as u64,
        );
        Metrics::inc(&metrics.refreshes_total);
        let rows = rows?;
        Metrics::add(&metrics.rows_read_total, rows.len() as u64);
        Ok(rows.into_iter().map(Arc::new).collect())
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<&'static str, HashMap<String, Arc<GroupShared>>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert, remove or scan), so a
        // poisoned lock is still safe to use.
        self.inner.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group key: the normalized query, as canonical JSON. Equal keys
    /// mean equal results, so such subscriptions share one group.
    pub fn group_key(query: &LiveQuery) -> String {
        serde_json::to_string(&query.normalized()).unwrap_or_default()
    }

    /// Adds `member` to the group for `query`, creating the group if needed.
    /// The member is in the group before the group next queries, so no change
    /// can fall between its snapshot and its first diff.
    pub fn join(&self, query: &LiveQuery, member: Member) -> Result<Membership, JoinError> {
        let engine = self
            .inner
            .registry
            .get(query.table())
            .ok_or_else(|| JoinError::UnknownTable(query.table().to_owned()))?;
        let key = Hub::group_key(query);
        let mut groups = self.groups();
        let table = groups.entry(engine.name()).or_default();
        let group = match table.get(&key) {
            Some(group) => Arc::clone(group),
            None => {
                let group = Arc::new(GroupShared::new(key.clone(), engine.name()));
                let ctx = GroupContext {
                    hub: self.clone(),
                    shared: Arc::clone(&group),
                };
                if !engine.spawn_group(ctx, &query.normalized()) {
                    return Err(JoinError::UnknownTable(query.table().to_owned()));
                }
                table.insert(key, Arc::clone(&group));
                Metrics::inc(&self.inner.metrics.groups);
                group
            }
        };
        let member = group.add(member);
        drop(groups);
        Metrics::inc(&self.inner.metrics.subscriptions);
        group.wake();
        Ok(Membership { group, member })
    }

    /// Removes the member; an emptied group is dropped by its own task.
    pub fn leave(&self, membership: Membership) {
        if membership.group.remove(membership.member) {
            Metrics::dec(&self.inner.metrics.subscriptions);
        }
        membership.group.wake();
    }

    /// Drops `group` if it has no members. Returns whether it was dropped.
    pub(crate) fn remove_if_empty(&self, group: &Arc<GroupShared>) -> bool {
        let mut groups = self.groups();
        if !group.close_if_empty() {
            return false;
        }
        if let Some(table) = groups.get_mut(group.table)
            && table.get(&group.key).is_some_and(|g| Arc::ptr_eq(g, group))
        {
            table.remove(&group.key);
            Metrics::dec(&self.inner.metrics.groups);
        }
        true
    }

    /// Hands a change to its table's reader, which reads the changed rows
    /// once and passes them to every group of the table.
    pub fn changed(&self, change: &Change) {
        if let Some(reader) = self.inner.readers.get(change.table) {
            reader.mark(change.keys.as_deref(), self.inner.limits.max_pending_keys);
        }
    }

    /// Marks every table as wholly changed: used after the listener lost its
    /// connection, since notices sent meanwhile are gone.
    pub fn resync_all(&self) {
        for reader in self.inner.readers.values() {
            reader.mark(None, 0);
        }
    }

    fn table_groups(&self, table: &str) -> Vec<Arc<GroupShared>> {
        self.groups()
            .get(table)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// From a reader: every group of `table` must re-run its query.
    pub(crate) fn deliver_all(&self, table: &str) {
        for group in self.table_groups(table) {
            group.mark_all();
        }
    }

    /// From a reader: changed rows for every group of `table`.
    pub(crate) fn deliver_batch(&self, table: &str, batch: &Batch) {
        for group in self.table_groups(table) {
            group.offer(batch);
        }
    }

    /// Number of live groups.
    pub fn group_count(&self) -> usize {
        self.groups().values().map(HashMap::len).sum()
    }
}

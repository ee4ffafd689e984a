//! The hub: the engine's front door. Sessions join and leave groups through
//! it, capture reports changes to it, and the server starts and stops the
//! engine with it. It holds the registry of tables and the shared read side.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use pglive_schema::LiveQuery;

use super::budget::Account;
use super::group::{JoinError, Membership};
use super::outbox::Member;
use super::reads::{EngineLimits, Reads};
use super::registry::Registry;
use super::table::{Change, Context, Noticed};
use crate::metrics::Metrics;

/// Why a subscription could not join.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    #[error("table {0:?} is not live")]
    UnknownTable(String),
    #[error(transparent)]
    Join(#[from] JoinError),
}

/// Cheap to clone: every clone shares one engine.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    reads: Arc<Reads>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("tables", &self.inner.registry)
            .finish()
    }
}

impl Hub {
    /// Starts the engine: one reader per live table.
    pub fn start(
        pool: Pool<AsyncPgConnection>,
        metrics: Arc<Metrics>,
        limits: EngineLimits,
    ) -> Hub {
        let reads = Arc::new(Reads::new(pool, metrics, limits));
        let registry = Registry::start(&reads);
        Hub {
            inner: Arc::new(Inner { registry, reads }),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.reads.metrics
    }

    /// The budget account of identity `subject` (see `budget`): shared by
    /// all its connections, or a connection's own for `None`.
    pub fn account(&self, subject: Option<&str>) -> Arc<Account> {
        self.inner.reads.budget.account(subject)
    }

    pub fn pool(&self) -> &Pool<AsyncPgConnection> {
        self.inner.reads.pool()
    }

    /// Adds `member` to the group for (`ctx`, `query`), creating it if needed.
    pub fn join(
        &self,
        ctx: Arc<Context>,
        query: &LiveQuery,
        member: Member,
    ) -> Result<Box<dyn Membership>, HubError> {
        let table = query.table();
        let engine = self
            .inner
            .registry
            .get(table)
            .ok_or_else(|| HubError::UnknownTable(table.to_owned()))?;
        match engine.join(ctx, query, member) {
            Some(joined) => Ok(joined?),
            None => Err(HubError::UnknownTable(table.to_owned())),
        }
    }

    /// Routes a change from capture to its table's reader, and makes the
    /// tables whose policies depend on it re-run their queries.
    pub fn changed(&self, change: Change) {
        // A reconnect's "everything" is not a change anyone made: it has no
        // time to measure from.
        let noticed = (change != Change::Everything).then(Noticed::now);
        if let Change::Rows { table, .. } | Change::Table { table } = &change {
            for dependent in self.inner.registry.dependents(table) {
                dependent.changed_all(noticed);
            }
        }
        // Queries that include the changed table get its changed rows from
        // that table's reader (see `reader`), in order with its other changes.
        match change {
            Change::Rows { table, keys, parts } => {
                if let Some(engine) = self.inner.registry.get(table)
                    && !engine.changed(keys, noticed, parts)
                {
                    self.inner.reads.metrics.notifications_malformed.inc();
                    tracing::debug!(
                        table,
                        "a change named keys that are not the table's key type; refreshing the table"
                    );
                }
            }
            Change::Table { table } => {
                if let Some(engine) = self.inner.registry.get(table) {
                    engine.changed_all(noticed);
                }
            }
            Change::Everything => {
                for engine in self.inner.registry.engines() {
                    engine.changed_all(None);
                }
            }
        }
    }

    /// Completes once every table's reader has handled every change reported
    /// before this call: read the changed rows and offered them to the
    /// groups, or told them to re-run. Later changes do not delay it. WAL
    /// capture confirms a commit to its replication slot only after this,
    /// so a restart never skips a change that clients had not been sent.
    pub fn settled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tables: Vec<_> = self
            .inner
            .registry
            .engines()
            .map(|engine| engine.settled())
            .collect();
        async move {
            futures_util::future::join_all(tables).await;
        }
    }

    /// Stops the engine's tasks and waits for them, up to `timeout`. Groups
    /// end when their last member leaves; readers stop at once.
    pub async fn stop(&self, timeout: Duration) {
        let reads = &self.inner.reads;
        reads.close();
        reads.tasks.close();
        if tokio::time::timeout(timeout, reads.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("engine tasks still running after {timeout:?}; exiting anyway");
        }
    }
}

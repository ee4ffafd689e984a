//! How a table becomes live: a [`LiveTable`] implementation (row type, query
//! type, how to load rows) registered once in a [`Registry`]. The engine
//! (`hub`, `group`, `listener`, `session`) only ever sees tables through this
//! trait and never names one.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use pglive_schema::LiveQuery;
use serde::Serialize;

use crate::group::{self, GroupContext};
use crate::hub::HubInner;
use crate::reader::{self, ReaderShared};

/// Primary-key value as the engine handles it. Live tables have a single
/// integer primary-key column (`smallint`, `integer` or `bigint`).
pub type Key = i64;

/// A table whose query results pglive keeps live.
pub trait LiveTable: Send + Sync + 'static {
    /// Schema and table name, as the trigger reports them in its notice.
    const SCHEMA: &'static str;
    const NAME: &'static str;
    /// A result row, serialized to clients as is.
    type Row: Clone + PartialEq + Serialize + Send + Sync + fmt::Debug + 'static;
    /// This table's part of [`LiveQuery`], normalized.
    type Query: Clone + Send + Sync + fmt::Debug + 'static;

    /// Extracts this table's query from a subscription's query.
    fn query(query: &LiveQuery) -> Option<Self::Query>;
    /// The row's primary key.
    fn key(row: &Self::Row) -> Key;
    /// The order `load` returns rows in (ties broken by key).
    fn compare(query: &Self::Query, a: &Self::Row, b: &Self::Row) -> Ordering;
    /// The query's row limit, if any. Limited queries re-run in full when a
    /// change can affect them; unlimited ones are updated from changed rows.
    fn limit(query: &Self::Query) -> Option<u32>;
    /// Whether `row` passes the query's filter, exactly as the SQL `WHERE`
    /// that `load` builds would decide.
    fn matches(query: &Self::Query, row: &Self::Row) -> bool;
    /// Loads the query's whole result in order, at most `max_rows` rows.
    fn load<'a>(
        conn: &'a mut AsyncPgConnection,
        query: &'a Self::Query,
        max_rows: i64,
    ) -> BoxFuture<'a, QueryResult<Vec<Self::Row>>>;
    /// Loads the rows with these keys, unfiltered, in any order.
    fn fetch<'a>(
        conn: &'a mut AsyncPgConnection,
        keys: &'a [Key],
    ) -> BoxFuture<'a, QueryResult<Vec<Self::Row>>>;
}

/// Type-erased access to a registered table, so the hub can hold tables of
/// different row types side by side.
pub trait TableEngine: Send + Sync {
    fn schema(&self) -> &'static str;
    fn name(&self) -> &'static str;
    /// Starts the task that keeps one group's result for `query` current.
    fn spawn_group(&self, ctx: GroupContext, query: &LiveQuery) -> bool;
    /// Starts the table's change reader.
    fn spawn_reader(&self, hub: Weak<HubInner>, shared: Arc<ReaderShared>);
}

struct Registration<T>(std::marker::PhantomData<T>);

impl<T: LiveTable> TableEngine for Registration<T> {
    fn schema(&self) -> &'static str {
        T::SCHEMA
    }

    fn name(&self) -> &'static str {
        T::NAME
    }

    fn spawn_group(&self, ctx: GroupContext, query: &LiveQuery) -> bool {
        match T::query(query) {
            Some(q) => {
                tokio::spawn(group::run::<T>(ctx, q));
                true
            }
            None => false,
        }
    }

    fn spawn_reader(&self, hub: Weak<HubInner>, shared: Arc<ReaderShared>) {
        tokio::spawn(reader::run::<T>(hub, shared));
    }
}

/// The live tables, by name. Built once at start-up, read-only afterwards.
#[derive(Clone, Default)]
pub struct Registry {
    tables: HashMap<&'static str, Arc<dyn TableEngine>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// Makes `T` live.
    pub fn register<T: LiveTable>(mut self) -> Self {
        self.tables.insert(
            T::NAME,
            Arc::new(Registration::<T>(std::marker::PhantomData)),
        );
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn TableEngine>> {
        self.tables.get(name)
    }

    /// The table a change notice names, if it is live.
    pub fn by_notice(&self, schema: &str, name: &str) -> Option<&'static str> {
        self.tables
            .get(name)
            .filter(|t| t.schema() == schema)
            .map(|t| t.name())
    }

    /// Every registered table.
    pub fn engines(&self) -> impl Iterator<Item = &Arc<dyn TableEngine>> {
        self.tables.values()
    }

    /// Registered table names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.tables.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

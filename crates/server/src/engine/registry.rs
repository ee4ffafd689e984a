//! The live tables, type-erased: each registered table's groups and reader
//! behind one object-safe [`TableEngine`], so the hub holds tables of
//! different row types side by side. Built once from the contract's list of
//! tables (`pglive_schema::tables::visit_tables`); read-only afterwards.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pglive_schema::LiveQuery;
use pglive_schema::tables::visit_tables;

use super::group::{Groups, Including, JoinError, Membership};
use super::outbox::Member;
use super::reader::{self, ReaderShared};
use super::reads::Reads;
use super::table::{Context, Key, Listed, LiveTable, Noticed, Partition};

/// One live table, whatever its row type.
pub trait TableEngine: Send + Sync {
    fn schema(&self) -> &'static str;
    fn name(&self) -> &'static str;
    /// Joins `member` to the group of `query` (normalized here) in `ctx`.
    /// `None` when `query` is not for this table.
    fn join(
        &self,
        ctx: Arc<Context>,
        query: &LiveQuery,
        member: Member,
    ) -> Option<Result<Box<dyn Membership>, JoinError>>;
    /// These rows changed; keys as capture read them. Returns false when a
    /// key does not parse as this table's key type (the caller then treats
    /// the whole table as changed).
    fn changed(
        &self,
        keys: Vec<serde_json::Value>,
        noticed: Option<Noticed>,
        parts: Option<Partition>,
    ) -> bool;
    /// Any row may have changed.
    fn changed_all(&self, noticed: Option<Noticed>);
    /// Completes once the table's reader has handled every change recorded
    /// before the call (see `ReaderShared::settled`).
    fn settled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

struct Table<T: LiveTable> {
    groups: Arc<Groups<T>>,
    reader: Arc<ReaderShared<T>>,
}

impl<T: Listed> TableEngine for Table<T> {
    fn schema(&self) -> &'static str {
        T::SCHEMA
    }

    fn name(&self) -> &'static str {
        T::NAME
    }

    fn join(
        &self,
        ctx: Arc<Context>,
        query: &LiveQuery,
        member: Member,
    ) -> Option<Result<Box<dyn Membership>, JoinError>> {
        let query = T::normalized(T::query(query)?);
        Some(self.groups.join(ctx, query, member))
    }

    fn changed(
        &self,
        keys: Vec<serde_json::Value>,
        noticed: Option<Noticed>,
        parts: Option<Partition>,
    ) -> bool {
        let parsed: Result<Vec<Key<T>>, _> = keys.into_iter().map(serde_json::from_value).collect();
        match parsed {
            Ok(keys) => {
                self.reader.mark(keys, noticed, parts);
                true
            }
            Err(_) => {
                self.reader.mark_all(noticed);
                false
            }
        }
    }

    fn changed_all(&self, noticed: Option<Noticed>) {
        self.reader.mark_all(noticed);
    }

    fn settled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(self.reader.settled())
    }
}

/// The live tables, by name.
#[derive(Clone)]
pub struct Registry {
    tables: HashMap<&'static str, Arc<dyn TableEngine>>,
    /// Live tables by the (schema, table) their policies depend on.
    dependents: HashMap<(&'static str, &'static str), Vec<Arc<dyn TableEngine>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// A reader not started yet: it is given the groups that include its
/// table once every table is registered.
type Start<'a> = Box<dyn FnOnce(Vec<Arc<dyn Including>>) + 'a>;

/// Registers every table of the contract; its readers start afterwards.
struct Register<'a> {
    reads: &'a Arc<Reads>,
    tables: HashMap<&'static str, Arc<dyn TableEngine>>,
    dependents: HashMap<(&'static str, &'static str), Vec<Arc<dyn TableEngine>>>,
    /// Groups of live tables, by the tables their relations point to.
    including: HashMap<&'static str, Vec<Arc<dyn Including>>>,
    starts: Vec<(&'static str, Start<'a>)>,
}

impl<'a> pglive_schema::live::TableVisitor for Register<'a> {
    fn visit<T: Listed>(&mut self) {
        let groups = Groups::<T>::new(Arc::clone(self.reads));
        let reader = Arc::new(ReaderShared::<T>::new(self.reads.limits.max_pending_keys));
        let reads = self.reads;
        let (for_reader, for_run) = (Arc::clone(&groups), Arc::clone(&reader));
        self.starts.push((
            T::NAME,
            Box::new(move |including| {
                reads.tasks.spawn(reader::run::<T>(
                    for_run,
                    for_reader,
                    including,
                    Arc::clone(reads),
                ));
            }),
        ));
        let mut targets: Vec<&'static str> = T::RELATIONS.iter().map(|r| r.target).collect();
        targets.sort_unstable();
        targets.dedup();
        for target in targets {
            let including: Arc<dyn Including> = Arc::clone(&groups) as Arc<dyn Including>;
            self.including.entry(target).or_default().push(including);
        }
        let engine: Arc<dyn TableEngine> = Arc::new(Table { groups, reader });
        for dependency in T::DEPENDS_ON {
            self.dependents
                .entry((T::SCHEMA, dependency))
                .or_default()
                .push(Arc::clone(&engine));
        }
        self.tables.insert(T::NAME, engine);
    }
}

impl Registry {
    /// Every table the contract lists, each with its reader running.
    pub fn start(reads: &Arc<Reads>) -> Registry {
        let mut register = Register {
            reads,
            tables: HashMap::new(),
            dependents: HashMap::new(),
            including: HashMap::new(),
            starts: Vec::new(),
        };
        visit_tables(&mut register);
        let Register {
            tables,
            dependents,
            mut including,
            starts,
            ..
        } = register;
        for (name, start) in starts {
            start(including.remove(name).unwrap_or_default());
        }
        Registry { tables, dependents }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn TableEngine>> {
        self.tables.get(name)
    }

    /// The name of a table capture reports, when pglive cares about it: a
    /// live table, or one that live tables' policies depend on.
    pub fn resolve(&self, schema: &str, name: &str) -> Option<&'static str> {
        if let Some(table) = self.tables.get(name).filter(|t| t.schema() == schema) {
            return Some(table.name());
        }
        self.dependents
            .keys()
            .find(|(s, n)| *s == schema && *n == name)
            .map(|(_, n)| *n)
    }

    /// The tables (schema, name) that live tables' policies depend on and
    /// that are not live themselves.
    pub fn dependencies(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.dependents
            .keys()
            .filter(|(_, n)| !self.tables.contains_key(n))
            .copied()
    }

    /// The live tables whose policies depend on `name`.
    pub fn dependents(&self, name: &str) -> impl Iterator<Item = &Arc<dyn TableEngine>> {
        self.dependents
            .iter()
            .filter(move |((_, n), _)| *n == name)
            .flat_map(|(_, engines)| engines.iter())
    }

    pub fn engines(&self) -> impl Iterator<Item = &Arc<dyn TableEngine>> {
        self.tables.values()
    }

    /// Table names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.tables.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

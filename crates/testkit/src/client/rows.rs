//! What the decoding client keeps of each subscription: its rows, typed by
//! its table, kept by applying snapshots and diffs exactly as the server
//! defines them (`pglive_server::diff::apply`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use pglive_schema::live::{Listed, LiveTable, TableVisitor};
use pglive_schema::tables::visit_tables;
use pglive_schema::{TableChanges, TableRows};
use pglive_server::diff::{self, Changes};
use serde_json::Value;

/// One subscription's rows, typed by its table.
pub(super) trait Rows: Send + Sync {
    fn snapshot(&mut self, rows: TableRows);
    fn diff(&mut self, changes: TableChanges);
    fn json(&self) -> Vec<Value>;
    fn len(&self) -> usize;
}

struct Typed<T: LiveTable>(Vec<Arc<T>>);

impl<T: Listed> Rows for Typed<T> {
    fn snapshot(&mut self, rows: TableRows) {
        let table = rows.table();
        let rows = T::rows(rows)
            .unwrap_or_else(|| panic!("a snapshot of {table} for a {} subscription", T::NAME));
        self.0 = rows.into_iter().map(Arc::new).collect();
    }

    fn diff(&mut self, changes: TableChanges) {
        let table = changes.table();
        let (upserts, deletes) = T::changes(changes)
            .unwrap_or_else(|| panic!("a diff of {table} for a {} subscription", T::NAME));
        let changes = Changes {
            upserts: upserts
                .into_iter()
                .map(|p| (p.at, Arc::new(p.row)))
                .collect(),
            deletes,
        };
        diff::apply(&mut self.0, &changes, T::key);
    }

    fn json(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|r| serde_json::to_value(&**r).unwrap())
            .collect()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

type Factory = fn() -> Box<dyn Rows>;

struct Factories(HashMap<&'static str, Factory>);

impl TableVisitor for Factories {
    fn visit<T: Listed>(&mut self) {
        fn make<T: Listed>() -> Box<dyn Rows> {
            Box::new(Typed::<T>(Vec::new()))
        }
        self.0.insert(T::NAME, make::<T>);
    }
}

/// Empty rows of live table `table`.
pub(super) fn rows_of(table: &str) -> Box<dyn Rows> {
    static FACTORIES: OnceLock<HashMap<&'static str, Factory>> = OnceLock::new();
    let all = FACTORIES.get_or_init(|| {
        let mut f = Factories(HashMap::new());
        visit_tables(&mut f);
        f.0
    });
    let make = *all
        .get(table)
        .unwrap_or_else(|| panic!("no live table {table}"));
    make()
}

/// What a client knows of one subscription.
#[derive(Default)]
pub struct Sub {
    /// The result's epoch (from its last snapshot), for resuming.
    pub epoch: String,
    pub version: u64,
    /// `resumed` answers received.
    pub resumes: u64,
    pub snapshots: u64,
    pub diffs: u64,
    /// The `noticed_at` of the last diff.
    pub noticed_at: Option<u64>,
    /// The live count (`count: true`): the snapshot's, then each diff's
    /// that carries one, as a client keeps it.
    pub count: Option<u64>,
    pub(super) rows: Option<Box<dyn Rows>>,
}

impl std::fmt::Debug for Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sub")
            .field("version", &self.version)
            .field("rows", &self.len())
            .finish()
    }
}

impl Sub {
    /// The rows, serialized as the server serializes them.
    pub fn rows(&self) -> Vec<Value> {
        self.rows.as_ref().map(|r| r.json()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.rows.as_ref().map_or(0, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

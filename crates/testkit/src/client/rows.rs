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

/// The local column of each (table, relation).
fn locals() -> &'static HashMap<(&'static str, &'static str), &'static str> {
    struct Locals(HashMap<(&'static str, &'static str), &'static str>);
    impl TableVisitor for Locals {
        fn visit<T: Listed>(&mut self) {
            for r in T::RELATIONS {
                self.0.insert((T::NAME, r.name), r.local);
            }
        }
    }
    static LOCALS: OnceLock<HashMap<(&'static str, &'static str), &'static str>> = OnceLock::new();
    LOCALS.get_or_init(|| {
        let mut l = Locals(HashMap::new());
        visit_tables(&mut l);
        l.0
    })
}

/// One related entry as a client keeps it: its rows and count.
pub type Entry = (Vec<Value>, Option<u64>);

struct Factories(HashMap<&'static str, Factory>);

impl TableVisitor for Factories {
    fn visit<T: Listed>(&mut self) {
        fn make<T: Listed>() -> Box<dyn Rows> {
            Box::new(Typed::<T>(Vec::new()))
        }
        self.0.insert(T::NAME, make::<T>);
    }
}

/// The `&'static` name of live table `table`.
pub(super) fn table_name(table: &str) -> &'static str {
    struct Names(Vec<&'static str>);
    impl TableVisitor for Names {
        fn visit<T: Listed>(&mut self) {
            self.0.push(T::NAME);
        }
    }
    let mut names = Names(Vec::new());
    visit_tables(&mut names);
    names
        .0
        .into_iter()
        .find(|n| *n == table)
        .unwrap_or_else(|| panic!("no live table {table}"))
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
    /// Related entries by (relation, `of` as JSON text), as the contract
    /// says a client keeps them: replaced by each entry that arrives,
    /// dropped when no row has their value any more.
    pub related: HashMap<(String, String), Entry>,
    pub(super) table: &'static str,
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

    /// Applies a message's related entries, then drops the entries no row
    /// refers to.
    pub(super) fn relate(&mut self, entries: Option<Vec<pglive_schema::wire::Related>>) {
        for entry in entries.unwrap_or_default() {
            let rows = serde_json::to_value(&entry.rows).unwrap();
            let rows = rows["rows"].as_array().cloned().unwrap_or_default();
            self.related
                .insert((entry.relation, entry.of.to_string()), (rows, entry.count));
        }
        if self.related.is_empty() {
            return;
        }
        let rows = self.rows();
        let table = self.table;
        // The values rows have, per local column, as JSON text.
        let mut values: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
        self.related.retain(|(relation, of), _| {
            let Some(local) = locals().get(&(table, relation.as_str())) else {
                return false;
            };
            values
                .entry(local)
                .or_insert_with(|| rows.iter().map(|r| r[*local].to_string()).collect())
                .contains(of)
        });
    }

    /// The related rows and count of `row` for `relation`, as a client shows
    /// them: an absent entry is no rows (and a count of 0).
    pub fn related_of(&self, relation: &str, row: &Value) -> (Vec<Value>, u64) {
        let local = locals()
            .get(&(self.table, relation))
            .unwrap_or_else(|| panic!("{} has no relation {relation}", self.table));
        match self
            .related
            .get(&(relation.to_owned(), row[*local].to_string()))
        {
            Some((rows, count)) => (rows.clone(), count.unwrap_or(0)),
            None => (Vec::new(), 0),
        }
    }
}

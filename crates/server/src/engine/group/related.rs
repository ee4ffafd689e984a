//! A group's included relations: for every row of its result, the related
//! rows of each relation its query includes, kept current by keyed reads.
//!
//! Related rows are addressed by the value of the relation's local column
//! (a row's key for `has_many`, its foreign key for `belongs_to`). Each
//! include holds one entry per value among the published rows: the first
//! `per` related rows in the include's order, and their count. An entry is
//! read (one statement for all the values of a round, `row_number()` and
//! `count(*)` over a partition by the remote column) when its value enters
//! the result, and again when a change to the related table may have
//! touched it:
//! - the changed key is in the entry (the row changed, left, or moved to
//!   another value: its old value is the entry that held it);
//! - the changed row's current remote value is among the result's (it
//!   entered or moved here), found by the same statement's subquery on
//!   the changed keys;
//! - for a counted include, a changed key that no entry holds may have been
//!   counted past an entry's limit: every entry with rows past its limit is
//!   re-counted, since its old value is unknown.
//!
//! A whole re-run of the related table (capture reconnected, too many
//! changes) reads every entry again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use diesel::deserialize::QueryableByName;
use diesel::pg::Pg;
use diesel::row::NamedRow;
use futures_util::future::BoxFuture;
use pglive_schema::live::{IncludeVisitor, Relation};
use pglive_schema::scalar::{LiveKey, Scalar};
use pglive_schema::sql::Sql;
use serde::Serialize;

use crate::engine::reads::{ReadError, Reads};
use crate::engine::table::{Context, Key, LiveTable};

use super::shared::RelatedKeys;

/// What changed in a related table since the last round.
#[derive(Debug, Clone, Default)]
pub(super) enum Touch {
    #[default]
    Nothing,
    /// These keys (as capture reported them).
    Keys(Vec<Arc<Vec<serde_json::Value>>>),
    /// Any row.
    All,
}

impl Touch {
    /// What the pending changes say about `table`; `all`: the whole query re-runs.
    pub(super) fn of(
        pending: &HashMap<&'static str, RelatedKeys>,
        table: &str,
        all: bool,
    ) -> Touch {
        if all {
            return Touch::All;
        }
        match pending.get(table) {
            None => Touch::Nothing,
            Some(None) => Touch::All,
            Some(Some(lists)) => Touch::Keys(lists.clone()),
        }
    }
}

/// One included relation of a group's query, whatever the related type.
pub(super) trait Include<T: LiveTable>: Send + Sync {
    /// The related table.
    fn target(&self) -> &'static str;
    /// Related rows held, for the rows budget.
    fn held(&self) -> usize;
    /// Brings the entries up to date with `rows` (the published result)
    /// and `touch`; returns the entries that changed, encoded as the wire's
    /// `Related`.
    fn refresh<'a>(
        &'a mut self,
        reads: &'a Reads,
        ctx: &'a Context,
        rows: &'a [Arc<T>],
        touch: &'a Touch,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, ReadError>>;
    /// Every entry, for a snapshot.
    fn entries(&self) -> Vec<serde_json::Value>;
}

/// The tables a query includes.
pub(super) fn targets<T: LiveTable>(query: &T::Query) -> Vec<&'static str> {
    includes::<T>(query).iter().map(|i| i.target()).collect()
}

/// The includes of a query, in the order it names them.
pub(super) fn includes<T: LiveTable>(query: &T::Query) -> Vec<Box<dyn Include<T>>> {
    struct Collect<T>(Vec<Box<dyn Include<T>>>);
    impl<T: LiveTable> IncludeVisitor<T> for Collect<T> {
        fn include<U: LiveTable, K: LiveKey + Serialize>(
            &mut self,
            relation: &'static Relation,
            local: fn(&T) -> Option<K>,
            remote: fn(&U) -> Option<K>,
            query: U::Query,
            per: u32,
        ) {
            self.0.push(Box::new(Included::<T, U, K> {
                relation,
                local,
                remote,
                counted: U::counted(&query),
                query,
                per,
                entries: HashMap::new(),
            }));
        }
    }
    let mut collect = Collect(Vec::new());
    T::includes(query, &mut collect);
    collect.0
}

/// The related rows of one value.
struct Entry<U> {
    rows: Vec<Arc<U>>,
    /// How many related rows pass the include's filter.
    count: u64,
}

// Not derived: a derive would ask `U: Default` of the row type.
impl<U> Default for Entry<U> {
    fn default() -> Self {
        Entry {
            rows: Vec::new(),
            count: 0,
        }
    }
}

struct Included<T, U: LiveTable, K> {
    relation: &'static Relation,
    local: fn(&T) -> Option<K>,
    remote: fn(&U) -> Option<K>,
    query: U::Query,
    per: u32,
    counted: bool,
    entries: HashMap<K, Entry<U>>,
}

/// A related row with its partition's count.
struct Ranked<U> {
    row: U,
    count: i64,
}

impl<U: QueryableByName<Pg>> QueryableByName<Pg> for Ranked<U> {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> diesel::deserialize::Result<Self> {
        Ok(Ranked {
            row: U::build(row)?,
            count: NamedRow::get::<diesel::sql_types::BigInt, i64>(row, "pglive_count")?,
        })
    }
}

impl<T, U, K> Included<T, U, K>
where
    T: LiveTable,
    U: LiveTable,
    K: LiveKey + Serialize,
{
    /// The first `per` related rows of each value in `values` and their
    /// counts, plus (with `changed`) those of every value in `within` that
    /// a changed row now has.
    fn statement(&self, within: &[K], values: &[K], changed: &[Key<U>]) -> Sql {
        let remote = format!("\"{}\"", self.relation.remote);
        let mut sql = Sql::new("SELECT * FROM (SELECT ");
        sql.push(U::SELECT_LIST);
        sql.push(", row_number() OVER (PARTITION BY ");
        sql.push(&remote);
        sql.push(" ORDER BY ");
        U::order_by(&self.query, &mut sql);
        sql.push(") AS pglive_rank, count(*) OVER (PARTITION BY ");
        sql.push(&remote);
        sql.push(") AS pglive_count FROM ");
        sql.push(U::TABLE_SQL);
        sql.push(" WHERE ");
        sql.push(&remote);
        sql.push(" = ANY(");
        sql.bind(K::array(within));
        sql.push(") AND (");
        sql.push(&remote);
        sql.push(" = ANY(");
        sql.bind(K::array(values));
        sql.push(")");
        if !changed.is_empty() {
            sql.push(" OR ");
            sql.push(&remote);
            sql.push(" IN (SELECT ");
            sql.push(&remote);
            sql.push(" FROM ");
            sql.push(U::TABLE_SQL);
            sql.push(" WHERE \"");
            sql.push(U::KEY);
            sql.push("\" = ANY(");
            sql.bind(<Key<U> as Scalar>::array(changed));
            sql.push("))");
        }
        sql.push(")");
        U::conditions(&self.query, &mut sql, &mut false);
        sql.push(") pglive_related WHERE pglive_rank <= ");
        sql.bind(pglive_schema::sql::SqlValue::Int8(i64::from(self.per)));
        sql
    }

    fn encode(&self, of: &K, entry: Option<&Entry<U>>) -> serde_json::Value {
        let rows: &[Arc<U>] = entry.map_or(&[], |e| &e.rows);
        let mut value = serde_json::json!({
            "relation": self.relation.name,
            "of": of,
            "table": U::NAME,
            "rows": rows,
        });
        if self.counted {
            value["count"] = serde_json::json!(entry.map_or(0, |e| e.count));
        }
        value
    }

    async fn refresh_now(
        &mut self,
        reads: &Reads,
        ctx: &Context,
        rows: &[Arc<T>],
        touch: &Touch,
    ) -> Result<Vec<serde_json::Value>, ReadError> {
        let within: HashSet<K> = rows.iter().filter_map(|r| (self.local)(r)).collect();
        self.entries.retain(|k, _| within.contains(k));
        let mut affected: HashSet<K> = within
            .iter()
            .filter(|v| !self.entries.contains_key(*v))
            .cloned()
            .collect();
        let mut changed: Vec<Key<U>> = Vec::new();
        match touch {
            Touch::Nothing => {}
            Touch::All => affected.clone_from(&within),
            Touch::Keys(lists) => {
                let parsed: Result<HashSet<Key<U>>, _> = lists
                    .iter()
                    .flat_map(|l| l.iter())
                    .map(|v| serde_json::from_value::<Key<U>>(v.clone()))
                    .collect();
                match parsed {
                    // A key that is not the related table's key type: read
                    // every entry again rather than guess.
                    Err(_) => affected.clone_from(&within),
                    Ok(keys) => {
                        let mut held: HashSet<&Key<U>> = HashSet::new();
                        for (value, entry) in &self.entries {
                            let mut hit = false;
                            for row in &entry.rows {
                                if let Some(k) = keys.get(&row.key()) {
                                    held.insert(k);
                                    hit = true;
                                }
                            }
                            if hit {
                                affected.insert(value.clone());
                            }
                        }
                        // Every changed row's current value, held or not:
                        // a held row may have moved to another value.
                        let unheld = keys.len() > held.len();
                        changed = keys.iter().cloned().collect();
                        if self.counted && unheld {
                            affected.extend(
                                self.entries
                                    .iter()
                                    .filter(|(_, e)| e.count > e.rows.len() as u64)
                                    .map(|(v, _)| v.clone()),
                            );
                        }
                    }
                }
            }
        }
        if within.is_empty() || (affected.is_empty() && changed.is_empty()) {
            return Ok(Vec::new());
        }
        let within: Vec<K> = within.into_iter().collect();
        let values: Vec<K> = affected.iter().cloned().collect();
        let read: Vec<Ranked<U>> = reads
            .related(ctx, self.statement(&within, &values, &changed))
            .await?;
        let mut fresh: HashMap<K, Entry<U>> = HashMap::new();
        for ranked in read {
            let Some(value) = (self.remote)(&ranked.row) else {
                continue;
            };
            let entry = fresh.entry(value).or_default();
            entry.count = ranked.count.max(0) as u64;
            entry.rows.push(Arc::new(ranked.row));
        }
        // Values read because they were affected and have no related rows
        // now are empty; values the subquery found are in `fresh`.
        for value in affected {
            fresh.entry(value).or_default();
        }
        let mut out = Vec::new();
        for (value, mut entry) in fresh {
            entry.rows.sort_by(|a, b| U::compare(&self.query, a, b));
            let same = self.entries.get(&value).is_some_and(|old| {
                old.count == entry.count
                    && old.rows.len() == entry.rows.len()
                    && old.rows.iter().zip(&entry.rows).all(|(a, b)| a == b)
            });
            let known = self.entries.contains_key(&value);
            if !same {
                // A value new to the result with no related rows needs no
                // entry on the wire: no entry means none.
                if known || !entry.rows.is_empty() || (self.counted && entry.count > 0) {
                    out.push(self.encode(&value, Some(&entry)));
                }
            }
            self.entries.insert(value, entry);
        }
        Ok(out)
    }
}

impl<T, U, K> Include<T> for Included<T, U, K>
where
    T: LiveTable,
    U: LiveTable,
    K: LiveKey + Serialize,
{
    fn target(&self) -> &'static str {
        U::NAME
    }

    fn held(&self) -> usize {
        self.entries.values().map(|e| e.rows.len()).sum()
    }

    fn refresh<'a>(
        &'a mut self,
        reads: &'a Reads,
        ctx: &'a Context,
        rows: &'a [Arc<T>],
        touch: &'a Touch,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, ReadError>> {
        Box::pin(self.refresh_now(reads, ctx, rows, touch))
    }

    fn entries(&self) -> Vec<serde_json::Value> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.rows.is_empty() || (self.counted && e.count > 0))
            .map(|(v, e)| self.encode(v, Some(e)))
            .collect()
    }
}

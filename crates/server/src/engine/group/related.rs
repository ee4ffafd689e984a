//! A group's included relations: for every row of its result, the related
//! rows of each relation its query includes, kept current from the related
//! table's changed rows.
//!
//! Related rows are addressed by the value of the relation's local column
//! (a row's key for `has_many`, its foreign key for `belongs_to`). Each
//! include holds one entry per value among the published rows: the first
//! `per` related rows in the include's order, their count, and (up to
//! [`MAX_ENTRY_KEYS`]) the keys of every related row it counts. An entry is
//! read (one statement for all the values of a round, `row_number()` and
//! `count(*)` over a partition by the remote column) when its value enters
//! the result.
//!
//! Afterwards the related table's reader hands the group the changed rows,
//! read once in the group's context (see `reader`), and each include
//! decides in memory: a changed key leaves the entry that counted it (its
//! old value, known from the keys the entry holds) and joins the entry of
//! its row's current value when it passes the include's filter; the count
//! moves by one each way, and the row takes its place in the window when
//! it sorts before the window's last row. Applying a batch is idempotent
//! (a key is counted at most once, wherever it was), so a batch read
//! before an entry was last read does no harm: the change that followed is
//! in a later batch. An entry is read again only when memory cannot decide:
//! - a row left a full window that has rows past it (which comes next is
//!   not held), unless a row sorting before those takes its place;
//! - the entry has more related rows than [`MAX_ENTRY_KEYS`], so it does
//!   not know which keys it counts: any change to a key that no entry
//!   holds re-counts it.
//!
//! A whole re-run of the related table (capture reconnected, too many
//! changes, a read that failed) reads every entry again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use diesel::deserialize::QueryableByName;
use diesel::pg::Pg;
use diesel::row::NamedRow;
use futures_util::future::BoxFuture;
use pglive_schema::live::{IncludeVisitor, Relation};
use pglive_schema::scalar::LiveKey;
use pglive_schema::sql::Sql;
use serde::Serialize;

use crate::engine::reads::{ReadError, Reads};
use crate::engine::table::{Context, Key, LiveTable};

use super::shared::{Batch, RelatedBatch, RelatedBatches};

/// The most related rows an entry remembers the keys of. Past it the entry
/// keeps its count and window only, and is re-counted when a change it may
/// have counted comes; below it, every change is decided in memory.
pub const MAX_ENTRY_KEYS: usize = 256;

/// What changed in a related table since the last round.
#[derive(Clone, Default)]
pub(super) enum Touch {
    #[default]
    Nothing,
    /// These batches of changed rows, in the order its reader read them.
    Batches(Vec<RelatedBatch>),
    /// Any row.
    All,
}

impl Touch {
    /// What the pending changes say about `table`; `all`: the whole query re-runs.
    pub(super) fn of(
        pending: &HashMap<&'static str, RelatedBatches>,
        table: &str,
        all: bool,
    ) -> Touch {
        if all {
            return Touch::All;
        }
        match pending.get(table) {
            None => Touch::Nothing,
            Some(None) => Touch::All,
            Some(Some(batches)) => Touch::Batches(batches.clone()),
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
                held_by: HashMap::new(),
            }));
        }
    }
    let mut collect = Collect(Vec::new());
    T::includes(query, &mut collect);
    collect.0
}

/// The related rows of one value.
struct Entry<U: LiveTable> {
    /// The first `per` related rows, in the include's order.
    rows: Vec<Arc<U>>,
    /// How many related rows pass the include's filter.
    count: u64,
    /// The keys of those rows while there are at most [`MAX_ENTRY_KEYS`].
    keys: Option<HashSet<Key<U>>>,
}

// Not derived: a derive would ask `U: Default` of the row type.
impl<U: LiveTable> Default for Entry<U> {
    fn default() -> Self {
        Entry {
            rows: Vec::new(),
            count: 0,
            keys: Some(HashSet::new()),
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
    /// Which entry counts each key, for the entries that hold their keys.
    held_by: HashMap<Key<U>, K>,
}

/// A related row with its place in its partition and the partition's count.
struct Ranked<U> {
    row: U,
    rank: i64,
    count: i64,
}

impl<U: QueryableByName<Pg>> QueryableByName<Pg> for Ranked<U> {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> diesel::deserialize::Result<Self> {
        Ok(Ranked {
            row: U::build(row)?,
            rank: NamedRow::get::<diesel::sql_types::BigInt, i64>(row, "pglive_rank")?,
            count: NamedRow::get::<diesel::sql_types::BigInt, i64>(row, "pglive_count")?,
        })
    }
}

/// What applying batches left to do.
struct Applied<K, U> {
    /// Entries memory could not decide: read again.
    reread: HashSet<K>,
    /// Entries that may have changed, with what they were before.
    before: HashMap<K, (u64, Vec<Arc<U>>)>,
}

impl<T, U, K> Included<T, U, K>
where
    T: LiveTable,
    U: LiveTable,
    K: LiveKey + Serialize,
{
    /// For each value in `values`, the first `per` related rows and every
    /// related row of a partition of at most [`MAX_ENTRY_KEYS`] (for its
    /// keys), with their ranks and the partition's count.
    fn statement(&self, values: &[K]) -> Sql {
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
        sql.bind(K::array(values));
        sql.push(")");
        U::conditions(&self.query, &mut sql, &mut false);
        sql.push(") pglive_related WHERE pglive_rank <= ");
        sql.bind(pglive_schema::sql::SqlValue::Int8(i64::from(self.per)));
        sql.push(" OR pglive_count <= ");
        sql.bind(pglive_schema::sql::SqlValue::Int8(MAX_ENTRY_KEYS as i64));
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

    /// Drops the entry of `value` and its keys from the index.
    fn forget(&mut self, value: &K) {
        if let Some(entry) = self.entries.remove(value) {
            unindex(&mut self.held_by, value, entry.keys.as_ref());
        }
    }

    /// Replaces the entry of `value`.
    fn put(&mut self, value: K, entry: Entry<U>) {
        if let Some(old) = self.entries.get(&value) {
            unindex(&mut self.held_by, &value, old.keys.as_ref());
        }
        for key in entry.keys.iter().flatten() {
            self.held_by.insert(key.clone(), value.clone());
        }
        self.entries.insert(value, entry);
    }

    /// Applies one batch of changed related rows to the entries, in memory.
    fn apply(&mut self, batch: &Batch<U>, applied: &mut Applied<K, U>) {
        let now: HashMap<Key<U>, &Arc<U>> = batch.rows.iter().map(|r| (r.key(), r)).collect();
        // Entries past the key cap do not know which keys they count.
        let uncapped: Vec<K> = self
            .entries
            .iter()
            .filter(|(_, e)| e.keys.is_none())
            .map(|(v, _)| v.clone())
            .collect();
        // Entries that lost a window row while rows past it remain, with
        // the window's last row before the loss: every row not held sorts
        // after it.
        let mut refill: HashMap<K, Arc<U>> = HashMap::new();
        for key in batch.keys.iter() {
            let row = now.get(key).copied().filter(|r| U::matches(&self.query, r));
            // Out of the entry that counted it.
            match self.held_by.remove(key) {
                Some(value) => {
                    if let Some(entry) = self.entries.get_mut(&value) {
                        applied
                            .before
                            .entry(value.clone())
                            .or_insert_with(|| (entry.count, entry.rows.clone()));
                        if let Some(keys) = entry.keys.as_mut() {
                            keys.remove(key);
                        }
                        entry.count = entry.count.saturating_sub(1);
                        if let Some(at) = entry.rows.iter().position(|r| &r.key() == key) {
                            let last = entry.rows.last().map(Arc::clone);
                            entry.rows.remove(at);
                            if let Some(last) = last
                                && entry.count > entry.rows.len() as u64
                            {
                                refill.entry(value).or_insert(last);
                            }
                        }
                    }
                }
                None => {
                    // An entry past the cap may have counted it.
                    for value in &uncapped {
                        if let Some(entry) = self.entries.get_mut(value) {
                            entry.rows.retain(|r| &r.key() != key);
                        }
                        applied.reread.insert(value.clone());
                    }
                }
            }
            // Into the entry of its current value, if the result has it.
            let Some(row) = row else { continue };
            let Some(value) = (self.remote)(row).filter(|v| self.entries.contains_key(v)) else {
                continue;
            };
            if applied.reread.contains(&value) {
                continue;
            }
            let Some(entry) = self.entries.get_mut(&value) else {
                continue;
            };
            applied
                .before
                .entry(value.clone())
                .or_insert_with(|| (entry.count, entry.rows.clone()));
            let Some(keys) = entry.keys.as_mut() else {
                applied.reread.insert(value);
                continue;
            };
            keys.insert(key.clone());
            entry.count += 1;
            let per = self.per as usize;
            let before_all = match refill.get(&value) {
                // Rows past the window sort after `bound` (which may be this
                // row's own old version: at its old place it is still first).
                Some(bound) => !U::compare(&self.query, row, bound).is_gt(),
                None if entry.rows.len() < per => entry.count == entry.rows.len() as u64 + 1,
                None => entry
                    .rows
                    .last()
                    .is_some_and(|last| U::compare(&self.query, row, last).is_lt()),
            };
            if before_all {
                let at = entry
                    .rows
                    .partition_point(|r| U::compare(&self.query, r, row).is_lt());
                entry.rows.insert(at, Arc::clone(row));
                entry.rows.truncate(per);
                if entry.rows.len() == per || entry.count == entry.rows.len() as u64 {
                    refill.remove(&value);
                }
            } else if !refill.contains_key(&value) && entry.rows.len() < per {
                // A window short of rows with rows past it: not a state
                // memory can mend.
                applied.reread.insert(value.clone());
            }
            if keys.len() > MAX_ENTRY_KEYS {
                let keys = entry.keys.take();
                unindex(&mut self.held_by, &value, keys.as_ref());
            } else {
                self.held_by.insert(key.clone(), value);
            }
        }
        applied.reread.extend(refill.into_keys());
    }

    async fn refresh_now(
        &mut self,
        reads: &Reads,
        ctx: &Context,
        rows: &[Arc<T>],
        touch: &Touch,
    ) -> Result<Vec<serde_json::Value>, ReadError> {
        let within: HashSet<K> = rows.iter().filter_map(|r| (self.local)(r)).collect();
        let leaving: Vec<K> = self
            .entries
            .keys()
            .filter(|k| !within.contains(*k))
            .cloned()
            .collect();
        for value in &leaving {
            self.forget(value);
        }
        let mut applied = Applied {
            reread: within
                .iter()
                .filter(|v| !self.entries.contains_key(*v))
                .cloned()
                .collect(),
            before: HashMap::new(),
        };
        match touch {
            Touch::Nothing => {}
            Touch::All => applied.reread.clone_from(&within),
            Touch::Batches(batches) => {
                for batch in batches {
                    match batch.downcast_ref::<Batch<U>>() {
                        Some(batch) => self.apply(batch, &mut applied),
                        // Not this table's rows: read every entry again
                        // rather than guess.
                        None => applied.reread.clone_from(&within),
                    }
                }
            }
        }
        let mut out = Vec::new();
        if !applied.reread.is_empty() {
            let values: Vec<K> = applied.reread.iter().cloned().collect();
            let read: Vec<Ranked<U>> = reads.related(ctx, self.statement(&values)).await?;
            let mut fresh: HashMap<K, Entry<U>> = HashMap::new();
            for ranked in read {
                let Some(value) = (self.remote)(&ranked.row) else {
                    continue;
                };
                let entry = fresh.entry(value).or_default();
                entry.count = ranked.count.max(0) as u64;
                if entry.count > MAX_ENTRY_KEYS as u64 {
                    entry.keys = None;
                } else if let Some(keys) = entry.keys.as_mut() {
                    keys.insert(ranked.row.key());
                }
                if ranked.rank <= i64::from(self.per) {
                    entry.rows.push(Arc::new(ranked.row));
                }
            }
            for value in applied.reread {
                let mut entry = fresh.remove(&value).unwrap_or_default();
                entry.rows.sort_by(|a, b| U::compare(&self.query, a, b));
                let known = match applied.before.remove(&value) {
                    Some(before) => Some(before),
                    None => self.entries.get(&value).map(|e| (e.count, e.rows.clone())),
                };
                let changed = known
                    .as_ref()
                    .is_none_or(|(count, rows)| !same(*count, rows, &entry));
                // A value new to the result with no related rows needs no
                // entry on the wire: no entry means none.
                let worth =
                    known.is_some() || !entry.rows.is_empty() || (self.counted && entry.count > 0);
                if changed && worth {
                    out.push(self.encode(&value, Some(&entry)));
                }
                self.put(value, entry);
            }
        }
        for (value, (count, rows)) in applied.before {
            if let Some(entry) = self.entries.get(&value)
                && !same(count, &rows, entry)
            {
                out.push(self.encode(&value, Some(entry)));
            }
        }
        Ok(out)
    }
}

/// Whether an entry still has this count and these rows.
fn same<U: LiveTable>(count: u64, rows: &[Arc<U>], entry: &Entry<U>) -> bool {
    count == entry.count
        && rows.len() == entry.rows.len()
        && rows.iter().zip(&entry.rows).all(|(a, b)| a == b)
}

/// Removes `keys` of the entry of `value` from the index (a key that has
/// moved to another entry since stays).
fn unindex<Q: std::hash::Hash + Eq, K: Eq>(
    held_by: &mut HashMap<Q, K>,
    value: &K,
    keys: Option<&HashSet<Q>>,
) {
    for key in keys.into_iter().flatten() {
        if held_by.get(key) == Some(value) {
            held_by.remove(key);
        }
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

//! Keyed diffs between two ordered query results. Pure: no I/O, no async.
//!
//! A diff lists the keys that left the result and the rows that are new,
//! changed or moved, each with its index in the new result. Applying it
//! (remove deletes and upserted keys, then insert upserts in ascending index
//! order) turns the old result into the new one, row for row and in order.
//! Rows that kept their content and relative order are not sent: the set of
//! rows left in place is a longest increasing run of old positions, so a row
//! moving across a window boundary or a reordering sends as few rows as can be.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

/// The changes that turn one result into the next.
#[derive(Debug, PartialEq)]
pub struct Changes<R, K> {
    /// Rows to (re)place, ascending by index in the new result.
    pub upserts: Vec<(u32, Arc<R>)>,
    /// Keys of rows that are no longer in the result.
    pub deletes: Vec<K>,
}

impl<R, K> Changes<R, K> {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }

    /// Number of entries the diff carries.
    pub fn len(&self) -> usize {
        self.upserts.len() + self.deletes.len()
    }
}

/// Computes the keyed diff from `old` to `new`. Both must hold unique keys.
pub fn diff<R: PartialEq, K: Hash + Eq>(
    old: &[Arc<R>],
    new: &[Arc<R>],
    key: impl Fn(&R) -> K,
) -> Changes<R, K> {
    let old_pos: HashMap<K, usize> = old.iter().enumerate().map(|(i, r)| (key(r), i)).collect();
    let mut in_new: HashSet<K> = HashSet::with_capacity(new.len());

    // Rows present in both results with unchanged content, as (new index, old index).
    let mut kept: Vec<(usize, usize)> = Vec::with_capacity(new.len());
    let mut upsert_at: Vec<usize> = Vec::new();
    for (j, row) in new.iter().enumerate() {
        let k = key(row);
        let old_at = old_pos.get(&k).copied();
        in_new.insert(k);
        match old_at {
            Some(i) if Arc::ptr_eq(&old[i], row) || *old[i] == **row => kept.push((j, i)),
            _ => upsert_at.push(j),
        }
    }

    // Unchanged rows whose old positions are not in increasing order moved:
    // keep a longest increasing subsequence in place and re-send the rest.
    let olds: Vec<usize> = kept.iter().map(|&(_, i)| i).collect();
    let stay = longest_increasing(&olds);
    for (n, &(j, _)) in kept.iter().enumerate() {
        if !stay[n] {
            upsert_at.push(j);
        }
    }
    upsert_at.sort_unstable();

    let deletes = old
        .iter()
        .map(|r| key(r))
        .filter(|k| !in_new.contains(k))
        .collect();
    let upserts = upsert_at
        .into_iter()
        .map(|j| (index(j), Arc::clone(&new[j])))
        .collect();
    Changes { upserts, deletes }
}

/// A set of keys asked about once per row of a result: a few keys are
/// compared directly, which costs less than hashing every row's key (a
/// write usually changes one row, and a result may hold thousands).
pub enum Touched<'a, K> {
    Few(Vec<&'a K>),
    Many(&'a HashSet<K>),
}

impl<'a, K: std::hash::Hash + Eq> Touched<'a, K> {
    pub fn new(keys: &'a HashSet<K>) -> Touched<'a, K> {
        if keys.len() <= 8 {
            Touched::Few(keys.iter().collect())
        } else {
            Touched::Many(keys)
        }
    }

    pub fn contains(&self, key: &K) -> bool {
        match self {
            Touched::Few(keys) => keys.contains(&key),
            Touched::Many(keys) => keys.contains(key),
        }
    }
}

/// The diff from `old` to `new` when only the rows whose keys are in
/// `touched` may have changed, entered or left, and every other row kept
/// its relative order: what an unlimited query's result becomes after a
/// batch. It scans both results once and compares keys only with the few
/// touched ones, where [`diff`] hashes every row of both: with a 10,000-row
/// result and one changed row, that hashing was most of a change's cost.
///
/// Every touched row of `new` is sent (unless none of them changed content
/// or position): applying removes them and the untouched rows keep their
/// order, so inserting them at their new indices rebuilds `new` exactly.
pub fn diff_touched<R: PartialEq, K: Hash + Eq>(
    old: &[Arc<R>],
    new: &[Arc<R>],
    touched: &HashSet<K>,
    key: impl Fn(&R) -> K,
) -> Changes<R, K> {
    let touched = Touched::new(touched);
    let is_touched = |k: &K| touched.contains(k);
    let before: Vec<(usize, K)> = old
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let k = key(r);
            is_touched(&k).then_some((i, k))
        })
        .collect();
    let mut upserts: Vec<(u32, Arc<R>)> = Vec::new();
    let mut unchanged = true;
    let mut seen: Vec<bool> = vec![false; before.len()];
    for (j, row) in new.iter().enumerate() {
        let k = key(row);
        if !is_touched(&k) {
            continue;
        }
        match before.iter().position(|(_, b)| *b == k) {
            Some(n) => {
                seen[n] = true;
                let i = before[n].0;
                if i != j || !(Arc::ptr_eq(&old[i], row) || *old[i] == **row) {
                    unchanged = false;
                }
            }
            None => unchanged = false,
        }
        upserts.push((index(j), Arc::clone(row)));
    }
    let deletes: Vec<K> = before
        .into_iter()
        .zip(seen)
        .filter(|(_, seen)| !seen)
        .map(|((_, k), _)| k)
        .collect();
    if unchanged && deletes.is_empty() {
        upserts.clear();
    }
    Changes { upserts, deletes }
}

fn index(j: usize) -> u32 {
    u32::try_from(j).unwrap_or(u32::MAX)
}

/// Marks the members of one longest strictly increasing subsequence of `xs`.
fn longest_increasing(xs: &[usize]) -> Vec<bool> {
    // tails[l] = index into xs of the smallest tail of an increasing run of length l+1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; xs.len()];
    for (n, &x) in xs.iter().enumerate() {
        let l = tails.partition_point(|&t| xs[t] < x);
        prev[n] = if l > 0 { Some(tails[l - 1]) } else { None };
        if l == tails.len() {
            tails.push(n);
        } else {
            tails[l] = n;
        }
    }
    let mut stay = vec![false; xs.len()];
    let mut cursor = tails.last().copied();
    while let Some(n) = cursor {
        stay[n] = true;
        cursor = prev[n];
    }
    stay
}

/// Applies `changes` to `rows` the way a client does. Used by tests and by the
/// property check that diffs reproduce the new result.
pub fn apply<R, K: Hash + Eq + Clone>(
    rows: &mut Vec<Arc<R>>,
    changes: &Changes<R, K>,
    key: impl Fn(&R) -> K,
) {
    let gone: HashSet<K> = changes
        .deletes
        .iter()
        .cloned()
        .chain(changes.upserts.iter().map(|(_, r)| key(r)))
        .collect();
    rows.retain(|r| !gone.contains(&key(r)));
    for (at, row) in &changes.upserts {
        let at = (*at as usize).min(rows.len());
        rows.insert(at, Arc::clone(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Key = i64;

    #[derive(Debug, Clone, PartialEq)]
    struct Row {
        id: Key,
        v: u8,
    }

    fn rows(spec: &[(Key, u8)]) -> Vec<Arc<Row>> {
        spec.iter()
            .map(|&(id, v)| Arc::new(Row { id, v }))
            .collect()
    }

    fn key(r: &Row) -> Key {
        r.id
    }

    #[test]
    fn nothing_changed_is_empty() {
        let a = rows(&[(1, 0), (2, 0)]);
        assert!(diff(&a, &a.clone(), key).is_empty());
    }

    #[test]
    fn insert_update_delete() {
        let a = rows(&[(1, 0), (2, 0), (3, 0)]);
        let b = rows(&[(1, 0), (3, 9), (4, 0)]);
        let d = diff(&a, &b, key);
        assert_eq!(d.deletes, vec![2]);
        let placed: Vec<(u32, Key)> = d.upserts.iter().map(|(at, r)| (*at, r.id)).collect();
        assert_eq!(placed, vec![(1, 3), (2, 4)]);
    }

    #[test]
    fn a_move_sends_one_row() {
        let a = rows(&[(1, 0), (2, 0), (3, 0), (4, 0)]);
        let b = rows(&[(2, 0), (3, 0), (4, 0), (1, 0)]);
        let d = diff(&a, &b, key);
        assert_eq!(d.len(), 1);
        let mut applied = a.clone();
        apply(&mut applied, &d, key);
        assert_eq!(applied, b);
    }

    proptest! {
        /// Applying the diff to the old result always yields the new one.
        #[test]
        fn apply_diff_reproduces_new(
            old in proptest::collection::btree_map(0i64..60, 0u8..3, 0..40),
            new in proptest::collection::btree_map(0i64..60, 0u8..3, 0..40),
            shuffle_old in any::<u64>(),
            shuffle_new in any::<u64>(),
        ) {
            let order = |m: std::collections::BTreeMap<i64, u8>, seed: u64| {
                let mut v: Vec<(Key, u8)> = m.into_iter().collect();
                v.sort_by_key(|(id, val)| (id.wrapping_mul(seed as i64 | 1) ^ seed as i64, *val));
                rows(&v)
            };
            let a = order(old, shuffle_old);
            let b = order(new, shuffle_new);
            let d = diff(&a, &b, key);
            let mut applied = a.clone();
            apply(&mut applied, &d, key);
            prop_assert_eq!(applied, b.clone());
            prop_assert!(d.len() <= a.len() + b.len());
        }

        /// When only touched rows change, enter or leave (untouched rows
        /// keep their order), the touched diff rebuilds the new result, and
        /// is empty exactly when nothing changed.
        #[test]
        fn touched_diff_reproduces_new(
            old in proptest::collection::btree_map(0i64..60, 0u8..3, 0..40),
            changes in proptest::collection::btree_map(0i64..60, proptest::option::of(0u8..3), 0..12),
        ) {
            // Ordered by value, then key, as a query's order breaks ties.
            let sorted = |m: &std::collections::BTreeMap<i64, u8>| {
                let mut v: Vec<(Key, u8)> = m.iter().map(|(k, v)| (*k, *v)).collect();
                v.sort_by_key(|(id, val)| (*val, *id));
                rows(&v)
            };
            let mut next = old.clone();
            for (k, v) in &changes {
                match v {
                    Some(v) => { next.insert(*k, *v); }
                    None => { next.remove(k); }
                }
            }
            let a = sorted(&old);
            let b = sorted(&next);
            let touched: HashSet<Key> = changes.keys().copied().collect();
            let d = diff_touched(&a, &b, &touched, key);
            let mut applied = a.clone();
            apply(&mut applied, &d, key);
            prop_assert_eq!(&applied, &b);
            prop_assert_eq!(d.is_empty(), a == b);
        }
    }
}

//! A group's window: the rows it knows of its query's ordered result, how a
//! run of the whole query fills it ([`load`]), and how the reader's batches
//! change it in memory ([`apply`]), without a query as long as the known rows
//! still fill a limited query's window.

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::diff::Touched;
use crate::engine::reads::{ReadError, Reads};
use crate::engine::table::{Context, Key, LiveTable};

use super::shared::Batch;

/// Rows in a query's order, shared: an unlimited query's published rows
/// are its whole window, and sharing the vector (instead of copying it)
/// saves a pass of reference-count increments over every row per change.
pub(super) type Rows<T> = Arc<Vec<Arc<T>>>;

/// The rows a group knows: a prefix of its query's full ordered result.
pub(super) struct Window<T> {
    /// In the query's order.
    pub(super) prefix: Rows<T>,
    /// `None`: `prefix` is the whole result. `Some(row)`: `prefix` holds
    /// exactly the result's rows that sort at or before `row` (which need
    /// not be in it any more); rows after it are unknown.
    pub(super) boundary: Option<Arc<T>>,
}

/// What applying changed rows did to a group's window.
pub(super) enum Applied<T: LiveTable> {
    Unchanged,
    /// The new window, and the keys of the batches that changed it.
    Changed(Window<T>, HashSet<Key<T>>),
    /// A limited query lost rows it cannot replace from memory.
    NeedsQuery,
}

/// Rows past a limited window that a group keeps, so that rows leaving the
/// window are replaced from memory. A quarter of the limit, within bounds.
fn lookahead(limit: u32) -> usize {
    (limit as usize / 4).clamp(8, 256)
}

/// Runs the group's whole query: the window, and a few rows past it for a
/// limited query.
pub(super) async fn load<T: LiveTable>(
    reads: &Reads,
    ctx: &Context,
    query: &T::Query,
) -> Result<Window<T>, ReadError> {
    let max_rows = i64::from(reads.limits.max_rows);
    match T::limit(query) {
        None => {
            let prefix = reads.load::<T>(ctx, query, max_rows + 1).await?;
            Ok(Window {
                prefix: Arc::new(prefix),
                boundary: None,
            })
        }
        Some(limit) => {
            let want = limit as usize + lookahead(limit);
            let prefix = reads.load::<T>(ctx, query, want as i64).await?;
            Ok(loaded(prefix, limit))
        }
    }
}

/// The window a limited query's load gives: when it returned every row it
/// asked for, more may follow the last one.
fn loaded<T>(prefix: Vec<Arc<T>>, limit: u32) -> Window<T> {
    let want = limit as usize + lookahead(limit);
    let boundary = (prefix.len() >= want)
        .then(|| prefix.last().cloned())
        .flatten();
    Window {
        prefix: Arc::new(prefix),
        boundary,
    }
}

/// Applies the reader's batches, in order, to the window. A batch affects
/// the group when one of its keys is in the window (the row changed or left)
/// or one of its rows passes the filter within the window (it entered or
/// changed).
pub(super) fn apply<T: LiveTable>(
    query: &T::Query,
    limit: Option<u32>,
    window: &Window<T>,
    batches: &[Arc<Batch<T>>],
) -> Applied<T> {
    let mut prefix: Option<Vec<Arc<T>>> = None;
    let within = |row: &T| {
        window
            .boundary
            .as_ref()
            .is_none_or(|b| T::compare(query, row, b).is_le())
    };
    let mut touched: HashSet<Key<T>> = HashSet::new();
    for batch in batches {
        let base = prefix.as_deref().unwrap_or(&window.prefix);
        let entering: Vec<&Arc<T>> = batch
            .rows
            .iter()
            .filter(|r| T::matches(query, r) && within(r))
            .collect();
        let keys = Touched::new(&batch.keys);
        let present = base.iter().any(|r| keys.contains(&r.key()));
        if entering.is_empty() && !present {
            continue;
        }
        touched.extend(batch.keys.iter().cloned());
        prefix = Some(merge::<T>(query, base, &keys, entering));
    }
    let Some(mut prefix) = prefix else {
        return Applied::Unchanged;
    };
    let mut boundary = window.boundary.clone();
    if let Some(limit) = limit {
        let limit = limit as usize;
        if boundary.is_some() && prefix.len() < limit {
            return Applied::NeedsQuery;
        }
        // Rows entering before the boundary grow the prefix; keep it bounded.
        let keep = limit + lookahead(limit as u32);
        if prefix.len() > keep + lookahead(limit as u32) {
            prefix.truncate(keep);
            boundary = prefix.last().cloned();
        }
    }
    Applied::Changed(
        Window {
            prefix: Arc::new(prefix),
            boundary,
        },
        touched,
    )
}

/// `old` with the rows whose keys are `touched` replaced by `entering`
/// (touched rows that no longer pass the filter, or no longer exist,
/// leave), placed by the query's order.
fn merge<T: LiveTable>(
    query: &T::Query,
    old: &[Arc<T>],
    touched: &Touched<'_, Key<T>>,
    entering: Vec<&Arc<T>>,
) -> Vec<Arc<T>> {
    let mut rows: Vec<Arc<T>> = old
        .iter()
        .filter(|r| !touched.contains(&r.key()))
        .cloned()
        .collect();
    for row in entering {
        let at = rows.partition_point(|r| T::compare(query, r, row).is_lt());
        rows.insert(at, Arc::clone(row));
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, NaiveDate, Utc};
    use pglive_schema::live::Direction;
    use pglive_schema::tables::{TasksFilter, TasksOrder, TasksOrderBy, TasksQuery};
    use pglive_schema::{Task, TaskStatus};
    use proptest::prelude::*;

    use super::*;

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1 + d).unwrap()
    }

    fn task() -> impl Strategy<Value = (i32, Task)> {
        (
            1..80i32,
            prop::sample::select(vec!["a", "b", "A", "a_", "é", "zz"]),
            prop::sample::select(TaskStatus::ALL.to_vec()),
            0..4i16,
            prop::option::of(prop::sample::select(vec!["alice", "bob"])),
            prop::option::of(0..4u32),
            0..3i64,
        )
            .prop_map(|(id, title, status, priority, assignee, due, t)| {
                let at: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000 + t, 0).unwrap();
                (
                    id,
                    Task {
                        id,
                        title: title.into(),
                        status,
                        priority,
                        assignee: assignee.map(Into::into),
                        due_date: due.map(date),
                        created_at: at,
                        updated_at: at,
                        tenant: "public".into(),
                    },
                )
            })
    }

    fn query() -> impl Strategy<Value = TasksQuery> {
        let by = prop::sample::select(vec![
            TasksOrderBy::Id,
            TasksOrderBy::Title,
            TasksOrderBy::Status,
            TasksOrderBy::Priority,
            TasksOrderBy::Assignee,
            TasksOrderBy::DueDate,
            TasksOrderBy::CreatedAt,
        ]);
        (
            by,
            any::<bool>(),
            prop::option::of(1..8u32),
            prop::option::of(prop::sample::select(vec!["a", "_", "z"])),
            prop::option::of(0..4i16),
            prop::option::of(any::<bool>()),
            prop::option::of(0..4u32),
        )
            .prop_map(|(by, desc, limit, contains, priority, unassigned, due)| {
                TasksQuery {
                    filter: Some(TasksFilter {
                        title_contains: contains.map(Into::into),
                        priority_gte: priority,
                        assignee_is_null: unassigned,
                        due_date_lt: due.map(date),
                        ..TasksFilter::default()
                    }),
                    order: Some(TasksOrder {
                        by,
                        dir: Some(if desc {
                            Direction::Desc
                        } else {
                            Direction::Asc
                        }),
                    }),
                    limit,
                    count: None,
                    include: None,
                }
            })
    }

    /// What a fresh run of the query gives: filter, sort, nothing more.
    fn naive(query: &TasksQuery, db: &BTreeMap<i32, Task>) -> Vec<Arc<Task>> {
        let mut rows: Vec<Arc<Task>> = db
            .values()
            .filter(|r| Task::matches(query, r))
            .cloned()
            .map(Arc::new)
            .collect();
        rows.sort_by(|a, b| Task::compare(query, a, b));
        rows
    }

    fn load(query: &TasksQuery, db: &BTreeMap<i32, Task>) -> Window<Task> {
        let all = naive(query, db);
        match query.limit {
            None => Window {
                prefix: Arc::new(all),
                boundary: None,
            },
            Some(limit) => {
                let want = limit as usize + lookahead(limit);
                loaded(all.into_iter().take(want).collect(), limit)
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Applying changed rows in memory (with the window and its rows past
        /// the limit) always publishes what a fresh query would return, row
        /// for row and in order, and the window stays an exact prefix.
        #[test]
        fn in_memory_merge_equals_a_fresh_query(
            initial in prop::collection::vec(task(), 0..70),
            query in query(),
            steps in prop::collection::vec(
                (prop::collection::vec(task(), 0..14), prop::collection::vec(0..24usize, 0..12), prop::option::of((1..80i32, 100..130i32))),
                1..12,
            ),
        ) {
            let mut db: BTreeMap<i32, Task> = initial.into_iter().collect();
            let mut window = load(&query, &db);
            let limit = query.limit.map_or(usize::MAX, |l| l as usize);
            for (upserts, deletes, rekey) in steps {
                let mut touched = HashSet::new();
                for (id, row) in upserts {
                    touched.insert(id);
                    db.insert(id, row);
                }
                // Deletes name rows by their place in the result, so that they
                // hit the window (and drain what it keeps past the limit).
                let ranked: Vec<i32> = naive(&query, &db).iter().map(|r| r.id).collect();
                for at in deletes {
                    if let Some(&id) = ranked.get(at) {
                        touched.insert(id);
                        db.remove(&id);
                    }
                }
                if let Some((old, new)) = rekey
                    && let Some(mut row) = db.remove(&old)
                {
                    row.id = new;
                    db.insert(new, row);
                    touched.insert(old);
                    touched.insert(new);
                }
                let batch = Arc::new(Batch {
                    rows: touched.iter().filter_map(|k| db.get(k)).cloned().map(Arc::new).collect(),
                    keys: Arc::new(touched),
                    noticed: None,
                });
                window = match apply::<Task>(&query, query.limit, &window, &[batch]) {
                    Applied::Unchanged => window,
                    Applied::Changed(w, _) => w,
                    Applied::NeedsQuery => load(&query, &db),
                };
                let fresh = naive(&query, &db);
                let published: Vec<&Task> = window.prefix.iter().take(limit).map(|r| &**r).collect();
                let want: Vec<&Task> = fresh.iter().take(limit).map(|r| &**r).collect();
                prop_assert_eq!(published, want);
                let exact: Vec<&Task> = match &window.boundary {
                    None => fresh.iter().map(|r| &**r).collect(),
                    Some(b) => fresh.iter().filter(|r| Task::compare(&query, r, b).is_le()).map(|r| &**r).collect(),
                };
                let prefix: Vec<&Task> = window.prefix.iter().map(|r| &**r).collect();
                prop_assert_eq!(prefix, exact, "the window is an exact prefix");
            }
        }
    }
}

//! Live queries: the typed values a client subscribes to.
//!
//! A query names a table and, optionally, a filter, an order and a limit, each
//! built only from that table's own fields. Clients never send SQL or free-form
//! column names; the server turns these values into parameterized diesel queries.
//!
//! Text ordering is byte order: the demo tables declare their text columns
//! `COLLATE "C"`, so `ORDER BY` in PostgreSQL and [`ItemsOrder::compare`] /
//! [`TasksOrder::compare`] in Rust agree row for row. The server relies on that
//! to place changed rows without re-running the whole query.

use std::cmp::Ordering;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::rows::{Item, Task, TaskStatus};

/// Longest accepted text in a filter, in characters.
pub const MAX_FILTER_TEXT: usize = 200;

/// A subscription's query. `{"table":"items"}` is all items ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum LiveQuery {
    Items(ItemsQuery),
    Tasks(TasksQuery),
}

/// Sort direction; ascending when omitted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

impl Direction {
    fn apply(self, ordering: Ordering) -> Ordering {
        match self {
            Direction::Asc => ordering,
            Direction::Desc => ordering.reverse(),
        }
    }
}

/// A query over `items`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub filter: Option<ItemsFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub order: Option<ItemsOrder>,
    /// At most this many rows (after ordering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// Conditions on `items`; all given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsFilter {
    /// Case-sensitive substring of `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name_contains: Option<String>,
    /// Exactly this `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name_eq: Option<String>,
}

impl ItemsFilter {
    /// Whether `item` passes this filter, exactly as the SQL `WHERE` does
    /// (text comparisons are byte-wise: the columns are `COLLATE "C"`).
    pub fn matches(&self, item: &Item) -> bool {
        self.name_contains
            .as_ref()
            .is_none_or(|text| item.name.contains(text.as_str()))
            && self.name_eq.as_ref().is_none_or(|name| &item.name == name)
    }
}

/// Columns `items` can be ordered by. Ties are broken by `id` in the same direction.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemsOrderBy {
    #[default]
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
}

/// Order of an items query.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ItemsOrder {
    pub by: ItemsOrderBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub dir: Option<Direction>,
}

impl ItemsOrder {
    /// The order PostgreSQL produces for this query, as a comparison of rows.
    pub fn compare(&self, a: &Item, b: &Item) -> Ordering {
        let primary = match self.by {
            ItemsOrderBy::Id => Ordering::Equal,
            ItemsOrderBy::Name => a.name.as_bytes().cmp(b.name.as_bytes()),
            ItemsOrderBy::CreatedAt => a.created_at.cmp(&b.created_at),
            ItemsOrderBy::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        };
        self.dir
            .unwrap_or_default()
            .apply(primary.then(a.id.cmp(&b.id)))
    }
}

/// A query over `tasks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub filter: Option<TasksFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub order: Option<TasksOrder>,
    /// At most this many rows (after ordering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// Conditions on `tasks`; all given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TasksFilter {
    /// The task's status is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<Vec<TaskStatus>>,
    /// Assigned to exactly this person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub assignee: Option<String>,
    /// `true`: only unassigned tasks; `false`: only assigned ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub unassigned: Option<bool>,
    /// Priority at least this (0–3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub priority_min: Option<i16>,
    /// Case-sensitive substring of `title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub title_contains: Option<String>,
    /// Due strictly before this date (tasks with no due date never match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub due_before: Option<NaiveDate>,
}

impl TasksFilter {
    /// Whether `task` passes this filter, exactly as the SQL `WHERE` does:
    /// a condition on a NULL column is false, text comparisons are byte-wise.
    pub fn matches(&self, task: &Task) -> bool {
        self.status
            .as_ref()
            .is_none_or(|s| s.contains(&task.status))
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| task.assignee.as_ref() == Some(a))
            && self
                .unassigned
                .is_none_or(|unassigned| task.assignee.is_none() == unassigned)
            && self.priority_min.is_none_or(|p| task.priority >= p)
            && self
                .title_contains
                .as_ref()
                .is_none_or(|text| task.title.contains(text.as_str()))
            && self
                .due_before
                .is_none_or(|date| task.due_date.is_some_and(|due| due < date))
    }
}

/// Columns `tasks` can be ordered by. Ties are broken by `id` in the same direction.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TasksOrderBy {
    #[default]
    Id,
    Title,
    Priority,
    /// Tasks without a due date sort last when ascending, first when descending
    /// (PostgreSQL's default for NULLs).
    DueDate,
    CreatedAt,
    UpdatedAt,
}

/// Order of a tasks query.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct TasksOrder {
    pub by: TasksOrderBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub dir: Option<Direction>,
}

/// Orders `None` after every value, as PostgreSQL does for ascending order.
fn nulls_last<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
    }
}

impl TasksOrder {
    /// The order PostgreSQL produces for this query, as a comparison of rows.
    pub fn compare(&self, a: &Task, b: &Task) -> Ordering {
        let primary = match self.by {
            TasksOrderBy::Id => Ordering::Equal,
            TasksOrderBy::Title => a.title.as_bytes().cmp(b.title.as_bytes()),
            TasksOrderBy::Priority => a.priority.cmp(&b.priority),
            TasksOrderBy::DueDate => nulls_last(&a.due_date, &b.due_date),
            TasksOrderBy::CreatedAt => a.created_at.cmp(&b.created_at),
            TasksOrderBy::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        };
        self.dir
            .unwrap_or_default()
            .apply(primary.then(a.id.cmp(&b.id)))
    }
}

/// Why a query was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

fn check_text(field: &str, value: &Option<String>) -> Result<(), QueryError> {
    match value {
        Some(text) if text.chars().count() > MAX_FILTER_TEXT => Err(QueryError(format!(
            "filter.{field} is longer than {MAX_FILTER_TEXT} characters"
        ))),
        Some(text) if text.contains('\0') => Err(QueryError(format!(
            "filter.{field} contains a NUL character"
        ))),
        _ => Ok(()),
    }
}

fn check_limit(limit: Option<u32>, max_limit: u32) -> Result<(), QueryError> {
    match limit {
        Some(0) => Err(QueryError("limit must be at least 1".into())),
        Some(n) if n > max_limit => Err(QueryError(format!(
            "limit {n} is above the server's maximum of {max_limit}"
        ))),
        _ => Ok(()),
    }
}

/// Spells out the default order so that omitted and explicit defaults compare equal.
fn normal_order<O: Default + HasDirection>(order: Option<O>) -> O {
    let mut order = order.unwrap_or_default();
    order.set_direction();
    order
}

trait HasDirection {
    fn set_direction(&mut self);
}

impl HasDirection for ItemsOrder {
    fn set_direction(&mut self) {
        self.dir = Some(self.dir.unwrap_or_default());
    }
}

impl HasDirection for TasksOrder {
    fn set_direction(&mut self) {
        self.dir = Some(self.dir.unwrap_or_default());
    }
}

impl LiveQuery {
    /// The table this query reads.
    pub fn table(&self) -> &'static str {
        match self {
            LiveQuery::Items(_) => "items",
            LiveQuery::Tasks(_) => "tasks",
        }
    }

    /// Every table name a query may name, for error messages.
    pub const TABLES: [&'static str; 2] = ["items", "tasks"];

    /// Checks the parts serde cannot: lengths, ranges and the limit cap.
    pub fn validate(&self, max_limit: u32) -> Result<(), QueryError> {
        match self {
            LiveQuery::Items(q) => {
                if let Some(f) = &q.filter {
                    check_text("name_contains", &f.name_contains)?;
                    check_text("name_eq", &f.name_eq)?;
                }
                check_limit(q.limit, max_limit)
            }
            LiveQuery::Tasks(q) => {
                if let Some(f) = &q.filter {
                    check_text("assignee", &f.assignee)?;
                    check_text("title_contains", &f.title_contains)?;
                    if f.priority_min.is_some_and(|p| !(0..=3).contains(&p)) {
                        return Err(QueryError("filter.priority_min must be 0 to 3".into()));
                    }
                    if f.status.as_ref().is_some_and(Vec::is_empty) {
                        return Err(QueryError(
                            "filter.status must list at least one status".into(),
                        ));
                    }
                }
                check_limit(q.limit, max_limit)
            }
        }
    }

    /// The canonical form: equal results imply equal normalized queries, so
    /// clients that ask the same thing in different words share one group.
    /// Empty filters vanish, status lists are sorted and deduplicated, and the
    /// default order (id ascending) is spelled out.
    pub fn normalized(&self) -> LiveQuery {
        match self {
            LiveQuery::Items(q) => {
                let filter = q
                    .filter
                    .clone()
                    .filter(|f| f.name_contains.is_some() || f.name_eq.is_some());
                LiveQuery::Items(ItemsQuery {
                    filter,
                    order: Some(normal_order(q.order)),
                    limit: q.limit,
                })
            }
            LiveQuery::Tasks(q) => {
                let filter = q.filter.clone().map(|mut f| {
                    if let Some(statuses) = &mut f.status {
                        statuses.sort();
                        statuses.dedup();
                    }
                    f
                });
                let filter = filter.filter(|f| f != &TasksFilter::default());
                LiveQuery::Tasks(TasksQuery {
                    filter,
                    order: Some(normal_order(q.order)),
                    limit: q.limit,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplest_query_parses() {
        let q: LiveQuery = serde_json::from_str(r#"{"table":"items"}"#).unwrap();
        assert_eq!(q, LiveQuery::Items(ItemsQuery::default()));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<LiveQuery>(r#"{"table":"items","filtr":{}}"#);
        assert!(err.is_err());
        let err = serde_json::from_str::<LiveQuery>(
            r#"{"table":"tasks","filter":{"status":["todo"],"sql":"1=1"}}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn equivalent_queries_normalize_equal() {
        let a: LiveQuery =
            serde_json::from_str(r#"{"table":"tasks","filter":{"status":["done","todo","done"]}}"#)
                .unwrap();
        let b: LiveQuery = serde_json::from_str(
            r#"{"table":"tasks","filter":{"status":["todo","done"]},"order":{"by":"id"}}"#,
        )
        .unwrap();
        assert_eq!(a.normalized(), b.normalized());
        let c: LiveQuery = serde_json::from_str(r#"{"table":"tasks","filter":{}}"#).unwrap();
        let d: LiveQuery = serde_json::from_str(r#"{"table":"tasks"}"#).unwrap();
        assert_eq!(c.normalized(), d.normalized());
        assert_ne!(a.normalized(), d.normalized());
    }

    #[test]
    fn validation_catches_ranges() {
        let q = |s: &str| serde_json::from_str::<LiveQuery>(s).unwrap();
        assert!(q(r#"{"table":"items","limit":0}"#).validate(100).is_err());
        assert!(q(r#"{"table":"items","limit":101}"#).validate(100).is_err());
        assert!(q(r#"{"table":"items","limit":100}"#).validate(100).is_ok());
        assert!(
            q(r#"{"table":"tasks","filter":{"priority_min":7}}"#)
                .validate(100)
                .is_err()
        );
        assert!(
            q(r#"{"table":"tasks","filter":{"status":[]}}"#)
                .validate(100)
                .is_err()
        );
        let long = "x".repeat(MAX_FILTER_TEXT + 1);
        let json = format!(r#"{{"table":"items","filter":{{"name_contains":"{long}"}}}}"#);
        assert!(q(&json).validate(100).is_err());
    }
}

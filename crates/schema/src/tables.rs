//! The live tables: one declaration each, and the one list of them.
//!
//! Making a table live is a migration that creates it and calls
//! `pglive_watch('table')`, a declaration here, and its line in
//! `live_schema!` below. Everything else (row decoding, the typed query,
//! filter and order types with their TypeScript and JSON Schema, REST bodies,
//! the SQL of every read and write, and the server's handling) follows from
//! them.
//!
//! A declaration is the row struct with `#[live_table(name, key)]`, one field
//! per column (`Option<T>` for a nullable one), and per column what clients
//! may do with it:
//!
//! - `filter(eq, in, contains, gt, gte, lt, lte, is_null)`: the conditions a
//!   query may put on it (`contains` for text, `is_null` for nullable columns);
//!   each becomes a filter field `<column>_<operator>`.
//! - `order`: queries may order by it (the key always may; ties break by key).
//! - `generated`: the database sets it (serial key, timestamps); never written.
//!   `default`: a write may omit it. `immutable`: PATCH cannot change it.
//! - `text(max = N)`: written text is not blank and at most N characters;
//!   `range(min = A, max = B)` for integers.
//!
//! And per table, `depends_on(other, ...)`: tables its row-level security
//! policies read (a subquery on them). pglive cannot see through a policy;
//! with this, a change to `other` re-runs this table's queries, so rows that
//! became visible or invisible because of it arrive or leave.
//!
//! Relations, per table: `has_many(comments = Comment, by = task_id)` (the
//! target's `task_id` holds this table's key) and `belongs_to(task = Task,
//! by = task_id)` (this table's `task_id` holds the target's key). A query
//! may then `include` them (see README "Related rows and counts"); the
//! server checks at start-up that a foreign key backs each one.
//!
//! Text columns that can be filtered by range or ordered should be declared
//! `COLLATE "C"` in SQL: pglive's statements compare text byte-wise (so that
//! Rust and PostgreSQL agree), and an index serves them only in that collation.

use chrono::{DateTime, NaiveDate, Utc};
use pglive_macros::{live_schema, live_table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::scalar::Int8;

/// One row of `items`: the article's table, with timestamps. Its key is a
/// `bigint`, so it travels as a decimal string.
#[live_table(name = "items", key = id)]
pub struct Item {
    #[live(generated, filter(eq, in))]
    pub id: Int8,
    #[live(filter(eq, contains), order, text(max = 200))]
    pub name: String,
    #[live(generated, filter(gte, lt), order)]
    pub created_at: DateTime<Utc>,
    #[live(generated, order)]
    pub updated_at: DateTime<Utc>,
    /// The tenant the row belongs to; a write without one takes the token's.
    #[live(default, immutable, filter(eq), order, text(max = 100))]
    pub tenant: String,
}

/// Where a task is in its life. Stored as `TEXT` with a `CHECK` constraint, so
/// adding a state is a migration plus a variant here, not an enum-type dance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    InProgress,
    Done,
}

crate::text_enum!(TaskStatus {
    Todo = "todo",
    InProgress = "in_progress",
    Done = "done",
});

/// One row of `tasks`: what a team dashboard filters and sorts by.
#[live_table(name = "tasks", key = id, has_many(comments = Comment, by = task_id))]
pub struct Task {
    #[live(generated, filter(eq, in))]
    pub id: i32,
    #[live(filter(eq, contains), order, text(max = 200))]
    pub title: String,
    #[live(default, filter(eq, in), order)]
    pub status: TaskStatus,
    /// 0 (low) to 3 (urgent).
    #[live(default, filter(eq, gte, lte), order, range(min = 0, max = 3))]
    pub priority: i16,
    #[live(filter(eq, is_null), order, text(max = 100))]
    pub assignee: Option<String>,
    /// A calendar date, `YYYY-MM-DD`.
    #[live(filter(lt, gte, is_null), order)]
    pub due_date: Option<NaiveDate>,
    #[live(generated, order)]
    pub created_at: DateTime<Utc>,
    #[live(generated, order)]
    pub updated_at: DateTime<Utc>,
    /// The tenant the row belongs to; a write without one takes the token's.
    #[live(default, immutable, filter(eq), order, text(max = 100))]
    pub tenant: String,
}

/// A comment on a task. Its key is a uuid; `edited_at` stays null until the
/// body changes. Its policy shows a comment when its task is visible, so it
/// depends on `tasks`.
#[live_table(
    name = "comments",
    key = id,
    depends_on(tasks),
    belongs_to(task = Task, by = task_id)
)]
pub struct Comment {
    #[live(generated, filter(eq, in))]
    pub id: Uuid,
    #[live(immutable, filter(eq, in), order)]
    pub task_id: i32,
    #[live(filter(eq), order, text(max = 100))]
    pub author: String,
    #[live(filter(contains), text(max = 2000))]
    pub body: String,
    #[live(generated, filter(gte, lt), order)]
    pub created_at: DateTime<Utc>,
    #[live(generated, filter(is_null), order)]
    pub edited_at: Option<DateTime<Utc>>,
}

live_schema! {
    items: Item,
    tasks: Task,
    comments: Comment,
}

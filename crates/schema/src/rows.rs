//! Row types of the live tables, as they travel to clients.
//!
//! Primary keys are `i32` (`SERIAL`) on purpose: every value is exactly
//! representable as a JavaScript `number`, so the generated TypeScript uses
//! `number` and no row ever needs `bigint` or string ids.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::deserialize::FromSqlRow;
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::{Queryable, Selectable};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::tables::{items, tasks};

/// One row of `items`: the article's table, with timestamps.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, Queryable, Selectable,
)]
#[diesel(table_name = items, check_for_backend(Pg))]
pub struct Item {
    pub id: i32,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a task is in its life. Stored as `TEXT` with a `CHECK` constraint, so
/// adding a state is a migration plus a variant here, not an enum-type dance.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    TS,
    JsonSchema,
    AsExpression,
    FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = Text)]
pub enum TaskStatus {
    Todo,
    InProgress,
    Done,
}

impl TaskStatus {
    /// Every status, in board order.
    pub const ALL: [TaskStatus; 3] = [TaskStatus::Todo, TaskStatus::InProgress, TaskStatus::Done];

    /// The value stored in the `status` column (the same as the wire form).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
        }
    }

    /// Parses the stored form; `None` for anything else.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

impl ToSql<Text, Pg> for TaskStatus {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
    }
}

impl FromSql<Text, Pg> for TaskStatus {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        TaskStatus::parse(&text).ok_or_else(|| format!("unknown task status {text:?}").into())
    }
}

/// One row of `tasks`: what a team dashboard filters and sorts by.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, Queryable, Selectable,
)]
#[diesel(table_name = tasks, check_for_backend(Pg))]
pub struct Task {
    pub id: i32,
    pub title: String,
    pub status: TaskStatus,
    /// 0 (low) to 3 (urgent).
    pub priority: i16,
    pub assignee: Option<String>,
    /// A calendar date, `YYYY-MM-DD`.
    pub due_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

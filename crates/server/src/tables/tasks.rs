use std::cmp::Ordering;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use pglive_schema::LiveQuery;
use pglive_schema::Task;
use pglive_schema::query::{Direction, TasksOrderBy, TasksQuery};
use pglive_schema::tables::tasks;

use super::{int4_keys, like_contains};
use crate::table::{Key, LiveTable};

/// `tasks` as a live table.
#[derive(Debug)]
pub struct Tasks;

impl LiveTable for Tasks {
    const SCHEMA: &'static str = "public";
    const NAME: &'static str = "tasks";
    type Row = Task;
    type Query = TasksQuery;

    fn query(query: &LiveQuery) -> Option<TasksQuery> {
        match query {
            LiveQuery::Tasks(q) => Some(q.clone()),
            _ => None,
        }
    }

    fn key(row: &Task) -> Key {
        Key::from(row.id)
    }

    fn compare(query: &TasksQuery, a: &Task, b: &Task) -> Ordering {
        query.order.unwrap_or_default().compare(a, b)
    }

    fn limit(query: &TasksQuery) -> Option<u32> {
        query.limit
    }

    fn matches(query: &TasksQuery, row: &Task) -> bool {
        query.filter.as_ref().is_none_or(|f| f.matches(row))
    }

    fn load<'a>(
        conn: &'a mut AsyncPgConnection,
        query: &'a TasksQuery,
        max_rows: i64,
    ) -> BoxFuture<'a, QueryResult<Vec<Task>>> {
        Box::pin(async move {
            let mut q = tasks::table.select(Task::as_select()).into_boxed();
            if let Some(f) = &query.filter {
                if let Some(statuses) = &f.status {
                    q = q.filter(tasks::status.eq_any(statuses.iter().map(|s| s.as_str())));
                }
                if let Some(assignee) = &f.assignee {
                    q = q.filter(tasks::assignee.eq(assignee.clone()));
                }
                match f.unassigned {
                    Some(true) => q = q.filter(tasks::assignee.is_null()),
                    Some(false) => q = q.filter(tasks::assignee.is_not_null()),
                    None => {}
                }
                if let Some(p) = f.priority_min {
                    q = q.filter(tasks::priority.ge(p));
                }
                if let Some(text) = &f.title_contains {
                    q = q.filter(tasks::title.like(like_contains(text)));
                }
                if let Some(date) = f.due_before {
                    q = q.filter(tasks::due_date.lt(date));
                }
            }
            let order = query.order.unwrap_or_default();
            let desc = order.dir.unwrap_or_default() == Direction::Desc;
            // PostgreSQL's defaults put NULL due dates last ascending and first
            // descending, which is what `TasksOrder::compare` does.
            q = match (order.by, desc) {
                (TasksOrderBy::Id, false) => q.order(tasks::id.asc()),
                (TasksOrderBy::Id, true) => q.order(tasks::id.desc()),
                (TasksOrderBy::Title, false) => q.order((tasks::title.asc(), tasks::id.asc())),
                (TasksOrderBy::Title, true) => q.order((tasks::title.desc(), tasks::id.desc())),
                (TasksOrderBy::Priority, false) => {
                    q.order((tasks::priority.asc(), tasks::id.asc()))
                }
                (TasksOrderBy::Priority, true) => {
                    q.order((tasks::priority.desc(), tasks::id.desc()))
                }
                (TasksOrderBy::DueDate, false) => q.order((tasks::due_date.asc(), tasks::id.asc())),
                (TasksOrderBy::DueDate, true) => {
                    q.order((tasks::due_date.desc(), tasks::id.desc()))
                }
                (TasksOrderBy::CreatedAt, false) => {
                    q.order((tasks::created_at.asc(), tasks::id.asc()))
                }
                (TasksOrderBy::CreatedAt, true) => {
                    q.order((tasks::created_at.desc(), tasks::id.desc()))
                }
                (TasksOrderBy::UpdatedAt, false) => {
                    q.order((tasks::updated_at.asc(), tasks::id.asc()))
                }
                (TasksOrderBy::UpdatedAt, true) => {
                    q.order((tasks::updated_at.desc(), tasks::id.desc()))
                }
            };
            let limit = query.limit.map_or(max_rows, |l| i64::from(l).min(max_rows));
            q.limit(limit).load(conn).await
        })
    }

    fn fetch<'a>(
        conn: &'a mut AsyncPgConnection,
        keys: &'a [Key],
    ) -> BoxFuture<'a, QueryResult<Vec<Task>>> {
        Box::pin(async move {
            tasks::table
                .filter(tasks::id.eq_any(int4_keys(keys)))
                .select(Task::as_select())
                .load(conn)
                .await
        })
    }
}

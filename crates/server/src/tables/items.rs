use std::cmp::Ordering;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use pglive_schema::Item;
use pglive_schema::LiveQuery;
use pglive_schema::query::{Direction, ItemsOrderBy, ItemsQuery};
use pglive_schema::tables::items;

use super::{int4_keys, like_contains};
use crate::table::{Key, LiveTable};

/// `items` as a live table.
#[derive(Debug)]
pub struct Items;

impl LiveTable for Items {
    const SCHEMA: &'static str = "public";
    const NAME: &'static str = "items";
    type Row = Item;
    type Query = ItemsQuery;

    fn query(query: &LiveQuery) -> Option<ItemsQuery> {
        match query {
            LiveQuery::Items(q) => Some(q.clone()),
            _ => None,
        }
    }

    fn key(row: &Item) -> Key {
        Key::from(row.id)
    }

    fn compare(query: &ItemsQuery, a: &Item, b: &Item) -> Ordering {
        query.order.unwrap_or_default().compare(a, b)
    }

    fn limit(query: &ItemsQuery) -> Option<u32> {
        query.limit
    }

    fn matches(query: &ItemsQuery, row: &Item) -> bool {
        query.filter.as_ref().is_none_or(|f| f.matches(row))
    }

    fn load<'a>(
        conn: &'a mut AsyncPgConnection,
        query: &'a ItemsQuery,
        max_rows: i64,
    ) -> BoxFuture<'a, QueryResult<Vec<Item>>> {
        Box::pin(async move {
            let mut q = items::table.select(Item::as_select()).into_boxed();
            if let Some(f) = &query.filter {
                if let Some(text) = &f.name_contains {
                    q = q.filter(items::name.like(like_contains(text)));
                }
                if let Some(name) = &f.name_eq {
                    q = q.filter(items::name.eq(name.clone()));
                }
            }
            let order = query.order.unwrap_or_default();
            let desc = order.dir.unwrap_or_default() == Direction::Desc;
            q = match (order.by, desc) {
                (ItemsOrderBy::Id, false) => q.order(items::id.asc()),
                (ItemsOrderBy::Id, true) => q.order(items::id.desc()),
                (ItemsOrderBy::Name, false) => q.order((items::name.asc(), items::id.asc())),
                (ItemsOrderBy::Name, true) => q.order((items::name.desc(), items::id.desc())),
                (ItemsOrderBy::CreatedAt, false) => {
                    q.order((items::created_at.asc(), items::id.asc()))
                }
                (ItemsOrderBy::CreatedAt, true) => {
                    q.order((items::created_at.desc(), items::id.desc()))
                }
                (ItemsOrderBy::UpdatedAt, false) => {
                    q.order((items::updated_at.asc(), items::id.asc()))
                }
                (ItemsOrderBy::UpdatedAt, true) => {
                    q.order((items::updated_at.desc(), items::id.desc()))
                }
            };
            let limit = query.limit.map_or(max_rows, |l| i64::from(l).min(max_rows));
            q.limit(limit).load(conn).await
        })
    }

    fn fetch<'a>(
        conn: &'a mut AsyncPgConnection,
        keys: &'a [Key],
    ) -> BoxFuture<'a, QueryResult<Vec<Item>>> {
        Box::pin(async move {
            items::table
                .filter(items::id.eq_any(int4_keys(keys)))
                .select(Item::as_select())
                .load(conn)
                .await
        })
    }
}

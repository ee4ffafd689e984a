//! Statements for live tables: SQL text with typed parameters.
//!
//! Every read and write pglive makes on a live table is a [`Sql`] built by the
//! code `#[live_table]` generates: the table's own identifiers (from the
//! declaration, never from a client) and client values only as parameters.
//! [`Sql`] is a diesel query (`QueryFragment`), so the server runs it with
//! diesel-async like any other; building one does no I/O.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{self, Array, Untyped};
use uuid::Uuid;

/// A statement parameter. A closed set: exactly the column types a live
/// table may declare (see [`crate::scalar::Scalar`]), and arrays of them.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Text(String),
    Date(NaiveDate),
    Timestamptz(DateTime<Utc>),
    Uuid(Uuid),
    BoolArray(Vec<bool>),
    Int2Array(Vec<i16>),
    Int4Array(Vec<i32>),
    Int8Array(Vec<i64>),
    TextArray(Vec<String>),
    DateArray(Vec<NaiveDate>),
    TimestamptzArray(Vec<DateTime<Utc>>),
    UuidArray(Vec<Uuid>),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Param(SqlValue),
}

/// SQL text interleaved with parameters. Loads rows by column name (its SQL
/// type is `Untyped`, so rows decode with `QueryableByName`).
#[derive(Clone, PartialEq, Default)]
pub struct Sql {
    parts: Vec<Part>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        let mut sql = Sql::default();
        sql.push(text);
        sql
    }

    /// Appends SQL text. Only ever called with text from a declaration or
    /// from pglive itself, never with a client's value.
    pub fn push(&mut self, text: &str) {
        match self.parts.last_mut() {
            Some(Part::Text(last)) => last.push_str(text),
            _ => self.parts.push(Part::Text(text.to_owned())),
        }
    }

    /// Appends a parameter (`$n`).
    pub fn bind(&mut self, value: SqlValue) {
        self.parts.push(Part::Param(value));
    }

    /// Starts the next `WHERE` condition: ` WHERE ` the first time, then ` AND `.
    pub fn condition(&mut self, first: &mut bool) {
        self.push(if *first { " WHERE " } else { " AND " });
        *first = false;
    }

    /// The parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &SqlValue> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param(v) => Some(v),
            Part::Text(_) => None,
        })
    }
}

/// The statement as PostgreSQL receives it: text with `$n` placeholders.
impl fmt::Display for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut n = 0;
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(text)?,
                Part::Param(_) => {
                    n += 1;
                    write!(f, "${n}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sql")
            .field("text", &self.to_string())
            .field("params", &self.params().collect::<Vec<_>>())
            .finish()
    }
}

impl QueryId for Sql {
    type QueryId = ();
    // The text varies with the query's shape; diesel caches the prepared
    // statement by its text instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for Sql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_sql(text),
                Part::Param(value) => match value {
                    SqlValue::Bool(v) => out.push_bind_param::<sql_types::Bool, _>(v)?,
                    SqlValue::Int2(v) => out.push_bind_param::<sql_types::SmallInt, _>(v)?,
                    SqlValue::Int4(v) => out.push_bind_param::<sql_types::Integer, _>(v)?,
                    SqlValue::Int8(v) => out.push_bind_param::<sql_types::BigInt, _>(v)?,
                    SqlValue::Text(v) => out.push_bind_param::<sql_types::Text, _>(v)?,
                    SqlValue::Date(v) => out.push_bind_param::<sql_types::Date, _>(v)?,
                    SqlValue::Timestamptz(v) => {
                        out.push_bind_param::<sql_types::Timestamptz, _>(v)?
                    }
                    SqlValue::Uuid(v) => out.push_bind_param::<sql_types::Uuid, _>(v)?,
                    SqlValue::BoolArray(v) => {
                        out.push_bind_param::<Array<sql_types::Bool>, _>(v)?
                    }
                    SqlValue::Int2Array(v) => {
                        out.push_bind_param::<Array<sql_types::SmallInt>, _>(v)?
                    }
                    SqlValue::Int4Array(v) => {
                        out.push_bind_param::<Array<sql_types::Integer>, _>(v)?
                    }
                    SqlValue::Int8Array(v) => {
                        out.push_bind_param::<Array<sql_types::BigInt>, _>(v)?
                    }
                    SqlValue::TextArray(v) => {
                        out.push_bind_param::<Array<sql_types::Text>, _>(v)?
                    }
                    SqlValue::DateArray(v) => {
                        out.push_bind_param::<Array<sql_types::Date>, _>(v)?
                    }
                    SqlValue::TimestamptzArray(v) => {
                        out.push_bind_param::<Array<sql_types::Timestamptz>, _>(v)?
                    }
                    SqlValue::UuidArray(v) => {
                        out.push_bind_param::<Array<sql_types::Uuid>, _>(v)?
                    }
                },
            }
        }
        Ok(())
    }
}

/// `INSERT INTO t (given columns) VALUES (...) RETURNING ...`.
#[derive(Debug)]
pub struct Insert {
    table: &'static str,
    columns: Vec<&'static str>,
    values: Vec<Option<SqlValue>>,
}

impl Insert {
    pub fn new(table: &'static str) -> Insert {
        Insert {
            table,
            columns: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A column's value; `None` is SQL `NULL`.
    pub fn value(&mut self, column: &'static str, value: Option<SqlValue>) {
        self.columns.push(column);
        self.values.push(value);
    }

    pub fn finish(self, returning: &str) -> Sql {
        let mut sql = Sql::new("INSERT INTO ");
        sql.push(self.table);
        if self.columns.is_empty() {
            sql.push(" DEFAULT VALUES");
        } else {
            sql.push(" (");
            sql.push(&self.columns.join(", "));
            sql.push(") VALUES (");
            for (i, value) in self.values.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                match value {
                    Some(v) => sql.bind(v),
                    None => sql.push("NULL"),
                }
            }
            sql.push(")");
        }
        sql.push(returning);
        sql
    }
}

/// `UPDATE t SET ... WHERE key = $n RETURNING ...`.
#[derive(Debug)]
pub struct Update {
    table: &'static str,
    sets: Vec<(&'static str, Option<SqlValue>)>,
}

impl Update {
    pub fn new(table: &'static str) -> Update {
        Update {
            table,
            sets: Vec::new(),
        }
    }

    /// Sets a column; `None` is SQL `NULL`.
    pub fn set(&mut self, column: &'static str, value: Option<SqlValue>) {
        self.sets.push((column, value));
    }

    /// The statement, or `None` when nothing is set.
    pub fn finish(self, key: &'static str, value: SqlValue, returning: &str) -> Option<Sql> {
        if self.sets.is_empty() {
            return None;
        }
        let mut sql = Sql::new("UPDATE ");
        sql.push(self.table);
        sql.push(" SET ");
        for (i, (column, value)) in self.sets.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(column);
            sql.push(" = ");
            match value {
                Some(v) => sql.bind(v),
                None => sql.push("NULL"),
            }
        }
        sql.push(" WHERE ");
        sql.push(key);
        sql.push(" = ");
        sql.bind(value);
        sql.push(returning);
        Some(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_the_parameters() {
        let mut sql = Sql::new("SELECT 1 FROM t");
        let mut first = true;
        sql.condition(&mut first);
        sql.push("a = ");
        sql.bind(SqlValue::Int4(1));
        sql.condition(&mut first);
        sql.push("b = ");
        sql.bind(SqlValue::Text("x".into()));
        assert_eq!(sql.to_string(), "SELECT 1 FROM t WHERE a = $1 AND b = $2");
        assert_eq!(sql.params().count(), 2);
    }

    #[test]
    fn inserts_and_updates() {
        let mut insert = Insert::new("\"t\"");
        insert.value("\"a\"", Some(SqlValue::Int4(1)));
        insert.value("\"b\"", None);
        assert_eq!(
            insert.finish(" RETURNING \"a\"").to_string(),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, NULL) RETURNING \"a\""
        );
        assert_eq!(
            Insert::new("\"t\"").finish("").to_string(),
            "INSERT INTO \"t\" DEFAULT VALUES"
        );
        let mut update = Update::new("\"t\"");
        update.set("\"b\"", None);
        let sql = update.finish("\"id\"", SqlValue::Int4(7), "").unwrap();
        assert_eq!(
            sql.to_string(),
            "UPDATE \"t\" SET \"b\" = NULL WHERE \"id\" = $1"
        );
        assert!(
            Update::new("\"t\"")
                .finish("\"id\"", SqlValue::Int4(7), "")
                .is_none()
        );
    }
}

//! What a live table is: the [`LiveTable`] trait that `#[live_table]`
//! implements, and the helpers its generated code calls.
//!
//! The engine sees tables only through this trait. Everything table-specific
//! (columns, filters, order, the SQL of every statement) is generated from the
//! declaration; the engine never names a table.

use std::cmp::Ordering;
use std::fmt::Debug;

use diesel::deserialize::QueryableByName;
use diesel::pg::Pg;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::api::Invalid;
pub use crate::decoding::{object, object_required};
use crate::ops::{ColumnSql, Op};
use crate::scalar::{LiveKey, Scalar, ScalarKind};
use crate::sql::Sql;
use crate::tables::{LiveQuery, TableChanges, TableRows};
use crate::wire::Placed;

/// A table whose query results pglive keeps live. Implemented on the row
/// type by `#[live_table]`; see `crate::tables` for the declarations.
pub trait LiveTable:
    Clone
    + PartialEq
    + Debug
    + Serialize
    + DeserializeOwned
    + QueryableByName<Pg>
    + TS
    + JsonSchema
    + Send
    + Sync
    + 'static
{
    /// Schema and table name, as change capture reports them.
    const SCHEMA: &'static str;
    const NAME: &'static str;
    /// The key column's name.
    const KEY: &'static str;
    /// Every column, for clients (validation rules) and generic tests.
    const COLUMNS: &'static [Column];
    /// Tables (in the same schema) whose changes can change which of this
    /// table's rows a context sees: its policies read them. Their changes
    /// make this table's groups re-run. They must be watched too.
    const DEPENDS_ON: &'static [&'static str];
    /// The relations declared on this table (`has_many`, `belongs_to`).
    const RELATIONS: &'static [Relation];
    /// `"schema"."table"`, and the columns every read selects.
    const TABLE_SQL: &'static str;
    const SELECT_LIST: &'static str;
    /// The key's type: integer, `Int8`, `Uuid` or text.
    type Key: LiveKey;
    /// This table's query (filter, order, limit).
    type Query: Clone
        + Debug
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + TS
        + JsonSchema
        + Send
        + Sync
        + 'static;
    /// What included relations add to a row in the client (TypeScript
    /// only; `()` for a table without relations).
    type Related: TS;
    /// REST bodies.
    type New: Debug + DeserializeOwned + TS + JsonSchema + Send + 'static;
    type Patch: Debug + DeserializeOwned + TS + JsonSchema + Send + 'static;

    fn key(&self) -> Self::Key;
    /// The query's row limit, if any.
    fn limit(query: &Self::Query) -> Option<u32>;
    /// Whether `row` passes the query's filter, exactly as its SQL does.
    fn matches(query: &Self::Query, row: &Self) -> bool;
    /// The query's order, exactly as its SQL's `ORDER BY` (ties by key).
    fn compare(query: &Self::Query, a: &Self, b: &Self) -> Ordering;
    /// Checks what serde cannot: lengths, ranges, the limit cap.
    fn validate(query: &Self::Query, max_limit: u32) -> Result<(), QueryError>;
    /// The canonical form of a query (see [`LiveQuery::normalized`]).
    fn normalized(query: &Self::Query) -> Self::Query;
    /// Whether the query asks for its live count (`count: true`).
    fn counted(query: &Self::Query) -> bool;
    /// The number of rows that pass the query's filter, whatever its limit,
    /// as one column `n` (`bigint`).
    fn count(query: &Self::Query) -> Sql;
    /// Calls `visitor` once per relation the query includes, with what
    /// reading it takes.
    fn includes<V: IncludeVisitor<Self>>(query: &Self::Query, visitor: &mut V);
    /// Appends the query's filter as conditions (` WHERE ` first, then
    /// ` AND `; see [`Sql::condition`]).
    fn conditions(query: &Self::Query, sql: &mut Sql, first: &mut bool);
    /// Appends the query's `ORDER BY` terms (without the keywords), the key
    /// last.
    fn order_by(query: &Self::Query, sql: &mut Sql);
    /// The query's SQL: its rows in order, at most `limit`.
    fn select(query: &Self::Query, limit: i64) -> Sql;
    /// The rows with these keys, unfiltered, in any order.
    fn fetch(keys: &[Self::Key]) -> Sql;
    /// `INSERT ... RETURNING` the new row.
    fn insert(new: &Self::New) -> Sql;
    /// `UPDATE ... RETURNING` the row; `None` when the patch sets nothing.
    fn update(key: &Self::Key, patch: &Self::Patch) -> Option<Sql>;
    /// `DELETE ... RETURNING` the deleted row.
    fn delete(key: &Self::Key) -> Sql;
    fn validate_new(new: &Self::New) -> Result<(), Invalid>;
    fn validate_patch(patch: &Self::Patch) -> Result<(), Invalid>;
}

/// The most related rows one include may ask for per row.
pub const MAX_INCLUDE_LIMIT: u32 = 100;

/// Which way a relation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// One-to-many: the target's foreign key holds this table's key.
    HasMany,
    /// Many-to-one: this table's foreign key holds the target's key.
    BelongsTo,
}

/// One declared relation. Related rows are addressed by the value of
/// `local` (a row's key for `has_many`, its foreign key for `belongs_to`)
/// and are the target's rows whose `remote` column holds that value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Relation {
    pub name: &'static str,
    pub kind: RelationKind,
    /// The related table.
    pub target: &'static str,
    pub local: &'static str,
    pub remote: &'static str,
}

/// Something done once per relation a query includes, with the related
/// table's type (see [`LiveTable::includes`]).
pub trait IncludeVisitor<T: LiveTable> {
    /// `local` gives a row's value of the relation's local column (none:
    /// no related rows), `remote` a related row's value of its remote
    /// column; `query` filters and orders the related rows, at most `per`
    /// of them per value.
    fn include<U: LiveTable, K: LiveKey + Serialize>(
        &mut self,
        relation: &'static Relation,
        local: fn(&T) -> Option<K>,
        remote: fn(&U) -> Option<K>,
        query: U::Query,
        per: u32,
    );
}

/// A table listed in `live_schema!`: it has a variant in [`LiveQuery`],
/// [`TableRows`] and [`TableChanges`].
pub trait Listed: LiveTable {
    /// This table's part of a subscription's query.
    fn query(query: &LiveQuery) -> Option<&Self::Query>;
    /// A snapshot's rows, when they are this table's.
    fn rows(rows: TableRows) -> Option<Vec<Self>>;
    /// A diff's upserts and deletes, when they are this table's.
    fn changes(changes: TableChanges) -> Option<Changed<Self>>;
}

/// A diff's rows to place and keys to delete, typed by table.
pub type Changed<T> = (Vec<Placed<T>>, Vec<<T as LiveTable>::Key>);

/// Something done once per listed table, with its type (see `visit_tables`).
pub trait TableVisitor {
    fn visit<T: Listed>(&mut self);
}

/// Who writes a column on INSERT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Write {
    Required,
    Default,
    Generated,
}

/// One column as clients may use it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Column {
    pub name: &'static str,
    pub kind: ScalarKind,
    /// For enums: the allowed values.
    pub values: &'static [&'static str],
    pub nullable: bool,
    pub key: bool,
    /// The filter operators clients may use on it.
    pub filters: &'static [Op],
    pub order: bool,
    pub write: Write,
    pub patchable: bool,
    /// Text: at most this many characters (code points).
    pub text_max: Option<u32>,
    /// Text that is blank (only Unicode White_Space) is refused: true for
    /// every column with a text rule, as [`check_value`] checks it.
    pub not_blank: bool,
    pub min: Option<i64>,
    pub max: Option<i64>,
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

/// Why a query was refused: a message naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

impl QueryError {
    pub fn at(field: &str, message: String) -> QueryError {
        QueryError(format!("{field}: {message}"))
    }
}

/// Compares two column values the way `ORDER BY ... ASC` does: NULL last.
pub fn cmp_nullable<V: Scalar>(a: Option<&V>, b: Option<&V>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.pg_cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// `ordering` in `dir`. Descending reverses everything, so NULLs come first,
/// as PostgreSQL's `DESC` (`NULLS FIRST`) has them.
pub fn directed(dir: Direction, ordering: Ordering) -> Ordering {
    match dir {
        Direction::Asc => ordering,
        Direction::Desc => ordering.reverse(),
    }
}

/// One `ORDER BY` term with PostgreSQL's NULL placement spelled out.
pub fn order_term(sql: &mut Sql, column: &ColumnSql, nullable: bool, dir: Direction) {
    column.ordered(sql);
    sql.push(match (dir, nullable) {
        (Direction::Asc, false) => " ASC",
        (Direction::Desc, false) => " DESC",
        (Direction::Asc, true) => " ASC NULLS LAST",
        (Direction::Desc, true) => " DESC NULLS FIRST",
    });
}

pub fn check_limit(limit: Option<u32>, max: u32) -> Result<(), QueryError> {
    match limit {
        Some(0) => Err(QueryError("limit must be at least 1".into())),
        Some(n) if n > max => Err(QueryError(format!("limit must be at most {max}"))),
        _ => Ok(()),
    }
}

/// Checks a written value against its column's rules: what PostgreSQL can
/// store, text that is not blank and not too long, integers in range.
pub fn check_value<V: Scalar>(
    field: &'static str,
    value: &V,
    text_max: Option<u32>,
    range: Option<(i64, i64)>,
) -> Result<(), Invalid> {
    let invalid = |message: String| Invalid { field, message };
    value
        .check()
        .map_err(|m| invalid(format!("{field}: {m}")))?;
    if let (Some(max), Some(text)) = (text_max, value.text()) {
        // Column::not_blank tells clients this rule; keep the two in step.
        if text.trim().is_empty() {
            return Err(invalid(format!("{field} must not be empty")));
        }
        if text.chars().count() > max as usize {
            return Err(invalid(format!("{field} must be at most {max} characters")));
        }
    }
    if let (Some((min, max)), Some(n)) = (range, value.integer())
        && !(min..=max).contains(&n)
    {
        return Err(invalid(format!("{field} must be {min} to {max}")));
    }
    Ok(())
}

/// `a == b`, usable in constants (for `live_schema!`'s name checks).
pub const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

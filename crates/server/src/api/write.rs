//! The writes themselves: create, update and delete for every live table,
//! generically from its declaration, each in the request's security context
//! (so `WITH CHECK` policies apply), and the answer each result gets.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use futures_util::future::BoxFuture;
use percent_encoding::percent_decode_str;
use pglive_schema::ErrorCode;
use pglive_schema::api::Invalid;
use pglive_schema::live::{Listed, LiveTable, TableVisitor};
use pglive_schema::scalar::LiveKey;
use pglive_schema::tables::visit_tables;
use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::rejection::{NoTable, api_error};
use crate::engine::{Context, rows_in};

/// Why a write failed; each maps to one status and error code.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Body(String),
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("not found")]
    NotFound,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] DieselError),
}

impl WriteError {
    fn into_response(self, table: &str) -> Response {
        let (status, code, message, field) = match self {
            WriteError::Body(message) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::Validation,
                message,
                None,
            ),
            WriteError::Invalid(invalid) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::Validation,
                invalid.message,
                Some(invalid.field.to_owned()),
            ),
            WriteError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("no such row in {table}"),
                None,
            ),
            WriteError::Unavailable(err) => {
                tracing::warn!(error = %err, "write failed: database unavailable");
                unavailable()
            }
            WriteError::Database(DieselError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation => (
                    StatusCode::CONFLICT,
                    ErrorCode::Conflict,
                    format!("the write conflicts with existing data in {table}"),
                    None,
                ),
                DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Validation,
                    format!(
                        "the write violates a constraint of {table}: {}",
                        info.constraint_name().unwrap_or("check")
                    ),
                    info.column_name().map(str::to_owned),
                ),
                _ if refused_by_policy(info.message()) => (
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    format!("the database's policies do not allow this write to {table}"),
                    None,
                ),
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    tracing::warn!(error = %info.message(), "write failed: database unavailable");
                    unavailable()
                }
                _ => {
                    tracing::error!(error = %info.message(), "write failed");
                    internal()
                }
            },
            WriteError::Database(err) => {
                tracing::error!(error = %err, "write failed");
                internal()
            }
        };
        api_error(status, code, message, field)
    }
}

/// Whether PostgreSQL refused a statement for authorization (SQLSTATE 42501:
/// a row-level security `WITH CHECK`, or a missing privilege). diesel does
/// not expose SQLSTATE, so the (untranslated) message decides.
fn refused_by_policy(message: &str) -> bool {
    message.contains("violates row-level security policy")
        || message.starts_with("permission denied")
}

fn unavailable() -> (StatusCode, ErrorCode, String, Option<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the database is unavailable; try again".into(),
        None,
    )
}

fn internal() -> (StatusCode, ErrorCode, String, Option<String>) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "internal error".into(),
        None,
    )
}

type Pooled<'a> = diesel_async::pooled_connection::bb8::PooledConnection<'a, AsyncPgConnection>;

async fn conn(pool: &Pool<AsyncPgConnection>) -> Result<Pooled<'_>, WriteError> {
    pool.get()
        .await
        .map_err(|e| WriteError::Unavailable(e.to_string()))
}

/// A successful write: status and JSON body (none for a delete).
type Written = (StatusCode, Option<Bytes>);

/// A write under way.
type Writing<'a> = BoxFuture<'a, Result<Written, WriteError>>;

/// One table's writes, whatever its row type. Each runs in the request's
/// security context, so `WITH CHECK` policies apply.
trait TableWrites: Send + Sync {
    /// The table's name, as its path segment and in error messages.
    fn name(&self) -> &'static str;
    fn create<'a>(&'a self, conn: Conn<'a>, body: Bytes) -> Writing<'a>;
    fn update<'a>(&'a self, conn: Conn<'a>, key: &'a str, body: Bytes) -> Writing<'a>;
    fn delete<'a>(&'a self, conn: Conn<'a>, key: &'a str) -> Writing<'a>;
}

/// Where a write runs: the pool, and the request's context.
#[derive(Clone, Copy)]
struct Conn<'a> {
    pool: &'a Pool<AsyncPgConnection>,
    ctx: &'a Context,
}

impl Conn<'_> {
    async fn rows<T: LiveTable>(&self, sql: pglive_schema::sql::Sql) -> Result<Vec<T>, WriteError> {
        let mut conn = conn(self.pool).await?;
        Ok(rows_in(&mut conn, self.ctx, sql).await?)
    }
}

struct Writes<T>(std::marker::PhantomData<T>);

/// Parses a request body, which must be a JSON object (serde would also
/// build a struct from an array, which the published schemas refuse).
fn parse<B: serde::de::DeserializeOwned>(body: &Bytes) -> Result<B, WriteError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WriteError::Body(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(WriteError::Body("the body must be a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| WriteError::Body(format!("invalid body: {e}")))
}

fn row_json<T: serde::Serialize>(row: &T) -> Result<Bytes, WriteError> {
    serde_json::to_vec(row)
        .map(Bytes::from)
        .map_err(|e| WriteError::Body(format!("cannot encode the row: {e}")))
}

impl<T: LiveTable> TableWrites for Writes<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn create<'a>(&'a self, conn: Conn<'a>, body: Bytes) -> Writing<'a> {
        Box::pin(async move {
            let new: T::New = parse(&body)?;
            T::validate_new(&new).map_err(WriteError::Invalid)?;
            let rows: Vec<T> = conn.rows(T::insert(&new)).await?;
            // An insert returns its row, unless a policy hides it from its writer.
            let body = rows.first().map(row_json).transpose()?;
            Ok((StatusCode::CREATED, body))
        })
    }

    fn update<'a>(&'a self, conn: Conn<'a>, key: &'a str, body: Bytes) -> Writing<'a> {
        Box::pin(async move {
            let key = T::Key::parse_path(key).ok_or(WriteError::NotFound)?;
            let patch: T::Patch = parse(&body)?;
            T::validate_patch(&patch).map_err(WriteError::Invalid)?;
            let sql = T::update(&key, &patch)
                .ok_or_else(|| WriteError::Invalid(Invalid::nothing_to_update()))?;
            let rows: Vec<T> = conn.rows(sql).await?;
            let row = rows.into_iter().next().ok_or(WriteError::NotFound)?;
            Ok((StatusCode::OK, Some(row_json(&row)?)))
        })
    }

    fn delete<'a>(&'a self, conn: Conn<'a>, key: &'a str) -> Writing<'a> {
        Box::pin(async move {
            let key = T::Key::parse_path(key).ok_or(WriteError::NotFound)?;
            let rows: Vec<T> = conn.rows(T::delete(&key)).await?;
            if rows.is_empty() {
                return Err(WriteError::NotFound);
            }
            Ok((StatusCode::NO_CONTENT, None))
        })
    }
}

struct Collect(HashMap<&'static str, Arc<dyn TableWrites>>);

impl TableVisitor for Collect {
    fn visit<T: Listed>(&mut self) {
        self.0
            .insert(T::NAME, Arc::new(Writes::<T>(std::marker::PhantomData)));
    }
}

/// Every declared live table's writes, by name, and the pool they run on.
pub(super) struct Tables {
    pool: Pool<AsyncPgConnection>,
    by_name: HashMap<&'static str, Arc<dyn TableWrites>>,
}

impl Tables {
    pub(super) fn new(pool: Pool<AsyncPgConnection>) -> Tables {
        let mut collect = Collect(HashMap::new());
        visit_tables(&mut collect);
        Tables {
            pool,
            by_name: collect.0,
        }
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }

    /// The table a path segment names.
    pub(super) fn get(&self, name: String) -> Result<Table, NoTable> {
        match self.by_name.get(name.as_str()) {
            Some(writes) => Ok(Table {
                pool: self.pool.clone(),
                writes: Arc::clone(writes),
            }),
            None => Err(NoTable(name)),
        }
    }
}

/// One table to write, and the pool to write it through.
#[derive(Clone)]
pub(super) struct Table {
    pool: Pool<AsyncPgConnection>,
    writes: Arc<dyn TableWrites>,
}

/// A row's key from its path segment, with `%XX` escapes decoded (keys may
/// hold any text); undecodable input stays as it is and simply names no row.
#[derive(Debug)]
pub(super) struct Key(String);

impl FromStr for Key {
    type Err = Infallible;
    fn from_str(segment: &str) -> Result<Key, Infallible> {
        let decoded = percent_decode_str(segment)
            .decode_utf8()
            .map_or_else(|_| segment.to_owned(), Cow::into_owned);
        Ok(Key(decoded))
    }
}

impl Table {
    /// `POST /api/{table}`.
    pub(super) async fn create(self, ctx: Arc<Context>, body: Bytes) -> Response {
        let result = self.writes.create(self.conn(&ctx), body).await;
        self.respond(result)
    }

    /// `PATCH /api/{table}/{key}`.
    pub(super) async fn update(self, key: Key, ctx: Arc<Context>, body: Bytes) -> Response {
        let result = self.writes.update(self.conn(&ctx), &key.0, body).await;
        self.respond(result)
    }

    /// `DELETE /api/{table}/{key}`.
    pub(super) async fn delete(self, key: Key, ctx: Arc<Context>) -> Response {
        let result = self.writes.delete(self.conn(&ctx), &key.0).await;
        self.respond(result)
    }

    fn conn<'a>(&'a self, ctx: &'a Context) -> Conn<'a> {
        Conn {
            pool: &self.pool,
            ctx,
        }
    }

    fn respond(&self, result: Result<Written, WriteError>) -> Response {
        match result {
            Ok((status, Some(body))) => {
                let mut response = Response::new(body.into());
                *response.status_mut() = status;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Ok((status, None)) => status.into_response(),
            Err(err) => err.into_response(self.writes.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(segment: &str) -> String {
        segment.parse::<Key>().unwrap_or_else(|e| match e {}).0
    }

    #[test]
    fn keys_are_percent_decoded_and_undecodable_ones_kept() {
        assert_eq!(key("42"), "42");
        assert_eq!(key("a%20b%2Fc"), "a b/c");
        assert_eq!(key("caf%C3%A9"), "café");
        // A malformed escape stays as it is; so does a whole key whose
        // escapes do not decode to UTF-8.
        assert_eq!(key("100%"), "100%");
        assert_eq!(key("%zz%41"), "%zzA");
        assert_eq!(key("%ff%41"), "%ff%41");
    }
}

//! The REST write API under `/api/`: create, update and delete for the demo
//! tables. Writes are plain statements; their live updates reach clients
//! through the trigger like any other write, never through a shortcut.

use bytes::Bytes;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pglive_schema::api::{ApiError, Invalid, ItemPatch, NewItem, NewTask, TaskPatch};
use pglive_schema::tables::{items, tasks};
use pglive_schema::{ErrorCode, Item, Task};
use serde::Serialize;
use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

/// Largest accepted request body.
const MAX_BODY: u64 = 16 * 1024;

/// Why a write failed; each maps to one status and error code.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Body(String),
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] DieselError),
}

impl WriteError {
    fn into_response(self, what: &str) -> Response {
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
                format!("{what} not found"),
                None,
            ),
            WriteError::Conflict(message) => {
                (StatusCode::CONFLICT, ErrorCode::Conflict, message, None)
            }
            WriteError::Unavailable(err) => {
                tracing::warn!(error = %err, "write failed: database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the database is unavailable; try again".into(),
                    None,
                )
            }
            WriteError::Database(DieselError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation => (
                    StatusCode::CONFLICT,
                    ErrorCode::Conflict,
                    format!("{what} conflicts with existing data"),
                    None,
                ),
                DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Validation,
                    format!(
                        "{what} violates a constraint: {}",
                        info.constraint_name().unwrap_or("check")
                    ),
                    info.column_name().map(str::to_owned),
                ),
                DatabaseErrorKind::ClosedConnection => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the database is unavailable; try again".into(),
                    None,
                ),
                _ => {
                    tracing::error!(error = %info.message(), "write failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::Internal,
                        "internal error".into(),
                        None,
                    )
                }
            },
            WriteError::Database(err) => {
                tracing::error!(error = %err, "write failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error".into(),
                    None,
                )
            }
        };
        let body = ApiError {
            code,
            message,
            field,
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
    }
}

/// A JSON error response, for routes outside the write handlers.
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = ApiError {
        code,
        message: message.into(),
        field: None,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, WriteError> {
    serde_json::from_slice(body).map_err(|e| WriteError::Body(format!("invalid JSON body: {e}")))
}

async fn conn(
    pool: &Pool<AsyncPgConnection>,
) -> Result<diesel_async::pooled_connection::bb8::PooledConnection<'_, AsyncPgConnection>, WriteError>
{
    pool.get()
        .await
        .map_err(|e| WriteError::Unavailable(e.to_string()))
}

fn respond<T: Serialize>(
    what: &str,
    status: StatusCode,
    result: Result<T, WriteError>,
) -> Response {
    match result {
        Ok(value) => warp::reply::with_status(warp::reply::json(&value), status).into_response(),
        Err(err) => err.into_response(what),
    }
}

/// The create, update and delete routes of one table: `POST /api/{table}`,
/// `PATCH /api/{table}/{id}` and `DELETE /api/{table}/{id}`. A macro because
/// diesel's statement types are per table; the behaviour is identical.
macro_rules! table_writes {
    ($pool:expr, $table:ident, $segment:literal, $row:ty, $new:ty, $patch:ty, $what:literal) => {{
        let pool = $pool;
        let body = || warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes());
        let with_pool = move || {
            let pool = pool.clone();
            warp::any().map(move || pool.clone())
        };
        let create = warp::path!("api" / $segment)
            .and(warp::post())
            .and(with_pool())
            .and(body())
            .then(|pool: Pool<AsyncPgConnection>, body: Bytes| async move {
                let result = async {
                    let new: $new = parse(&body)?;
                    new.validate().map_err(WriteError::Invalid)?;
                    let mut conn = conn(&pool).await?;
                    Ok::<_, WriteError>(
                        diesel::insert_into($table::table)
                            .values(&new)
                            .returning(<$row>::as_returning())
                            .get_result(&mut conn)
                            .await?,
                    )
                };
                respond($what, StatusCode::CREATED, result.await)
            });
        let update = warp::path!("api" / $segment / i32)
            .and(warp::patch())
            .and(with_pool())
            .and(body())
            .then(
                |id: i32, pool: Pool<AsyncPgConnection>, body: Bytes| async move {
                    let result = async {
                        let patch: $patch = parse(&body)?;
                        patch.validate().map_err(WriteError::Invalid)?;
                        let mut conn = conn(&pool).await?;
                        diesel::update($table::table.find(id))
                            .set(&patch)
                            .returning(<$row>::as_returning())
                            .get_result(&mut conn)
                            .await
                            .optional()?
                            .ok_or(WriteError::NotFound)
                    };
                    respond($what, StatusCode::OK, result.await)
                },
            );
        let delete = warp::path!("api" / $segment / i32)
            .and(warp::delete())
            .and(with_pool())
            .then(|id: i32, pool: Pool<AsyncPgConnection>| async move {
                let result = async {
                    let mut conn = conn(&pool).await?;
                    let n = diesel::delete($table::table.find(id))
                        .execute(&mut conn)
                        .await?;
                    if n == 0 {
                        Err(WriteError::NotFound)
                    } else {
                        Ok(())
                    }
                };
                deleted($what, result.await)
            });
        create.or(update).unify().or(delete).unify()
    }};
}

fn deleted(what: &str, result: Result<(), WriteError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(what),
    }
}

/// The write routes: `/api/items[/{id}]` and `/api/tasks[/{id}]`.
pub fn routes(
    pool: Pool<AsyncPgConnection>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let items = table_writes!(
        pool.clone(),
        items,
        "items",
        Item,
        NewItem,
        ItemPatch,
        "item"
    );
    let tasks = table_writes!(pool, tasks, "tasks", Task, NewTask, TaskPatch, "task");
    items.or(tasks).unify()
}

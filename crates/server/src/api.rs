//! The REST write API under `/api/`: create, update and delete for every live
//! table, generically from its declaration. `POST /api/{table}`,
//! `PATCH /api/{table}/{key}`, `DELETE /api/{table}/{key}`. Writes are plain
//! statements; their live updates reach clients through change capture like
//! any other write, never through a shortcut.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use pglive_schema::ErrorCode;
use pglive_schema::api::{ApiError, Invalid};
use pglive_schema::live::{Listed, LiveTable, TableVisitor};
use pglive_schema::scalar::LiveKey;
use pglive_schema::tables::visit_tables;
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
        let body = ApiError {
            code,
            message,
            field,
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
    }
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

/// A JSON error response, for routes outside the write handlers.
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = ApiError {
        code,
        message: message.into(),
        field: None,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

type Pooled<'a> = diesel_async::pooled_connection::bb8::PooledConnection<'a, AsyncPgConnection>;

async fn conn(pool: &Pool<AsyncPgConnection>) -> Result<Pooled<'_>, WriteError> {
    pool.get()
        .await
        .map_err(|e| WriteError::Unavailable(e.to_string()))
}

/// A successful write: status and JSON body (none for a delete).
type Written = (StatusCode, Option<Bytes>);

/// One table's writes, whatever its row type.
trait TableWrites: Send + Sync {
    fn create<'a>(
        &'a self,
        pool: &'a Pool<AsyncPgConnection>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>>;
    fn update<'a>(
        &'a self,
        pool: &'a Pool<AsyncPgConnection>,
        key: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>>;
    fn delete<'a>(
        &'a self,
        pool: &'a Pool<AsyncPgConnection>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Written, WriteError>>;
}

struct Writes<T>(std::marker::PhantomData<T>);

fn parse<B: serde::de::DeserializeOwned>(body: &Bytes) -> Result<B, WriteError> {
    serde_json::from_slice(body).map_err(|e| WriteError::Body(format!("invalid JSON body: {e}")))
}

fn row_json<T: serde::Serialize>(row: &T) -> Result<Bytes, WriteError> {
    serde_json::to_vec(row)
        .map(Bytes::from)
        .map_err(|e| WriteError::Body(format!("cannot encode the row: {e}")))
}

impl<T: LiveTable> TableWrites for Writes<T> {
    fn create<'a>(
        &'a self,
        pool: &'a Pool<AsyncPgConnection>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>> {
        Box::pin(async move {
            let new: T::New = parse(&body)?;
            T::validate_new(&new).map_err(WriteError::Invalid)?;
            let mut conn = conn(pool).await?;
            let row: T = T::insert(&new).get_result(&mut conn).await?;
            Ok((StatusCode::CREATED, Some(row_json(&row)?)))
        })
    }

    fn update<'a>(
        &'a self,
        pool: &'a Pool<AsyncPgConnection>,
        key: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>> {
        Box::pin(async move {
            let key = T::Key::parse_path(key).ok_or(WriteError::NotFound)?;
            let patch: T::Patch = parse(&body)?;
            T::validate_patch(&patch).map_err(WriteError::Invalid)?;
            let sql = T::update(&key, &patch)
                .ok_or_else(|| WriteError::Invalid(Invalid::nothing_to_update()))?;
            let mut conn = conn(pool).await?;
            let rows: Vec<T> = sql.load(&mut conn).await?;
            let row = rows.into_iter().next().ok_or(WriteError::NotFound)?;
            Ok((StatusCode::OK, Some(row_json(&row)?)))
        })
    }

    fn delete<'a>(
        &'a self,
        pool: &'a Pool<AsyncPgConnection>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Written, WriteError>> {
        Box::pin(async move {
            let key = T::Key::parse_path(key).ok_or(WriteError::NotFound)?;
            let mut conn = conn(pool).await?;
            let deleted = T::delete(&key).execute(&mut conn).await?;
            if deleted == 0 {
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

type Tables = Arc<HashMap<&'static str, Arc<dyn TableWrites>>>;

fn respond(table: &str, result: Result<Written, WriteError>) -> Response {
    match result {
        Ok((status, Some(body))) => {
            let mut response = Response::new(body.into());
            *response.status_mut() = status;
            response.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Ok((status, None)) => status.into_response(),
        Err(err) => err.into_response(table),
    }
}

fn no_table(table: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!(
            "no live table {:?} to write",
            table.chars().take(64).collect::<String>()
        ),
    )
}

/// The write routes of every live table.
pub fn routes(
    pool: Pool<AsyncPgConnection>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let mut collect = Collect(HashMap::new());
    visit_tables(&mut collect);
    let tables: Tables = Arc::new(collect.0);
    let with = move || {
        let pool = pool.clone();
        let tables = Arc::clone(&tables);
        warp::any().map(move || (pool.clone(), Arc::clone(&tables)))
    };
    let body = || warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes());
    let create = warp::path!("api" / String)
        .and(warp::post())
        .and(with())
        .and(body())
        .then(|table: String, (pool, tables): (Pool<AsyncPgConnection>, Tables), body: Bytes| async move {
            match tables.get(table.as_str()) {
                Some(t) => respond(&table, t.create(&pool, body).await),
                None => no_table(&table),
            }
        });
    let update = warp::path!("api" / String / String)
        .and(warp::patch())
        .and(with())
        .and(body())
        .then(
            |table: String,
             key: String,
             (pool, tables): (Pool<AsyncPgConnection>, Tables),
             body: Bytes| async move {
                match tables.get(table.as_str()) {
                    Some(t) => respond(&table, t.update(&pool, &key, body).await),
                    None => no_table(&table),
                }
            },
        );
    let delete = warp::path!("api" / String / String)
        .and(warp::delete())
        .and(with())
        .then(|table: String, key: String, (pool, tables): (Pool<AsyncPgConnection>, Tables)| async move {
            match tables.get(table.as_str()) {
                Some(t) => respond(&table, t.delete(&pool, &key).await),
                None => no_table(&table),
            }
        });
    create.or(update).unify().or(delete).unify()
}

//! The REST write API under `/api/`: create, update and delete for every live
//! table, generically from its declaration. `POST /api/{table}`,
//! `PATCH /api/{table}/{key}`, `DELETE /api/{table}/{key}`. Writes are plain
//! statements; their live updates reach clients through change capture like
//! any other write, never through a shortcut.
//!
//! Every request under `/api/` is answered here, with a typed `ApiError` for
//! each way it can be wrong: a browser origin not allowed (403, also what
//! stops cross-site form posts, which cannot send `application/json`), too
//! many requests from one address (429), a body that is not JSON (415), too
//! large (413, chunked bodies counted as they arrive) or too slow (408).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pglive_schema::ErrorCode;
use pglive_schema::api::{ApiError, Invalid};
use pglive_schema::live::{Listed, LiveTable, TableVisitor};
use pglive_schema::scalar::LiveKey;
use pglive_schema::tables::visit_tables;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::path::Tail;
use warp::reply::Response;
use warp::{Buf, Filter, Reply};

use crate::auth::{Auth, AuthError};
use crate::connections::ClientAddr;
use crate::engine::{Context, rows_in};
use crate::policy::Origins;
use crate::ws::bearer;

/// Largest accepted request body.
const MAX_BODY: usize = 16 * 1024;

/// Time a client has to send a request's whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Client addresses the rate limiter remembers before it forgets the idle ones.
const MAX_TRACKED_CLIENTS: usize = 10_000;

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
        let body = ApiError {
            code,
            message,
            field,
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
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

/// One table's writes, whatever its row type. Each runs in the request's
/// security context, so `WITH CHECK` policies apply.
trait TableWrites: Send + Sync {
    fn create<'a>(
        &'a self,
        conn: Conn<'a>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>>;
    fn update<'a>(
        &'a self,
        conn: Conn<'a>,
        key: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>>;
    fn delete<'a>(
        &'a self,
        conn: Conn<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Written, WriteError>>;
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
    fn create<'a>(
        &'a self,
        conn: Conn<'a>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>> {
        Box::pin(async move {
            let new: T::New = parse(&body)?;
            T::validate_new(&new).map_err(WriteError::Invalid)?;
            let rows: Vec<T> = conn.rows(T::insert(&new)).await?;
            // An insert returns its row, unless a policy hides it from its writer.
            let body = rows.first().map(row_json).transpose()?;
            Ok((StatusCode::CREATED, body))
        })
    }

    fn update<'a>(
        &'a self,
        conn: Conn<'a>,
        key: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Written, WriteError>> {
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

    fn delete<'a>(
        &'a self,
        conn: Conn<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Written, WriteError>> {
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

/// What the API's handler needs; cheap to clone.
#[derive(Clone)]
pub struct Api {
    pool: Pool<AsyncPgConnection>,
    tables: Arc<HashMap<&'static str, Arc<dyn TableWrites>>>,
    origins: Arc<Origins>,
    /// Requests per second per client address (bursts of twice that). Its
    /// memory is one entry per recent address, pruned past
    /// `MAX_TRACKED_CLIENTS`.
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    auth: Auth,
    /// Serve `POST /api/dev/token`.
    dev_tokens: bool,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("tables", &self.tables.keys())
            .finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(
        pool: Pool<AsyncPgConnection>,
        origins: Arc<Origins>,
        per_second: u32,
        auth: Auth,
        dev_tokens: bool,
    ) -> Api {
        let mut collect = Collect(HashMap::new());
        visit_tables(&mut collect);
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Api {
            pool,
            tables: Arc::new(collect.0),
            origins,
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
            auth,
            dev_tokens,
        }
    }
}

fn api_error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    error_response(status, code, message)
}

/// Reads the whole body, refusing it once it passes `MAX_BODY`.
async fn read_body<S, B>(body: S) -> Result<Bytes, Box<Response>>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|e| {
                Box::new(api_error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Validation,
                    format!("cannot read the body: {e}"),
                ))
            })?;
            if out.len() + chunk.remaining() > MAX_BODY {
                return Err(Box::new(api_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::TooLarge,
                    format!("the body is over {MAX_BODY} bytes"),
                )));
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                out.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        Ok(Bytes::from(out))
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(Box::new(api_error(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::Validation,
                "the body did not arrive in time",
            )))
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn handle<S, B>(
    api: Api,
    method: Method,
    tail: Tail,
    headers: HeaderMap,
    addr: Option<ClientAddr>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut response = answer(&api, &method, &tail, &headers, addr, body).await;
    // Cross-origin callers that are allowed may read the answer.
    if let Some(origin) = api.origins.cors_header(&headers)
        && headers.contains_key(header::ORIGIN)
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

async fn answer<S, B>(
    api: &Api,
    method: &Method,
    tail: &Tail,
    headers: &HeaderMap,
    addr: Option<ClientAddr>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    if !api.origins.allow(headers) {
        return api_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this origin may not use the API; the server allows its own origin and --allowed-origins",
        );
    }
    if method == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, authorization"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return response;
    }
    if let Some(ClientAddr(addr)) = addr {
        if api.limiter.len() > MAX_TRACKED_CLIENTS {
            api.limiter.retain_recent();
        }
        if api.limiter.check_key(&addr.ip()).is_err() {
            let mut response = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many requests from this address; slow down",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
    }
    let segments: Vec<&str> = tail.as_str().split('/').filter(|s| !s.is_empty()).collect();
    if segments == ["dev", "token"] && api.dev_tokens && method == Method::POST {
        return match read_body(body).await {
            Ok(body) => dev_token(api, &body),
            Err(response) => *response,
        };
    }
    let Some(&table) = segments.first() else {
        return api_error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such API route",
        );
    };
    let Some(writes) = api.tables.get(table) else {
        return no_table(table);
    };
    let key = segments.get(1).copied();
    let allowed = match (segments.len(), method.clone()) {
        (1, Method::POST) | (2, Method::PATCH) | (2, Method::DELETE) => true,
        (1 | 2, _) => false,
        _ => {
            return api_error(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such API route",
            );
        }
    };
    if !allowed {
        let mut response = api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!("{method} does not apply here"),
        );
        let allow = if segments.len() == 1 {
            "POST, OPTIONS"
        } else {
            "PATCH, DELETE, OPTIONS"
        };
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    let ctx = match identify(api, headers).await {
        Ok(ctx) => ctx,
        Err(response) => return *response,
    };
    let conn = Conn {
        pool: &api.pool,
        ctx: &ctx,
    };
    let result = if method == Method::DELETE {
        writes
            .delete(conn, &percent_decoded(key.unwrap_or_default()))
            .await
    } else {
        if !is_json(headers) {
            return api_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as application/json",
            );
        }
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(response) => return *response,
        };
        match key {
            None => writes.create(conn, body).await,
            Some(key) => writes.update(conn, &percent_decoded(key), body).await,
        }
    };
    respond(table, result)
}

/// The security context of a request: its bearer token's, the anonymous
/// role's without one, or the server's own when authentication is off.
async fn identify(api: &Api, headers: &HeaderMap) -> Result<Arc<Context>, Box<Response>> {
    let Some(auth) = &api.auth else {
        return Ok(Arc::new(Context::default()));
    };
    let refused = |err: AuthError| {
        let (status, code) = match err {
            AuthError::RoleNotAllowed(_) | AuthError::UnknownRole(_) => {
                (StatusCode::FORBIDDEN, ErrorCode::Forbidden)
            }
            AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            AuthError::Expired => (StatusCode::UNAUTHORIZED, ErrorCode::TokenExpired),
            _ => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
        };
        let mut response = api_error(status, code, err.to_string());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Box::new(response)
    };
    let identity = match bearer(headers) {
        Some(token) => auth.verify(&token).map_err(refused)?,
        None => auth
            .anonymous()
            .cloned()
            .ok_or_else(|| refused(AuthError::Missing))?,
    };
    if identity.expires_at.is_some() {
        auth.check_role(&api.pool, &identity.role)
            .await
            .map_err(refused)?;
    }
    Ok(identity.ctx)
}

/// `POST /api/dev/token` `{"sub":..,"role":..,"claims":{..},"ttl_secs":..}`:
/// a token signed with the server's secret, for development only.
fn dev_token(api: &Api, body: &Bytes) -> Response {
    let Some(auth) = &api.auth else {
        return api_error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "authentication is off",
        );
    };
    let Ok(serde_json::Value::Object(mut request)) =
        serde_json::from_slice::<serde_json::Value>(body)
    else {
        return api_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::Validation,
            "send a JSON object",
        );
    };
    let ttl = request
        .get("ttl_secs")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(3600)
        .min(86_400);
    let mut claims = match request.remove("claims") {
        Some(serde_json::Value::Object(claims)) => claims,
        _ => serde_json::Map::new(),
    };
    for name in ["sub", "role"] {
        if let Some(value) = request.remove(name) {
            claims.insert(name.to_owned(), value);
        }
    }
    claims.insert(
        "exp".into(),
        serde_json::Value::from(crate::auth::unix_now() + ttl),
    );
    match auth.mint(&claims) {
        Some(token) => warp::reply::json(&serde_json::json!({ "token": token })).into_response(),
        None => api_error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "development tokens need --jwt-secret",
        ),
    }
}

/// A path segment with `%XX` escapes decoded (keys may hold any text);
/// undecodable input stays as it is and simply names no row.
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

/// Every request under `/api/`.
pub fn routes(api: Api) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path("api")
        .and(warp::any().map(move || api.clone()))
        .and(warp::method())
        .and(warp::path::tail())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::body::stream())
        .then(handle)
}

fn respond(table: &str, result: Result<Written, WriteError>) -> Response {
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

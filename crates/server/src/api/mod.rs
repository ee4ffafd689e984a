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
//!
//! The routes are warp filters ([`routes`]); every rejection under `/api/`
//! is answered by one `recover`, `rejection::answer`. The modules depend one
//! way, lowest first: `rejection` (the refusals and their answers) names no
//! other; `rate` (the per-address limiter), `body` (content type, size and
//! time of a body), `write` (the generic writes and their answers) and
//! `dev_token` name only `rejection`; this file names them all.

mod body;
mod dev_token;
mod rate;
mod rejection;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use futures_util::future::ready;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use warp::reject::Rejection;
use warp::reply::Response;
use warp::{Filter, Reply};

use self::rate::PerAddress;
pub use self::rejection::error_response;
use self::rejection::{Refused, WrongMethod};
use self::write::{Key, Table, Tables};
use crate::auth::{Auth, AuthError, Authenticator, bearer};
use crate::engine::Context;
use crate::policy::Origins;

/// What the API's filters need; cheap to clone.
#[derive(Clone)]
pub struct Api {
    pool: Pool<AsyncPgConnection>,
    tables: Arc<Tables>,
    origins: Arc<Origins>,
    limiter: Arc<PerAddress>,
    auth: Auth,
    /// Serve `POST /api/dev/token`.
    dev_tokens: bool,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("tables", &self.tables.names().collect::<Vec<_>>())
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
        Api {
            tables: Arc::new(Tables::new(pool.clone())),
            pool,
            origins,
            limiter: Arc::new(PerAddress::new(per_second)),
            auth,
            dev_tokens,
        }
    }
}

/// Every request under `/api/`.
pub fn routes(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let origins = Arc::clone(&api.origins);
    warp::path("api")
        .and(warp::header::headers_cloned())
        .and(answered(api))
        .map(move |headers: HeaderMap, response: Response| with_cors(&origins, &headers, response))
}

/// The answer to a request under `/api/`: a route's, or its refusal's. The
/// origin is checked first, then a preflight is answered, then the address's
/// rate, then the route.
fn answered(
    api: Api,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let preflight = warp::options().map(preflight);
    allowed_origin(Arc::clone(&api.origins))
        .and(
            preflight
                .or(rate::limit(Arc::clone(&api.limiter)).and(writes(api)))
                .unify(),
        )
        .recover(rejection::answer)
        .unify()
}

/// The routes: the development token, then each table's writes, then the
/// methods a table's routes do not take. A table's route checks the table,
/// then the method, then the caller's identity, then the body.
fn writes(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let tables = Arc::clone(&api.tables);
    let table = warp::path::param::<String>()
        .and_then(move |name: String| ready(tables.get(name).map_err(warp::reject::custom)));
    let collection = table.clone().and(warp::path::end());
    let member = table.and(warp::path::param::<Key>()).and(warp::path::end());
    let caller = caller(api.auth.clone(), api.pool.clone());
    let json = body::json().and(body::whole());
    // What each route's method takes besides its path: the caller, and for
    // all but a delete its body.
    let post = warp::post().and(caller.clone()).and(json);
    let patch = warp::patch().and(caller.clone()).and(json);
    let create = collection.clone().and(post).then(Table::create);
    let update = member.clone().and(patch).then(Table::update);
    let delete = member
        .clone()
        .and(warp::delete())
        .and(caller)
        .then(Table::delete);
    let collection_other = collection
        .and(warp::method())
        .and_then(|_: Table, method| not_taken(method, &[Method::POST], "POST, OPTIONS"));
    let member_other = member
        .and(warp::method())
        .and_then(|_: Table, _: Key, method| {
            not_taken(
                method,
                &[Method::PATCH, Method::DELETE],
                "PATCH, DELETE, OPTIONS",
            )
        });
    dev_token(api)
        .or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(collection_other)
        .unify()
        .or(member_other)
        .unify()
}

/// `POST /api/dev/token`, when the server serves it.
fn dev_token(api: Api) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let served = api.dev_tokens;
    let auth = api.auth;
    let pool = api.pool;
    warp::path!("dev" / "token")
        .and(warp::post())
        .and_then(move || {
            ready(if served {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            })
        })
        .untuple_one()
        .and(body::whole())
        .then(move |body: Bytes| {
            let auth = auth.clone();
            let pool = pool.clone();
            async move { dev_token::mint(auth.as_deref(), &pool, &body).await }
        })
}

/// Refuses a request to a route that does not take its method; one that it
/// takes was refused by that route's own filter, which decides the answer.
fn not_taken(
    method: Method,
    taken: &[Method],
    allow: &'static str,
) -> futures_util::future::Ready<Result<Response, Rejection>> {
    ready(Err(if taken.contains(&method) {
        warp::reject::not_found()
    } else {
        warp::reject::custom(WrongMethod { method, allow })
    }))
}

/// Passes requests from an allowed origin (or none).
fn allowed_origin(origins: Arc<Origins>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(move |headers: HeaderMap| {
            ready(if origins.allow(&headers) {
                Ok(())
            } else {
                Err(warp::reject::custom(Refused::Origin))
            })
        })
        .untuple_one()
}

/// The answer to a CORS preflight anywhere under `/api/`.
fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    for (name, value) in PREFLIGHT {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// What a preflight is told: the methods and headers the API takes, and for
/// how long (in seconds) a browser may remember it.
const PREFLIGHT: [(HeaderName, &str); 3] = [
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "POST, PATCH, DELETE, OPTIONS",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "content-type, authorization",
    ),
    (header::ACCESS_CONTROL_MAX_AGE, "600"),
];

/// Cross-origin callers that are allowed may read the answer.
fn with_cors(origins: &Origins, headers: &HeaderMap, mut response: Response) -> Response {
    if let Some(origin) = origins.cors_header(headers)
        && headers.contains_key(header::ORIGIN)
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// The caller's security context: its bearer token's, the anonymous role's
/// without one, or the server's own when authentication is off.
fn caller(
    auth: Auth,
    pool: Pool<AsyncPgConnection>,
) -> impl Filter<Extract = (Arc<Context>,), Error = Rejection> + Clone {
    warp::header::headers_cloned().and_then(move |headers: HeaderMap| {
        let auth = auth.clone();
        let pool = pool.clone();
        async move {
            identify(auth.as_deref(), &pool, &headers)
                .await
                .map_err(|err| warp::reject::custom(Refused::Auth(err)))
        }
    })
}

/// The security context of a request: its bearer token's, the anonymous
/// role's without one, or the server's own when authentication is off.
async fn identify(
    auth: Option<&Authenticator>,
    pool: &Pool<AsyncPgConnection>,
    headers: &HeaderMap,
) -> Result<Arc<Context>, AuthError> {
    let Some(auth) = auth else {
        return Ok(Arc::new(Context::default()));
    };
    let identity = match bearer(headers) {
        Some(token) => auth.verify(&token)?,
        None => auth.anonymous().cloned().ok_or(AuthError::Missing)?,
    };
    // The anonymous role too (remembered after the first request).
    auth.check_role(pool, &identity.role).await?;
    Ok(identity.ctx)
}

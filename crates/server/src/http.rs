//! The HTTP surface: health, readiness, metrics, the REST API, the WebSocket
//! endpoint and the built web app, combined into one warp filter, with the
//! server's policies applied to all of it: `Host` names (DNS rebinding),
//! security headers on every response, `HEAD` wherever `GET` is.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use pglive_schema::ErrorCode;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::api::{self, Api};
use crate::capture::CaptureStatus;
use crate::engine::Hub;
use crate::metrics::Metrics;
use crate::policy::{self, Hosts};
use crate::webapp;
use crate::ws::{self, WsContext};

/// What the routes need.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub hub: Hub,
    pub status: Arc<CaptureStatus>,
    pub ws: WsContext,
    pub api: Api,
    pub hosts: Arc<Hosts>,
    pub web_dir: Option<std::path::PathBuf>,
}

/// Whether the server can do its job: capture is up and the pool can run a
/// query.
async fn ready(hub: Hub, status: Arc<CaptureStatus>) -> Response {
    if !status.is_up() {
        return warp::reply::with_status(
            "not ready: change capture is down\n",
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response();
    }
    let probe = async {
        let mut conn = hub.pool().get().await.map_err(|e| e.to_string())?;
        conn.batch_execute("SELECT 1")
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(())) => {
            warp::reply::with_status(format!("ready: {}\n", status.describe()), StatusCode::OK)
                .into_response()
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "readiness probe failed");
            warp::reply::with_status(
                "not ready: database unreachable\n",
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into_response()
        }
        Err(_) => warp::reply::with_status(
            "not ready: database did not answer\n",
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response(),
    }
}

/// A request for a `Host` the server does not serve.
#[derive(Debug)]
struct MisdirectedHost;

impl warp::reject::Reject for MisdirectedHost {}

fn read() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// What connections past the HTTP bound get: health and readiness, and 503
/// for everything else.
pub fn overflow_routes(
    ctx: &HttpContext,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + use<> {
    let healthz = warp::path!("healthz")
        .and(read())
        .map(|| warp::reply::with_status("ok\n", StatusCode::OK).into_response());
    let readyz = {
        let hub = ctx.hub.clone();
        let status = Arc::clone(&ctx.status);
        warp::path!("readyz")
            .and(read())
            .then(move || ready(hub.clone(), Arc::clone(&status)))
    };
    healthz
        .or(readyz)
        .unify()
        .or(warp::any().map(|| {
            let mut response = warp::reply::with_status(
                "the server is at its connection bound; retry later\n",
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into_response();
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static("5"),
            );
            response
        }))
        .unify()
        .map(|mut response: Response| {
            policy::secure(response.headers_mut());
            response
        })
}

/// Every route of the server.
pub fn routes(ctx: HttpContext) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let healthz = warp::path!("healthz")
        .and(read())
        .map(|| warp::reply::with_status("ok\n", StatusCode::OK).into_response());
    let readyz = {
        let hub = ctx.hub.clone();
        let status = Arc::clone(&ctx.status);
        warp::path!("readyz")
            .and(read())
            .then(move || ready(hub.clone(), Arc::clone(&status)))
    };
    let metrics = {
        let hub = ctx.hub.clone();
        warp::path!("metrics").and(read()).map(move || {
            warp::reply::with_header(
                hub.metrics().render(),
                "content-type",
                Metrics::CONTENT_TYPE,
            )
            .into_response()
        })
    };
    // Health and readiness answer whatever the Host: probes use addresses.
    let health = healthz.or(readyz).unify();
    let hosts = Arc::clone(&ctx.hosts);
    let host_ok = warp::header::headers_cloned()
        .and_then(move |headers: HeaderMap| {
            let ok = hosts.allow(&headers);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(MisdirectedHost))
                }
            }
        })
        .untuple_one();
    let served = metrics
        .or(ws::route(ctx.ws))
        .unify()
        .or(api::routes(ctx.api))
        .unify()
        .or(webapp::routes(ctx.web_dir))
        .unify();
    health
        .or(host_ok.and(served))
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            let response = if rejection.find::<MisdirectedHost>().is_some() {
                api::error_response(
                    StatusCode::MISDIRECTED_REQUEST,
                    ErrorCode::Forbidden,
                    "this server does not serve that host name",
                )
            } else if rejection.is_not_found() {
                warp::reply::with_status("not found\n", StatusCode::NOT_FOUND).into_response()
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                warp::reply::with_status("method not allowed\n", StatusCode::METHOD_NOT_ALLOWED)
                    .into_response()
            } else {
                warp::reply::with_status("bad request\n", StatusCode::BAD_REQUEST).into_response()
            };
            Ok::<_, Infallible>(response)
        })
        .unify()
        .map(|mut response: Response| {
            policy::secure(response.headers_mut());
            response
        })
}

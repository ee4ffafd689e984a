//! The HTTP surface: health, readiness, metrics, the REST API, the WebSocket
//! endpoint and the built web app, combined into one warp filter.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use pglive_schema::ErrorCode;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::api;
use crate::capture::CaptureStatus;
use crate::engine::Hub;
use crate::metrics::Metrics;
use crate::ws::{self, WsContext};

/// Whether the server can do its job: the LISTEN connection is up and the
/// pool can run a query.
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

/// Every route of the server.
pub fn routes(
    ws_ctx: WsContext,
    status: Arc<CaptureStatus>,
    web_dir: Option<PathBuf>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let hub = ws_ctx.hub.clone();
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::with_status("ok\n", StatusCode::OK).into_response());
    let readyz = {
        let hub = hub.clone();
        warp::path!("readyz")
            .and(warp::get())
            .then(move || ready(hub.clone(), Arc::clone(&status)))
    };
    let metrics = {
        let hub = hub.clone();
        warp::path!("metrics").and(warp::get()).map(move || {
            warp::reply::with_header(
                hub.metrics().render(),
                "content-type",
                Metrics::CONTENT_TYPE,
            )
            .into_response()
        })
    };
    let api = api::routes(hub.pool().clone());
    let api_fallback = warp::path("api").map(|| {
        api::error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such API route",
        )
    });
    let app = healthz
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(ws::route(ws_ctx))
        .unify()
        .or(api)
        .unify()
        .or(api_fallback)
        .unify();
    let web = web_routes(web_dir);
    app.or(web)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            let response = if rejection.is_not_found() {
                warp::reply::with_status("not found\n", StatusCode::NOT_FOUND).into_response()
            } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
                warp::reply::with_status("method not allowed\n", StatusCode::METHOD_NOT_ALLOWED)
                    .into_response()
            } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
                api::error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::Validation,
                    "request body too large",
                )
            } else {
                warp::reply::with_status("bad request\n", StatusCode::BAD_REQUEST).into_response()
            };
            Ok::<_, Infallible>(response)
        })
        .unify()
}

/// The built web app at `/`, with `index.html` for client-side routes.
fn web_routes(web_dir: Option<PathBuf>) -> warp::filters::BoxedFilter<(Response,)> {
    match web_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            warp::get()
                .and(warp::fs::dir(dir).or(warp::fs::file(index)).unify())
                .map(|file: warp::fs::File| file.into_response())
                .boxed()
        }
        None => warp::get()
            .and(warp::path::end())
            .map(|| {
                warp::reply::html("<!doctype html><title>pglive</title><p>pglive is running. No web app directory was given (<code>--web-dir</code>); the WebSocket is at <code>/ws</code>.</p>").into_response()
            })
            .boxed(),
    }
}

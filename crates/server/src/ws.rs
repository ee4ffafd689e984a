//! The WebSocket endpoint `/ws`: the HTTP upgrade handshake, done with warp's
//! routing and hyper's upgrade, then tungstenite directly.
//!
//! We do not use `warp::ws` because its `Message` type cannot send raw
//! fragments, and fragments are how a group's large shared bodies reach
//! every member without a per-client copy (see `frame`).

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::task::TaskTracker;
use warp::http::{HeaderValue, StatusCode, header};
use warp::hyper::upgrade::OnUpgrade;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{Auth, bearer};
use crate::engine::Hub;
use crate::health::Health;
use crate::policy::Origins;
use crate::session::{self, SessionLimits};

/// Hard cap on a client message; above it tungstenite stops reading and the
/// connection is closed with 1009. Below it, the configurable
/// `max_frame_bytes` answers with an error frame instead.
const HARD_MAX_MESSAGE: usize = 1024 * 1024;

/// Per-connection buffers. tungstenite copies each frame into a connection's
/// write buffer and keeps that buffer's capacity, so shared bodies are sent
/// in fragments of at most `frame::FRAGMENT` bytes (see `session`): a
/// connection's buffer then stays near `WRITE_BUFFER` + one fragment however
/// large a snapshot is, instead of growing to (and keeping) the snapshot size.
/// Client messages are small, so the read buffer is too.
const READ_BUFFER: usize = 8 * 1024;
const WRITE_BUFFER: usize = 8 * 1024;
const MAX_WRITE_BUFFER: usize = 128 * 1024;

/// What the endpoint needs; cloned into every connection.
#[derive(Clone, Debug)]
pub struct WsContext {
    pub hub: Hub,
    pub limits: Arc<SessionLimits>,
    /// Flips to `true` once when the server begins shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Browser origins allowed to connect.
    pub origins: Arc<Origins>,
    /// One permit per open WebSocket, held by its session; bounds them at
    /// `--max-connections`. Never closed.
    pub slots: Arc<Semaphore>,
    /// Sessions run on it, so shutdown can wait for them to finish.
    pub sessions: TaskTracker,
    pub auth: Auth,
    /// What clients are told about whether changes reach them.
    pub health: Health,
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    warp::reply::with_status(text, status).into_response()
}

/// `GET /ws`: upgrades to a WebSocket and runs a session on it.
pub fn route(
    ctx: WsContext,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(
            move |headers: warp::http::HeaderMap, on_upgrade: Option<OnUpgrade>| {
                upgrade(ctx.clone(), &headers, on_upgrade)
            },
        )
}

fn upgrade(
    ctx: WsContext,
    headers: &warp::http::HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> Response {
    let has = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(want))
            })
    };
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "expected a WebSocket upgrade\n",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket version; expected 13\n",
        );
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    if !ctx.origins.allow(headers) {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let Ok(slot) = Arc::clone(&ctx.slots).try_acquire_owned() else {
        ctx.hub.metrics().connections_refused.inc();
        let mut res = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server holds as many WebSocket connections as it may; retry later\n",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return res;
    };
    let Some(on_upgrade) = on_upgrade else {
        return plain(StatusCode::BAD_REQUEST, "connection cannot be upgraded\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let token = bearer(headers);
    let sessions = ctx.sessions.clone();
    sessions.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(HARD_MAX_MESSAGE))
                    .max_frame_size(Some(HARD_MAX_MESSAGE))
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(WRITE_BUFFER)
                    .max_write_buffer_size(MAX_WRITE_BUFFER);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                let status = ctx.health.watch();
                session::run(
                    ws,
                    ctx.hub,
                    ctx.limits,
                    ctx.auth,
                    token,
                    status,
                    ctx.shutdown,
                )
                .await;
                drop(slot);
            }
            Err(err) => tracing::debug!(error = %err, "websocket upgrade failed"),
        }
    });
    let mut res = Response::default();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

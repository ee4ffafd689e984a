//! The pglive server: change capture, subscription groups, diffs and
//! WebSocket fan-out, plus the REST write API and the web app.
//!
//! `main` parses [`config::Config`], binds a listener and calls
//! [`run_announced`], which says where it listens once it serves; tests call
//! [`run`] the same way on `127.0.0.1:0`.

mod api;
mod auth;
mod backoff;
mod capture;
pub mod config;
mod connections;
pub mod db;
mod engine;
mod health;
mod http;
mod metrics;
mod policy;
mod relations;
mod session;
mod webapp;
mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::capture::CaptureError;
use crate::config::Config;
use crate::engine::Hub;
use crate::http::HttpContext;
use crate::metrics::Metrics;
use crate::policy::{Hosts, Origins};
use crate::ws::WsContext;

/// Minting tokens, for `pglive token` and tests.
pub use crate::auth::{Authenticator, Secret, unix_now};
/// The keyed diff the server sends, for clients and tests that apply it.
pub use crate::engine::diff;
/// WebSocket close codes the server uses.
pub use crate::session::{CLOSE_FLOODING, CLOSE_TOO_SLOW, CLOSE_UNAUTHENTICATED};

/// How long shutdown waits for WebSocket sessions to send their close frames,
/// and then for the engine's tasks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no database URL: set DATABASE_URL or pass --database-url")]
    NoDatabaseUrl,
    #[error(
        "DATABASE_URL (or --database-url) is not a PostgreSQL connection string ({0}); \
expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    BadDatabaseUrl(db::BadUrl),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Auth(#[from] auth::AuthSetupError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Relation(#[from] relations::MissingForeignKey),
    #[error(
        "authentication is off and the server listens on {0}, which is not a loopback address: \
anyone who can reach it would read and write every live table as the server's own database role. \
Configure --jwt-secret or --jwt-key-file (with --anon-role for clients without a token), \
or pass --no-auth to serve without authentication on purpose"
    )]
    Unprotected(std::net::SocketAddr),
}

/// Serves until `shutdown` completes: then stops accepting, closes every
/// WebSocket with 1001, lets in-flight work finish, and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_announced(config, listener, shutdown, |_| {}).await
}

/// [`run`], calling `serving` with the bound address once every start-up
/// check has passed and the server accepts connections. `main` prints its
/// "listening" line there, so that a harness waiting for that line never
/// sees it from a server that is about to refuse to start.
pub async fn run_announced(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    serving: impl FnOnce(std::net::SocketAddr) + Send,
) -> Result<(), ServerError> {
    let url = config
        .database_url
        .clone()
        .ok_or(ServerError::NoDatabaseUrl)?;
    // A URL that cannot be parsed never connects: refuse it now instead of
    // retrying it forever.
    let database = db::target(&url).map_err(ServerError::BadDatabaseUrl)?;
    tracing::debug!(%database, "database");
    // Protected mode: without authentication, only loopback unless told.
    if !config.auth_enabled()
        && let Ok(addr) = listener.local_addr()
        && !addr.ip().is_loopback()
    {
        if !config.no_auth {
            return Err(ServerError::Unprotected(addr));
        }
        tracing::warn!(%addr, "serving without authentication (--no-auth): every client reads and writes as the server's database role");
    }
    if config.migrate {
        let applied = db::migrate(config.migrate_url().unwrap_or(&url)).await?;
        tracing::info!(?applied, "migrations applied");
    }
    let auth = auth::Authenticator::new(&config.auth_config())?;
    let pool = db::pool(&url, config.pool_size).await?;
    relations::check(&pool).await?;
    if let Some(auth) = &auth {
        auth::audit(auth, &pool).await?;
    }
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::start(pool, Arc::clone(&metrics), config.engine_limits());

    // Flips to true once, when shutdown begins. Every session and the
    // capture task hold a receiver; the sender lives in the shutdown future.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let capture = capture::start(
        &url,
        config.capture,
        config.slot_name.as_deref(),
        hub.clone(),
        shutdown_rx.clone(),
    )
    .await?;
    let status = Arc::clone(capture.status());

    let health = health::Health::default();
    let health_task = tokio::spawn(health::run(
        health.clone(),
        Arc::clone(&status),
        hub.pool().clone(),
        url.clone(),
        shutdown_rx.clone(),
    ));
    let sessions = TaskTracker::new();
    let origins = Arc::new(Origins::new(&config.allowed_origins));
    let ws_ctx = WsContext {
        hub: hub.clone(),
        limits: Arc::new(config.session_limits()),
        shutdown: shutdown_rx,
        origins: Arc::clone(&origins),
        slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
        sessions: sessions.clone(),
        auth: auth.clone(),
        health: health.clone(),
    };
    let http_ctx = HttpContext {
        api: api::Api::new(
            hub.pool().clone(),
            origins,
            config.api_requests_per_second,
            auth,
            config.dev_tokens,
        ),
        hub: hub.clone(),
        status,
        ws: ws_ctx,
        hosts: Arc::new(Hosts::new(&config.allowed_hosts)),
        web_dir: config.web_dir.clone(),
    };
    let overflow = http::overflow_routes(&http_ctx);
    let routes = http::routes(http_ctx);
    // Accepted sockets inherit TCP_NODELAY from the listener. Every message
    // is one write; with Nagle's algorithm a small frame would wait for the
    // previous one's acknowledgement, which clients may delay by up to 40 ms.
    if let Err(err) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
        tracing::warn!(error = %err, "cannot set TCP_NODELAY; small messages may be delayed");
    }
    tracing::info!(addr = ?listener.local_addr().ok(), tables = ?hub.registry().names(), "serving");
    if let Ok(addr) = listener.local_addr() {
        serving(addr);
    }
    connections::serve(
        listener,
        routes,
        overflow,
        config.conn_limits(),
        Arc::clone(&metrics),
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = shutdown_tx.send(true);
        },
    )
    .await;

    // Upgraded WebSockets outlive the HTTP server; wait for their sessions
    // to send 1001 and finish writing, up to a bound.
    sessions.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("some WebSocket sessions did not finish within {DRAIN_TIMEOUT:?}");
    }
    capture.stopped().await;
    let _ = health_task.await;
    hub.stop(DRAIN_TIMEOUT).await;
    Ok(())
}

/// `pglive slot drop`: drops WAL capture's replication slot (the one
/// `config` names, else `pglive_<database>`). Returns its name, and whether
/// it existed.
pub async fn drop_slot(config: &Config) -> Result<(String, bool), ServerError> {
    let url = config
        .database_url
        .as_deref()
        .ok_or(ServerError::NoDatabaseUrl)?;
    db::target(url).map_err(ServerError::BadDatabaseUrl)?;
    Ok(capture::drop_slot(url, config.slot_name.as_deref()).await?)
}

#[cfg(test)]
mod tests {
    /// The server relies on accepted sockets inheriting TCP_NODELAY.
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}

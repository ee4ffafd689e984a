//! Accepting connections: the server's own accept loop around hyper, so that
//! every connection a client can open has a bound and a deadline.
//!
//! - At most `max_http` connections are served at once (WebSockets leave
//!   this count when they upgrade; `ws` bounds them separately). Past it, a
//!   few more are served by a narrow lane with a one-second header deadline
//!   that answers only health and readiness (everything else gets 503), so
//!   probes still get through a flood; past that, connections are closed at
//!   once instead of waiting in a queue.
//! - A request's headers must arrive within `header_read_timeout`; that also
//!   ends idle keep-alive connections and connections that never speak.
//! - Headers are bounded in size (hyper's read buffer).
//! - HTTP/1 only, unless HTTP/2 is configured: cleartext HTTP/2 is not
//!   something a browser ever speaks to this server.
//! - On shutdown the listener closes, in-flight requests get
//!   `shutdown_deadline`, then their connections are dropped.
//!
//! warp routes requests; its own server loop offers none of these bounds.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::error::Error as StdError;
use std::pin::Pin;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::Filter;
use warp::hyper::body::Body;
use warp::hyper::body::Incoming;
use warp::hyper::rt::{Read, Write};
use warp::hyper::server::conn::http1;
use warp::hyper::service::HttpService;
use warp::hyper::service::service_fn;
use warp::reply::Response;

use crate::metrics::Metrics;

/// Bounds on HTTP connections, from configuration.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Connections served at once (before any upgrade).
    pub max_http: usize,
    /// Time a client has to send a request's headers, and to start the next
    /// request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Serve HTTP/2 without TLS (prior knowledge) as well.
    pub http2: bool,
    /// How long in-flight requests may run once shutdown begins.
    pub shutdown_deadline: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_http: 1_024,
            header_read_timeout: Duration::from_secs(10),
            http2: false,
            shutdown_deadline: Duration::from_secs(5),
        }
    }
}

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Largest request head hyper buffers (the request line and all headers).
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Connections the narrow lane serves at once, and its header deadline.
const OVERFLOW: usize = 16;
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `filter` on `listener` until `shutdown` completes, then drains.
/// `overflow` answers connections past the bound (health and readiness).
pub async fn serve<F, O>(
    listener: TcpListener,
    filter: F,
    overflow: O,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
    O: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    // One permit per connection being served; a connection task holds its
    // permit until the connection ends or upgrades. Never closed.
    let permits = Arc::new(Semaphore::new(limits.max_http.max(1)));
    // The narrow lane's permits, held the same way. Never closed.
    let overflow_permits = Arc::new(Semaphore::new(OVERFLOW));
    // Cancelled when shutdown begins: connections finish their request in
    // flight and close.
    let draining = CancellationToken::new();
    // Cancelled when the shutdown deadline passes: connections still open
    // then are dropped.
    let deadline = CancellationToken::new();
    let tasks = TaskTracker::new();
    let filter = filter.boxed();
    let overflow = overflow.boxed();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_at: Option<Instant> = None;
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    accept_failed(&err, &mut warned_at).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (permit, routes, header_timeout) = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => (
                permit,
                warp::service(filter.clone()),
                limits.header_read_timeout,
            ),
            Err(_) => {
                metrics.connections_refused.inc();
                if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        max = limits.max_http,
                        "HTTP connections at their bound; refusing new ones"
                    );
                }
                match Arc::clone(&overflow_permits).try_acquire_owned() {
                    Ok(permit) => (
                        permit,
                        warp::service(overflow.clone()),
                        OVERFLOW_HEADER_TIMEOUT,
                    ),
                    Err(_) => {
                        drop(stream);
                        continue;
                    }
                }
            }
        };
        metrics.http_connections.inc();
        let service = service_fn(move |mut req: warp::http::Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(addr));
            let mut routes = routes.clone();
            async move { tower_service::Service::call(&mut routes, req).await }
        });
        let limits = limits.clone();
        let draining = draining.clone();
        let deadline = deadline.clone();
        let metrics = Arc::clone(&metrics);
        tasks.spawn(async move {
            if limits.http2 {
                // The HTTP/2 detection waits for the client's first bytes;
                // a client that never sends them gets the header deadline.
                let mut first = [0u8; 1];
                if !matches!(
                    tokio::time::timeout(header_timeout, stream.peek(&mut first)).await,
                    Ok(Ok(1..))
                ) {
                    metrics.http_connections.dec();
                    return;
                }
                let io = TokioIo::new(stream);
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(MAX_HEAD_BYTES);
                let conn = builder.serve_connection_with_upgrades(io, service);
                drive(conn, &draining, &deadline).await;
            } else {
                let io = TokioIo::new(stream);
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(MAX_HEAD_BYTES);
                let conn = builder.serve_connection(io, service).with_upgrades();
                drive(conn, &draining, &deadline).await;
            }
            metrics.http_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    tracing::debug!("no longer accepting; draining connections");
    draining.cancel();
    tasks.close();
    if tokio::time::timeout(limits.shutdown_deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::info!(
            "in-flight HTTP requests did not finish within {:?}; closing them",
            limits.shutdown_deadline
        );
        deadline.cancel();
        tasks.wait().await;
    }
}

/// A connection that can be asked to finish its request in flight and close.
trait Drain: Future {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drain for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Drain for auto::UpgradeableConnection<'_, I, S, E>
where
    S: warp::hyper::service::Service<
            warp::http::Request<Incoming>,
            Response = warp::http::Response<B>,
        >,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::Future: 'static,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    E: warp::hyper::rt::bounds::Http2ServerConnExec<S::Future, B>
        + auto::HttpServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs a connection; once shutdown begins it finishes the request in
/// flight, and at the deadline it is dropped.
async fn drive<C, E>(conn: C, draining: &CancellationToken, deadline: &CancellationToken)
where
    C: Drain + Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => Some(result),
        () = draining.cancelled() => {
            conn.as_mut().drain();
            tokio::select! {
                result = conn => Some(result),
                () = deadline.cancelled() => None,
            }
        }
    };
    // Clients end connections in every way; none of it is the server's error.
    if let Some(Err(err)) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// An accept error: out of descriptors or memory (the listener keeps
/// failing until some close, so pause briefly), or a connection that was
/// already gone. Logged at most every ten seconds.
async fn accept_failed(err: &std::io::Error, warned_at: &mut Option<Instant>) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *warned_at = Some(Instant::now());
        tracing::warn!(error = %err, "cannot accept connections (descriptors exhausted?); pausing accepts");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

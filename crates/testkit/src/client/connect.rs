//! Opening a WebSocket to a pglive server (or to any server the bench
//! compares with): the TCP connection, its socket settings, the upgrade
//! request's headers, and the handshake.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::error::Elapsed;
use tokio_tungstenite::tungstenite::client::{IntoClientRequest, uri_mode};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::InvalidHeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::stream::Mode;
use tokio_tungstenite::tungstenite::{self, error::UrlError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to open a connection. The default is what the server's tests use
/// (tokio-tungstenite's `connect_async`: its buffers, Nagle on, no time
/// limit); the load generator sets the rest.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// Sent as `Authorization: Bearer <token>` on the upgrade request.
    pub bearer: Option<String>,
    /// Sent as `Origin` on the upgrade request.
    pub origin: Option<String>,
    /// tungstenite's buffers and limits (`None`: its defaults).
    pub config: Option<WebSocketConfig>,
    /// `TCP_NODELAY` on the socket.
    pub nodelay: bool,
    /// A limit for the TCP connect and another, as long, for the handshake.
    pub timeout: Option<Duration>,
}

/// Why a connection could not be opened. The messages name the step, the
/// source says why (`{:#}` prints both).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("bad WebSocket request")]
    Request(#[source] Box<tungstenite::Error>),
    #[error("bad {name} header")]
    Header {
        name: &'static str,
        #[source]
        source: InvalidHeaderValue,
    },
    #[error("TCP connect timed out")]
    TcpTimeout(#[source] Elapsed),
    #[error("TCP connect")]
    Tcp(#[source] std::io::Error),
    #[error("TCP_NODELAY")]
    NoDelay(#[source] std::io::Error),
    #[error("WebSocket handshake timed out")]
    HandshakeTimeout(#[source] Elapsed),
    #[error("WebSocket handshake")]
    Handshake(#[source] Box<tungstenite::Error>),
}

fn request_error(e: tungstenite::Error) -> ConnectError {
    ConnectError::Request(Box::new(e))
}

fn header(name: &'static str, value: &str) -> Result<HeaderValue, ConnectError> {
    value
        .parse()
        .map_err(|source| ConnectError::Header { name, source })
}

/// `f`, within `limit` when there is one.
async fn within<F: Future>(limit: Option<Duration>, f: F) -> Result<F::Output, Elapsed> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await,
        None => Ok(f.await),
    }
}

/// Connects to `url` (`ws://host:port/path`) as `options` say, the way
/// `connect_async` does: TCP to the URL's host and port, then the
/// handshake over the plain socket.
pub(super) async fn open(url: &str, options: &Connect) -> Result<Ws, ConnectError> {
    let mut request = url.into_client_request().map_err(request_error)?;
    if let Some(token) = &options.bearer {
        let value = header("authorization", &format!("Bearer {token}"))?;
        request.headers_mut().insert("authorization", value);
    }
    if let Some(origin) = &options.origin {
        let value = header("origin", origin)?;
        request.headers_mut().insert("origin", value);
    }
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| request_error(tungstenite::Error::Url(UrlError::NoHostName)))?;
    // Plain sockets only: the workspace builds tungstenite without TLS.
    if let Mode::Tls = uri_mode(uri).map_err(request_error)? {
        return Err(request_error(tungstenite::Error::Url(
            UrlError::TlsFeatureNotEnabled,
        )));
    }
    let port = uri.port_u16().unwrap_or(80);
    let tcp = within(
        options.timeout,
        TcpStream::connect(format!("{host}:{port}")),
    )
    .await
    .map_err(ConnectError::TcpTimeout)?
    .map_err(ConnectError::Tcp)?;
    if options.nodelay {
        tcp.set_nodelay(true).map_err(ConnectError::NoDelay)?;
    }
    let handshake = tokio_tungstenite::client_async_with_config(
        request,
        MaybeTlsStream::Plain(tcp),
        options.config,
    );
    let (ws, _) = within(options.timeout, handshake)
        .await
        .map_err(ConnectError::HandshakeTimeout)?
        .map_err(|e| ConnectError::Handshake(Box::new(e)))?;
    Ok(ws)
}

//! The bench's WebSocket connections. Each is a `pglive_testkit::Client`
//! (the one protocol client of the workspace), opened with the load
//! generator's socket settings and read in its raw mode: the frames' bytes
//! go to a [`FrameSink`] that measures them, undecoded.
//!
//! S1–S6 and W use [`session`]; RLS and RECONNECT drive their own
//! connections (they authenticate, drop and resubscribe) over [`open`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use pglive_testkit::{Client, Connect};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The id every bench client subscribes as.
pub const SUBSCRIPTION: &str = "a";

/// How long the TCP connect may take, and then the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a client holds its connect slot at most, waiting for its
/// initial state.
pub const GATE_HOLD: Duration = Duration::from_secs(15);

/// How the bench connects: `TCP_NODELAY`, tungstenite's read buffer of
/// `read_buffer` bytes and no write buffer (a client sends one or two
/// messages, each written at once), and [`CONNECT_TIMEOUT`] for the TCP
/// connect and for the handshake.
fn options(read_buffer: usize) -> Connect {
    Connect {
        config: Some(
            WebSocketConfig::default()
                .read_buffer_size(read_buffer)
                .write_buffer_size(0),
        ),
        nodelay: true,
        timeout: Some(CONNECT_TIMEOUT),
        ..Connect::default()
    }
}

/// Opens a connection to `url` with the bench's settings.
pub async fn open(url: &str, read_buffer: usize) -> anyhow::Result<Client> {
    Ok(Client::open(url, &options(read_buffer)).await?)
}

/// How to reach the server and what to subscribe to.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub url: String,
    /// The query to subscribe to (pglive), or none (the peer and the floor
    /// push on connect).
    pub subscribe: Option<Value>,
    /// tungstenite's read buffer (see the callers for the sizes).
    pub read_buffer: usize,
}

/// What a connection does with the frames it receives.
pub trait FrameSink {
    fn on_frame(&mut self, frame: &[u8]);
    /// It has its initial state (then it releases its connect slot).
    fn is_ready(&self) -> bool;
}

/// How a connection ended.
#[derive(Debug, Default)]
pub struct ConnOutcome {
    pub connected: bool,
    /// The server closed the connection (or it failed) before the end.
    pub closed_early: bool,
    pub error: Option<String>,
}

/// Connects, subscribes and feeds every frame to `sink` until `stop` turns
/// true or the connection ends; `connected` counts successful handshakes.
/// `connect_gate` limits the clients connecting at once: each holds a
/// permit from before its TCP connect until it has its initial state (or
/// [`GATE_HOLD`] passed), so that the connect phase does not pile up
/// unanswered subscriptions.
pub async fn session(
    sink: &mut impl FrameSink,
    conn: &mut ConnOutcome,
    spec: &ClientSpec,
    connect_gate: &Semaphore,
    connected: &AtomicUsize,
    stop: &mut watch::Receiver<bool>,
) {
    let res: anyhow::Result<()> = async {
        let permit = connect_gate
            .acquire()
            .await
            .context("connect gate closed")?;
        let mut client = open(&spec.url, spec.read_buffer).await?;
        conn.connected = true;
        connected.fetch_add(1, Ordering::Release);
        if let Some(query) = &spec.subscribe {
            client
                .try_subscribe(SUBSCRIPTION, query, None)
                .await
                .context("send subscribe")?;
        }
        let mut permit = Some(permit);
        let gate_deadline = tokio::time::Instant::now() + GATE_HOLD;
        let stopped = stop.changed();
        tokio::pin!(stopped);
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut stopped => return Ok(()),
                _ = tokio::time::sleep_until(gate_deadline), if permit.is_some() => {
                    permit = None;
                    continue;
                }
                next = client.next_frame() => next,
            };
            // The end of the connection (`Ended`) is its error.
            sink.on_frame(next?.as_bytes());
            if sink.is_ready() {
                permit = None;
            }
        }
    }
    .await;
    if let Err(e) = res {
        conn.error = Some(format!("{e:#}"));
        conn.closed_early = true;
    }
}

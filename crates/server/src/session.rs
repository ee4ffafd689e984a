//! One WebSocket connection: parses client frames, joins and leaves groups,
//! and writes the connection's outbox to the socket.
//!
//! Each connection runs two tasks. The session task (this module's [`run`])
//! owns the read half and the subscription table; the writer task owns the
//! write half and drains the bounded outbox. Groups and the session put frames
//! in the outbox with `try_send`, so nothing ever waits on a slow client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use pglive_schema::wire::MAX_SUBSCRIPTION_ID;
use pglive_schema::{ErrorCode, LiveQuery, SubscriptionId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use crate::frame::{self, Frame};
use crate::group::{ConnShared, Member};
use crate::hub::{Hub, JoinError, Membership};
use crate::metrics::Metrics;

/// Close code for a client that stopped reading (application range).
pub const CLOSE_TOO_SLOW: u16 = 4008;

/// Per-connection limits, from configuration.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Largest accepted client frame, in bytes; larger ones get `frame_too_large`.
    pub max_frame_bytes: usize,
    /// Subscriptions one connection may hold at once.
    pub max_subscriptions: usize,
    /// Sustained client messages per second, and the burst allowed above it.
    pub messages_per_second: f64,
    pub message_burst: f64,
    /// Frames a connection's outbox holds before the client counts as lagging.
    pub outbox_frames: usize,
    /// How long one write may wait on the socket before the client is closed.
    pub stall_timeout: Duration,
    /// Largest `limit` a query may ask for.
    pub max_query_limit: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 100,
            messages_per_second: 50.0,
            message_burst: 100.0,
            outbox_frames: 64,
            stall_timeout: Duration::from_secs(10),
            max_query_limit: 10_000,
        }
    }
}

/// A token bucket for client messages.
struct RateLimit {
    tokens: f64,
    last: Instant,
    told_at: Option<Instant>,
}

impl RateLimit {
    fn allow(&mut self, limits: &SessionLimits) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * limits.messages_per_second;
        self.tokens = (self.tokens + refill).min(limits.message_burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether to send another `rate_limited` error (at most one a second).
    fn should_tell(&mut self) -> bool {
        let now = Instant::now();
        if self
            .told_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.told_at = Some(now);
        true
    }
}

struct Session {
    hub: Hub,
    limits: Arc<SessionLimits>,
    /// The connection's outbox; the writer task holds the receiver and ends
    /// when every sender (this one and the groups' copies) is gone.
    outbox: mpsc::Sender<Frame>,
    conn: Arc<ConnShared>,
    subscriptions: HashMap<SubscriptionId, Membership>,
    rate: RateLimit,
}

/// Serves one upgraded WebSocket until it closes or the server shuts down.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    hub: Hub,
    limits: Arc<SessionLimits>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = Arc::clone(hub.metrics());
    Metrics::inc(&metrics.connections);
    Metrics::inc(&metrics.connections_total);
    let (sink, mut stream) = ws.split();
    let (outbox, rx) = mpsc::channel(limits.outbox_frames.max(1));
    let conn = Arc::new(ConnShared::default());
    let mut writer = tokio::spawn(write_loop(
        sink,
        rx,
        Arc::clone(&conn),
        limits.stall_timeout,
        Arc::clone(&metrics),
    ));
    let mut session = Session {
        hub,
        limits: Arc::clone(&limits),
        outbox,
        conn: Arc::clone(&conn),
        subscriptions: HashMap::new(),
        rate: RateLimit {
            tokens: limits.message_burst,
            last: Instant::now(),
            told_at: None,
        },
    };
    let mut writer_done = false;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()),
                Some(Ok(Message::Binary(_))) => session.reply_error(None, ErrorCode::BinaryFrame, "binary frames are not part of the protocol; send JSON text"),
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    session.reply_error(None, ErrorCode::FrameTooLarge, format!("frame of {size} bytes is over the hard limit of {max_size}; closing"));
                    let _ = session.outbox.try_send(Frame::Close { code: 1009, reason: "frame too large" });
                    break;
                }
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "websocket read error");
                    break;
                }
            },
            () = conn.resync.notified() => {
                for membership in session.subscriptions.values() {
                    membership.group.request_resync();
                }
            }
            _ = shutdown.changed() => {
                let _ = session.outbox.try_send(Frame::Close { code: 1001, reason: "server shutting down" });
                break;
            }
            _ = &mut writer => {
                writer_done = true;
                break;
            }
        }
    }
    session.leave_all();
    drop(session);
    if !writer_done {
        // The writer finishes the queued frames (including a close frame),
        // bounded by its stall timeout, then ends when the outbox closes.
        let _ = writer.await;
    }
    Metrics::dec(&metrics.connections);
}

impl Session {
    fn reply_error(
        &mut self,
        id: Option<&SubscriptionId>,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        Metrics::inc(&self.hub.metrics().client_errors_total);
        if self
            .outbox
            .try_send(Frame::error(id, code, message))
            .is_err()
        {
            // The outbox is full: the client is not reading. Its errors are
            // counted but not queued; the stall timeout will close it.
            Metrics::inc(&self.hub.metrics().frames_dropped_total);
        }
    }

    fn on_text(&mut self, text: &str) {
        if !self.rate.allow(&self.limits) {
            if self.rate.should_tell() {
                let rate = self.limits.messages_per_second;
                self.reply_error(
                    None,
                    ErrorCode::RateLimited,
                    format!("more than {rate} messages per second; messages are being dropped"),
                );
            }
            return;
        }
        if text.len() > self.limits.max_frame_bytes {
            let max = self.limits.max_frame_bytes;
            self.reply_error(
                None,
                ErrorCode::FrameTooLarge,
                format!("frame of {} bytes is over the limit of {max}", text.len()),
            );
            return;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(err) => {
                self.reply_error(
                    None,
                    ErrorCode::BadFrame,
                    format!("frame is not valid JSON: {err}"),
                );
                return;
            }
        };
        let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
            self.reply_error(
                None,
                ErrorCode::BadFrame,
                "frame must be a JSON object with a string \"type\"",
            );
            return;
        };
        let id = match parse_id(&value) {
            Ok(id) => id,
            Err((code, message)) => {
                self.reply_error(None, code, message);
                return;
            }
        };
        match kind {
            "subscribe" => self.subscribe(id, &value),
            "unsubscribe" => self.unsubscribe(id),
            other => {
                let other = truncate(other, 40);
                self.reply_error(
                    Some(&id),
                    ErrorCode::BadFrame,
                    format!(
                        "unknown message type {other:?}; expected \"subscribe\" or \"unsubscribe\""
                    ),
                );
            }
        }
    }

    fn subscribe(&mut self, id: SubscriptionId, value: &serde_json::Value) {
        if let Some(existing) = self.subscriptions.get(&id) {
            if !existing.group.is_closed() {
                self.reply_error(
                    Some(&id),
                    ErrorCode::DuplicateId,
                    "a subscription with this id is already active on this connection",
                );
                return;
            }
            // Its group was refused (e.g. result too large); the id is free again.
            if let Some(old) = self.subscriptions.remove(&id) {
                self.hub.leave(old);
            }
        }
        if self.subscriptions.len() >= self.limits.max_subscriptions {
            let max = self.limits.max_subscriptions;
            self.reply_error(
                Some(&id),
                ErrorCode::TooManySubscriptions,
                format!("at most {max} subscriptions per connection"),
            );
            return;
        }
        let Some(raw) = value.get("query") else {
            self.reply_error(
                Some(&id),
                ErrorCode::BadFrame,
                "subscribe needs a \"query\"",
            );
            return;
        };
        let table = raw.get("table").and_then(|t| t.as_str());
        let known = table.is_some_and(|t| self.hub.registry().get(t).is_some());
        if !known {
            let tables = self.hub.registry().names().join(", ");
            let message = match table {
                Some(t) => format!(
                    "unknown table {:?}; live tables are: {tables}",
                    truncate(t, 64)
                ),
                None => format!("query needs a string \"table\"; live tables are: {tables}"),
            };
            self.reply_error(Some(&id), ErrorCode::UnknownTable, message);
            return;
        }
        let query: LiveQuery = match serde_json::from_value(raw.clone()) {
            Ok(q) => q,
            Err(err) => {
                self.reply_error(
                    Some(&id),
                    ErrorCode::InvalidQuery,
                    format!("invalid query: {err}"),
                );
                return;
            }
        };
        if let Err(err) = query.validate(self.limits.max_query_limit) {
            self.reply_error(
                Some(&id),
                ErrorCode::InvalidQuery,
                format!("invalid query: {err}"),
            );
            return;
        }
        let member = Member {
            id_json: frame::id_json(&id),
            outbox: self.outbox.clone(),
            conn: Arc::clone(&self.conn),
        };
        match self.hub.join(&query, member) {
            Ok(membership) => {
                self.subscriptions.insert(id, membership);
            }
            Err(JoinError::UnknownTable(t)) => {
                self.reply_error(
                    Some(&id),
                    ErrorCode::UnknownTable,
                    format!("unknown table {t:?}"),
                );
            }
        }
    }

    fn unsubscribe(&mut self, id: SubscriptionId) {
        match self.subscriptions.remove(&id) {
            Some(membership) => self.hub.leave(membership),
            None => self.reply_error(
                Some(&id),
                ErrorCode::UnknownId,
                "no subscription with this id is active on this connection",
            ),
        }
    }

    fn leave_all(&mut self) {
        for (_, membership) in self.subscriptions.drain() {
            self.hub.leave(membership);
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_id(value: &serde_json::Value) -> Result<SubscriptionId, (ErrorCode, String)> {
    match value.get("id") {
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= MAX_SUBSCRIPTION_ID => {
            Ok(SubscriptionId(s.clone()))
        }
        Some(serde_json::Value::String(_)) => Err((
            ErrorCode::InvalidId,
            format!("\"id\" must be 1 to {MAX_SUBSCRIPTION_ID} bytes"),
        )),
        _ => Err((ErrorCode::BadFrame, "frame needs a string \"id\"".into())),
    }
}

/// How the writer ended.
#[derive(Debug, PartialEq, Eq)]
enum WriteEnd {
    Drained,
    Broken,
    Stalled,
}

/// Drains the outbox into the socket, batching frames into one flush.
async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<Frame>,
    conn: Arc<ConnShared>,
    stall: Duration,
    metrics: Arc<Metrics>,
) -> WriteEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = rx.recv().await {
        let closing = matches!(frame, Frame::Close { .. });
        let write = async {
            feed(&mut sink, frame, &metrics).await?;
            // Batch what is already queued, then flush once.
            if !closing && rx.is_empty() {
                sink.flush().await?;
            }
            if closing {
                sink.close().await?;
            }
            Ok::<(), WsError>(())
        };
        match tokio::time::timeout(stall, write).await {
            Err(_) => {
                Metrics::inc(&metrics.slow_clients_closed_total);
                tracing::info!("closing a client that stopped reading");
                // Best effort: the socket may be too full to take even this.
                let close = Message::Close(Some(CloseFrame {
                    code: CloseCode::from(CLOSE_TOO_SLOW),
                    reason: "client too slow".into(),
                }));
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                return WriteEnd::Stalled;
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "websocket write error");
                return WriteEnd::Broken;
            }
            Ok(Ok(())) if closing => return WriteEnd::Drained,
            Ok(Ok(())) => {}
        }
        if rx.is_empty() && conn.lagged.swap(false, Ordering::SeqCst) {
            conn.resync.notify_one();
        }
    }
    let _ = sink.close().await;
    WriteEnd::Drained
}

async fn feed<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    frame: Frame,
    metrics: &Metrics,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Metrics::inc(&metrics.frames_sent_total);
    match frame {
        Frame::Shared {
            kind,
            id_json,
            body,
        } => {
            let header = Frame::header(kind, &id_json);
            Metrics::add(
                &metrics.bytes_sent_total,
                (header.len() + body.len()) as u64,
            );
            sink.feed(Message::Frame(WsFrame::message(
                header,
                OpCode::Data(Data::Text),
                false,
            )))
            .await?;
            // The body follows as one or more continuation fragments, each a
            // slice of the shared `Bytes`; the last one ends the message.
            let last = body.len().saturating_sub(1) / frame::FRAGMENT;
            for (n, part) in frame::fragments(&body).enumerate() {
                sink.feed(Message::Frame(WsFrame::message(
                    part,
                    OpCode::Data(Data::Continue),
                    n == last,
                )))
                .await?;
            }
            Ok(())
        }
        Frame::Text(bytes) => {
            Metrics::add(&metrics.bytes_sent_total, bytes.len() as u64);
            sink.feed(Message::Frame(WsFrame::message(
                bytes,
                OpCode::Data(Data::Text),
                true,
            )))
            .await
        }
        Frame::Close { code, reason } => {
            sink.feed(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })))
            .await
        }
    }
}

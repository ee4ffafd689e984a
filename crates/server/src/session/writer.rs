//! The writer task of a connection: drains its bounded outbox into the
//! socket, so that nothing else ever waits on a slow client.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::engine::frame::{self, Frame};
use crate::engine::outbox::ConnShared;
use crate::metrics::Metrics;

/// Close code for a client that stopped reading (application range).
pub const CLOSE_TOO_SLOW: u16 = 4008;

/// How the writer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteEnd {
    Drained,
    Broken,
    Stalled,
}

pub type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

/// Drains the outbox into the socket, batching what is queued into one
/// flush. A write that waits longer than `stall` closes the client (4008).
pub async fn run<S>(
    mut sink: Sink<S>,
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
                metrics.slow_clients_closed.inc();
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
        if rx.is_empty() {
            conn.drained();
        }
    }
    let _ = sink.close().await;
    WriteEnd::Drained
}

async fn feed<S>(sink: &mut Sink<S>, frame: Frame, metrics: &Metrics) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    metrics.frames_sent.inc();
    match frame {
        Frame::Shared {
            kind,
            id_json,
            body,
        } => {
            let header = Frame::header(kind, &id_json);
            metrics
                .bytes_sent
                .inc_by((header.len() + body.len()) as u64);
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
            metrics.bytes_sent.inc_by(bytes.len() as u64);
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

//! The writer task of a connection: drains its bounded outbox into the
//! socket, so that nothing else ever waits on a slow client.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
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
    // Frames and bytes written since the last flush, added to the shared
    // counters once per flush rather than once per frame: every writer task
    // would otherwise contend on the same two atomics.
    let mut tally = Tally::default();
    while let Some(frame) = rx.recv().await {
        let closing = matches!(frame, Frame::Close { .. });
        let flushing = closing || rx.is_empty();
        let result = {
            let write = async {
                feed(&mut sink, frame, &mut tally).await?;
                if !closing && flushing {
                    sink.flush().await?;
                }
                if closing {
                    sink.close().await?;
                }
                Ok::<(), WsError>(())
            };
            tokio::pin!(write);
            // Most writes finish on their first poll (the socket has room).
            // Poll once before arming the stall timer, so that a client that
            // keeps up costs no timer registration per frame.
            let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            match first {
                Poll::Ready(done) => Ok(done),
                Poll::Pending => tokio::time::timeout(stall, write).await,
            }
        };
        if flushing {
            tally.publish(&metrics);
        }
        match result {
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
    tally.publish(&metrics);
    let _ = sink.close().await;
    WriteEnd::Drained
}

/// What a writer has sent since it last published to [`Metrics`].
#[derive(Default)]
struct Tally {
    frames: u64,
    bytes: u64,
}

impl Tally {
    fn publish(&mut self, metrics: &Metrics) {
        if self.frames > 0 {
            metrics.frames_sent.inc_by(self.frames);
            metrics.bytes_sent.inc_by(self.bytes);
            *self = Tally::default();
        }
    }
}

async fn feed<S>(sink: &mut Sink<S>, frame: Frame, tally: &mut Tally) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tally.frames += 1;
    match frame {
        Frame::Shared { header, body } => {
            tally.bytes += (header.len() + body.len()) as u64;
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
            tally.bytes += bytes.len() as u64;
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

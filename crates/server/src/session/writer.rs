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
            let len = header.len() + body.len();
            tally.bytes += len as u64;
            if len <= frame::FRAGMENT {
                // A small message goes out as one frame: tungstenite copies
                // every payload into its write buffer anyway, so joining the
                // two parts here costs one short copy and saves a second
                // frame's trip through the sink and the framing. A plain `Vec`
                // costs one malloc and free from the thread's cache; reusing
                // a `BytesMut` instead profiled at about 3 % of pglive's CPU
                // in S2 (its split, reclaim and shared drop go through atomics).
                let mut whole = Vec::with_capacity(len);
                whole.extend_from_slice(&header);
                whole.extend_from_slice(&body);
                return sink
                    .feed(Message::Frame(WsFrame::message(
                        whole,
                        OpCode::Data(Data::Text),
                        true,
                    )))
                    .await;
            }
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::engine::outbox;

    /// The frames a server wrote, as (first byte, payload): servers do not
    /// mask, so each is two header bytes, an extended length, the payload.
    fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while wire.len() >= 2 {
            let (head, len) = (wire[0], wire[1] & 0x7f);
            let (len, skip) = match len {
                126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push((head, wire[skip..skip + len].to_vec()));
            wire = &wire[skip + len..];
        }
        out
    }

    /// A small snapshot or diff leaves as one final text frame (one socket
    /// write, one frame header), a large one as a first fragment and
    /// continuation fragments of at most `FRAGMENT` bytes.
    #[tokio::test]
    async fn small_shared_messages_are_one_frame_large_ones_fragments() {
        let (server, mut client) = tokio::io::duplex(1 << 20);
        let ws = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let (sink, stream) = ws.split();
        let (tx, rx) = mpsc::channel(8);
        let header = Bytes::from_static(br#"{"type":"diff","id":"a","#);
        let small = Bytes::from_static(br#""from":1,"to":2}"#);
        let large = Bytes::from(vec![b' '; frame::FRAGMENT * 2]);
        for body in [&small, &large] {
            tx.try_send(Frame::Shared {
                header: header.clone(),
                body: body.clone(),
            })
            .unwrap();
        }
        drop(tx);
        let end = run(
            sink,
            rx,
            outbox::new_connection(),
            Duration::from_secs(5),
            Arc::new(Metrics::default()),
        )
        .await;
        assert_eq!(end, WriteEnd::Drained);
        // Both halves gone: the client side reads to the end of the stream.
        drop(stream);
        let mut wire = Vec::new();
        client.read_to_end(&mut wire).await.unwrap();
        let frames = frames(&wire);
        let heads: Vec<u8> = frames.iter().map(|f| f.0).collect();
        // 0x81 final text; 0x01 first text fragment (the header); 0x00 and
        // 0x80 the body's two continuation fragments; 0x88 the close frame.
        assert_eq!(heads, [0x81, 0x01, 0x00, 0x80, 0x88]);
        assert_eq!(frames[0].1, [&header[..], &small[..]].concat());
        assert_eq!(frames[1].1, header);
        let rest: Vec<u8> = frames[2..4].iter().flat_map(|f| f.1.clone()).collect();
        assert_eq!(rest, large);
        assert!(frames[2..4].iter().all(|f| f.1.len() <= frame::FRAGMENT));
    }
}

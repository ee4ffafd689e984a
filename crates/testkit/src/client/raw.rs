//! Receiving frames as they arrive, undecoded.
//!
//! Why a raw mode: the load generator runs up to 10,000 clients on one
//! tokio runtime, on the same 2 cores as the server it measures, and must
//! keep up with every frame (100,000 frames/s in S5) without taking CPU
//! from that server. Decoding each frame as a `ServerMessage` and applying
//! it, as the tests do, costs far more than the server's own work per
//! frame, so the bench would measure itself. A raw frame is the bytes
//! tungstenite already holds, moved out of its `Message` (no copy, no
//! allocation, no lock, no task); the bench scans them for its markers.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Bytes, Message, Utf8Bytes};

use super::connect::Ws;

/// One data frame as the server sent it.
#[derive(Debug, Clone)]
pub enum Frame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    /// The frame's payload.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Frame::Text(text) => text.as_bytes(),
            Frame::Binary(bytes) => bytes,
        }
    }
}

/// Why no frame will follow.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// The server sent a close frame.
    #[error("server closed the connection: {0:?}")]
    Closed(Option<CloseFrame>),
    /// The stream ended without one.
    #[error("connection ended")]
    Gone,
    #[error("WebSocket read")]
    Read(#[source] Box<tungstenite::Error>),
}

impl Ended {
    /// The close code the server sent (1005 when its close frame had
    /// none), if it closed the connection.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Ended::Closed(frame) => Some(frame.as_ref().map_or(1005, |f| u16::from(f.code))),
            Ended::Gone | Ended::Read(_) => None,
        }
    }
}

/// What one read from the socket gave.
pub(super) enum Read {
    Frame(Frame),
    /// A ping or a pong (tungstenite answers pings itself): nothing for the
    /// client.
    Control,
    End(Ended),
}

/// Sorts out one item of the WebSocket stream.
pub(super) fn read(item: Option<Result<Message, tungstenite::Error>>) -> Read {
    match item {
        Some(Ok(Message::Text(text))) => Read::Frame(Frame::Text(text)),
        Some(Ok(Message::Binary(bytes))) => Read::Frame(Frame::Binary(bytes)),
        Some(Ok(Message::Close(frame))) => Read::End(Ended::Closed(frame)),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Read::Control,
        Some(Err(e)) => Read::End(Ended::Read(Box::new(e))),
        None => Read::End(Ended::Gone),
    }
}

/// The next data frame, skipping control frames. Cancel-safe (it only
/// awaits the stream, which loses nothing when dropped): the bench races it
/// against its stop signal.
pub(super) async fn next_frame(ws: &mut Ws) -> Result<Frame, Ended> {
    loop {
        match read(ws.next().await) {
            Read::Frame(frame) => return Ok(frame),
            Read::Control => {}
            Read::End(end) => return Err(end),
        }
    }
}

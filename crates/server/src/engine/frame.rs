//! Outgoing frames and their encoding.
//!
//! A group encodes each snapshot or diff body once and every member gets the
//! same [`Bytes`]. The only per-client part of a message is its subscription
//! id, so a frame carries a small per-subscription header
//! (`{"type":"diff","id":"a",`) and the shared body. The connection's writer
//! joins the two into one WebSocket frame when the message is small, and
//! sends a large one as a fragmented text message (the header, then the body
//! in continuation fragments) so that no per-client copy of it is made.
//! Clients see one ordinary JSON message either way.

use std::sync::Arc;

use bytes::Bytes;
use pglive_schema::wire::{ErrorMessage, SubscriptionId};
use pglive_schema::{ErrorCode, ServerMessage};
use serde::Serialize;

use super::diff::Changes;

/// Largest WebSocket frame the server writes for a shared body; bodies above
/// it go out as several continuation fragments (slices of the same `Bytes`).
pub const FRAGMENT: usize = 8 * 1024;

/// Which message a shared body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Snapshot,
    Diff,
}

/// One message waiting in a connection's outbox.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A snapshot or diff: the member's own first fragment (see
    /// [`Headers`]) and the body shared by every member of the group.
    Shared { header: Bytes, body: Bytes },
    /// A complete message for this connection only (errors).
    Text(Bytes),
    /// Close the connection with this code and reason.
    Close { code: u16, reason: &'static str },
}

/// A subscription's first fragments, one per kind, encoded once when it
/// joins: delivering a frame then costs two reference-count increments and
/// no formatting or allocation, however many members a group has.
#[derive(Debug, Clone)]
pub struct Headers {
    snapshot: Bytes,
    diff: Bytes,
}

impl Headers {
    pub fn new(id: &SubscriptionId) -> Headers {
        // A JSON string of a `String` cannot fail to encode; the fallback
        // only keeps this total.
        let id_json = serde_json::to_string(&id.0).unwrap_or_else(|_| "\"\"".into());
        let header = |kind: &str| Bytes::from(format!(r#"{{"type":"{kind}","id":{id_json},"#));
        Headers {
            snapshot: header("snapshot"),
            diff: header("diff"),
        }
    }

    /// The frame that delivers `body` as a message of `kind`.
    pub fn frame(&self, kind: Kind, body: &Bytes) -> Frame {
        let header = match kind {
            Kind::Snapshot => &self.snapshot,
            Kind::Diff => &self.diff,
        };
        Frame::Shared {
            header: header.clone(),
            body: body.clone(),
        }
    }
}

impl Frame {
    /// A complete message of this connection's own (`resumed`, `status`,
    /// `authenticated`).
    pub fn message(msg: &ServerMessage) -> Frame {
        // Serializing these plain structs cannot fail; an empty frame would
        // be refused by the client's decoder, never misread.
        Frame::Text(Bytes::from(serde_json::to_vec(msg).unwrap_or_default()))
    }

    /// An `error` message for this connection.
    pub fn error(
        id: Option<&SubscriptionId>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Frame {
        let msg = ServerMessage::Error(ErrorMessage {
            id: id.cloned(),
            code,
            message: message.into(),
        });
        // Serializing a plain struct of strings cannot fail; fall back to a
        // fixed message rather than panic if it ever did.
        let json = serde_json::to_vec(&msg).unwrap_or_else(|_| {
            br#"{"type":"error","code":"internal","message":"internal error"}"#.to_vec()
        });
        Frame::Text(Bytes::from(json))
    }
}

/// Splits a shared body into zero-copy slices of at most [`FRAGMENT`] bytes.
pub fn fragments(body: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    // An empty body still yields one (empty) fragment to end the message.
    (0..body.len().max(1))
        .step_by(FRAGMENT)
        .map(move |start| body.slice(start..(start + FRAGMENT).min(body.len())))
}

#[derive(Serialize)]
struct SnapshotBody<'a, R> {
    epoch: &'a str,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    related: &'a [serde_json::Value],
    table: &'static str,
    rows: &'a [Arc<R>],
}

#[derive(Serialize)]
struct Placed<'a, R> {
    at: u32,
    row: &'a R,
}

#[derive(Serialize)]
struct DiffBody<'a, R, K> {
    from: u64,
    to: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    noticed_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    related: &'a [serde_json::Value],
    table: &'static str,
    upserts: Vec<Placed<'a, R>>,
    deletes: &'a [K],
}

/// Serializes `value` as a JSON object and drops its opening brace, leaving
/// the part that follows a shared frame's header.
fn body_of(value: &impl Serialize) -> Result<Bytes, serde_json::Error> {
    let json = serde_json::to_vec(value)?;
    Ok(Bytes::from(json).slice(1..))
}

/// The shared body of a snapshot message.
pub fn snapshot_body<R: Serialize>(
    table: &'static str,
    epoch: &str,
    version: u64,
    count: Option<u64>,
    related: &[serde_json::Value],
    rows: &[Arc<R>],
) -> Result<Bytes, serde_json::Error> {
    body_of(&SnapshotBody {
        epoch,
        version,
        count,
        related,
        table,
        rows,
    })
}

/// The shared body of a diff message.
pub fn diff_body<R: Serialize, K: Serialize>(
    table: &'static str,
    from: u64,
    to: u64,
    noticed_at: Option<u64>,
    count: Option<u64>,
    related: &[serde_json::Value],
    changes: &Changes<R, K>,
) -> Result<Bytes, serde_json::Error> {
    body_of(&DiffBody {
        from,
        to,
        noticed_at,
        count,
        related,
        table,
        upserts: changes
            .upserts
            .iter()
            .map(|(at, row)| Placed {
                at: *at,
                row: &**row,
            })
            .collect(),
        deletes: &changes.deletes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pglive_schema::Item;
    use pglive_schema::wire::{Diff, Snapshot};
    use pglive_schema::{TableChanges, TableRows};

    fn item(id: i64, name: &str) -> Item {
        // A fixed instant, so that rows built apart compare equal.
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 123_456_000).unwrap();
        Item {
            id: pglive_schema::Int8(id),
            name: name.into(),
            created_at: now,
            updated_at: now,
            tenant: "public".into(),
        }
    }

    fn join(kind: Kind, id: &SubscriptionId, body: &Bytes) -> ServerMessage {
        let Frame::Shared { header, body } = Headers::new(id).frame(kind, body) else {
            panic!("not shared");
        };
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&body);
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The header + shared body is exactly the typed `ServerMessage`.
    #[test]
    fn shared_frames_are_typed_messages() {
        let id = SubscriptionId("sub \"1\"".into());
        let rows = vec![Arc::new(item(1, "a")), Arc::new(item(2, "b"))];
        let body = snapshot_body("items", "e1.2", 7, Some(40), &[], &rows).unwrap();
        assert_eq!(
            join(Kind::Snapshot, &id, &body),
            ServerMessage::Snapshot(Snapshot {
                id: id.clone(),
                epoch: "e1.2".into(),
                version: 7,
                count: Some(40),
                related: None,
                rows: TableRows::Items {
                    rows: vec![item(1, "a"), item(2, "b")]
                },
            })
        );
        let changes = Changes {
            upserts: vec![(0, Arc::clone(&rows[1]))],
            deletes: vec![pglive_schema::Int8(1)],
        };
        let body = diff_body("items", 7, 8, Some(1_790_000_000_123), None, &[], &changes).unwrap();
        assert_eq!(
            join(Kind::Diff, &id, &body),
            ServerMessage::Diff(Diff {
                id,
                from: 7,
                to: 8,
                noticed_at: Some(1_790_000_000_123),
                count: None,
                related: None,
                changes: TableChanges::Items {
                    upserts: vec![pglive_schema::wire::Placed {
                        at: 0,
                        row: (*rows[1]).clone()
                    }],
                    deletes: vec![pglive_schema::Int8(1)],
                },
            })
        );
    }

    #[test]
    fn fragments_cover_the_body_without_copying() {
        let body = Bytes::from(vec![b'x'; FRAGMENT * 2 + 5]);
        let parts: Vec<Bytes> = fragments(&body).collect();
        assert_eq!(
            parts.iter().map(Bytes::len).collect::<Vec<_>>(),
            [FRAGMENT, FRAGMENT, 5]
        );
        assert_eq!(
            parts[1].as_ptr(),
            body[FRAGMENT..].as_ptr(),
            "a slice, not a copy"
        );
        assert_eq!(fragments(&Bytes::from_static(b"}")).count(), 1);
        assert_eq!(fragments(&Bytes::new()).count(), 1);
    }

    #[test]
    fn error_frames_are_typed_messages() {
        let Frame::Text(bytes) = Frame::error(None, ErrorCode::BadFrame, "nope") else {
            panic!("not text");
        };
        let msg: ServerMessage = serde_json::from_slice(&bytes).unwrap();
        assert!(matches!(msg, ServerMessage::Error(e) if e.code == ErrorCode::BadFrame));
    }
}

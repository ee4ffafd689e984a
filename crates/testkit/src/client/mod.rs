//! A protocol client over a real WebSocket, for the server's tests and the
//! load generator.
//!
//! - Decoding (the tests): every message is decoded as the contract's
//!   `ServerMessage` (so a server that strays from the contract fails the
//!   test), and each subscription's rows are kept by applying snapshots and
//!   diffs exactly as the server defines them (`pglive_server::diff::apply`).
//!   This side panics on failure.
//! - Raw (the bench): [`Client::next_frame`] hands over each frame's bytes
//!   undecoded (see `raw.rs` for why), and [`Client::open`] and the `try_`
//!   senders return typed errors.
//!
//! Its modules depend one way: `message`, `rows` and `connect` name nothing
//! of the client; `raw` names `connect` (the socket type); this module
//! names them all.

mod connect;
mod message;
mod raw;
mod rows;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pglive_schema::ServerMessage;
use pglive_schema::wire::{Authenticated, ErrorMessage, Since, Status};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::TIMEOUT;
use crate::server::TestServer;

pub use connect::{Connect, ConnectError, Ws};
pub use raw::{Ended, Frame};
pub use rows::Sub;

/// A protocol client over a real WebSocket.
pub struct Client {
    pub ws: Ws,
    pub subs: HashMap<String, Sub>,
    pub errors: Vec<ErrorMessage>,
    /// Every `authenticated` answer, in order.
    pub authenticated: Vec<Authenticated>,
    /// Every `status`, in order.
    pub statuses: Vec<Status>,
    pub frames: u64,
    pub bytes: u64,
    /// The close code the server sent, once it did.
    pub close_code: Option<u16>,
    /// Every row of every snapshot and diff received, as received: to check
    /// that a client never saw a row it must not see.
    pub seen: Vec<Value>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("subs", &self.subs)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub async fn connect(server: &TestServer) -> Client {
        Client::connect_url(&server.ws_url()).await
    }

    /// Connects to any pglive server's `/ws`.
    pub async fn connect_url(url: &str) -> Client {
        Client::open(url, &Connect::default())
            .await
            .expect("ws connect")
    }

    /// Connects with `Authorization: Bearer <token>` on the upgrade request.
    pub async fn connect_bearer(server: &TestServer, token: &str) -> Client {
        let options = Connect {
            bearer: Some(token.to_owned()),
            ..Connect::default()
        };
        Client::open(&server.ws_url(), &options)
            .await
            .expect("ws connect")
    }

    /// Connects to `url` as `options` say; an error rather than a panic
    /// when that fails.
    pub async fn open(url: &str, options: &Connect) -> Result<Client, ConnectError> {
        connect::open(url, options).await.map(Client::over)
    }

    /// Sends `auth` with `token`.
    pub async fn auth(&mut self, token: &str) {
        self.try_auth(token).await.unwrap();
    }

    pub fn over(ws: Ws) -> Client {
        Client {
            ws,
            subs: HashMap::new(),
            errors: Vec::new(),
            authenticated: Vec::new(),
            statuses: Vec::new(),
            frames: 0,
            bytes: 0,
            close_code: None,
            seen: Vec::new(),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.try_send(&value).await.unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: Value) {
        self.try_subscribe(id, &query, None).await.unwrap();
    }

    /// Subscribes saying what this client still has of `id` (its epoch and
    /// version), so the server may send only what changed since.
    pub async fn resume(&mut self, id: &str, query: Value) {
        let sub = &self.subs[id];
        let since = Since {
            epoch: sub.epoch.clone(),
            version: sub.version,
        };
        self.try_subscribe(id, &query, Some(&since)).await.unwrap();
    }

    pub async fn unsubscribe(&mut self, id: &str) {
        self.send(message::unsubscribe(id)).await;
    }

    /// Sends one message.
    pub async fn try_send(&mut self, value: &Value) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(value.to_string())).await
    }

    /// Sends `auth` with `token`.
    pub async fn try_auth(&mut self, token: &str) -> Result<(), tungstenite::Error> {
        self.try_send(&message::auth(token)).await
    }

    /// Subscribes to `query` as `id`; with `since`, resuming from it.
    pub async fn try_subscribe(
        &mut self,
        id: &str,
        query: &Value,
        since: Option<&Since>,
    ) -> Result<(), tungstenite::Error> {
        self.try_send(&message::subscribe(id, query, since)).await
    }

    /// The next data frame, undecoded: nothing is applied or counted (the
    /// decoding state stays as it is). `close_code` is set when the server
    /// closed the connection.
    pub async fn next_frame(&mut self) -> Result<Frame, Ended> {
        let next = raw::next_frame(&mut self.ws).await;
        if let Err(end) = &next
            && let Some(code) = end.close_code()
        {
            self.close_code = Some(code);
        }
        next
    }

    /// The next server message, applied; `None` on close or timeout.
    pub async fn next(&mut self, wait: Duration) -> Option<ServerMessage> {
        loop {
            let item = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            let t = match raw::read(item) {
                raw::Read::Frame(Frame::Text(t)) => t,
                raw::Read::Frame(Frame::Binary(_)) | raw::Read::Control => continue,
                raw::Read::End(end) => {
                    if let Some(code) = end.close_code() {
                        self.close_code = Some(code);
                    }
                    return None;
                }
            };
            self.frames += 1;
            self.bytes += t.len() as u64;
            let msg: ServerMessage = serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                panic!("the server sent a message outside the contract ({e}): {t}")
            });
            self.apply(msg.clone());
            return Some(msg);
        }
    }

    fn apply(&mut self, msg: ServerMessage) {
        match &msg {
            ServerMessage::Snapshot(s) => {
                if let Ok(Value::Object(m)) = serde_json::to_value(&s.rows) {
                    self.seen.extend(
                        m.get("rows")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
            }
            ServerMessage::Diff(d) => {
                if let Ok(Value::Object(m)) = serde_json::to_value(&d.changes) {
                    let upserts = m
                        .get("upserts")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    self.seen
                        .extend(upserts.into_iter().map(|u| u["row"].clone()));
                }
            }
            _ => {}
        }
        match msg {
            ServerMessage::Authenticated(a) => self.authenticated.push(a),
            ServerMessage::Status(s) => self.statuses.push(s),
            ServerMessage::Resumed(r) => {
                let sub = self
                    .subs
                    .get_mut(&r.id.0)
                    .unwrap_or_else(|| panic!("resumed {} without rows to resume", r.id.0));
                assert_eq!(
                    r.from, sub.version,
                    "resumed from another version than ours"
                );
                assert_eq!(r.epoch, sub.epoch, "resumed another epoch");
                sub.resumes += 1;
            }
            ServerMessage::Snapshot(s) => {
                let sub = self.subs.entry(s.id.0).or_default();
                let mut rows = rows::rows_of(s.rows.table());
                sub.table = rows::table_name(s.rows.table());
                rows.snapshot(s.rows);
                sub.rows = Some(rows);
                sub.epoch = s.epoch;
                sub.version = s.version;
                sub.count = s.count;
                sub.snapshots += 1;
                sub.related.clear();
                sub.relate(s.related);
            }
            ServerMessage::Diff(d) => {
                let sub = self.subs.entry(d.id.0.clone()).or_default();
                assert_eq!(d.from, sub.version, "diff version gap on {}", d.id.0);
                let rows = sub
                    .rows
                    .as_mut()
                    .unwrap_or_else(|| panic!("a diff before any snapshot on {}", d.id.0));
                rows.diff(d.changes);
                sub.version = d.to;
                sub.diffs += 1;
                sub.noticed_at = d.noticed_at;
                if d.count.is_some() {
                    sub.count = d.count;
                }
                sub.relate(d.related);
            }
            ServerMessage::Error(e) => self.errors.push(e),
        }
    }

    /// Reads messages until `done` holds or the timeout passes.
    pub async fn until(&mut self, mut done: impl FnMut(&Client) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !done(self) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next(left).await.is_none() {
                return done(self);
            }
        }
        true
    }

    /// A subscription's rows (empty before its snapshot).
    pub fn rows(&self, id: &str) -> Vec<Value> {
        self.subs.get(id).map(Sub::rows).unwrap_or_default()
    }

    /// A subscription's live count, when its query asked for one.
    pub fn count(&self, id: &str) -> Option<u64> {
        self.subs.get(id).and_then(|s| s.count)
    }

    /// How many rows a subscription has.
    pub fn len(&self, id: &str) -> usize {
        self.subs.get(id).map_or(0, Sub::len)
    }

    /// Whether a subscription has had its first snapshot.
    pub fn has(&self, id: &str) -> bool {
        self.subs.get(id).is_some_and(|s| s.snapshots > 0)
    }

    /// Reads until no message arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while self.next(quiet).await.is_some() {}
    }

    /// Waits for an error with `code` (as its wire name) and returns it.
    pub async fn error(&mut self, code: &str) -> ErrorMessage {
        let found = |c: &Client| {
            c.errors
                .iter()
                .any(|e| serde_json::to_value(e.code).unwrap() == code)
        };
        assert!(
            self.until(found).await,
            "no {code} error; got {:?}",
            self.errors
        );
        let at = self
            .errors
            .iter()
            .position(|e| serde_json::to_value(e.code).unwrap() == code)
            .unwrap();
        self.errors.remove(at)
    }
}

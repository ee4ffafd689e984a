//! A typed protocol client: every message is decoded as the contract's
//! `ServerMessage` (so a server that strays from the contract fails the
//! test), and each subscription's rows are kept by applying snapshots and
//! diffs exactly as the server defines them (`pglive_server::diff::apply`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pglive_schema::live::{Listed, LiveTable, TableVisitor};
use pglive_schema::tables::visit_tables;
use pglive_schema::wire::{Authenticated, ErrorMessage, Status};
use pglive_schema::{ServerMessage, TableChanges, TableRows};
use pglive_server::diff::{self, Changes};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TIMEOUT;
use crate::server::TestServer;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One subscription's rows, typed by its table.
trait Rows: Send + Sync {
    fn snapshot(&mut self, rows: TableRows);
    fn diff(&mut self, changes: TableChanges);
    fn json(&self) -> Vec<Value>;
    fn len(&self) -> usize;
}

struct Typed<T: LiveTable>(Vec<Arc<T>>);

impl<T: Listed> Rows for Typed<T> {
    fn snapshot(&mut self, rows: TableRows) {
        let table = rows.table();
        let rows = T::rows(rows)
            .unwrap_or_else(|| panic!("a snapshot of {table} for a {} subscription", T::NAME));
        self.0 = rows.into_iter().map(Arc::new).collect();
    }

    fn diff(&mut self, changes: TableChanges) {
        let table = changes.table();
        let (upserts, deletes) = T::changes(changes)
            .unwrap_or_else(|| panic!("a diff of {table} for a {} subscription", T::NAME));
        let changes = Changes {
            upserts: upserts
                .into_iter()
                .map(|p| (p.at, Arc::new(p.row)))
                .collect(),
            deletes,
        };
        diff::apply(&mut self.0, &changes, T::key);
    }

    fn json(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|r| serde_json::to_value(&**r).unwrap())
            .collect()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

type Factory = fn() -> Box<dyn Rows>;

struct Factories(HashMap<&'static str, Factory>);

impl TableVisitor for Factories {
    fn visit<T: Listed>(&mut self) {
        fn make<T: Listed>() -> Box<dyn Rows> {
            Box::new(Typed::<T>(Vec::new()))
        }
        self.0.insert(T::NAME, make::<T>);
    }
}

fn factory(table: &str) -> Factory {
    static FACTORIES: OnceLock<HashMap<&'static str, Factory>> = OnceLock::new();
    let all = FACTORIES.get_or_init(|| {
        let mut f = Factories(HashMap::new());
        visit_tables(&mut f);
        f.0
    });
    *all.get(table)
        .unwrap_or_else(|| panic!("no live table {table}"))
}

/// What a client knows of one subscription.
#[derive(Default)]
pub struct Sub {
    /// The result's epoch (from its last snapshot), for resuming.
    pub epoch: String,
    pub version: u64,
    /// `resumed` answers received.
    pub resumes: u64,
    pub snapshots: u64,
    pub diffs: u64,
    /// The `noticed_at` of the last diff.
    pub noticed_at: Option<u64>,
    rows: Option<Box<dyn Rows>>,
}

impl std::fmt::Debug for Sub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sub")
            .field("version", &self.version)
            .field("rows", &self.len())
            .finish()
    }
}

impl Sub {
    /// The rows, serialized as the server serializes them.
    pub fn rows(&self) -> Vec<Value> {
        self.rows.as_ref().map(|r| r.json()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.rows.as_ref().map_or(0, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client::over(ws)
    }

    /// Connects with `Authorization: Bearer <token>` on the upgrade request.
    pub async fn connect_bearer(server: &TestServer, token: &str) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = server.ws_url().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect");
        Client::over(ws)
    }

    /// Sends `auth` with `token`.
    pub async fn auth(&mut self, token: &str) {
        self.send(json!({"type":"auth","token":token})).await;
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
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: Value) {
        self.send(json!({"type":"subscribe","id":id,"query":query}))
            .await;
    }

    /// Subscribes saying what this client still has of `id` (its epoch and
    /// version), so the server may send only what changed since.
    pub async fn resume(&mut self, id: &str, query: Value) {
        let sub = &self.subs[id];
        let since = json!({"epoch": sub.epoch, "version": sub.version});
        self.send(json!({"type":"subscribe","id":id,"query":query,"since":since}))
            .await;
    }

    pub async fn unsubscribe(&mut self, id: &str) {
        self.send(json!({"type":"unsubscribe","id":id})).await;
    }

    /// The next server message, applied; `None` on close or timeout.
    pub async fn next(&mut self, wait: Duration) -> Option<ServerMessage> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => {
                    self.frames += 1;
                    self.bytes += t.len() as u64;
                    let msg: ServerMessage = serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                        panic!("the server sent a message outside the contract ({e}): {t}")
                    });
                    self.apply(msg.clone());
                    return Some(msg);
                }
                Message::Close(frame) => {
                    self.close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    return None;
                }
                _ => continue,
            }
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
                let mut rows = factory(s.rows.table())();
                rows.snapshot(s.rows);
                sub.rows = Some(rows);
                sub.epoch = s.epoch;
                sub.version = s.version;
                sub.snapshots += 1;
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

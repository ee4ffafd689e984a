//! One WebSocket connection.
//!
//! Each connection runs two tasks. The session task ([`run`]) owns the read
//! half and the subscription table: it decodes client frames
//! ([`protocol`]), applies the rate limit ([`rate`]), and joins and leaves
//! groups through the hub. The writer task ([`writer`]) owns the write half
//! and drains the connection's bounded outbox, into which groups and the
//! session only ever `try_send`.

mod identity;
mod protocol;
mod rate;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pglive_schema::wire::{Authenticated, Since, Status};
use pglive_schema::{ClientMessage, ErrorCode, LiveQuery, ServerMessage, SubscriptionId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use crate::auth::{Auth, AuthError};
use crate::engine::budget::Account;
use crate::engine::frame::Frame;
use crate::engine::group::Membership;
use crate::engine::outbox::{self, ConnShared, Member};
use crate::engine::{Context, Hub, HubError};
use identity::Login;
use rate::{RateLimit, Verdict};

pub use writer::CLOSE_TOO_SLOW;

/// Close code for a client that kept sending far past its rate limit.
pub const CLOSE_FLOODING: u16 = 4029;

/// Close code for a connection that did not authenticate in time.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;

/// Per-connection limits, from configuration.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Largest accepted client frame, in bytes; larger ones get `frame_too_large`.
    pub max_frame_bytes: usize,
    /// Subscriptions one connection may hold at once.
    pub max_subscriptions: usize,
    /// Sustained client frames per second (bursts of twice that).
    pub messages_per_second: u32,
    /// Frames a connection's outbox holds before the client counts as lagging.
    pub outbox_frames: usize,
    /// How long one write may wait on the socket before the client is closed.
    pub stall_timeout: Duration,
    /// Largest `limit` a query may ask for.
    pub max_query_limit: u32,
    /// How long a connection may stay without a valid token.
    pub auth_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 100,
            messages_per_second: 50,
            outbox_frames: 64,
            stall_timeout: Duration::from_secs(10),
            max_query_limit: 10_000,
            auth_timeout: Duration::from_secs(5),
        }
    }
}

/// A subscription as its session holds it: its query (to move it when the
/// connection's context changes) and its place in a group.
#[derive(Debug)]
struct Sub {
    query: LiveQuery,
    membership: Box<dyn Membership>,
}

struct Session {
    hub: Hub,
    limits: Arc<SessionLimits>,
    login: Login,
    tables: Vec<&'static str>,
    /// The connection's outbox; the writer task holds the receiver and ends
    /// when every sender (this one and the groups' copies) is gone.
    outbox: mpsc::Sender<Frame>,
    conn: Arc<ConnShared>,
    /// The budget account subscriptions are charged to: the token's
    /// subject's, or this connection's own.
    account: Arc<Account>,
    /// This connection's own account, for when it has no subject.
    own_account: Arc<Account>,
    subscriptions: HashMap<SubscriptionId, Sub>,
    rate: RateLimit,
    /// The server has queued a close frame.
    closing: bool,
}

/// Serves one upgraded WebSocket until it closes or the server shuts down.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    hub: Hub,
    limits: Arc<SessionLimits>,
    auth: Auth,
    token: Option<String>,
    mut status: watch::Receiver<Status>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = Arc::clone(hub.metrics());
    metrics.connections.inc();
    metrics.connections_accepted.inc();
    let (sink, mut stream) = ws.split();
    let (outbox, rx) = mpsc::channel(limits.outbox_frames.max(1));
    let conn = outbox::new_connection();
    let mut writer = tokio::spawn(writer::run(
        sink,
        rx,
        Arc::clone(&conn),
        limits.stall_timeout,
        Arc::clone(&metrics),
    ));
    let own_account = hub.account(None);
    let mut session = Session {
        tables: hub.registry().names(),
        account: Arc::clone(&own_account),
        own_account,
        login: Login::new(auth, hub.pool().clone(), limits.auth_timeout),
        hub,
        rate: RateLimit::new(limits.messages_per_second),
        limits,
        outbox,
        conn: Arc::clone(&conn),
        subscriptions: HashMap::new(),
        closing: false,
    };
    let mut writer_done = false;
    let mut status_open = true;
    // Whether changes reach this client, first thing and whenever it changes.
    let now = ServerMessage::Status(status.borrow_and_update().clone());
    let _ = session.outbox.try_send(Frame::message(&now));
    if let Some(token) = token {
        // A bearer token on the upgrade request counts as a first `auth`.
        session.authenticate(&token).await;
    }
    loop {
        let deadline = session.login.deadline();
        let expiry = session.login.expiry();
        tokio::select! {
            msg = stream.next() => match msg {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Ok(message)) => {
                    if !session.on_message(message).await {
                        break;
                    }
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    session.reply_error(None, ErrorCode::FrameTooLarge, format!("frame of {size} bytes is over the hard limit of {max_size}; closing"));
                    session.close(1009, "frame too large");
                    break;
                }
                Some(Err(WsError::Utf8(_))) => {
                    session.close(1007, "text frames must be valid UTF-8");
                    break;
                }
                Some(Err(WsError::Protocol(err))) => {
                    tracing::debug!(error = %err, "websocket protocol error");
                    session.close(1002, "websocket protocol error");
                    break;
                }
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "websocket read error");
                    break;
                }
            },
            () = conn.resync_wanted() => {
                for sub in session.subscriptions.values() {
                    sub.membership.request_resync();
                }
            }
            () = conn.ended() => session.forget_ended(),
            changed = status.changed(), if status_open => {
                if changed.is_ok() {
                    let now = ServerMessage::Status(status.borrow_and_update().clone());
                    let _ = session.outbox.try_send(Frame::message(&now));
                } else {
                    // The server is going away; nothing more to tell.
                    status_open = false;
                }
            }
            () = at(deadline) => {
                session.reply_error(None, ErrorCode::Unauthenticated, "no valid token arrived in time; closing");
                session.close(CLOSE_UNAUTHENTICATED, "authentication required");
                break;
            }
            () = at(expiry) => session.expired(),
            _ = shutdown.changed() => {
                session.close(1001, "server shutting down");
                break;
            }
            _ = &mut writer => {
                writer_done = true;
                break;
            }
        }
    }
    let closing = session.closing;
    session.leave_all();
    drop(session);
    if !writer_done {
        // The writer finishes the queued frames (including a close frame),
        // bounded by its stall timeout, then ends when the outbox closes.
        let _ = writer.await;
    }
    if closing {
        // We sent a close frame: read (and drop) what the client still
        // sends until its own close, for at most a second. Closing a socket
        // with unread data resets it, and the client might never see why.
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            while let Some(Ok(msg)) = stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    metrics.connections.dec();
}

/// Completes at `when`; never when there is none.
async fn at(when: Option<tokio::time::Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

/// How long a connection the server closed keeps reading for the client's
/// close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

impl Session {
    fn reply_error(
        &mut self,
        id: Option<&SubscriptionId>,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        self.hub.metrics().client_errors.inc();
        if self
            .outbox
            .try_send(Frame::error(id, code, message))
            .is_err()
        {
            // The outbox is full: the client is not reading. Its errors are
            // counted but not queued; the stall timeout will close it.
            self.hub.metrics().frames_dropped.inc();
        }
    }

    fn close(&mut self, code: u16, reason: &'static str) {
        self.closing = true;
        let _ = self.outbox.try_send(Frame::Close { code, reason });
    }

    /// Handles one client frame; false ends the connection.
    async fn on_message(&mut self, message: Message) -> bool {
        match self.rate.check() {
            Verdict::Allow => {}
            Verdict::Drop { tell } => {
                if tell {
                    let rate = self.limits.messages_per_second;
                    self.reply_error(
                        None,
                        ErrorCode::RateLimited,
                        format!("more than {rate} messages per second; messages are being dropped"),
                    );
                }
                return true;
            }
            Verdict::Close => {
                tracing::debug!("closing a client that kept flooding past its rate limit");
                self.close(CLOSE_FLOODING, "rate limit exceeded");
                return false;
            }
        }
        match message {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(_) => self.reply_error(
                None,
                ErrorCode::BinaryFrame,
                "binary frames are not part of the protocol; send JSON text",
            ),
            // Pings are answered by tungstenite; pongs and raw frames need nothing.
            _ => {}
        }
        true
    }

    async fn on_text(&mut self, text: &str) {
        if text.len() > self.limits.max_frame_bytes {
            let max = self.limits.max_frame_bytes;
            self.reply_error(
                None,
                ErrorCode::FrameTooLarge,
                format!("frame of {} bytes is over the limit of {max}", text.len()),
            );
            return;
        }
        match protocol::decode(text, &self.tables, self.limits.max_query_limit) {
            Ok(ClientMessage::Subscribe { id, query, since }) => {
                match self.login.ensure_checked().await {
                    Ok(()) => self.subscribe(id, *query, since),
                    Err(err) => {
                        let code = refusal_code(&err);
                        self.reply_error(Some(&id), code, err.to_string());
                    }
                }
            }
            Ok(ClientMessage::Unsubscribe { id }) => self.unsubscribe(&id),
            Ok(ClientMessage::Auth { token }) => self.authenticate(&token).await,
            Err(refusal) => self.reply_error(refusal.id.as_ref(), refusal.code, refusal.message),
        }
    }

    fn subscribe(&mut self, id: SubscriptionId, query: LiveQuery, since: Option<Since>) {
        let Some(ctx) = self.login.ctx() else {
            self.reply_error(
                Some(&id),
                ErrorCode::Unauthenticated,
                "authenticate first: send {\"type\":\"auth\",\"token\":...}",
            );
            return;
        };
        if let Some(existing) = self.subscriptions.get(&id) {
            if !existing.membership.ended() {
                self.reply_error(
                    Some(&id),
                    ErrorCode::DuplicateId,
                    "a subscription with this id is already active on this connection",
                );
                return;
            }
            // Its group ended (refused or failed); the id is free again.
            if let Some(old) = self.subscriptions.remove(&id) {
                old.membership.leave();
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
        self.join(id, query, ctx, since);
    }

    /// Joins the group of `query` in `ctx` under subscription `id`.
    fn join(
        &mut self,
        id: SubscriptionId,
        query: LiveQuery,
        ctx: Arc<Context>,
        since: Option<Since>,
    ) {
        let member = Member::new(
            id.clone(),
            self.outbox.clone(),
            Arc::clone(&self.conn),
            since,
            Arc::clone(&self.account),
        );
        match self.hub.join(ctx, &query, member) {
            Ok(membership) => {
                self.subscriptions.insert(id, Sub { query, membership });
            }
            Err(HubError::UnknownTable(t)) => {
                self.reply_error(
                    Some(&id),
                    ErrorCode::UnknownTable,
                    format!("unknown table {t:?}"),
                );
            }
            Err(HubError::Join(err)) => {
                self.reply_error(
                    Some(&id),
                    ErrorCode::ServerBusy,
                    format!("{err}; try again later"),
                );
            }
        }
    }

    fn unsubscribe(&mut self, id: &SubscriptionId) {
        match self.subscriptions.remove(id) {
            Some(sub) => sub.membership.leave(),
            None => self.reply_error(
                Some(id),
                ErrorCode::UnknownId,
                "no subscription with this id is active on this connection",
            ),
        }
    }

    /// Forgets subscriptions whose groups ended them (their clients were told).
    fn forget_ended(&mut self) {
        for (sub, member) in self.conn.take_ended() {
            if self
                .subscriptions
                .get(&sub)
                .is_some_and(|s| s.membership.member() == member)
                && let Some(ended) = self.subscriptions.remove(&sub)
            {
                ended.membership.leave();
            }
        }
    }

    fn leave_all(&mut self) {
        for (_, sub) in self.subscriptions.drain() {
            sub.membership.leave();
        }
    }

    /// `auth`: checks the token; a new context moves every subscription
    /// (each leaves its group and joins the new context's, which sends it a
    /// fresh snapshot, queued after anything the old group sent).
    async fn authenticate(&mut self, token: &str) {
        match self.login.login(token).await {
            Ok(accepted) => {
                // New subscriptions count against the token's subject (or
                // this connection); each existing one stays charged to the
                // account it joined with until it leaves.
                self.account = match self.login.subject() {
                    Some(subject) => self.hub.account(Some(subject)),
                    None => Arc::clone(&self.own_account),
                };
                let msg = ServerMessage::Authenticated(Authenticated {
                    role: accepted.role,
                    expires_at: accepted.expires_at,
                });
                if let Ok(json) = serde_json::to_vec(&msg) {
                    let _ = self.outbox.try_send(Frame::Text(json.into()));
                }
                if accepted.moved
                    && let Some(ctx) = self.login.ctx()
                {
                    let subs: Vec<(SubscriptionId, Sub)> = self.subscriptions.drain().collect();
                    for (id, sub) in subs {
                        sub.membership.leave();
                        self.join(id, sub.query, Arc::clone(&ctx), None);
                    }
                }
            }
            Err(err) => {
                let code = refusal_code(&err);
                tracing::debug!(error = %err, "a token was refused");
                self.reply_error(None, code, err.to_string());
            }
        }
    }

    /// The token expired without a fresh one: the client is told, and its
    /// subscriptions stop.
    fn expired(&mut self) {
        self.reply_error(
            None,
            ErrorCode::TokenExpired,
            "the token expired; authenticate again and resubscribe",
        );
        self.leave_all();
        self.login.expire();
    }
}

/// The wire code of a refused token or role.
fn refusal_code(err: &AuthError) -> ErrorCode {
    match err {
        AuthError::Expired => ErrorCode::TokenExpired,
        AuthError::RoleNotAllowed(_)
        | AuthError::UnknownRole(_)
        | AuthError::PrivilegedRole(..) => ErrorCode::Forbidden,
        AuthError::Unavailable | AuthError::PrivilegedLogin => ErrorCode::Unavailable,
        _ => ErrorCode::Unauthenticated,
    }
}

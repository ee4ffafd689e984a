//! A connection's outbox as groups see it: a member per subscription, the
//! state a connection's session, writer and groups share, and the whole life
//! of the stale flag.
//!
//! Groups never wait on a client: they `try_send` into the connection's
//! bounded outbox. When it is full the member goes stale (its next diff would
//! not apply to what the client has) and the connection is marked lagged;
//! once the writer has drained the outbox it says so, the session asks each
//! of its groups for a fresh snapshot, and the groups send one to their stale
//! members.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pglive_schema::SubscriptionId;
use pglive_schema::wire::Since;
use tokio::sync::{Notify, mpsc};

use super::budget::Account;
use super::frame::{Frame, Headers};
use crate::metrics::Metrics;

/// A member's id, unique in the process, so that a subscription id reused on
/// a connection never names an older membership.
pub type MemberId = u64;

static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

/// A subscription as its group sees it: where its frames go.
#[derive(Debug)]
pub struct Member {
    pub id: MemberId,
    pub sub: SubscriptionId,
    /// The member's first fragments, encoded once (behind a pointer: a
    /// member travels by value through the group's join channel).
    pub headers: Arc<Headers>,
    /// The connection's bounded outbox. Groups only ever `try_send`.
    pub outbox: mpsc::Sender<Frame>,
    pub conn: Arc<ConnShared>,
    /// What the client still has from an earlier connection: the group
    /// catches it up from its history instead of a snapshot, when it can.
    /// Taken by the group when it first serves the member.
    pub since: Option<Since>,
    /// The identity the subscription is charged to, and any group it makes
    /// exist (see `budget`).
    pub account: Arc<Account>,
}

impl Member {
    pub fn new(
        sub: SubscriptionId,
        outbox: mpsc::Sender<Frame>,
        conn: Arc<ConnShared>,
        since: Option<Since>,
        account: Arc<Account>,
    ) -> Member {
        Member {
            id: NEXT_MEMBER.fetch_add(1, Ordering::Relaxed),
            headers: Arc::new(Headers::new(&sub)),
            sub,
            outbox,
            conn,
            since,
            account,
        }
    }
}

/// State shared by one connection's session task, its writer task and the
/// groups its subscriptions are in. Lives as long as any of them holds it.
#[derive(Debug, Default)]
pub struct ConnShared {
    /// Set by a group that dropped a frame for this connection; cleared by
    /// the writer once the outbox has drained.
    lagged: AtomicBool,
    /// Woken by the writer when a lagging connection has drained; the session
    /// waits on it.
    resync: Notify,
    /// Subscriptions a group ended (refused or failed), with their member
    /// ids. Pushed by group tasks, taken by the session; never held across
    /// an `.await`.
    ended: Mutex<Vec<(SubscriptionId, MemberId)>>,
    /// Wakes the session to take `ended`.
    ended_wake: Notify,
}

impl ConnShared {
    fn lock_ended(&self) -> MutexGuard<'_, Vec<(SubscriptionId, MemberId)>> {
        // Each critical section is one push or take; a panic cannot leave it half done.
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the writer, whenever its outbox is empty: a lagging connection
    /// has caught up, so its stale members may have snapshots now.
    pub fn drained(&self) {
        // The plain load keeps the common case (never lagged) off the
        // cache line's exclusive state, which a swap would claim.
        if self.lagged.load(Ordering::Relaxed) && self.lagged.swap(false, Ordering::SeqCst) {
            self.resync.notify_one();
        }
    }

    /// Completes when a lagging connection has drained.
    pub async fn resync_wanted(&self) {
        self.resync.notified().await;
    }

    /// From a group that ended a subscription: its session must forget it.
    pub fn end(&self, sub: SubscriptionId, member: MemberId) {
        self.lock_ended().push((sub, member));
        self.ended_wake.notify_one();
    }

    /// Completes when some subscription was ended; then [`Self::take_ended`].
    pub async fn ended(&self) {
        self.ended_wake.notified().await;
    }

    pub fn take_ended(&self) -> Vec<(SubscriptionId, MemberId)> {
        std::mem::take(&mut *self.lock_ended())
    }
}

/// Where a member is with respect to its group's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Joined; waiting for its first snapshot.
    NeedsSnapshot,
    /// Has the group's current version.
    Live,
    /// Missed a message; gets a snapshot when its connection has drained.
    Stale,
}

/// A member and its state, as a group holds it.
#[derive(Debug)]
pub struct Slot {
    pub member: Member,
    pub state: MemberState,
}

impl Slot {
    pub fn new(member: Member) -> Slot {
        Slot {
            member,
            state: MemberState::NeedsSnapshot,
        }
    }

    /// Queues `frame` for the member, which is then live at the frame's
    /// version. Returns false when the connection is gone (drop the member).
    /// A full outbox drops the frame and marks the member stale.
    pub fn offer(&mut self, frame: Frame, metrics: &Metrics) -> bool {
        match self.member.outbox.try_send(frame) {
            Ok(()) => {
                self.state = MemberState::Live;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.frames_dropped.inc();
                self.state = MemberState::Stale;
                self.member.conn.lagged.store(true, Ordering::SeqCst);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a message about the subscription that is not a version of
    /// its rows (a status), leaving its state as it is. A full outbox drops
    /// it and marks the member stale: the snapshot it then gets says more.
    /// Returns false when the connection is gone.
    pub fn tell(&mut self, frame: Frame, metrics: &Metrics) -> bool {
        match self.member.outbox.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.frames_dropped.inc();
                self.state = MemberState::Stale;
                self.member.conn.lagged.store(true, Ordering::SeqCst);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Tells the member its subscription ended with an error frame (best
    /// effort: a full outbox drops it, and the stall timeout will close a
    /// client that stopped reading), and its session to forget it.
    pub fn end(self, frame: Frame) {
        let _ = self.member.outbox.try_send(frame);
        self.member.conn.end(self.member.sub, self.member.id);
    }
}

/// The connection side of the same state, for sessions and writers.
pub fn new_connection() -> Arc<ConnShared> {
    Arc::new(ConnShared::default())
}

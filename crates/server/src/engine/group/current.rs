//! A group's current result and how it reaches members: each change as one
//! diff, encoded once, to live members ([`publish`]), and the whole result
//! (or, for a resuming member, what it missed) to members that need it
//! ([`serve_snapshots`]).

use std::collections::HashSet;

use bytes::Bytes;
use pglive_schema::ServerMessage;
use pglive_schema::wire::Resumed;

use crate::engine::diff::{self, Changes};
use crate::engine::frame::{self, Frame, Kind};
use crate::engine::outbox::{MemberState, Slot};
use crate::engine::reads::Reads;
use crate::engine::table::{Key, LiveTable, Noticed};

use super::history::History;
use super::related::Include;
use super::shared::{GroupShared, lock};
use super::window::{Rows, Window};

/// The group's published result at `version`, and what it knows past it.
pub(super) struct Current<T> {
    version: u64,
    pub(super) window: Window<T>,
    /// The published rows: the first `limit` rows of the window (the same
    /// vector as the window's when there is no limit).
    pub(super) rows: Rows<T>,
    /// The live count, for a query that asks for it (`count: true`).
    pub(super) count: Option<u64>,
    /// The snapshot body of `rows`, once encoded.
    snapshot: Option<Bytes>,
    /// Recent diffs, for resuming clients.
    pub(super) history: History,
}

/// Makes `rows` (and `count`) the group's result: sends the diff to live
/// members, or, when the diff would be as large as the result, a snapshot
/// to everyone. A diff carries the count only when it changed.
pub(super) fn publish<T: LiveTable>(
    shared: &GroupShared<T>,
    reads: &Reads,
    previous: Option<Current<T>>,
    (window, rows, count): (Window<T>, Rows<T>, Option<u64>),
    related: Vec<serde_json::Value>,
    touched: Option<&HashSet<Key<T>>>,
    noticed: Option<Noticed>,
) -> Current<T> {
    let Some(mut previous) = previous else {
        return Current {
            version: 1,
            window,
            rows,
            count,
            snapshot: None,
            history: History::default(),
        };
    };
    let changes: Changes<T, Key<T>> = match touched {
        Some(touched) => diff::diff_touched(&previous.rows, &rows, touched, T::key),
        None => diff::diff(&previous.rows, &rows, T::key),
    };
    let recounted = (count != previous.count).then_some(count).flatten();
    if changes.is_empty() && recounted.is_none() && related.is_empty() {
        // The rows past the window may have changed; the result did not.
        return Current { window, ..previous };
    }
    let version = previous.version + 1;
    // A diff of the count (or related rows) alone is always smaller than
    // a snapshot.
    let as_snapshot = !changes.is_empty() && changes.len() >= rows.len().max(1);
    let body = if as_snapshot {
        None
    } else {
        match frame::diff_body(
            T::NAME,
            previous.version,
            version,
            noticed.map(|n| n.0),
            recounted,
            &related,
            &changes,
        ) {
            Ok(body) => Some(body),
            Err(err) => {
                tracing::error!(group = %shared.key, error = %err, "could not encode a diff; sending snapshots");
                None
            }
        }
    };
    let mut history = std::mem::take(&mut previous.history);
    match &body {
        Some(body) => history.push(
            (previous.version, version),
            body.clone(),
            reads,
            &shared.account,
        ),
        // A change sent as snapshots cannot be replayed: resuming across it
        // needs a snapshot too.
        None => history.clear(reads, &shared.account),
    }
    let mut members = lock(&shared.members);
    match body {
        Some(body) => {
            reads.metrics.diffs.inc();
            members.retain(|_, slot| {
                if slot.state != MemberState::Live {
                    return true;
                }
                let frame = slot.member.headers.frame(Kind::Diff, &body);
                offer(slot, frame, reads)
            });
        }
        None => {
            for slot in members.values_mut() {
                if slot.state == MemberState::Live {
                    slot.state = MemberState::NeedsSnapshot;
                }
            }
        }
    }
    Current {
        version,
        window,
        rows,
        count,
        snapshot: None,
        history,
    }
}

/// Sends the current result to members that need it: new joiners, members
/// switched to a snapshot by a large change, and (on request) stale members.
pub(super) fn serve_snapshots<T: LiveTable>(
    shared: &GroupShared<T>,
    reads: &Reads,
    current: &mut Current<T>,
    resync: bool,
    includes: &[Box<dyn Include<T>>],
) {
    let mut members = lock(&shared.members);
    let wanted = |state: MemberState| {
        state == MemberState::NeedsSnapshot || (resync && state == MemberState::Stale)
    };
    if !members.values().any(|s| wanted(s.state)) {
        return;
    }
    // Members that resume get what they missed from the history, at no
    // cost to the database; the others (and resumes the history cannot
    // cover) get the snapshot.
    members.retain(|_, slot| {
        if slot.state != MemberState::NeedsSnapshot {
            return true;
        }
        let Some(since) = slot.member.since.take() else {
            return true;
        };
        let missed = (since.epoch.as_str() == &*shared.epoch && since.version <= current.version)
            .then(|| current.history.since(since.version, current.version))
            .flatten();
        let Some(missed) = missed else {
            reads.metrics.resume_misses.inc();
            return true;
        };
        reads.metrics.resumes.inc();
        let resumed = Frame::message(&ServerMessage::Resumed(Resumed {
            id: slot.member.sub.clone(),
            epoch: shared.epoch.to_string(),
            from: since.version,
            to: current.version,
        }));
        if !offer(slot, resumed, reads) {
            return false;
        }
        for body in missed {
            let frame = slot.member.headers.frame(Kind::Diff, &body);
            if !offer(slot, frame, reads) {
                return false;
            }
        }
        true
    });
    if !members.values().any(|s| wanted(s.state)) {
        return;
    }
    let body = match &current.snapshot {
        Some(body) => body.clone(),
        None => {
            match frame::snapshot_body(
                T::NAME,
                &shared.epoch,
                current.version,
                current.count,
                &includes
                    .iter()
                    .flat_map(|i| i.entries())
                    .collect::<Vec<_>>(),
                &current.rows,
            ) {
                Ok(body) => {
                    reads.metrics.snapshots.inc();
                    current.snapshot = Some(body.clone());
                    body
                }
                Err(err) => {
                    tracing::error!(group = %shared.key, error = %err, "could not encode a snapshot");
                    return;
                }
            }
        }
    };
    members.retain(|_, slot| {
        if !wanted(slot.state) {
            return true;
        }
        if slot.state == MemberState::Stale {
            reads.metrics.lagging_resyncs.inc();
        }
        slot.member.since = None;
        let frame = slot.member.headers.frame(Kind::Snapshot, &body);
        offer(slot, frame, reads)
    });
}

/// Offers a frame to a member; false drops the member, whose connection is gone.
fn offer(slot: &mut Slot, frame: Frame, reads: &Reads) -> bool {
    let kept = slot.offer(frame, &reads.metrics);
    if !kept {
        reads.unsubscribed(&slot.member);
    }
    kept
}

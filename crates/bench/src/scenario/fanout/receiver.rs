//! One S1–S6 client's measurement: what it records of each frame it
//! receives, and when each write's marker first reached it.
//!
//! Per frame it does a `memmem` scan for the marker prefix, parses the numbers
//! after each hit, and for full-state frames checks pending deletes; there is
//! no JSON parsing, so one tokio runtime on 2 cores keeps up with 10,000
//! clients. The connection itself is `connection::session`'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{Semaphore, watch};

use crate::connection::{self, ClientSpec, ConnOutcome, FrameSink};
use crate::scan::{self, FrameKind};
use crate::shared::{KIND_DELETE, Shared};

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientOutcome {
    pub connected: bool,
    pub ready: bool,
    pub error: Option<String>,
    /// The server closed the connection (or it failed) before the end.
    pub closed_early: bool,
    /// Per operation: first time (µs since t0, +1) the client had it; 0 = never.
    pub recv: Vec<u32>,
    pub frames_before: u64,
    pub bytes_before: u64,
    pub frames_after: u64,
    pub bytes_after: u64,
    /// Last frame received (µs since t0).
    pub last_frame_us: u64,
    pub error_frames: u64,
}

struct State {
    shared: Arc<Shared>,
    group: u32,
    raw: bool,
    out: ClientOutcome,
    /// Per operation: the number of the last full-state frame holding its marker.
    in_frame: Vec<u32>,
    full_frames: u32,
    /// DELETE seqs of this client's group not yet seen, and how far the shared
    /// list has been read.
    pending_deletes: Vec<usize>,
    deletes_read: usize,
}

fn us32(us: u64) -> u32 {
    u32::try_from(us.saturating_add(1)).unwrap_or(u32::MAX)
}

/// Records the first receipt of operation `seq`.
fn mark(recv: &mut [u32], seq: Option<usize>, now32: u32) {
    if let Some(cell) = seq.and_then(|s| recv.get_mut(s))
        && *cell == 0
    {
        *cell = now32;
    }
}

/// The operation that deletes row `id`, if the run deleted it.
fn delete_seq(shared: &Shared, id: u64) -> Option<usize> {
    let tag = usize::try_from(id)
        .ok()
        .and_then(|id| shared.delete_by_id.get(id))
        .map_or(0, |c| c.load(Ordering::Acquire));
    (tag > 0).then(|| tag as usize - 1)
}

impl FrameSink for State {
    fn on_frame(&mut self, frame: &[u8]) {
        self.frame(frame);
    }

    fn is_ready(&self) -> bool {
        self.out.ready
    }
}

impl State {
    fn frame(&mut self, frame: &[u8]) {
        let shared = Arc::clone(&self.shared);
        let now = shared.now_us();
        shared.frames.fetch_add(1, Ordering::Relaxed);
        self.out.last_frame_us = now;
        let measuring = shared.measuring.load(Ordering::Acquire);
        let len = frame.len() as u64;
        if measuring {
            self.out.frames_after += 1;
            self.out.bytes_after += len;
        } else {
            self.out.frames_before += 1;
            self.out.bytes_before += len;
        }
        let kind = if self.raw {
            scan::classify_raw(frame)
        } else {
            scan::classify(frame)
        };
        if kind == FrameKind::Error {
            self.out.error_frames += 1;
            shared.error_frames.fetch_add(1, Ordering::Relaxed);
            shared.note_error(scan::error_summary(frame));
            return;
        }
        if !self.out.ready && kind != FrameKind::Other {
            self.out.ready = true;
            shared.ready.fetch_add(1, Ordering::Release);
        }
        if !measuring {
            return;
        }
        let now32 = us32(now);
        let n = self.out.recv.len();
        match kind {
            FrameKind::Diff => {
                let recv = &mut self.out.recv;
                scan::for_each_marker(frame, &shared.finder, |seq| {
                    mark(recv, usize::try_from(seq).ok(), now32);
                });
                scan::for_each_deleted_id(frame, |id| {
                    mark(recv, delete_seq(&shared, id), now32);
                });
            }
            FrameKind::Raw => {
                // One change per frame: its marker, or the deleted row's id.
                let recv = &mut self.out.recv;
                if let Some(id) = scan::raw_deleted_id(frame) {
                    mark(recv, delete_seq(&shared, id), now32);
                } else {
                    scan::for_each_marker(frame, &shared.finder, |seq| {
                        mark(recv, usize::try_from(seq).ok(), now32);
                    });
                }
            }
            FrameKind::Full => {
                if self.in_frame.len() != n {
                    self.in_frame = vec![0; n];
                }
                self.full_frames += 1;
                let frame_no = self.full_frames;
                let mut newest: Option<usize> = None;
                let recv = &mut self.out.recv;
                let in_frame = &mut self.in_frame;
                scan::for_each_marker(frame, &shared.finder, |seq| {
                    let Ok(s) = usize::try_from(seq) else { return };
                    if s < n {
                        in_frame[s] = frame_no;
                        if recv[s] == 0 {
                            recv[s] = now32;
                        }
                        newest = Some(newest.map_or(s, |m: usize| m.max(s)));
                    }
                });
                self.check_deletes(frame_no, newest, now32);
            }
            FrameKind::Error | FrameKind::Hello | FrameKind::Other => {}
        }
    }

    /// A full-state frame proves DELETE `d` (of the row whose last marker was
    /// `m`) when `m` is absent from it and the frame is known to be newer than
    /// `m`: the client saw `m` earlier, or the frame holds a later marker.
    fn check_deletes(&mut self, frame_no: u32, newest: Option<usize>, now32: u32) {
        let shared = &self.shared;
        let published = shared.n_deletes.load(Ordering::Acquire);
        while self.deletes_read < published {
            let tag = shared.deletes[self.deletes_read].load(Ordering::Acquire);
            self.deletes_read += 1;
            if tag == 0 {
                continue;
            }
            let d = tag as usize - 1;
            let slot = &shared.slots[d];
            if slot.kind.load(Ordering::Acquire) == KIND_DELETE
                && slot.group.load(Ordering::Acquire) == self.group
            {
                self.pending_deletes.push(d);
            }
        }
        let recv = &mut self.out.recv;
        let in_frame = &self.in_frame;
        self.pending_deletes.retain(|&d| {
            if recv[d] != 0 {
                return false;
            }
            let prev = shared.slots[d].prev.load(Ordering::Acquire);
            if prev == 0 {
                return true;
            }
            let m = prev as usize - 1;
            let absent = in_frame[m] != frame_no;
            let newer = recv[m] != 0 || newest.is_some_and(|x| x > m);
            if absent && newer {
                recv[d] = now32;
                false
            } else {
                true
            }
        });
    }
}

/// Which writes a client must see, and how its server frames them.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// The client sees the writes of this group.
    pub group: u32,
    /// The server sends bare payloads rather than JSON (the floor).
    pub raw: bool,
}

/// Runs one client until `stop` turns true (or the connection ends).
pub async fn run(
    shared: Arc<Shared>,
    spec: ClientSpec,
    role: Role,
    connect_gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> ClientOutcome {
    let n = shared.slots.len();
    let mut state = State {
        shared: Arc::clone(&shared),
        group: role.group,
        raw: role.raw,
        out: ClientOutcome {
            recv: vec![0; n],
            ..ClientOutcome::default()
        },
        in_frame: Vec::new(),
        full_frames: 0,
        pending_deletes: Vec::new(),
        deletes_read: 0,
    };
    let mut conn = ConnOutcome::default();
    connection::session(
        &mut state,
        &mut conn,
        &spec,
        &connect_gate,
        &shared.connected,
        &mut stop,
    )
    .await;
    state.out.connected = conn.connected;
    state.out.closed_early = conn.closed_early;
    state.out.error = conn.error;
    if !state.out.ready {
        // Counted so that the connect phase need not wait for it.
        shared.finished.fetch_add(1, Ordering::Release);
    }
    state.out
}

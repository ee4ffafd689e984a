//! State shared by the writer and every client of one target run.
//!
//! Every row operation of the run has a sequence number `seq` (0..n). The
//! writer fills a [`WriteSlot`] before it executes the operation and stamps the
//! commit time after; clients only read slots. Times are microseconds since
//! [`Shared::t0`], stored `+1` so that 0 means "not yet".

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use memchr::memmem;

pub const KIND_NONE: u8 = 0;
pub const KIND_INSERT: u8 = 1;
pub const KIND_UPDATE: u8 = 2;
pub const KIND_DELETE: u8 = 3;

/// One row operation (one marker).
#[derive(Debug, Default)]
pub struct WriteSlot {
    /// `KIND_*`.
    pub kind: AtomicU8,
    /// Which clients must see it: those whose `group` is equal.
    pub group: AtomicU32,
    /// The operation this one supersedes on the same row (`seq + 1`, 0 = none):
    /// an UPDATE supersedes the row's previous marker, a DELETE the marker of
    /// the row it removes.
    pub prev: AtomicU32,
    /// Commit time (µs since t0, +1; 0 = not committed).
    pub commit_us: AtomicU64,
}

pub struct Shared {
    pub t0: Instant,
    pub finder: memmem::Finder<'static>,
    pub slots: Vec<WriteSlot>,
    /// Row id → `seq + 1` of the DELETE that removes it.
    pub delete_by_id: Vec<AtomicU32>,
    /// Append-only list of DELETE seqs, `n_deletes` long.
    pub deletes: Vec<AtomicU32>,
    pub n_deletes: AtomicUsize,
    /// Set just before the first write: frames from then on are measured.
    pub measuring: AtomicBool,
    /// Frames received by all clients together (for quiet detection).
    pub frames: AtomicU64,
    pub connected: AtomicUsize,
    pub ready: AtomicUsize,
    /// Clients that ended without ever getting their initial state.
    pub finished: AtomicUsize,
    pub error_frames: AtomicU64,
    pub error_samples: Mutex<Vec<String>>,
}

impl Shared {
    pub fn new(prefix: &str, n_ops: usize, max_row_id: usize) -> Shared {
        Shared {
            t0: Instant::now(),
            finder: memmem::Finder::new(prefix.as_bytes()).into_owned(),
            slots: (0..n_ops).map(|_| WriteSlot::default()).collect(),
            delete_by_id: (0..=max_row_id).map(|_| AtomicU32::new(0)).collect(),
            deletes: (0..n_ops).map(|_| AtomicU32::new(0)).collect(),
            n_deletes: AtomicUsize::new(0),
            measuring: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            error_frames: AtomicU64::new(0),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    /// Microseconds since t0.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn note_error(&self, text: String) {
        if let Ok(mut samples) = self.error_samples.lock()
            && samples.len() < 20
        {
            samples.push(text);
        }
    }

    /// Publishes a DELETE of row `id` as operation `seq` (before it executes).
    pub fn publish_delete(&self, seq: usize, id: usize) {
        if let Some(cell) = self.delete_by_id.get(id) {
            cell.store(seq_tag(seq), Ordering::Release);
        }
        let at = self.n_deletes.load(Ordering::Relaxed);
        if let Some(cell) = self.deletes.get(at) {
            cell.store(seq_tag(seq), Ordering::Release);
            self.n_deletes.store(at + 1, Ordering::Release);
        }
    }
}

/// `seq + 1` as stored in the atomics.
pub fn seq_tag(seq: usize) -> u32 {
    u32::try_from(seq + 1).unwrap_or(u32::MAX)
}

//! Change capture: how pglive learns which rows changed. NOTIFY
//! ([`listener`]) is the default; logical replication ([`wal`]) is the
//! option that costs writers nothing. Whatever the mode, capture reports
//! [`crate::engine::Change`]s to the hub and nothing after it can tell modes
//! apart.
//!
//! - [`mode`]: the database side of the choice (`pglive_capture_mode()`:
//!   triggers attached, or detached and a publication kept in step), and
//!   the refusal to mix modes on one database.
//! - [`slot`]: the replication slot pglive owns: checks, creation, lag,
//!   `pglive slot drop`.
//! - [`transaction`]: pgoutput messages of one transaction turned into
//!   changes, keeping only keys, capped per table.

pub mod listener;
pub mod mode;
pub mod slot;
pub mod transaction;
pub mod wal;

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

use crate::config::CaptureMode;

/// Typed errors of capture's database work. "Fatal" ones are mistakes in
/// configuration that retrying cannot fix: at start they stop the server
/// with their message; later they keep capture down (and `/readyz` at 503)
/// while it retries.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "WAL capture needs wal_level = logical, and the server runs with wal_level = {0}: set it in postgresql.conf and restart PostgreSQL, or run pglive with --capture notify"
    )]
    WalLevel(String),
    #[error(
        "WAL capture needs a role that may replicate, and {0} may not: ALTER ROLE {0} REPLICATION (as a superuser), or run pglive with --capture notify"
    )]
    NoReplication(String),
    #[error("the database has no pglive_capture_mode(): run `pglive migrate` first")]
    NotMigrated,
    #[error(
        "a pglive server with {other} capture is connected to this database (backend pid {pid}); every server of one database must run with the same --capture"
    )]
    OtherMode { other: &'static str, pid: i32 },
    #[error(
        "cannot switch the database to {mode} capture: {reason}. The owner of the watched tables can run SELECT pglive_capture_mode('{mode}') once."
    )]
    Switch { mode: &'static str, reason: String },
    #[error(
        "replication slot name {0:?} is not allowed: use lower-case letters, digits and underscores, at most 63"
    )]
    SlotName(String),
    #[error(
        "replication slot {slot} belongs to database {database} with plugin {plugin}, not to this database with pgoutput: pick another --slot-name"
    )]
    ForeignSlot {
        slot: String,
        database: String,
        plugin: String,
    },
    #[error(
        "replication slot {slot} is in use by backend pid {pid}: another pglive with the same --slot-name, or one that is still shutting down"
    )]
    SlotInUse { slot: String, pid: i32 },
    #[error("cannot create replication slot {slot}: {reason}")]
    CreateSlot { slot: String, reason: String },
    #[error("bad database URL: {0}")]
    Url(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("the database did not answer within 5 s")]
    Unanswered,
    #[error("replication stream: {0}")]
    Stream(#[from] pgwire_replication::PgWireError),
}

impl CaptureError {
    /// Whether the error is a configuration mistake (see the type's doc).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            CaptureError::WalLevel(_)
                | CaptureError::NoReplication(_)
                | CaptureError::NotMigrated
                | CaptureError::OtherMode { .. }
                | CaptureError::Switch { .. }
                | CaptureError::SlotName(_)
                | CaptureError::ForeignSlot { .. }
                | CaptureError::CreateSlot { .. }
                | CaptureError::Url(_)
        )
    }
}

/// What `/readyz` reads: whether capture is connected, in which mode, and for
/// WAL capture the slot and how far behind it is.
#[derive(Debug)]
pub struct CaptureStatus {
    mode: CaptureMode,
    /// The replication slot (WAL capture only).
    slot: Option<String>,
    /// Whether capture is connected. Written only by the capture task;
    /// watched by the server's health, which tells clients.
    up: watch::Sender<bool>,
    /// Bytes of WAL the slot retains (`pg_current_wal_lsn() -
    /// confirmed_flush_lsn`), as last measured; -1 until measured.
    slot_lag: AtomicI64,
}

impl Default for CaptureStatus {
    fn default() -> Self {
        CaptureStatus::new(CaptureMode::Notify, None)
    }
}

impl CaptureStatus {
    pub fn new(mode: CaptureMode, slot: Option<String>) -> CaptureStatus {
        CaptureStatus {
            mode,
            slot,
            up: watch::Sender::new(false),
            slot_lag: AtomicI64::new(-1),
        }
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Follows every change of [`Self::is_up`].
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// The slot's lag in bytes, once measured.
    pub fn slot_lag_bytes(&self) -> Option<i64> {
        let lag = self.slot_lag.load(Ordering::Relaxed);
        (lag >= 0).then_some(lag)
    }

    fn set_slot_lag(&self, bytes: i64) {
        self.slot_lag.store(bytes.max(0), Ordering::Relaxed);
    }

    /// One line for `/readyz`: the mode, and for WAL capture the slot and
    /// its lag, e.g. `capture wal, slot pglive_app, lag 1024 bytes`.
    pub fn describe(&self) -> String {
        match (&self.slot, self.slot_lag_bytes()) {
            (Some(slot), Some(lag)) => {
                format!(
                    "capture {}, slot {slot}, lag {lag} bytes",
                    self.mode.as_str()
                )
            }
            (Some(slot), None) => format!("capture {}, slot {slot}", self.mode.as_str()),
            (None, _) => format!("capture {}", self.mode.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_describes_mode_slot_and_lag() {
        assert_eq!(CaptureStatus::default().describe(), "capture notify");
        let s = CaptureStatus::new(CaptureMode::Wal, Some("pglive_app".into()));
        assert_eq!(s.describe(), "capture wal, slot pglive_app");
        s.set_slot_lag(1024);
        assert_eq!(s.describe(), "capture wal, slot pglive_app, lag 1024 bytes");
        assert_eq!(s.slot_lag_bytes(), Some(1024));
    }
}

//! What the rest of the server reads of capture while it runs: whether it
//! is connected, in which mode, and for WAL capture the slot and its lag.
//! Only capture's tasks write it.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

use super::kind::CaptureMode;

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

    pub(super) fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// The slot's lag in bytes, once measured.
    pub fn slot_lag_bytes(&self) -> Option<i64> {
        let lag = self.slot_lag.load(Ordering::Relaxed);
        (lag >= 0).then_some(lag)
    }

    pub(super) fn set_slot_lag(&self, bytes: i64) {
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

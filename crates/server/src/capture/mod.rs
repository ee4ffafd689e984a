//! Change capture: how pglive learns which rows changed. NOTIFY
//! ([`listener`]) is the default; whatever the mode, capture reports
//! [`crate::engine::Change`]s to the hub and nothing after it can tell modes
//! apart.

pub mod listener;

use tokio::sync::watch;

/// Whether capture is connected: read by `/readyz`, watched by the server's
/// health (which tells clients).
#[derive(Debug)]
pub struct CaptureStatus {
    /// Written only by the capture task; closed when the status is dropped.
    up: watch::Sender<bool>,
}

impl Default for CaptureStatus {
    fn default() -> Self {
        CaptureStatus {
            up: watch::Sender::new(false),
        }
    }
}

impl CaptureStatus {
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
}

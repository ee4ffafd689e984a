//! Change capture: how pglive learns which rows changed. NOTIFY
//! ([`listener`]) is the default; whatever the mode, capture reports
//! [`crate::engine::Change`]s to the hub and nothing after it can tell modes
//! apart.

pub mod listener;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether capture is connected; read by `/readyz`.
#[derive(Debug, Default)]
pub struct CaptureStatus {
    up: AtomicBool,
}

impl CaptureStatus {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

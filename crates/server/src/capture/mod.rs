//! Change capture: how pglive learns which rows changed. NOTIFY
//! ([`listener`]) is the default; logical replication ([`wal`]) is the
//! option that costs writers nothing. Whatever the mode, capture reports
//! [`crate::engine::Change`]s to the hub and nothing after it can tell modes
//! apart. The server calls [`start`] and holds the [`Capture`] it returns.
//!
//! - [`kind`]: the modes themselves (`--capture`) and the
//!   `application_name` of each mode's connections.
//! - [`error`]: capture's typed errors, and which of them are fatal.
//! - [`status`]: what `/readyz` reads (up or down, the slot's lag).
//! - [`transaction`]: pgoutput messages of one transaction turned into
//!   changes, keeping only keys, capped per table.
//! - [`slot`]: the replication slot pglive owns: checks, creation, lag,
//!   `pglive slot drop`.
//! - [`mode`]: the database side of the choice (`pglive_capture_mode()`:
//!   triggers attached, or detached and a publication kept in step), and
//!   the refusal to mix modes on one database.
//! - [`listener`]: NOTIFY capture's task.
//! - [`wal`]: WAL capture's task (`settings` → `visible` → `session` →
//!   the task in `wal` itself).
//!
//! Modules depend one way, in that order: each names only modules before
//! it (`kind` → `error` → `status` → `transaction` → `slot` → `mode` →
//! `listener` → `wal` → this module, which starts one of them), and none
//! names what sits above capture (config, sessions, the API).
//! `tests/capture_layering.rs` checks it. A module names what it uses where
//! it is defined (`super::error::CaptureError`), never through this
//! module's re-exports, which are for the rest of the server.

mod error;
mod kind;
mod listener;
mod mode;
mod slot;
mod status;
mod transaction;
mod wal;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Hub;

pub use self::error::CaptureError;
pub use self::kind::CaptureMode;
pub use self::status::CaptureStatus;

/// A running capture: what it reports, and its task.
#[derive(Debug)]
pub struct Capture {
    status: Arc<CaptureStatus>,
    /// Ends once the shutdown receiver given to [`start`] flips.
    task: JoinHandle<()>,
}

impl Capture {
    /// What `/readyz` and the server's health read.
    pub fn status(&self) -> &Arc<CaptureStatus> {
        &self.status
    }

    /// Waits for the task to end (it ends when shutdown flips).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Starts capture in `mode` on `database_url`, reporting to `hub` until
/// `shutdown` flips. A configuration mistake (see
/// [`CaptureError::is_fatal`]) found while starting is returned, so that
/// the server stops with its message; a database not reachable yet is left
/// to the task's retries, and the server serves meanwhile (not ready).
/// `slot_name` is WAL capture's slot (default `pglive_<database>`).
pub async fn start(
    database_url: &str,
    mode: CaptureMode,
    slot_name: Option<&str>,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) -> Result<Capture, CaptureError> {
    let (status, task) = match mode {
        CaptureMode::Notify => listener::start(database_url, hub, shutdown).await?,
        CaptureMode::Wal => wal::start(database_url, slot_name, hub, shutdown).await?,
    };
    Ok(Capture { status, task })
}

/// `pglive slot drop`: drops WAL capture's replication slot of
/// `database_url` (`slot_name`, else `pglive_<database>`). Returns its name,
/// and whether it existed.
pub async fn drop_slot(
    database_url: &str,
    slot_name: Option<&str>,
) -> Result<(String, bool), CaptureError> {
    let (slot, dropped) = slot::drop_for(database_url, slot_name).await?;
    Ok((slot, dropped == slot::Dropped::Dropped))
}

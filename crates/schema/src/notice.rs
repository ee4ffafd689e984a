//! The change notice: the JSON payload the `pglive_notify()` trigger sends with
//! `pg_notify('pglive', ...)` (see `migrations/`). It crosses a process
//! boundary, so it is part of the contract like the wire messages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `LISTEN` channel the trigger notifies on.
pub const CHANNEL: &str = "pglive";

/// The statement kind that fired the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Insert,
    Update,
    Delete,
    Truncate,
}

/// One statement's changes to one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeNotice {
    /// Payload format version; 1.
    pub v: u32,
    pub schema: String,
    pub table: String,
    pub op: Operation,
    /// Primary keys of the rows as they are now (INSERT, UPDATE) or were
    /// (DELETE). `null` means "too many to list, or unknown: refresh the table".
    pub keys: Option<Vec<serde_json::Value>>,
    /// For UPDATE: the keys before the update (they differ when the update
    /// changed a primary key). `null` otherwise.
    #[serde(default)]
    pub old_keys: Option<Vec<serde_json::Value>>,
}

impl ChangeNotice {
    /// Every key the statement touched, old and new; `None` when the whole
    /// table must be considered changed.
    pub fn touched_keys(&self) -> Option<impl Iterator<Item = &serde_json::Value>> {
        let keys = self.keys.as_ref()?;
        if self.op == Operation::Truncate {
            return None;
        }
        Some(keys.iter().chain(self.old_keys.iter().flatten()))
    }
}

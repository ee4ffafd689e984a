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
    /// For an UPDATE that changed some row's key: the keys before the
    /// update. `null` otherwise: the old keys are the ones in `keys`.
    #[serde(default)]
    pub old_keys: Option<Vec<serde_json::Value>>,
    /// For a table watched with a partition hint (`pglive_watch(tbl,
    /// partition => 'tenant')`): the distinct partition values of the
    /// statement's rows, old and new. Absent when the table has no hint, or
    /// the values are unknown or too many: then every context reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Partition>,
}

/// Which partitions a statement touched, and the claim that names a
/// security context's partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Partition {
    /// The JWT claim whose value is a context's partition.
    pub claim: String,
    /// The partition column's values (as text) of the rows, old and new.
    pub values: Vec<String>,
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

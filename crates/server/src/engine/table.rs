//! The engine's vocabulary, below everything else in it: the contract's
//! [`LiveTable`] (how rows are keyed, filtered, ordered and read), the
//! security [`Context`] a read runs in, and the [`Change`]s capture reports.

use std::sync::Arc;

pub use pglive_schema::live::{Listed, LiveTable};
pub use pglive_schema::notice::Partition;

/// A table's key type.
pub type Key<T> = <T as LiveTable>::Key;

/// Whose view of the database a read has. Groups are keyed by it, and every
/// read made for a group (its query, its table's changed rows) runs in it, so
/// row-level security decides which rows a group holds. The default context
/// is the server's own connection role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Context {
    /// The role reads switch to (`SET LOCAL ROLE`); `None`: no switch.
    pub role: Option<Arc<str>>,
    /// The claims visible to SQL as `request.jwt.claims` (canonical JSON).
    pub claims: Option<Arc<str>>,
}

impl Context {
    /// The claim `name` as text (a string as it is, a number or boolean as
    /// JSON writes it), as a partition hint compares it with a column's
    /// text; `None` when the context has no such scalar claim.
    pub fn claim_text(&self, name: &str) -> Option<String> {
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(self.claims.as_deref()?).ok()?;
        match claims.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                Some(value.to_string())
            }
            _ => None,
        }
    }
}

/// When the server learned of a change: milliseconds since the Unix epoch
/// by the server's clock. Diffs carry the earliest of their changes'
/// (`noticed_at`), so a client can tell how long a change took to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Noticed(pub u64);

impl Noticed {
    pub fn now() -> Noticed {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Noticed(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// The earlier of two, either of which may be unknown.
    pub fn earliest(a: Option<Noticed>, b: Option<Noticed>) -> Option<Noticed> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What change capture reports: which rows of which table may have changed.
/// Both capture modes produce exactly these, so nothing after capture can
/// tell which one is running.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// These rows of `table` changed (keys as capture read them: JSON values
    /// that the table's reader parses into its key type).
    Rows {
        table: &'static str,
        keys: Vec<serde_json::Value>,
        /// The partitions the rows are in, old and new, when the table has
        /// a partition hint (NOTIFY capture only); `None`: unknown.
        parts: Option<Partition>,
    },
    /// Any row of `table` may have changed.
    Table { table: &'static str },
    /// Any row of any table may have changed (capture lost notices).
    Everything,
}

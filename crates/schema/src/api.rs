//! REST bodies and errors. The write bodies themselves (`NewItem`,
//! `TaskPatch`, ...) are generated per table by `#[live_table]`.
//!
//! Writes are ordinary INSERT/UPDATE/DELETE statements: their live updates
//! reach clients through change capture like any other write.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use ts_rs::TS;

use crate::error_code::ErrorCode;

/// The body of every non-2xx REST response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ApiError {
    pub code: ErrorCode,
    /// A human-readable explanation; never internal error text.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
}

/// A field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn nothing_to_update() -> Invalid {
        Invalid {
            field: "body",
            message: "nothing to update: give at least one field".into(),
        }
    }
}

/// Distinguishes a present `null` (`Some(None)`) from a missing field (`None`,
/// via `#[serde(default)]`) in PATCH bodies.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

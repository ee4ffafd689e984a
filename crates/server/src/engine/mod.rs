//! The live engine: groups that keep query results current, readers that
//! read changed rows once, and the outboxes that carry results to clients.
//!
//! Modules depend one way, each only on those listed before it (checked by
//! `tests/layering.rs`):
//! `table` → `diff` → `frame` → `budget` → `outbox` → `reads` → `group` → `reader` →
//! `registry` → `hub`.

pub mod budget;
pub mod diff;
pub mod frame;
pub mod group;
pub mod hub;
pub mod outbox;
pub mod reader;
pub mod reads;
pub mod registry;
pub mod table;

pub use hub::{Hub, HubError};
pub use reads::{EngineLimits, rows_in};
pub use table::{Change, Context};

//! pglive's typed contract: the rows of the live tables, the live-query values
//! clients may subscribe to, the WebSocket wire messages and the REST bodies.
//!
//! This crate does no I/O. It defines types (with diesel `table!` mappings, serde,
//! ts-rs and schemars derives) and pure functions over them (validation and
//! normalization). The generated TypeScript in `web/src/generated` and the JSON
//! Schemas in `crates/schema/json-schema` are produced from these types by this
//! crate's tests, never by hand.

pub mod api;
pub mod notice;
pub mod query;
pub mod rows;
pub mod tables;
pub mod wire;

pub use query::{LiveQuery, QueryError};
pub use rows::{Item, Task, TaskStatus};
pub use wire::{ClientMessage, ErrorCode, ServerMessage, SubscriptionId};

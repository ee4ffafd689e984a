//! pglive's typed contract: the live tables (their rows, queries and REST
//! bodies), the WebSocket wire messages, and the change notice.
//!
//! This crate does no I/O. Each live table is one declaration in [`tables`];
//! `#[live_table]` (crate `pglive-macros`) generates its types and its
//! [`live::LiveTable`] implementation from it, built on [`ops`] (each filter
//! operator's SQL and Rust meaning, defined once), [`scalar`] (column value
//! types that compare as PostgreSQL does) and [`sql`] (statements with typed
//! parameters). The generated TypeScript in `web/packages/client/src/generated` and the JSON
//! Schemas in `crates/schema/json-schema` are produced from these types by
//! this crate's tests, never by hand.

// The declarations in `tables` expand to paths under `::pglive_schema`.
extern crate self as pglive_schema;

pub mod api;
pub mod decoding;
pub mod error_code;
pub mod live;
pub mod notice;
pub mod ops;
pub mod scalar;
pub mod sql;
pub mod tables;
pub mod wire;

pub use live::{Direction, LiveTable, QueryError};
pub use scalar::Int8;
pub use tables::{Comment, Item, LiveQuery, TableChanges, TableRows, Task, TaskStatus};
pub use wire::{ClientMessage, ErrorCode, ServerMessage, SubscriptionId};

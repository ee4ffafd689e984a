//! pglive's test kit, shared by the server's tests and the load generator:
//!
//! - [`TestDb`]: a real PostgreSQL database of its own per test, cloned from
//!   a migrated template (separate databases, not schemas: NOTIFY is per
//!   database), on `PGLIVE_TEST_DATABASE_URL` or a throwaway cluster started
//!   with the repository's `dev/pg.sh`.
//! - [`TestServer`]: the real server (`pglive_server::run`) on 127.0.0.1:0.
//! - [`Client`]: a real WebSocket client that decodes every server message
//!   as the contract's `ServerMessage` and keeps each subscription's rows by
//!   applying snapshots and diffs with the server's own `diff::apply`.
//!
//! Everything here panics on failure: it is for tests, which fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod db;
pub mod random;
mod server;

pub use client::{Client, Sub, Ws};
pub use db::{TestDb, admin_url, fresh, fresh_as, fresh_at, fresh_json, repo_root, with_db};
pub use server::TestServer;

/// How long a test waits for something that should happen.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

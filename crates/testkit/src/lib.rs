//! pglive's test kit, shared by the server's tests and the load generator:
//!
//! - [`TestDb`]: a real PostgreSQL database of its own per test, cloned from
//!   a migrated template (separate databases, not schemas: NOTIFY is per
//!   database), on `PGLIVE_TEST_DATABASE_URL` or a throwaway cluster started
//!   with the repository's `dev/pg.sh`.
//! - [`TestServer`]: the real server (`pglive_server::run`) on 127.0.0.1:0.
//! - [`Client`]: a real WebSocket client that decodes every server message
//!   as the contract's `ServerMessage` and keeps each subscription's rows by
//!   applying snapshots and diffs with the server's own `diff::apply`; the
//!   load generator uses it too, connecting with its own [`Connect`]
//!   settings and reading raw [`Frame`]s.
//!
//! - [`ServerProcess`]: the `pglive` binary as a child process (to kill it),
//!   and [`PrivateCluster`]: a PostgreSQL of the test's own (to restart it).
//! - [`in_both_modes!`]: runs a live test once per capture mode.
//!
//! Everything here panics on failure: it is for tests, which fail loudly.
//! The exceptions are the client's ways in and out for the load generator
//! (`Client::open`, the `try_` senders, `Client::next_frame`), which return
//! typed errors so that one failed connection among thousands is counted,
//! not fatal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod db;
mod process;
pub mod random;
mod server;

pub use client::{Client, Connect, ConnectError, Ended, Frame, Sub, Ws};
pub use db::{
    TestDb, admin_url, drop_database, fresh, fresh_as, fresh_at, fresh_count, fresh_json,
    repo_root, wal_level_is_logical, with_db,
};
pub use pglive_server::config::CaptureMode;
pub use process::{PrivateCluster, ServerProcess, run_command, run_command_with_env};
pub use server::{TestServer, config_in, mint_hs256, start_error};

/// Runs each named `async fn test(mode: CaptureMode)` twice, as the tests
/// `test::notify` and `test::wal`: both capture modes must pass the same
/// live suites, and nothing after capture may tell them apart.
#[macro_export]
macro_rules! in_both_modes {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn notify() {
                super::$test($crate::CaptureMode::Notify).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wal() {
                super::$test($crate::CaptureMode::Wal).await
            }
        }
    )+};
}

/// How long a test waits for something that should happen.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

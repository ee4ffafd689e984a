//! What scenario REL and its variants share (pglive only: neither the peer
//! nor the floor has related rows); the driver is `scenario::rel`.
//!
//! - **REL**: clients each on a page of 20 tasks that includes every
//!   task's 3 newest comments and their count; the writer inserts comments
//!   on random watched tasks. Measures what a change to a related table
//!   costs (rows read per write, bytes, latency, CPU) beside S2 in the same
//!   invocation, and what re-running the whole nested query per change
//!   would cost instead (the Hasura approach), measured on the same data.
//! - **REL-MOVE**: the same, but every write moves an existing comment to
//!   another watched task (`UPDATE comments SET task_id`): one count goes
//!   down, another up, and windows may change on both sides.
//!
//! See docs/benchmarks.md.
//!
//! Its modules depend one way, lowest first: `params` → `client` (what a
//! client makes of each frame) → `writer` → `nested` (the whole nested
//! query, for the final check and the Hasura-style cost) → `checks` →
//! `report`.

pub mod checks;
pub mod client;
pub mod nested;
pub mod params;
pub mod report;
pub mod writer;

//! Groups: one per distinct (normalized query, security context) of a table.
//! A group holds its members, its current result and version; its task keeps
//! the result current and offers every change, encoded once, to every member.
//!
//! [`Groups`] is a table's map of groups and owns their lifecycle: a group
//! enters it on its first join and leaves it when its last member leaves (or,
//! once its task has ended it, when a member leaves or a join replaces it). A
//! group task never touches the map; it only ends its own group.
//!
//! Changes reach a group as [`Batch`]es of changed rows from its table's
//! reader, or as "re-run everything". A group applies batches in memory: rows
//! whose keys it holds are replaced by the fetched rows that pass its filter,
//! placed by its order. It runs its whole query only when it must: on its
//! first member, on "re-run", and for a limited query whose known rows no
//! longer fill its window (it keeps a few rows past the window, so that rows
//! leaving the window are replaced from memory, not by a query).
//!
//! One concern per file, and they depend one way, each naming only those
//! listed before it (checked by `tests/layering.rs`):
//! `shared` → `history` → `window` → `related` → `current` → `task` → `map`.
//! - `shared`: [`GroupShared`], what the reader, the sessions and the task
//!   share (members, pending [`Batch`]es, the wake-up, the end);
//! - `history`: recent diffs, for clients that resume;
//! - `window`: the rows a group knows, loaded by a query or changed in
//!   memory by batches;
//! - `related`: the related rows of a query's includes, read by key;
//! - `current`: the published result, sent as diffs or as snapshots;
//! - `task`: the loop that keeps the result current;
//! - `map`: [`Groups`], a table's groups and their lifecycle, and the
//!   [`Membership`] a session holds.
//!
//! Other modules name only what this file re-exports.

mod current;
mod history;
mod map;
mod related;
mod shared;
mod task;
mod window;

pub use map::{Groups, Including, JoinError, Membership};
pub use shared::{Batch, RelatedBatch};
#[allow(
    unused_imports,
    reason = "the types in the signatures above keep their paths, though nothing names them yet"
)]
pub use {map::ContextGroups, shared::GroupShared};

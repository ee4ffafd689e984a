//! Scenario W (writers): what watching a table costs the transactions that
//! write to it (issue 10, item 5).
//!
//! N writer connections run single-row autocommit INSERTs or UPDATEs (a
//! random id of the seeded rows) back to back for a fixed time, pgbench-like,
//! against an unwatched copy of `items` (same columns, indexes, defaults and
//! `updated_at` trigger, no pglive triggers, its own sequence, no server),
//! against the watched `items` with pglive on NOTIFY capture, and with
//! `pglive --capture wal` when the server has that flag, and against the
//! same publication read by a bare `pg_recvlogical` (the peer of WAL
//! capture); pglive's cases run with no subscribers and with N subscribed
//! WebSocket clients. The result is transactions per second and its ratio
//! to the unwatched copy (and WAL capture's to the `pg_recvlogical` peer).
//!
//! With subscribers, every write carries a marker `<prefix><case>.<w>.<n>`
//! (writer w's n-th write of the case). After the writers stop, one fence
//! write (`<case>.0.0` on row 1) is committed; the bench waits until every
//! subscriber has received it, then checks each subscriber against the
//! table: for every row whose value the case wrote last, the subscriber must
//! have received that final value. That is convergence of the rows the case
//! touched (it does not re-check rows the case did not touch, nor order).
//!
//! Its modules depend one way, lowest first: `config` → `result` and
//! `load`; `result` → `subscribers` → `setup` (one database and server,
//! its cases) → `run`; `table` (on `result`).

mod config;
mod load;
mod result;
mod run;
mod setup;
mod subscribers;
mod table;

pub use config::Config;
pub use result::WritersResult;
pub use run::run;
pub use table::table;

//! S1–S6 and smoke, one driver for all: N WebSocket clients subscribe (all
//! to one query, or in S6 each to its own), W marked writes go through
//! PostgreSQL at rate R, and every client records when each write reaches
//! it, for pglive, the fan-out floor and the Node.js peer in turn.
//!
//! Its modules depend one way, lowest first: `target`; `receiver` (one
//! client's measurement) → `deliveries` → `report` → `ratios` and `sample`;
//! `ratios` → `table`; `clients` (the clients as a whole, on `receiver`,
//! `report`, `target`); `typed` (the contract client's check); `run` (the
//! driver) above them all.

mod clients;
mod deliveries;
mod ratios;
mod receiver;
mod report;
mod run;
mod sample;
mod table;
mod target;
mod typed;

pub use ratios::{FloorRatioSpread, FloorRatios};
pub use report::TargetReport;
pub use run::run_target;
pub use table::table;
pub use target::Target;

//! What scenarios RLS and RECONNECT share (pglive only; the peer and the
//! floor have neither row-level security nor resume); their drivers are
//! `scenario::rls` and `scenario::reconnect`.
//!
//! - **RLS**: clients in tenants, each with its own JWT, all subscribed to
//!   all of `items`; row-level security gives each only its tenant's rows.
//!   Writes go to random tenants. Measures what a write costs the database
//!   when every tenant is its own security context (one group each), and
//!   checks every frame for rows of another tenant.
//! - **RECONNECT**: clients on all items; after some writes every client
//!   drops its connection and comes back while writes go on, resubscribing
//!   with `since` (resume) or without (snapshot), one run each.
//!
//! See docs/benchmarks.md.
//!
//! Its modules depend one way, lowest first: `row` → `receiver` (what a
//! client makes of a frame) → `session` (its connections) → `clients`;
//! `receiver` → `writer`; `checks` (on `receiver`, `row`, `writer`) and
//! `measure` (on `writer`) → `report` → `table`; `params` → `setup` (on
//! `clients` and `writer` too); `token`.

pub mod checks;
pub mod clients;
pub mod measure;
pub mod params;
pub mod receiver;
pub mod report;
pub mod row;
pub mod session;
pub mod setup;
pub mod table;
pub mod token;
pub mod writer;

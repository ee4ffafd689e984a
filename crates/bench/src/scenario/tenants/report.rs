//! What RLS and RECONNECT report (their part of the JSON results).

use std::collections::BTreeMap;

use serde::Serialize;

use super::checks::{ClientProblems, Convergence, TDeliveries};
use super::measure::DbDelta;
use crate::report::Percentiles;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RlsReport {
    pub mode: String,
    pub ok: bool,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub clients: usize,
    pub tenants: usize,
    pub ready: usize,
    pub connect_seconds: f64,
    pub writes: usize,
    pub achieved_rate: f64,
    pub deliveries: TDeliveries,
    pub convergence: Convergence,
    pub problems: ClientProblems,
    pub bytes_per_client_per_change: f64,
    pub bytes_per_delivery: f64,
    pub frames_per_client_per_change: f64,
    pub initial_bytes_per_client: f64,
    pub db: DbDelta,
    pub metrics: BTreeMap<String, f64>,
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU over the same window (it decodes every
    /// frame, on the same cores).
    pub bench_cpu_seconds: Option<f64>,
    pub server_rss_peak_mib: Option<f64>,
    pub commit_round_trip_ms: Percentiles,
}

impl RlsReport {
    /// Whether the smoke (and `--strict`) must fail.
    pub fn failed(&self) -> bool {
        !self.ok
            || self.deliveries.missing > 0
            || self.deliveries.foreign_deliveries > 0
            || self.convergence.clients_diverged > 0
            || self.problems.foreign_rows > 0
            || self.problems.error_frames > 0
            || self.problems.decode_errors > 0
            || self.problems.version_gaps > 0
            || self.ready < self.clients
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconnectReport {
    /// `resume` (subscribe with `since`) or `snapshot` (without).
    pub mode: String,
    pub ok: bool,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub clients: usize,
    pub ready: usize,
    pub connect_seconds: f64,
    pub writes_before: usize,
    pub writes_during: usize,
    /// pglive's open connections and live groups once every client had
    /// dropped (the group lingers).
    pub connections_after_drop: Option<f64>,
    pub groups_after_drop: Option<f64>,
    pub drop_ms: f64,
    pub answered_resumed: usize,
    pub answered_snapshot: usize,
    pub unanswered: usize,
    pub resumed_fraction: f64,
    /// Mean bytes per client of the answer (`resumed` + catch-up diffs, or
    /// the snapshot).
    pub answer_bytes_per_client: f64,
    pub answer_frames_per_client: f64,
    /// Everything a client received from the drop to the end, mean.
    pub reconnect_phase_bytes_per_client: f64,
    /// Subscribe → answer, over clients.
    pub answer_ms: Percentiles,
    /// From the reconnect signal until every client had its answer / was
    /// caught up with it.
    pub all_answered_after_reconnect_ms: Option<f64>,
    pub all_caught_up_after_reconnect_ms: Option<f64>,
    pub deliveries: TDeliveries,
    pub convergence: Convergence,
    pub problems: ClientProblems,
    /// Over the reconnect phase (drop to end of tail).
    pub db: DbDelta,
    pub metrics: BTreeMap<String, f64>,
    /// pglive's full reads (refreshes − keyed) over the reconnect phase.
    pub full_queries: Option<f64>,
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU over the reconnect phase (it decodes
    /// every frame, snapshots included, on the same cores).
    pub bench_cpu_seconds: Option<f64>,
}

impl ReconnectReport {
    pub fn failed(&self, require_resumed: bool) -> bool {
        !self.ok
            || self.unanswered > 0
            || self.deliveries.missing > 0
            || self.convergence.clients_diverged > 0
            || self.problems.error_frames > 0
            || self.problems.decode_errors > 0
            || self.problems.version_gaps > 0
            || self.ready < self.clients
            || (require_resumed && self.answered_resumed < self.clients)
    }
}

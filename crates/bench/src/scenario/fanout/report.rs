//! Everything measured for one server in one scenario (its part of the
//! JSON results).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::deliveries::{self, Deliveries};
use super::receiver::ClientOutcome;
use crate::pgstats::DbStats;
use crate::report::{Percentiles, percentiles};
use crate::shared::Shared;
use crate::writer::WriterOutcome;

/// Everything measured for one server in one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub ok: bool,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub server_log: Option<String>,
    pub server_end: Option<String>,
    pub clients: usize,
    pub connected: usize,
    pub ready: usize,
    pub closed_early: usize,
    pub client_error_samples: Vec<String>,
    pub error_frames: u64,
    pub error_frame_samples: Vec<String>,
    pub connect_seconds: f64,
    pub initial_bytes_per_client: f64,
    pub writer: WriterOutcome,
    pub commit_round_trip_ms: Percentiles,
    pub deliveries: Deliveries,
    pub bytes_per_client_per_change: f64,
    pub frames_per_client_per_change: f64,
    pub bytes_per_delivery: f64,
    pub bytes_after_first_write: u64,
    pub frames_after_first_write: u64,
    /// From just before the first write until the end of the tail.
    pub measured_seconds: f64,
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU over the measured phase ÷ deliveries seen, µs.
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_cpu_total_seconds: Option<f64>,
    pub server_rss_peak_mib: Option<f64>,
    pub server_rss_end_mib: Option<f64>,
    pub bench_cpu_seconds: Option<f64>,
    /// CPU of the PostgreSQL backends serving the server's connections.
    pub postgres_cpu_seconds: Option<f64>,
    /// Busy CPU of the whole machine over the measured phase.
    pub machine_busy_seconds: Option<f64>,
    /// Machine busy CPU minus server, bench and the server's backends: the
    /// writer's backend, other PostgreSQL work, and anything else running.
    pub other_cpu_seconds: Option<f64>,
    pub rows_read_per_write: Option<f64>,
    pub scans_per_write: Option<f64>,
    pub transactions_per_write: Option<f64>,
    pub statements_per_write: Option<f64>,
    pub metrics_refreshes: Option<f64>,
    pub metrics_rows_read: Option<f64>,
    /// Every pglive counter's change over the measured phase.
    pub metrics_deltas: std::collections::BTreeMap<String, f64>,
    pub stats_before: Option<DbStats>,
    pub stats_after: Option<DbStats>,
}

impl TargetReport {
    /// Fills the PostgreSQL-side per-write numbers from the stats deltas,
    /// minus the bench's own work (its writes by key, its transactions).
    pub fn set_db_deltas(
        &mut self,
        before: &DbStats,
        after: &DbStats,
        writer: &WriterOutcome,
        own_transactions: usize,
    ) {
        let w = writer.transactions.max(1) as f64;
        let keyed = writer.keyed_operations as i64;
        let rows = (after.seq_tup_read - before.seq_tup_read)
            + (after.idx_tup_fetch - before.idx_tup_fetch)
            - keyed;
        let scans = (after.seq_scan - before.seq_scan) + (after.idx_scan - before.idx_scan) - keyed;
        let xacts = (after.xact_commit - before.xact_commit)
            + (after.xact_rollback - before.xact_rollback)
            - own_transactions as i64;
        self.rows_read_per_write = Some(rows.max(0) as f64 / w);
        self.scans_per_write = Some(scans.max(0) as f64 / w);
        self.transactions_per_write = Some(xacts.max(0) as f64 / w);
        if let (Some(a), Some(b)) = (after.stmt_calls, before.stmt_calls) {
            self.statements_per_write = Some((a - b).max(0) as f64 / w);
        }
        self.stats_before = Some(before.clone());
        self.stats_after = Some(after.clone());
    }
}

impl TargetReport {
    /// Fills the clients' and the writer's figures from what each client
    /// saw (`outcomes`, client i in `groups[i]`) and what the writer did,
    /// with a note for each shortfall.
    pub fn add_clients(
        &mut self,
        outcomes: &[ClientOutcome],
        shared: &Shared,
        groups: &[u32],
        wout: WriterOutcome,
    ) {
        let sample_errors = |f: &dyn Fn(&ClientOutcome) -> Option<String>| -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            for o in outcomes {
                if let Some(e) = f(o)
                    && !v.contains(&e)
                    && v.len() < 5
                {
                    v.push(e);
                }
            }
            v
        };
        self.connected = outcomes.iter().filter(|o| o.connected).count();
        self.ready = outcomes.iter().filter(|o| o.ready).count();
        self.closed_early = outcomes.iter().filter(|o| o.closed_early).count();
        self.client_error_samples = sample_errors(&|o| o.error.clone());
        self.error_frames = shared.error_frames.load(Ordering::Relaxed);
        self.error_frame_samples = shared
            .error_samples
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let ready = self.ready.max(1) as f64;
        let changes = wout.transactions.max(1) as f64;
        self.initial_bytes_per_client =
            outcomes.iter().map(|o| o.bytes_before).sum::<u64>() as f64 / ready;
        self.bytes_after_first_write = outcomes.iter().map(|o| o.bytes_after).sum();
        self.frames_after_first_write = outcomes.iter().map(|o| o.frames_after).sum();
        self.bytes_per_client_per_change = self.bytes_after_first_write as f64 / ready / changes;
        self.frames_per_client_per_change = self.frames_after_first_write as f64 / ready / changes;
        self.deliveries = deliveries::deliveries(shared, outcomes, groups, &wout);
        self.bytes_per_delivery =
            self.bytes_after_first_write as f64 / self.deliveries.seen.max(1) as f64;
        self.server_cpu_us_per_delivery = self
            .server_cpu_seconds
            .filter(|_| self.deliveries.seen > 0)
            .map(|cpu| cpu * 1e6 / self.deliveries.seen as f64);
        self.commit_round_trip_ms = percentiles(wout.round_trips_us.clone());
        self.writer = wout;
        if self.ready < self.clients {
            self.notes.push(format!(
                "only {}/{} clients got their initial state",
                self.ready, self.clients
            ));
        }
        if self.deliveries.missing > 0 {
            self.notes.push(format!(
                "{} of {} deliveries never arrived (clients with missing ones, first few: {:?})",
                self.deliveries.missing, self.deliveries.expected, self.deliveries.missing_examples
            ));
        }
        if self.error_frames > 0 {
            self.notes.push(format!(
                "{} error frames, e.g. {:?}",
                self.error_frames,
                self.error_frame_samples.first()
            ));
        }
    }
}

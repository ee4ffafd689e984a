//! What a phase cost the server and the database: pglive's counters and
//! PostgreSQL's statistics, read before and after it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::writer::OpRecord;
use crate::pgstats::DbStats;
use crate::server::{self, ServerProc};

/// pglive's counters and gauges read around a phase.
const METRICS: &[&str] = &[
    "pglive_refreshes_total",
    "pglive_refreshes_keyed_total",
    "pglive_related_reads_total",
    "pglive_related_rows_total",
    "pglive_counts_total",
    "pglive_rows_read_total",
    "pglive_notifications_total",
    "pglive_snapshots_total",
    "pglive_resumes_total",
    "pglive_resume_misses_total",
    "pglive_diffs_total",
    "pglive_frames_sent_total",
    "pglive_bytes_sent_total",
    "pglive_client_errors_total",
    "pglive_lagging_resyncs_total",
    "pglive_refresh_errors_total",
];

async fn metrics(port: u16) -> Option<Vec<Option<f64>>> {
    server::metrics(port, METRICS).await
}

/// Each counter's change from `before` to `after`, by its short name
/// (`pglive_refreshes_total` → `refreshes`).
fn metric_deltas(
    before: Option<&Vec<Option<f64>>>,
    after: Option<&Vec<Option<f64>>>,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let (Some(b), Some(a)) = (before, after) {
        for (i, name) in METRICS.iter().enumerate() {
            if let (Some(Some(x)), Some(Some(y))) = (a.get(i), b.get(i)) {
                out.insert(
                    name.trim_start_matches("pglive_")
                        .trim_end_matches("_total")
                        .to_string(),
                    x - y,
                );
            }
        }
    }
    out
}

/// pglive's counters, and the CPU pglive and the bench had used, at the
/// start of a phase.
pub struct Phase {
    metrics: Option<Vec<Option<f64>>>,
    server_cpu: Option<f64>,
    bench_cpu: Option<f64>,
}

/// What a phase cost pglive and the bench.
pub struct Cost {
    /// Each counter's change, by its short name.
    pub metrics: BTreeMap<String, f64>,
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU (it decodes every frame, on the same
    /// cores).
    pub bench_cpu_seconds: Option<f64>,
}

impl Phase {
    pub async fn start(server: &ServerProc) -> Phase {
        Phase {
            metrics: metrics(server.port).await,
            server_cpu: server::cpu_seconds(server.pid),
            bench_cpu: server::cpu_seconds(std::process::id()),
        }
    }

    pub async fn end(self, server: &ServerProc) -> Cost {
        let after = metrics(server.port).await;
        let since = |now: Option<f64>, then: Option<f64>| now.zip(then).map(|(a, b)| a - b);
        Cost {
            server_cpu_seconds: since(server::cpu_seconds(server.pid), self.server_cpu),
            bench_cpu_seconds: since(server::cpu_seconds(std::process::id()), self.bench_cpu),
            metrics: metric_deltas(self.metrics.as_ref(), after.as_ref()),
        }
    }
}

/// Database statistics over a phase (see "The reported numbers").
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbDelta {
    /// Δ(seq_tup_read + idx_tup_fetch) minus the writer's keyed UPDATEs.
    pub rows_read: i64,
    /// Δ(seq_scan + idx_scan) minus the writer's.
    pub table_scans: i64,
    /// Δ(xact_commit + xact_rollback) minus the writer's and the bench's
    /// statistics read.
    pub server_transactions: i64,
}

/// The statistics' change over a phase, minus what the writer's `ops`
/// account for.
pub fn db_delta(before: &DbStats, after: &DbStats, ops: &[OpRecord]) -> DbDelta {
    let updates = ops.iter().filter(|o| !o.insert).count() as i64;
    let writes = ops.len() as i64;
    DbDelta {
        rows_read: (after.seq_tup_read + after.idx_tup_fetch)
            - (before.seq_tup_read + before.idx_tup_fetch)
            - updates,
        table_scans: (after.seq_scan + after.idx_scan)
            - (before.seq_scan + before.idx_scan)
            - updates,
        server_transactions: (after.xact_commit + after.xact_rollback)
            - (before.xact_commit + before.xact_rollback)
            - writes
            - 1,
    }
}

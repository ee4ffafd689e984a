//! What scenario W reports (its part of the JSON results).

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::Config;
use crate::report::Percentiles;

/// The cluster settings that decide what a commit costs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgSettings {
    pub fsync: String,
    pub synchronous_commit: String,
    pub full_page_writes: String,
    pub wal_level: String,
}

/// One measured case.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseResult {
    pub mode: String,
    pub subscribers: usize,
    pub op: String,
    pub writers: usize,
    /// Why it has no numbers ("n/a …" when the server lacks WAL capture).
    pub skipped: Option<String>,
    pub error: Option<String>,
    pub transactions: u64,
    pub seconds: f64,
    pub tps: f64,
    pub ratio_to_unwatched: Option<f64>,
    /// WAL capture's rate over the bare `pg_recvlogical` peer's (same
    /// statement and writers).
    pub ratio_to_recvlogical: Option<f64>,
    /// Commit round trip of each transaction.
    pub commit_ms: Percentiles,
    /// pglive's CPU over the case (writes and catch-up).
    pub server_cpu_s: Option<f64>,
    pub subscribers_ready: usize,
    /// Subscribers that had every final value the case wrote.
    pub converged: Option<usize>,
    /// Rows whose final value the case wrote (each checked per subscriber).
    pub rows_checked: usize,
    /// When the last subscriber had the fence, after the fence's commit.
    pub fence_all_ms: Option<f64>,
    pub frames_per_subscriber: f64,
    pub bytes_per_subscriber: f64,
    /// Deltas of pglive's counters over the case.
    pub metrics: BTreeMap<String, f64>,
    pub notes: Vec<String>,
}

/// Scenario W's results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WritersResult {
    pub config: Option<Config>,
    pub settings: PgSettings,
    pub capture_supported: Option<bool>,
    pub cases: Vec<CaseResult>,
    pub notes: Vec<String>,
}

impl WritersResult {
    /// Any error, or a subscriber that did not converge.
    pub fn failed(&self) -> bool {
        self.cases.iter().any(|c| {
            c.error.is_some()
                || c.converged
                    .is_some_and(|n| n < c.subscribers || c.subscribers_ready < c.subscribers)
        })
    }
}

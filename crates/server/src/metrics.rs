//! Process-wide counters, rendered in the Prometheus text format at `/metrics`.
//! Plain atomics: every increment is lock-free and the renderer reads them
//! without stopping anyone.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub groups: AtomicU64,
    pub subscriptions: AtomicU64,
    pub notifications_total: AtomicU64,
    pub notifications_malformed_total: AtomicU64,
    pub listener_up: AtomicU64,
    pub listener_reconnects_total: AtomicU64,
    pub refreshes_total: AtomicU64,
    pub refreshes_keyed_total: AtomicU64,
    pub refresh_errors_total: AtomicU64,
    pub refresh_micros_total: AtomicU64,
    pub rows_read_total: AtomicU64,
    pub snapshots_total: AtomicU64,
    pub diffs_total: AtomicU64,
    pub frames_sent_total: AtomicU64,
    pub bytes_sent_total: AtomicU64,
    pub frames_dropped_total: AtomicU64,
    pub lagging_resyncs_total: AtomicU64,
    pub slow_clients_closed_total: AtomicU64,
    pub client_errors_total: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 21] = [
            (
                "pglive_connections",
                "gauge",
                "Open WebSocket connections.",
                &self.connections,
            ),
            (
                "pglive_connections_total",
                "counter",
                "WebSocket connections accepted.",
                &self.connections_total,
            ),
            (
                "pglive_groups",
                "gauge",
                "Live subscription groups (distinct queries).",
                &self.groups,
            ),
            (
                "pglive_subscriptions",
                "gauge",
                "Active subscriptions over all connections.",
                &self.subscriptions,
            ),
            (
                "pglive_notifications_total",
                "counter",
                "Change notices received.",
                &self.notifications_total,
            ),
            (
                "pglive_notifications_malformed_total",
                "counter",
                "Change notices that could not be parsed (treated as whole-table changes).",
                &self.notifications_malformed_total,
            ),
            (
                "pglive_listener_up",
                "gauge",
                "1 while the LISTEN connection is up.",
                &self.listener_up,
            ),
            (
                "pglive_listener_reconnects_total",
                "counter",
                "LISTEN connections re-established after a loss.",
                &self.listener_reconnects_total,
            ),
            (
                "pglive_refreshes_total",
                "counter",
                "Group refresh queries executed.",
                &self.refreshes_total,
            ),
            (
                "pglive_refreshes_keyed_total",
                "counter",
                "Refresh queries that read only changed keys.",
                &self.refreshes_keyed_total,
            ),
            (
                "pglive_refresh_errors_total",
                "counter",
                "Refresh queries that failed.",
                &self.refresh_errors_total,
            ),
            (
                "pglive_refresh_seconds_total",
                "counter",
                "Time spent in refresh queries.",
                &self.refresh_micros_total,
            ),
            (
                "pglive_rows_read_total",
                "counter",
                "Rows read from PostgreSQL by refresh queries.",
                &self.rows_read_total,
            ),
            (
                "pglive_snapshots_total",
                "counter",
                "Snapshot bodies encoded.",
                &self.snapshots_total,
            ),
            (
                "pglive_diffs_total",
                "counter",
                "Diff bodies encoded.",
                &self.diffs_total,
            ),
            (
                "pglive_frames_sent_total",
                "counter",
                "Messages written to WebSockets.",
                &self.frames_sent_total,
            ),
            (
                "pglive_bytes_sent_total",
                "counter",
                "Message bytes written to WebSockets.",
                &self.bytes_sent_total,
            ),
            (
                "pglive_frames_dropped_total",
                "counter",
                "Messages dropped for clients whose outbox was full.",
                &self.frames_dropped_total,
            ),
            (
                "pglive_lagging_resyncs_total",
                "counter",
                "Fresh snapshots sent to clients that had fallen behind.",
                &self.lagging_resyncs_total,
            ),
            (
                "pglive_slow_clients_closed_total",
                "counter",
                "Connections closed for not reading.",
                &self.slow_clients_closed_total,
            ),
            (
                "pglive_client_errors_total",
                "counter",
                "Error frames sent to clients.",
                &self.client_errors_total,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            if name == "pglive_refresh_seconds_total" {
                let secs = value.load(Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "# HELP {name} Time spent in refresh queries.");
                let _ = writeln!(out, "# TYPE {name} counter\n{name} {secs}");
                continue;
            }
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Relaxed)
            );
        }
        out
    }
}

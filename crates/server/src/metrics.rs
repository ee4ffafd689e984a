//! Process-wide metrics, exposed at `/metrics` in the OpenMetrics text format
//! through the `prometheus-client` crate. Each metric is a cheap handle
//! (an `Arc` of atomics) shared by the code that updates it and by the
//! registry that renders it; updating never takes a lock.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric. Counters render with a `_total` suffix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
    pub http_connections: Gauge,
    pub groups: Gauge,
    /// Per table: security contexts with a group on it (see [`Metrics::set_contexts`]).
    contexts: Family<Vec<(&'static str, &'static str)>, Gauge>,
    pub subscriptions: Gauge,
    pub notifications: Counter,
    pub notifications_malformed: Counter,
    pub capture_up: Gauge,
    pub capture_reconnects: Counter,
    pub capture_transactions: Counter,
    pub capture_slot_lag_bytes: Gauge,
    pub refreshes: Counter,
    pub refreshes_keyed: Counter,
    pub counts: Counter,
    /// Reads of included relations' rows, and the rows they returned.
    pub related_reads: Counter,
    pub related_rows: Counter,
    pub refresh_errors: Counter,
    pub refresh_seconds: Histogram,
    pub rows_read: Counter,
    pub rows_skipped: Counter,
    pub reads_skipped_by_partition: Counter,
    pub rows_held: Gauge,
    pub history_bytes: Gauge,
    pub resumes: Counter,
    pub resume_misses: Counter,
    pub query_failures: Counter,
    pub snapshots: Counter,
    pub diffs: Counter,
    pub frames_sent: Counter,
    pub bytes_sent: Counter,
    pub frames_dropped: Counter,
    pub lagging_resyncs: Counter,
    pub slow_clients_closed: Counter,
    pub client_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("pglive");
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let connections = gauge("connections", "Open WebSocket connections.");
        let http_connections = gauge(
            "http_connections",
            "HTTP connections being served (before any upgrade).",
        );
        let groups = gauge(
            "groups",
            "Live subscription groups (distinct queries per security context).",
        );
        let subscriptions = gauge(
            "subscriptions",
            "Active subscriptions over all connections.",
        );
        let capture_up = gauge("capture_up", "1 while change capture is connected.");
        let capture_slot_lag_bytes = gauge(
            "capture_slot_lag_bytes",
            "WAL capture: bytes of WAL the replication slot retains (written since its confirmed position), measured every 5 s.",
        );
        let rows_held = gauge("rows_held", "Rows all groups hold in memory together.");
        let history_bytes = gauge(
            "history_bytes",
            "Bytes of recent diffs all groups keep for resuming clients.",
        );
        let contexts = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        registry.register(
            "contexts",
            "Security contexts with at least one group, per table: each costs one changed-row read per write to the table, unless a partition hint rules it out.",
            contexts.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let connections_accepted =
            counter("connections_accepted", "WebSocket connections accepted.");
        let connections_refused = counter(
            "connections_refused",
            "Connections refused because HTTP or WebSocket connections were at their bound.",
        );
        let notifications = counter("notifications", "Change notices received.");
        let notifications_malformed = counter(
            "notifications_malformed",
            "Change notices that could not be parsed (treated as whole-table changes).",
        );
        let capture_reconnects = counter(
            "capture_reconnects",
            "Change capture connections re-established after a loss.",
        );
        let capture_transactions = counter(
            "capture_transactions",
            "WAL capture: committed transactions read from the replication stream.",
        );
        let refreshes = counter(
            "refreshes",
            "Reads for groups: full queries and changed-row reads.",
        );
        let refreshes_keyed = counter(
            "refreshes_keyed",
            "Reads of changed rows only (one per table, batch and context).",
        );
        let related_reads = counter(
            "related_reads",
            "Reads of included relations' rows (one per group round with a related change or a new parent).",
        );
        let related_rows = counter(
            "related_rows",
            "Rows returned by reads of included relations.",
        );
        let counts = counter(
            "counts",
            "count(*) reads for live counts (limited queries whose window is not their whole result).",
        );
        let refresh_errors = counter("refresh_errors", "Reads that failed.");
        let rows_read = counter("rows_read", "Rows read from PostgreSQL for groups.");
        let reads_skipped_by_partition = counter(
            "reads_skipped_by_partition",
            "Changed-row reads not made for a context because a partition hint says it cannot see the rows.",
        );
        let rows_skipped = counter(
            "rows_skipped",
            "Rows skipped because they could not be decoded.",
        );
        let query_failures = counter(
            "query_failures",
            "Groups ended with query_failed after their query kept failing.",
        );
        let snapshots = counter("snapshots", "Snapshot bodies encoded.");
        let resumes = counter(
            "resumes",
            "Subscriptions resumed from a group's history instead of a snapshot.",
        );
        let resume_misses = counter(
            "resume_misses",
            "Resumes the history could not cover (another epoch, or too long ago): snapshots sent.",
        );
        let diffs = counter("diffs", "Diff bodies encoded.");
        let frames_sent = counter("frames_sent", "Messages written to WebSockets.");
        let bytes_sent = counter("bytes_sent", "Message bytes written to WebSockets.");
        let frames_dropped = counter(
            "frames_dropped",
            "Messages dropped for clients whose outbox was full.",
        );
        let lagging_resyncs = counter(
            "lagging_resyncs",
            "Fresh snapshots sent to clients that had fallen behind.",
        );
        let slow_clients_closed =
            counter("slow_clients_closed", "Connections closed for not reading.");
        let client_errors = counter("client_errors", "Error frames sent to clients.");
        let refresh_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "refresh_seconds",
            "Duration of reads for groups.",
            refresh_seconds.clone(),
        );
        Metrics {
            registry,
            connections,
            connections_accepted,
            connections_refused,
            http_connections,
            groups,
            contexts,
            subscriptions,
            notifications,
            notifications_malformed,
            capture_up,
            capture_reconnects,
            capture_transactions,
            capture_slot_lag_bytes,
            refreshes,
            refreshes_keyed,
            counts,
            related_reads,
            related_rows,
            refresh_errors,
            refresh_seconds,
            rows_read,
            rows_skipped,
            reads_skipped_by_partition,
            rows_held,
            history_bytes,
            resumes,
            resume_misses,
            query_failures,
            snapshots,
            diffs,
            frames_sent,
            bytes_sent,
            frames_dropped,
            lagging_resyncs,
            slow_clients_closed,
            client_errors,
        }
    }
}

impl Metrics {
    /// Sets the number of security contexts with groups on `table`. A
    /// write to the table costs one changed-row read per such context (the
    /// probe behind issue 20 saw 300 reads per write from 300 users on one
    /// query, each its own context), so an operator can see when
    /// `--jwt-context-claims` or a partition hint would pay.
    pub fn set_contexts(&self, table: &'static str, contexts: usize) {
        self.contexts
            .get_or_create(&vec![("table", table)])
            .set(i64::try_from(contexts).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The `Content-Type` of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        m.groups.set(3);
        m.refreshes.inc_by(5);
        m.refresh_seconds.observe(0.002);
        let text = m.render();
        assert!(text.contains("\npglive_groups 3\n"), "{text}");
        assert!(text.contains("\npglive_refreshes_total 5\n"), "{text}");
        assert!(text.contains("pglive_refresh_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}

//! What REL reports (its part of the JSON results), its table, and its
//! figures against S2's from the same invocation (issue 21's targets).

use std::collections::BTreeMap;

use serde::Serialize;

use super::checks::{RConvergence, RDeliveries};
use super::nested::NestedCost;
use crate::report::{Cell, Percentiles, bytes, ms, num, opt, table};
use crate::scenario::fanout::TargetReport;

/// Client-side problems, summed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RProblems {
    pub error_frames: u64,
    pub decode_errors: u64,
    pub version_gaps: u64,
    pub malformed_entries: u64,
    pub closed_early: usize,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RelReport {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub clients: usize,
    pub pages: usize,
    pub tasks: usize,
    pub comments: usize,
    pub ready: usize,
    pub connect_seconds: f64,
    pub writes: usize,
    pub achieved_rate: f64,
    pub deliveries: RDeliveries,
    pub convergence: RConvergence,
    pub problems: RProblems,
    /// Bytes received after the first write ÷ deliveries seen: what a
    /// client receives per change that reaches it.
    pub bytes_per_delivery: f64,
    /// Bytes received after the first write ÷ clients ÷ writes (most
    /// changes reach 2 of the clients only).
    pub bytes_per_client_per_change: f64,
    pub frames_per_delivery: f64,
    pub initial_bytes_per_client: f64,
    /// pg_stat: Δ(seq_tup_read + idx_tup_fetch) ÷ writes; the writer's own
    /// reads are not counted (its session does not track counts).
    pub rows_read_per_write: f64,
    pub scans_per_write: f64,
    pub metrics: BTreeMap<String, f64>,
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub bench_cpu_seconds: Option<f64>,
    pub server_rss_peak_mib: Option<f64>,
    pub commit_round_trip_ms: Percentiles,
    /// The Hasura-style cost, measured on the final data.
    pub nested: Option<NestedCost>,
    /// Against S2 of the same invocation.
    pub vs_s2: Option<VsS2>,
}

impl RelReport {
    /// Whether the smoke (and `--strict`) must fail.
    pub fn failed(&self) -> bool {
        !self.ok
            || self.ready < self.clients
            || self.deliveries.missing > 0
            || self.deliveries.unexplained_entries > 0
            || self.convergence.clients_diverged > 0
            || self.problems.error_frames > 0
            || self.problems.decode_errors > 0
            || self.problems.version_gaps > 0
            || self.problems.malformed_entries > 0
    }
}

/// Issue 21's targets: REL's figures against S2's from the same run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VsS2 {
    pub s2_bytes_per_delivery: f64,
    pub s2_p99_ms: f64,
    pub s2_p50_ms: f64,
    pub s2_rows_read_per_write: Option<f64>,
    pub s2_cpu_us_per_delivery: Option<f64>,
    /// REL ÷ S2, bytes per delivery (target ≤ 2).
    pub bytes_ratio: f64,
    /// REL ÷ S2, p99 latency (target ≤ 1.3).
    pub p99_ratio: f64,
    pub cpu_per_delivery_ratio: Option<f64>,
    pub rows_met: bool,
    pub bytes_met: bool,
    pub p99_met: bool,
}

impl VsS2 {
    pub fn of(rel: &RelReport, s2: &TargetReport) -> Option<VsS2> {
        if !s2.ok || s2.deliveries.seen == 0 || rel.deliveries.seen == 0 {
            return None;
        }
        let s2_p99 = s2.deliveries.latency_ms.p99;
        let bytes_ratio = rel.bytes_per_delivery / s2.bytes_per_delivery.max(1e-9);
        let p99_ratio = rel.deliveries.latency_ms.p99 / s2_p99.max(1e-9);
        Some(VsS2 {
            s2_bytes_per_delivery: s2.bytes_per_delivery,
            s2_p99_ms: s2_p99,
            s2_p50_ms: s2.deliveries.latency_ms.p50,
            s2_rows_read_per_write: s2.rows_read_per_write,
            s2_cpu_us_per_delivery: s2.server_cpu_us_per_delivery,
            bytes_ratio,
            p99_ratio,
            cpu_per_delivery_ratio: rel
                .server_cpu_us_per_delivery
                .zip(s2.server_cpu_us_per_delivery)
                .map(|(a, b)| a / b.max(1e-9)),
            rows_met: rel.rows_read_per_write <= 3.0,
            bytes_met: bytes_ratio <= 2.0,
            p99_met: p99_ratio <= 1.3,
        })
    }

    pub fn summary(&self, rel: &RelReport) -> String {
        let met = |b: bool| if b { "met" } else { "MISSED" };
        format!(
            "{} vs S2 (same invocation): rows read / write {} (target ≤ 3: {}); bytes / delivery {} = {:.2}× S2's {} (target ≤ 2×: {}); p99 {} = {:.2}× S2's {} (target ≤ 1.3×: {}); server CPU / delivery {} vs S2's {}",
            rel.name,
            num(rel.rows_read_per_write),
            met(self.rows_met),
            bytes(rel.bytes_per_delivery),
            self.bytes_ratio,
            bytes(self.s2_bytes_per_delivery),
            met(self.bytes_met),
            ms(rel.deliveries.latency_ms.p99),
            self.p99_ratio,
            ms(self.s2_p99_ms),
            met(self.p99_met),
            opt(rel.server_cpu_us_per_delivery, |v| format!("{v:.0} µs")),
            opt(self.s2_cpu_us_per_delivery, |v| format!("{v:.0} µs")),
        )
    }
}

fn metric(r: &RelReport, k: &str) -> Option<f64> {
    r.metrics.get(k).copied()
}

pub fn rel_table(reports: &[&RelReport], markdown: bool) -> String {
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("pglive ({})", r.name))
        .collect();
    let per_write = |r: &RelReport, v: f64| v / r.writes.max(1) as f64;
    let nested = |r: &RelReport, f: fn(&NestedCost) -> String| {
        r.nested.as_ref().map_or_else(|| "n/a".into(), f)
    };
    let rows: Vec<Cell<'_, RelReport>> = vec![
        (
            "clients ready / distinct pages",
            Box::new(|r| format!("{}/{} / {}", r.ready, r.clients, r.pages)),
        ),
        (
            "writes / achieved rate",
            Box::new(|r| format!("{} / {:.1}/s", r.writes, r.achieved_rate)),
        ),
        (
            "deliveries seen / expected",
            Box::new(|r| format!("{}/{}", r.deliveries.seen, r.deliveries.expected)),
        ),
        ("latency p50", Box::new(|r| ms(r.deliveries.latency_ms.p50))),
        ("latency p99", Box::new(|r| ms(r.deliveries.latency_ms.p99))),
        ("latency max", Box::new(|r| ms(r.deliveries.latency_ms.max))),
        (
            "rows read / write (pg_stat)",
            Box::new(|r| num(r.rows_read_per_write)),
        ),
        (
            "table scans / write (pg_stat)",
            Box::new(|r| num(r.scans_per_write)),
        ),
        (
            "refreshes / write (/metrics)",
            Box::new(move |r| opt(metric(r, "refreshes").map(|v| per_write(r, v)), num)),
        ),
        (
            "rows read / write (/metrics)",
            Box::new(move |r| opt(metric(r, "rows_read").map(|v| per_write(r, v)), num)),
        ),
        (
            "related reads / rows / counts per write (/metrics)",
            Box::new(move |r| {
                format!(
                    "{} / {} / {}",
                    opt(metric(r, "related_reads").map(|v| per_write(r, v)), num),
                    opt(metric(r, "related_rows").map(|v| per_write(r, v)), num),
                    opt(metric(r, "counts").map(|v| per_write(r, v)), num)
                )
            }),
        ),
        (
            "bytes / delivery",
            Box::new(|r| bytes(r.bytes_per_delivery)),
        ),
        (
            "bytes / client / change (all clients)",
            Box::new(|r| bytes(r.bytes_per_client_per_change)),
        ),
        (
            "frames / delivery",
            Box::new(|r| num(r.frames_per_delivery)),
        ),
        (
            "initial state / client",
            Box::new(|r| bytes(r.initial_bytes_per_client)),
        ),
        (
            "server CPU / delivery",
            Box::new(|r| opt(r.server_cpu_us_per_delivery, |v| format!("{v:.0} µs"))),
        ),
        (
            "server CPU s (writes + tail)",
            Box::new(|r| opt(r.server_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "bench CPU s (writes + tail)",
            Box::new(|r| opt(r.bench_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "server peak RSS",
            Box::new(|r| opt(r.server_rss_peak_mib, |v| format!("{v:.0} MiB"))),
        ),
        (
            "commit round trip p50/p99",
            Box::new(|r| {
                format!(
                    "{} / {}",
                    ms(r.commit_round_trip_ms.p50),
                    ms(r.commit_round_trip_ms.p99)
                )
            }),
        ),
        (
            "clients converged (= nested query)",
            Box::new(|r| format!("{}/{}", r.convergence.clients_converged, r.clients)),
        ),
        (
            "error frames / version gaps / unexplained entries / closed early",
            Box::new(|r| {
                format!(
                    "{} / {} / {} / {}",
                    r.problems.error_frames,
                    r.problems.version_gaps,
                    r.deliveries.unexplained_entries,
                    r.problems.closed_early
                )
            }),
        ),
        (
            "Hasura-style, all distinct queries / change: statements",
            Box::new(move |r| nested(r, |n| format!("{}", n.all_statements))),
        ),
        (
            "  rows read (pg_stat)",
            Box::new(move |r| nested(r, |n| num(n.all_rows_read))),
        ),
        (
            "  wall time / backend CPU",
            Box::new(move |r| {
                nested(r, |n| {
                    format!("{} / {}", ms(n.all_ms), opt(n.all_backend_cpu_ms, ms))
                })
            }),
        ),
        (
            "Hasura-style, affected queries only / change: statements",
            Box::new(move |r| nested(r, |n| num(n.affected_statements))),
        ),
        (
            "  rows read (pg_stat)",
            Box::new(move |r| nested(r, |n| num(n.affected_rows_read))),
        ),
        (
            "  wall time",
            Box::new(move |r| nested(r, |n| ms(n.affected_ms))),
        ),
    ];
    let mut out = table(&rows, reports, &header, markdown);
    for r in reports {
        if let Some(v) = &r.vs_s2 {
            out.push_str(&format!("\n{}\n", v.summary(r)));
        }
    }
    for r in reports {
        if let Some(e) = &r.error {
            out.push_str(&format!("- {}: ERROR: {e}\n", r.name));
        }
        for n in r
            .notes
            .iter()
            .chain(&r.deliveries.examples)
            .chain(&r.convergence.examples)
            .chain(&r.problems.examples)
        {
            out.push_str(&format!("- {}: {n}\n", r.name));
        }
    }
    out
}

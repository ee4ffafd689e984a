//! The RLS and RECONNECT tables: one column per report.

use std::collections::BTreeMap;

use super::checks::ClientProblems;
use super::report::{ReconnectReport, RlsReport};
use crate::report::{Cell, bytes, int, ms, num, opt, table};

/// The "error frames / version gaps / closed early" cell.
fn problems_cell(p: &ClientProblems) -> String {
    format!(
        "{} / {} / {}",
        p.error_frames, p.version_gaps, p.closed_early
    )
}

fn metric(r: &BTreeMap<String, f64>, k: &str) -> Option<f64> {
    r.get(k).copied()
}

/// Below the table, one line each: a report's error and its notes.
fn footer<'a>(
    out: &mut String,
    mode: &str,
    error: Option<&String>,
    notes: impl Iterator<Item = &'a String>,
) {
    if let Some(e) = error {
        out.push_str(&format!("- {mode}: ERROR: {e}\n"));
    }
    for n in notes {
        out.push_str(&format!("- {mode}: {n}\n"));
    }
}

pub fn rls_table(reports: &[&RlsReport], markdown: bool) -> String {
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("pglive ({})", r.mode))
        .collect();
    let per_write = |r: &RlsReport, v: f64| v / r.writes.max(1) as f64;
    let rows: Vec<Cell<'_, RlsReport>> = vec![
        (
            "clients ready / tenants",
            Box::new(|r| format!("{}/{} / {}", r.ready, r.clients, r.tenants)),
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
            Box::new(move |r| num(per_write(r, r.db.rows_read as f64))),
        ),
        (
            "table scans / write (pg_stat)",
            Box::new(move |r| num(per_write(r, r.db.table_scans as f64))),
        ),
        (
            "server transactions / write",
            Box::new(move |r| num(per_write(r, r.db.server_transactions as f64))),
        ),
        (
            "refreshes / write (/metrics)",
            Box::new(move |r| {
                opt(
                    metric(&r.metrics, "refreshes").map(|v| per_write(r, v)),
                    num,
                )
            }),
        ),
        (
            "rows read / write (/metrics)",
            Box::new(move |r| {
                opt(
                    metric(&r.metrics, "rows_read").map(|v| per_write(r, v)),
                    num,
                )
            }),
        ),
        (
            "bytes / client / change",
            Box::new(|r| bytes(r.bytes_per_client_per_change)),
        ),
        (
            "bytes / delivery",
            Box::new(|r| bytes(r.bytes_per_delivery)),
        ),
        (
            "initial state / client",
            Box::new(|r| bytes(r.initial_bytes_per_client)),
        ),
        (
            "clients converged (= their tenant's rows)",
            Box::new(|r| format!("{}/{}", r.convergence.clients_converged, r.clients)),
        ),
        (
            "converged after last commit",
            Box::new(|r| opt(r.convergence.all_converged_after_last_commit_ms, ms)),
        ),
        (
            "rows of another tenant received",
            Box::new(|r| format!("{}", r.problems.foreign_rows)),
        ),
        (
            "writes seen by another tenant's client",
            Box::new(|r| format!("{}", r.deliveries.foreign_deliveries)),
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
            "error frames / version gaps / closed early",
            Box::new(|r| problems_cell(&r.problems)),
        ),
    ];
    let mut out = table(&rows, reports, &header, markdown);
    for r in reports {
        let notes = r
            .notes
            .iter()
            .chain(&r.convergence.examples)
            .chain(&r.problems.examples)
            .chain(&r.problems.foreign_example);
        footer(&mut out, &r.mode, r.error.as_ref(), notes);
    }
    out
}

pub fn reconnect_table(reports: &[&ReconnectReport], markdown: bool) -> String {
    let header: Vec<String> = reports
        .iter()
        .map(|r| format!("pglive ({})", r.mode))
        .collect();
    let rows: Vec<Cell<'_, ReconnectReport>> = vec![
        (
            "clients ready",
            Box::new(|r| format!("{}/{}", r.ready, r.clients)),
        ),
        (
            "writes before / during reconnect",
            Box::new(|r| format!("{} / {}", r.writes_before, r.writes_during)),
        ),
        (
            "connections / groups once all dropped",
            Box::new(|r| {
                format!(
                    "{} / {}",
                    opt(r.connections_after_drop, int),
                    opt(r.groups_after_drop, int)
                )
            }),
        ),
        (
            "answered resumed / snapshot / none",
            Box::new(|r| {
                format!(
                    "{} / {} / {}",
                    r.answered_resumed, r.answered_snapshot, r.unanswered
                )
            }),
        ),
        (
            "resumed fraction",
            Box::new(|r| format!("{:.1} %", r.resumed_fraction * 100.0)),
        ),
        (
            "answer bytes / client",
            Box::new(|r| bytes(r.answer_bytes_per_client)),
        ),
        (
            "answer frames / client",
            Box::new(|r| num(r.answer_frames_per_client)),
        ),
        (
            "bytes / client, drop to end",
            Box::new(|r| bytes(r.reconnect_phase_bytes_per_client)),
        ),
        (
            "subscribe → answer p50 / p99",
            Box::new(|r| format!("{} / {}", ms(r.answer_ms.p50), ms(r.answer_ms.p99))),
        ),
        (
            "all answered after reconnect",
            Box::new(|r| opt(r.all_answered_after_reconnect_ms, ms)),
        ),
        (
            "all caught up after reconnect",
            Box::new(|r| opt(r.all_caught_up_after_reconnect_ms, ms)),
        ),
        (
            "clients converged (= final read)",
            Box::new(|r| format!("{}/{}", r.convergence.clients_converged, r.clients)),
        ),
        (
            "converged after last commit",
            Box::new(|r| opt(r.convergence.all_converged_after_last_commit_ms, ms)),
        ),
        (
            "deliveries seen / expected",
            Box::new(|r| format!("{}/{}", r.deliveries.seen, r.deliveries.expected)),
        ),
        (
            "full queries, reconnect phase (/metrics)",
            Box::new(|r| opt(r.full_queries, int)),
        ),
        (
            "refreshes / keyed (/metrics)",
            Box::new(|r| {
                format!(
                    "{} / {}",
                    opt(metric(&r.metrics, "refreshes"), int),
                    opt(metric(&r.metrics, "refreshes_keyed"), int)
                )
            }),
        ),
        (
            "rows read (/metrics)",
            Box::new(|r| opt(metric(&r.metrics, "rows_read"), int)),
        ),
        (
            "rows read (pg_stat, minus writer)",
            Box::new(|r| format!("{}", r.db.rows_read)),
        ),
        (
            "server transactions (pg_stat, minus writer)",
            Box::new(|r| format!("{}", r.db.server_transactions)),
        ),
        (
            "snapshots / resumes / misses (/metrics)",
            Box::new(|r| {
                format!(
                    "{} / {} / {}",
                    opt(metric(&r.metrics, "snapshots"), int),
                    opt(metric(&r.metrics, "resumes"), int),
                    opt(metric(&r.metrics, "resume_misses"), int)
                )
            }),
        ),
        (
            "bytes sent by pglive, reconnect phase",
            Box::new(|r| opt(metric(&r.metrics, "bytes_sent"), bytes)),
        ),
        (
            "server CPU s, reconnect phase",
            Box::new(|r| opt(r.server_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "bench CPU s, reconnect phase",
            Box::new(|r| opt(r.bench_cpu_seconds, |v| format!("{v:.2}"))),
        ),
        (
            "error frames / version gaps / closed early",
            Box::new(|r| problems_cell(&r.problems)),
        ),
    ];
    let mut out = table(&rows, reports, &header, markdown);
    let resume = reports.iter().find(|r| r.mode == "resume");
    let snap = reports.iter().find(|r| r.mode == "snapshot");
    if let (Some(a), Some(b)) = (resume, snap)
        && b.answer_bytes_per_client > 0.0
    {
        let pct = a.answer_bytes_per_client / b.answer_bytes_per_client * 100.0;
        out.push_str(&format!(
            "\nresume answer bytes = {pct:.2} % of snapshot answer bytes (target ≤ 2 %: {}); full queries while resuming: {} (target 0: {})\n",
            if pct <= 2.0 { "met" } else { "missed" },
            opt(a.full_queries, int),
            if a.full_queries == Some(0.0) { "met" } else { "missed" },
        ));
    }
    for r in reports {
        let notes = r
            .notes
            .iter()
            .chain(&r.convergence.examples)
            .chain(&r.problems.examples);
        footer(&mut out, &r.mode, r.error.as_ref(), notes);
    }
    out
}

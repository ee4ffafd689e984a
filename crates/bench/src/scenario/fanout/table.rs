//! The side-by-side table of S1–S6: one column per server, and the ratio
//! columns pglive ÷ floor and peer ÷ pglive when those ran.

use super::ratios::times;
use super::report::TargetReport;
use crate::report::{Percentiles, bytes, ms, num};

/// One printed row: label, one cell per report, and the numbers for a ratio.
struct Row {
    label: &'static str,
    cells: Vec<String>,
    values: Vec<Option<f64>>,
}

fn row(
    label: &'static str,
    reports: &[&TargetReport],
    f: impl Fn(&TargetReport) -> (String, Option<f64>),
) -> Row {
    let (cells, values) = reports
        .iter()
        .map(|r| {
            if r.ok || r.writer.transactions > 0 {
                f(r)
            } else {
                ("-".into(), None)
            }
        })
        .unzip();
    Row {
        label,
        cells,
        values,
    }
}

/// A row of one delivery-latency percentile.
fn latency(label: &'static str, reports: &[&TargetReport], pick: fn(&Percentiles) -> f64) -> Row {
    row(label, reports, |r| {
        let v = pick(&r.deliveries.latency_ms);
        (ms(v), Some(v))
    })
}

/// The human-readable side-by-side table, with ratio columns pglive ÷ floor
/// and peer ÷ pglive when those ran.
pub fn table(reports: &[&TargetReport], markdown: bool) -> String {
    let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("n/a".to_string(), f);
    let rows = vec![
        row("clients connected / ready", reports, |r| {
            (
                format!("{}/{} ({} ready)", r.connected, r.clients, r.ready),
                None,
            )
        }),
        row("writes (tx) / achieved rate", reports, |r| {
            (
                format!(
                    "{} / {:.1}/s",
                    r.writer.transactions, r.writer.achieved_rate
                ),
                None,
            )
        }),
        row("deliveries seen / expected", reports, |r| {
            (
                format!("{}/{}", r.deliveries.seen, r.deliveries.expected),
                None,
            )
        }),
        latency("latency p50", reports, |l| l.p50),
        latency("latency p90", reports, |l| l.p90),
        latency("latency p99", reports, |l| l.p99),
        latency("latency p99.9", reports, |l| l.p999),
        latency("latency max", reports, |l| l.max),
        row("deliveries/s", reports, |r| {
            (
                num(r.deliveries.deliveries_per_second),
                Some(r.deliveries.deliveries_per_second),
            )
        }),
        row("converged after last commit", reports, |r| {
            match r.deliveries.converged_after_last_commit_ms {
                Some(v) => (ms(v), Some(v)),
                None => (format!("never ({} missing)", r.deliveries.missing), None),
            }
        }),
        row("sending after last commit", reports, |r| {
            (
                ms(r.deliveries.sending_after_last_commit_ms),
                Some(r.deliveries.sending_after_last_commit_ms),
            )
        }),
        row("bytes / client / change", reports, |r| {
            (
                bytes(r.bytes_per_client_per_change),
                Some(r.bytes_per_client_per_change),
            )
        }),
        row("frames / client / change", reports, |r| {
            (
                num(r.frames_per_client_per_change),
                Some(r.frames_per_client_per_change),
            )
        }),
        row("bytes / delivery", reports, |r| {
            (bytes(r.bytes_per_delivery), Some(r.bytes_per_delivery))
        }),
        row("initial state / client", reports, |r| {
            (
                bytes(r.initial_bytes_per_client),
                Some(r.initial_bytes_per_client),
            )
        }),
        row("server CPU s (writes + tail)", reports, |r| {
            (
                opt(r.server_cpu_seconds, |v| format!("{v:.2}")),
                r.server_cpu_seconds,
            )
        }),
        row("server CPU µs / delivery", reports, |r| {
            (
                opt(r.server_cpu_us_per_delivery, num),
                r.server_cpu_us_per_delivery,
            )
        }),
        row("server peak RSS", reports, |r| {
            (
                opt(r.server_rss_peak_mib, |v| format!("{v:.0} MiB")),
                r.server_rss_peak_mib,
            )
        }),
        row("postgres CPU s (server conns)", reports, |r| {
            (
                opt(r.postgres_cpu_seconds, |v| format!("{v:.2}")),
                r.postgres_cpu_seconds,
            )
        }),
        row("rows read / write", reports, |r| {
            (opt(r.rows_read_per_write, num), r.rows_read_per_write)
        }),
        row("table scans / write", reports, |r| {
            (opt(r.scans_per_write, num), r.scans_per_write)
        }),
        row("server transactions / write", reports, |r| {
            (opt(r.transactions_per_write, num), r.transactions_per_write)
        }),
        row("refreshes (pglive /metrics)", reports, |r| {
            (opt(r.metrics_refreshes, num), r.metrics_refreshes)
        }),
        row("rows read (pglive /metrics) / write", reports, |r| {
            let v = r
                .metrics_rows_read
                .map(|x| x / r.writer.transactions.max(1) as f64);
            (opt(v, num), v)
        }),
        row("lagging resyncs / slow closed", reports, |r| {
            let g = |k: &str| r.metrics_deltas.get(k).copied();
            match (
                g("pglive_lagging_resyncs_total"),
                g("pglive_slow_clients_closed_total"),
            ) {
                (None, None) => ("n/a".into(), None),
                (a, b) => (format!("{} / {}", a.unwrap_or(0.0), b.unwrap_or(0.0)), None),
            }
        }),
        row("bench CPU s", reports, |r| {
            (opt(r.bench_cpu_seconds, |v| format!("{v:.2}")), None)
        }),
        row("other CPU s on the machine", reports, |r| {
            (opt(r.other_cpu_seconds, |v| format!("{v:.2}")), None)
        }),
        row("measured phase s", reports, |r| {
            (format!("{:.1}", r.measured_seconds), None)
        }),
        row("commit round trip p50/p99", reports, |r| {
            (
                format!(
                    "{} / {}",
                    ms(r.commit_round_trip_ms.p50),
                    ms(r.commit_round_trip_ms.p99)
                ),
                None,
            )
        }),
        row("error frames / closed early", reports, |r| {
            (format!("{} / {}", r.error_frames, r.closed_early), None)
        }),
    ];
    let ratios = ratio_columns(reports);
    if markdown {
        return markdown_table(reports, &rows, &ratios);
    }
    let mut out = String::new();
    let label_w = 37;
    let cell_w = reports
        .iter()
        .map(|r| r.target.len())
        .chain(rows.iter().flat_map(|r| r.cells.iter().map(String::len)))
        .max()
        .unwrap_or(10)
        .max(12)
        + 2;
    out.push_str(&format!("{:<label_w$}", "metric"));
    for r in reports {
        out.push_str(&format!("{:>cell_w$}", r.target));
    }
    for c in &ratios {
        out.push_str(&format!("{:>14}", c.label));
    }
    out.push('\n');
    for r in &rows {
        out.push_str(&format!("{:<label_w$}", r.label));
        for c in &r.cells {
            out.push_str(&format!("{c:>cell_w$}"));
        }
        for c in &ratios {
            out.push_str(&format!("{:>14}", c.cell(r)));
        }
        out.push('\n');
    }
    for r in reports {
        if let Some(e) = &r.error {
            out.push_str(&format!("{}: ERROR: {e}\n", r.target));
        }
        for n in &r.notes {
            out.push_str(&format!("{}: note: {n}\n", r.target));
        }
    }
    out
}

/// A ratio column: the value of report `num` ÷ that of report `den`.
struct RatioColumn {
    label: &'static str,
    num: usize,
    den: usize,
}

impl RatioColumn {
    fn cell(&self, r: &Row) -> String {
        match (
            r.values.get(self.num).copied().flatten(),
            r.values.get(self.den).copied().flatten(),
        ) {
            (Some(a), Some(b)) if b > 0.0 => times(a / b),
            _ => String::new(),
        }
    }
}

/// pglive ÷ floor (how far pglive is above the floor: issue 10's targets are
/// ratios like this one) and peer ÷ pglive (how much pglive saves over the
/// article's design), for whichever of them ran.
fn ratio_columns(reports: &[&TargetReport]) -> Vec<RatioColumn> {
    let at = |name: &str| reports.iter().position(|r| r.target == name);
    let mut cols = Vec::new();
    if let (Some(p), Some(f)) = (at("pglive"), at("floor")) {
        cols.push(RatioColumn {
            label: "pglive/floor",
            num: p,
            den: f,
        });
    }
    if let (Some(p), Some(s)) = (at("pglive"), at("seed-node")) {
        cols.push(RatioColumn {
            label: "peer/pglive",
            num: s,
            den: p,
        });
    }
    cols
}

fn markdown_table(reports: &[&TargetReport], rows: &[Row], ratios: &[RatioColumn]) -> String {
    let mut out = String::from("| metric |");
    for r in reports {
        out.push_str(&format!(" {} |", r.target));
    }
    for c in ratios {
        out.push_str(&format!(" {} |", c.label));
    }
    out.push_str("\n|---|");
    for _ in 0..reports.len() + ratios.len() {
        out.push_str("---:|");
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} |", r.label));
        for c in &r.cells {
            out.push_str(&format!(" {c} |"));
        }
        for c in ratios {
            out.push_str(&format!(" {} |", c.cell(r)));
        }
        out.push('\n');
    }
    for r in reports {
        if let Some(e) = &r.error {
            out.push_str(&format!(
                "\n- {}: **error**: {}",
                r.target,
                e.replace('\n', " ")
            ));
        }
        for n in &r.notes {
            out.push_str(&format!("\n- {}: {}", r.target, n.replace('\n', " ")));
        }
    }
    out.push('\n');
    out
}

//! Turning what the clients saw into the numbers we publish, and printing them.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::client::ClientOutcome;
use crate::db::DbStats;
use crate::shared::{KIND_NONE, Shared};
use crate::writer::WriterOutcome;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Percentiles (nearest rank) of microsecond samples, in milliseconds.
pub fn percentiles(mut us: Vec<u32>) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |p: f64| -> f64 {
        let rank = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len());
        f64::from(us[rank - 1]) / 1000.0
    };
    let sum: u64 = us.iter().map(|&x| u64::from(x)).sum();
    Percentiles {
        count: us.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
        mean: sum as f64 / us.len() as f64 / 1000.0,
    }
}

/// Delivery statistics over all clients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deliveries {
    pub expected: u64,
    pub seen: u64,
    pub missing: u64,
    /// Deliveries stamped before the writer saw its COMMIT return (counted
    /// as 0 ms).
    pub before_commit_ack: u64,
    pub latency_ms: Percentiles,
    pub clients_converged: usize,
    /// When the last client had seen every write meant for it, after the
    /// last commit; `None` if some client never did.
    pub converged_after_last_commit_ms: Option<f64>,
    /// Latest frame of any client, after the last commit.
    pub sending_after_last_commit_ms: f64,
    pub deliveries_per_second: f64,
    /// Clients that missed something: (client index, missing count), first few.
    pub missing_examples: Vec<(usize, u64)>,
}

/// Computes deliveries. A write counts as delivered to a client at the first
/// frame carrying its marker (or, for a DELETE, its key in `deletes` / the
/// marker's disappearance from a full state), or when a later write to the
/// same row is delivered (the client then has a state at least that new: a
/// snapshot-based or coalescing server legitimately skips intermediate
/// values).
pub fn deliveries(
    shared: &Shared,
    outcomes: &[ClientOutcome],
    groups: &[u32],
    writer: &WriterOutcome,
) -> Deliveries {
    let n = shared.slots.len();
    let kind: Vec<u8> = shared
        .slots
        .iter()
        .map(|s| s.kind.load(Ordering::Acquire))
        .collect();
    let group: Vec<u32> = shared
        .slots
        .iter()
        .map(|s| s.group.load(Ordering::Acquire))
        .collect();
    let commit: Vec<u64> = shared
        .slots
        .iter()
        .map(|s| s.commit_us.load(Ordering::Acquire))
        .collect();
    let mut succ: Vec<Option<usize>> = vec![None; n];
    for (s, slot) in shared.slots.iter().enumerate() {
        let prev = slot.prev.load(Ordering::Acquire) as usize;
        if prev > 0 && commit[s] != 0 {
            succ[prev - 1] = Some(s);
        }
    }
    let last_commit = writer.last_commit_us;
    let first_commit = writer.first_commit_us;
    let mut d = Deliveries::default();
    let mut lat: Vec<u32> = Vec::new();
    let mut eff: Vec<u32> = vec![0; n];
    let mut all_converged = true;
    let mut converged_at: u64 = 0;
    let mut last_delivery: u64 = 0;
    for (ci, (out, &g)) in outcomes.iter().zip(groups).enumerate() {
        let mut missing = 0u64;
        let mut client_last = 0u64;
        for s in (0..n).rev() {
            if kind[s] == KIND_NONE || commit[s] == 0 {
                eff[s] = 0;
                continue;
            }
            let mut e = out.recv.get(s).copied().unwrap_or(0);
            if let Some(t) = succ[s] {
                let et = eff[t];
                if et != 0 && (e == 0 || et < e) {
                    e = et;
                }
            }
            eff[s] = e;
            if group[s] != g {
                continue;
            }
            d.expected += 1;
            if e == 0 {
                missing += 1;
                continue;
            }
            d.seen += 1;
            let at = u64::from(e - 1);
            let committed = commit[s] - 1;
            if at < committed {
                d.before_commit_ack += 1;
            }
            lat.push(u32::try_from(at.saturating_sub(committed)).unwrap_or(u32::MAX));
            client_last = client_last.max(at);
        }
        last_delivery = last_delivery.max(client_last);
        if missing == 0 {
            d.clients_converged += 1;
            converged_at = converged_at.max(client_last);
        } else {
            all_converged = false;
            if d.missing_examples.len() < 10 {
                d.missing_examples.push((ci, missing));
            }
        }
        d.missing += missing;
        if out.last_frame_us > last_commit {
            d.sending_after_last_commit_ms = d
                .sending_after_last_commit_ms
                .max((out.last_frame_us - last_commit) as f64 / 1000.0);
        }
    }
    d.latency_ms = percentiles(lat);
    if all_converged && d.expected > 0 {
        d.converged_after_last_commit_ms =
            Some(converged_at.saturating_sub(last_commit) as f64 / 1000.0);
    }
    let span = last_delivery.saturating_sub(first_commit) as f64 / 1e6;
    if span > 0.0 {
        d.deliveries_per_second = d.seen as f64 / span;
    }
    d
}

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

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

pub fn bytes(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} MB", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

pub fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

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
        row("latency p50", reports, |r| {
            (
                ms(r.deliveries.latency_ms.p50),
                Some(r.deliveries.latency_ms.p50),
            )
        }),
        row("latency p90", reports, |r| {
            (
                ms(r.deliveries.latency_ms.p90),
                Some(r.deliveries.latency_ms.p90),
            )
        }),
        row("latency p99", reports, |r| {
            (
                ms(r.deliveries.latency_ms.p99),
                Some(r.deliveries.latency_ms.p99),
            )
        }),
        row("latency p99.9", reports, |r| {
            (
                ms(r.deliveries.latency_ms.p999),
                Some(r.deliveries.latency_ms.p999),
            )
        }),
        row("latency max", reports, |r| {
            (
                ms(r.deliveries.latency_ms.max),
                Some(r.deliveries.latency_ms.max),
            )
        }),
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

/// One pglive ÷ floor ratio over repeated runs of a scenario.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Runs that had this ratio.
    pub runs: usize,
}

impl Spread {
    /// `None` when no run had the ratio. An even number of runs takes the
    /// mean of the middle two.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    fn text(this: Option<Spread>) -> String {
        this.map_or("n/a".to_string(), |s| {
            format!("{} ({}–{})", times(s.median), times(s.min), times(s.max))
        })
    }
}

/// A scenario's pglive ÷ floor ratios over its repeated runs (`--repeat`):
/// single runs on a shared machine move by ±0.15×, so the targets are read
/// on medians.
#[derive(Debug, Clone, Serialize)]
pub struct FloorRatioSpread {
    pub scenario: String,
    pub p99: Option<Spread>,
    pub cpu_per_delivery: Option<Spread>,
    pub rss_peak: Option<Spread>,
}

impl FloorRatioSpread {
    pub fn of(scenario: &str, runs: &[&FloorRatios]) -> FloorRatioSpread {
        FloorRatioSpread {
            scenario: scenario.to_owned(),
            p99: Spread::of(runs.iter().filter_map(|r| r.p99)),
            cpu_per_delivery: Spread::of(runs.iter().filter_map(|r| r.cpu_per_delivery)),
            rss_peak: Spread::of(runs.iter().filter_map(|r| r.rss_peak)),
        }
    }

    /// One line for the console and the Markdown.
    pub fn summary(&self) -> String {
        let runs = [self.p99, self.cpu_per_delivery, self.rss_peak]
            .iter()
            .flatten()
            .map(|s| s.runs)
            .max()
            .unwrap_or(0);
        format!(
            "{}: pglive ÷ floor, median (range) of {runs} runs: p99 latency {}, server CPU per delivered message {}, peak RSS {}",
            self.scenario,
            Spread::text(self.p99),
            Spread::text(self.cpu_per_delivery),
            Spread::text(self.rss_peak)
        )
    }
}

/// A ratio as "1.36x" (two decimals near 1, where the floor targets are).
fn times(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}x")
    } else {
        format!("{v:.2}x")
    }
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

/// pglive's figures as multiples of the floor's in the same run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloorRatios {
    /// p99 latency, pglive ÷ floor.
    pub p99: Option<f64>,
    /// Server CPU per delivered message, pglive ÷ floor.
    pub cpu_per_delivery: Option<f64>,
    /// Peak RSS, pglive ÷ floor.
    pub rss_peak: Option<f64>,
}

impl FloorRatios {
    /// `None` unless both ran.
    pub fn of(pglive: Option<&TargetReport>, floor: Option<&TargetReport>) -> Option<FloorRatios> {
        let (p, f) = (pglive?, floor?);
        if !p.ok || !f.ok {
            return None;
        }
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let p99 = |r: &TargetReport| {
            (r.deliveries.latency_ms.count > 0).then_some(r.deliveries.latency_ms.p99)
        };
        Some(FloorRatios {
            p99: div(p99(p), p99(f)),
            cpu_per_delivery: div(p.server_cpu_us_per_delivery, f.server_cpu_us_per_delivery),
            rss_peak: div(p.server_rss_peak_mib, f.server_rss_peak_mib),
        })
    }

    /// One line for the console and the Markdown.
    pub fn summary(&self) -> String {
        let x = |v: Option<f64>| v.map_or("n/a".to_string(), times);
        format!(
            "pglive ÷ floor (same run): p99 latency {}, server CPU per delivered message {}, peak RSS {}",
            x(self.p99),
            x(self.cpu_per_delivery),
            x(self.rss_peak)
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = percentiles((1..=1000).map(|x| x * 1000).collect());
        assert_eq!(p.p50, 500.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(p.p999, 999.0);
        assert_eq!(p.max, 1000.0);
        assert_eq!(percentiles(vec![]).count, 0);
    }

    #[test]
    fn spreads_take_the_middle() {
        let odd = Spread::of([1.3, 1.1, 1.2]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max, odd.runs), (1.2, 1.1, 1.3, 3));
        let even = Spread::of([1.4, 1.0, 1.2, 1.1]).unwrap();
        assert!((even.median - 1.15).abs() < 1e-12);
        assert_eq!(Spread::of([f64::NAN]), None);
        assert_eq!(Spread::of([]), None);

        let runs = [
            FloorRatios {
                p99: Some(1.2),
                cpu_per_delivery: Some(1.3),
                rss_peak: Some(0.2),
            },
            FloorRatios {
                p99: None,
                cpu_per_delivery: Some(1.1),
                rss_peak: Some(0.2),
            },
        ];
        let spread = FloorRatioSpread::of("S4", &runs.iter().collect::<Vec<_>>());
        assert_eq!(spread.p99.map(|s| s.runs), Some(1));
        assert!(
            spread
                .cpu_per_delivery
                .is_some_and(|s| (s.median - 1.2).abs() < 1e-12)
        );
        assert!(spread.summary().starts_with("S4: pglive ÷ floor, median (range) of 2 runs: p99 latency 1.20x (1.20x–1.20x), server CPU per delivered message 1.20x (1.10x–1.30x)"));
    }
}

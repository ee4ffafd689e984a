//! What the machine, the server and its PostgreSQL backends spent over a
//! run's measured phase (from /proc), and pglive's counters (/metrics).

use std::collections::HashMap;

use super::report::TargetReport;
use crate::ctx::Ctx;
use crate::pgstats;
use crate::server::{self, ServerProc};

/// pglive's counters read before and after (deltas go to the JSON).
const METRICS: &[&str] = &[
    "pglive_refreshes_total",
    "pglive_rows_read_total",
    "pglive_refreshes_keyed_total",
    "pglive_refresh_errors_total",
    "pglive_notifications_total",
    "pglive_snapshots_total",
    "pglive_diffs_total",
    "pglive_frames_sent_total",
    "pglive_bytes_sent_total",
    "pglive_frames_dropped_total",
    "pglive_lagging_resyncs_total",
    "pglive_slow_clients_closed_total",
    "pglive_client_errors_total",
];

/// One reading, before or after the measured phase.
pub struct ProcSample {
    machine_busy: Option<f64>,
    server_cpu: Option<f64>,
    bench_cpu: Option<f64>,
    pg_cpu: HashMap<i32, f64>,
    metrics: Option<Vec<Option<f64>>>,
}

pub async fn sample(
    ctx: &Ctx,
    server: &ServerProc,
    db_name: &str,
    exclude: &[i32],
    pglive: bool,
) -> ProcSample {
    let pids = pgstats::backend_pids(&ctx.admin, db_name, exclude)
        .await
        .unwrap_or_default();
    let pg_cpu = pids
        .into_iter()
        .filter_map(|pid| {
            let cpu = server::cpu_seconds(u32::try_from(pid).ok()?)?;
            Some((pid, cpu))
        })
        .collect();
    let metrics = if pglive {
        server::metrics(server.port, METRICS).await
    } else {
        None
    };
    ProcSample {
        machine_busy: server::machine_busy_seconds(),
        server_cpu: server::cpu_seconds(server.pid),
        bench_cpu: server::cpu_seconds(std::process::id()),
        pg_cpu,
        metrics,
    }
}

/// Fills `rep`'s CPU, memory and counter figures: the server's now, and
/// the differences from `before` to `after`.
pub fn fill(rep: &mut TargetReport, server: &ServerProc, before: &ProcSample, after: &ProcSample) {
    rep.server_rss_peak_mib = server::status_mib(server.pid, "VmHWM");
    rep.server_rss_end_mib = server::status_mib(server.pid, "VmRSS");
    rep.server_cpu_total_seconds = after.server_cpu;
    rep.server_cpu_seconds = after.server_cpu.zip(before.server_cpu).map(|(a, b)| a - b);
    rep.bench_cpu_seconds = after.bench_cpu.zip(before.bench_cpu).map(|(a, b)| a - b);
    let mut pg_cpu = 0.0;
    for (pid, cpu) in &after.pg_cpu {
        pg_cpu += cpu - before.pg_cpu.get(pid).copied().unwrap_or(0.0);
    }
    let gone = before
        .pg_cpu
        .keys()
        .filter(|k| !after.pg_cpu.contains_key(k))
        .count();
    if gone > 0 {
        rep.notes.push(format!(
            "{gone} PostgreSQL backend(s) of the server ended during the run: their CPU is not counted"
        ));
    }
    rep.postgres_cpu_seconds = Some(pg_cpu);
    // Everything else the machine did meanwhile (the writer's backend,
    // other PostgreSQL processes, and anything else running): a noise gauge.
    rep.machine_busy_seconds = after
        .machine_busy
        .zip(before.machine_busy)
        .map(|(a, b)| a - b);
    rep.other_cpu_seconds = rep.machine_busy_seconds.map(|m| {
        (m - rep.server_cpu_seconds.unwrap_or(0.0) - rep.bench_cpu_seconds.unwrap_or(0.0) - pg_cpu)
            .max(0.0)
    });
    if let (Some(a), Some(b)) = (&after.metrics, &before.metrics) {
        let delta = |i: usize| {
            a.get(i)
                .copied()
                .flatten()
                .zip(b.get(i).copied().flatten())
                .map(|(x, y)| x - y)
        };
        rep.metrics_refreshes = delta(0);
        rep.metrics_rows_read = delta(1);
        for (i, name) in METRICS.iter().enumerate() {
            if let Some(d) = delta(i) {
                rep.metrics_deltas.insert((*name).to_string(), d);
            }
        }
    }
}

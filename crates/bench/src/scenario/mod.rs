//! The scenarios. This module names S1–S6 and resolves their parameters;
//! each family's driver is a module of its own:
//!
//! - `fanout`: S1–S6 and smoke, against pglive, the floor and the peer;
//! - `rls` and `reconnect`: RLS and RECONNECT (pglive only), built on
//!   `tenants`, the pieces they share (their parameters, client, writer,
//!   checks, reports and tables);
//! - `writers`: W, what watching a table costs its writers;
//! - `rel`: REL and REL-MOVE (pglive only), built on `related` (their
//!   parameters, client, writer, checks, nested query and report).
//!
//! `fanout` uses this module's [`Params`]; this module names none of its
//! submodules.

pub mod fanout;
pub mod reconnect;
pub mod rel;
pub mod related;
pub mod rls;
pub mod tenants;
pub mod writers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::workload::{Mix, Table};

/// One scenario with every parameter resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub name: String,
    pub description: String,
    pub clients: usize,
    /// Seeded rows (items, or tasks for S6).
    pub rows: usize,
    /// Transactions per second (0 = as fast as possible).
    pub rate: f64,
    /// Transactions.
    pub writes: usize,
    /// Row operations per transaction.
    pub batch: usize,
    pub mix: Mix,
    /// pglive's table/query; the peer always serves all of `items`.
    pub table: Table,
    #[serde(flatten)]
    pub schedule: Schedule,
}

/// A run's seed and pace, and when it gives up (S1–S6, RLS and RECONNECT
/// alike; in the JSON, the scenario's own fields).
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub seed: u64,
    pub connect_concurrency: usize,
    /// Idle time before the first write, so that the connect phase's
    /// statistics are flushed before the "before" snapshot (PostgreSQL
    /// backends flush pending statistics when idle for 10 s).
    pub settle_s: f64,
    /// The tail ends after this much silence (no frame to any client).
    pub quiet_s: f64,
    /// The tail ends at the latest this long after the last commit.
    pub tail_timeout_s: f64,
    pub connect_timeout_s: f64,
    /// Hard limit for one server's run.
    pub deadline_s: f64,
}

impl Schedule {
    /// Waits until no frame was counted in `frames` for `quiet_s`;
    /// `false` when that took more than `tail_timeout_s` (the tail is cut
    /// off there).
    pub async fn tail(&self, frames: &AtomicU64) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(self.tail_timeout_s);
        let quiet = Duration::from_secs_f64(self.quiet_s);
        let mut last = frames.load(Ordering::Relaxed);
        let mut changed = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let c = frames.load(Ordering::Relaxed);
            if c != last {
                last = c;
                changed = Instant::now();
            }
            if changed.elapsed() >= quiet {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}

impl Params {
    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.schedule.deadline_s)
    }
}

/// Command-line overrides (each applies to every scenario run).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub clients: Option<usize>,
    pub rows: Option<usize>,
    pub rate: Option<f64>,
    pub writes: Option<usize>,
    pub duration: Option<f64>,
    pub batch: Option<usize>,
    pub mix: Option<Mix>,
    pub seed: Option<u64>,
    pub connect_concurrency: Option<usize>,
    pub settle: Option<f64>,
    pub quiet: Option<f64>,
    pub tail_timeout: Option<f64>,
    pub deadline: Option<f64>,
}

impl Overrides {
    /// The schedule of a run of `writes` writes at `rate`, with `rounds`
    /// connect phases of up to `connect_timeout_s` and as many tails, and
    /// `margin` seconds on top of its deadline; short waits for a smoke run.
    pub fn schedule(
        &self,
        smoke: bool,
        connect_timeout_s: f64,
        writes: usize,
        rate: f64,
        rounds: f64,
        margin: f64,
    ) -> Schedule {
        let settle_s = self.settle.unwrap_or(if smoke { 0.0 } else { 11.0 });
        let quiet_s = self.quiet.unwrap_or(if smoke { 0.5 } else { 2.0 });
        let tail_timeout_s = self.tail_timeout.unwrap_or(if smoke { 10.0 } else { 60.0 });
        let writes = writes as f64;
        let write_s = if rate > 0.0 {
            writes / rate * 1.5 + 10.0
        } else {
            writes * 0.02 + 10.0
        };
        let deadline_s = self.deadline.unwrap_or(
            connect_timeout_s * rounds + settle_s + write_s + tail_timeout_s * rounds + margin,
        );
        Schedule {
            seed: self.seed.unwrap_or(42),
            connect_concurrency: self.connect_concurrency.unwrap_or(128).max(1),
            settle_s,
            quiet_s,
            tail_timeout_s,
            connect_timeout_s,
            deadline_s,
        }
    }
}

pub const NAMES: [&str; 6] = ["S1", "S2", "S3", "S4", "S5", "S6"];

/// The servers a scenario runs when `--targets` is not given. The floor is
/// measured where issue 10 sets targets relative to it (S2, S4, S5); smoke
/// stays fast without it.
pub fn default_targets(name: &str) -> &'static str {
    match name.to_ascii_uppercase().as_str() {
        "S2" | "S4" | "S5" => "pglive,floor,peer",
        _ => "pglive,peer",
    }
}

const DEFAULT_MIX: Mix = Mix {
    update: 60,
    insert: 20,
    delete: 20,
};

/// The scenario `name` (S1…S6, smoke) with overrides applied.
pub fn params(name: &str, o: &Overrides) -> anyhow::Result<Params> {
    // (clients, rows, rate, duration s, writes, table, description)
    let upper = name.to_ascii_uppercase();
    let (clients, rows, rate, duration, writes, table, description): (
        usize,
        usize,
        f64,
        f64,
        Option<usize>,
        Table,
        &str,
    ) = match upper.as_str() {
        "S1" => (
            100,
            1_000,
            20.0,
            30.0,
            None,
            Table::Items,
            "100 clients on all items (1,000 rows), 20 writes/s",
        ),
        "S2" => (
            1_000,
            10_000,
            20.0,
            30.0,
            None,
            Table::Items,
            "1,000 clients on all items (10,000 rows), 20 writes/s",
        ),
        "S3" => (
            100,
            1_000,
            0.0,
            0.0,
            Some(2_000),
            Table::Items,
            "100 clients, 2,000 writes as fast as possible",
        ),
        "S4" => (
            5_000,
            1_000,
            10.0,
            30.0,
            None,
            Table::Items,
            "5,000 clients on all items (1,000 rows), 10 writes/s",
        ),
        "S5" => (
            10_000,
            1_000,
            10.0,
            30.0,
            None,
            Table::Items,
            "10,000 clients on one query (1,000 items), 10 writes/s",
        ),
        "S6" => (
            2_000,
            10_000,
            20.0,
            30.0,
            None,
            Table::Tasks { groups: 2_000 },
            "2,000 clients, each on tasks filtered by its own assignee (10,000 tasks); 20 writes/s spread over them. The peer has no filtering: its clients all get the whole items table (same row count)",
        ),
        "SMOKE" => (
            4,
            50,
            40.0,
            0.5,
            None,
            Table::Items,
            "smoke: 4 clients, 50 items, 20 writes",
        ),
        other => anyhow::bail!("unknown scenario {other:?}: use S1…S6, all or smoke"),
    };
    let smoke = upper == "SMOKE";
    let clients = o.clients.unwrap_or(clients).max(1);
    let rows = o.rows.unwrap_or(rows).max(1);
    let rate = o.rate.unwrap_or(rate).max(0.0);
    let writes = match (o.writes, o.duration) {
        (Some(w), _) => w,
        (None, Some(d)) if rate > 0.0 => (rate * d).round() as usize,
        _ => writes.unwrap_or((rate * duration).round() as usize),
    }
    .max(1);
    let table = match table {
        // One distinct query per client: as many assignees as clients.
        Table::Tasks { .. } => Table::Tasks { groups: clients },
        t => t,
    };
    let rows = match table {
        Table::Tasks { groups } => rows.max(groups),
        Table::Items => rows,
    };
    let connect_timeout_s = 30.0 + clients as f64 / 100.0;
    let margin = if smoke { 15.0 } else { 60.0 };
    let schedule = o.schedule(smoke, connect_timeout_s, writes, rate, 1.0, margin);
    // The heading names what actually runs: a scenario's own description
    // counts its defaults, so an override says so beside it.
    let description = if o.clients.is_some()
        || o.rows.is_some()
        || o.rate.is_some()
        || o.writes.is_some()
        || o.duration.is_some()
    {
        format!(
            "{description} [overridden: {clients} clients, {rows} rows, {writes} writes at {rate} writes/s]"
        )
    } else {
        description.to_string()
    };
    Ok(Params {
        name: upper,
        description,
        clients,
        rows,
        rate,
        writes,
        batch: o.batch.unwrap_or(1).max(1),
        mix: o.mix.unwrap_or(DEFAULT_MIX),
        table,
        schedule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() -> anyhow::Result<()> {
        let s1 = params("s1", &Overrides::default())?;
        assert_eq!((s1.clients, s1.rows, s1.writes), (100, 1_000, 600));
        let s3 = params("S3", &Overrides::default())?;
        assert_eq!((s3.rate, s3.writes), (0.0, 2_000));
        let s6 = params(
            "S6",
            &Overrides {
                clients: Some(10),
                duration: Some(2.0),
                ..Overrides::default()
            },
        )?;
        assert_eq!(s6.table, Table::Tasks { groups: 10 });
        assert_eq!(s6.writes, 40);
        assert!(
            s6.description
                .ends_with("[overridden: 10 clients, 10000 rows, 40 writes at 20 writes/s]"),
            "{}",
            s6.description
        );
        assert!(!s1.description.contains("overridden"), "{}", s1.description);
        assert!(params("S9", &Overrides::default()).is_err());
        Ok(())
    }
}

//! The command line.

use std::path::PathBuf;

use clap::Parser;

use crate::workload::Mix;

#[derive(Debug, Parser)]
#[command(
    name = "pglive-bench",
    about = "Load generator: pglive side by side with the fan-out floor and the article's Node.js server",
    after_help = "Scenarios: S1 100 clients/1,000 rows/20 writes/s; S2 1,000 clients/10,000 rows/20 writes/s; \
S3 100 clients/2,000 writes as fast as possible; S4 5,000 clients/10 writes/s; S5 10,000 clients/10 writes/s; \
S6 2,000 clients on distinct filtered task queries; all = S1..S6; smoke = 4 clients, 20 writes, then RLS-SMOKE and RECONNECT-SMOKE (for `just test`); \
RLS (pglive only) = 1,000 clients in 100 tenants with their own JWTs under row-level security, 20 writes/s (--partition-hint: pglive_watch('items', partition => 'tenant') first); \
RECONNECT (pglive only) = 1,000 clients on 10,000 items drop and reconnect during writes, resume (since) vs snapshot; \
W (writers) = writer throughput on an unwatched copy of items vs watched by pglive (NOTIFY, WAL), \
1 and 8 writers, INSERT and UPDATE, with 0 and --clients (1,000) subscribers, --duration (10) s per case; \
REL (pglive only) = S2, then 1,000 clients on pages of 20 tasks with comments(newest 3, count), 10,000 tasks, 50,000 comments, \
20 comment inserts/s (REL) and moves between tasks/s (REL-MOVE), against S2's figures, with the Hasura-style cost \
(the whole nested query re-run per change); REL-MOVE = S2 and the moves only; smoke also runs REL-SMOKE.\n\
Targets by default: pglive,floor,peer for S2, S4, S5; pglive,peer otherwise.\n\
Database: --database-url / PGLIVE_BENCH_DATABASE_URL, else DATABASE_URL, else `dev/pg.sh start`."
)]
pub struct Cli {
    /// S1, S2, S3, S4, S5, S6, all, smoke, W (writers), RLS, RLS-SMOKE, RECONNECT, RECONNECT-SMOKE, REL, REL-MOVE or REL-SMOKE.
    pub scenario: String,
    /// RLS: number of tenants (clients are spread evenly over them).
    #[arg(long)]
    pub tenants: Option<usize>,
    /// RLS: run `SELECT pglive_watch('items', partition => 'tenant')` before
    /// the server starts (fails when the migrations lack the partition hint).
    #[arg(long)]
    pub partition_hint: bool,
    /// Number of WebSocket clients (W: subscribers of its "with subscribers" cases).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Rows loaded before the run (items; tasks for S6 and REL).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Write transactions per second (0 = as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Number of write transactions (default: rate × duration).
    #[arg(long)]
    pub writes: Option<usize>,
    /// Seconds of writing (writes = rate × duration; W: seconds per case).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Row operations per transaction (1 = single-row autocommit writes).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Operation mix, e.g. update=60,insert=20,delete=20 (the default).
    #[arg(long)]
    pub mix: Option<Mix>,
    /// Which servers to run, comma-separated: pglive, floor, peer (default:
    /// pglive,floor,peer for S2, S4, S5; pglive,peer for the others).
    #[arg(long)]
    pub targets: Option<String>,
    /// Where to write the JSON results (default target/bench/<scenario>-<time>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Admin URL of PostgreSQL (needs CREATEDB).
    #[arg(long, env = "PGLIVE_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The pglive binary (default: the newer of target/release/pglive and target/debug/pglive).
    #[arg(long, env = "PGLIVE_BIN")]
    pub pglive_bin: Option<PathBuf>,
    /// The peer's sources (default ../shared/peers/seed-node beside the repository).
    #[arg(long)]
    pub peer_dir: Option<PathBuf>,
    /// The floor's sources (default ../shared/peers/floor-rs beside the repository).
    #[arg(long)]
    pub floor_dir: Option<PathBuf>,
    /// W: numbers of writer connections, comma-separated.
    #[arg(long, default_value = "1,8")]
    pub writers: String,
    /// W: the single-row operations, comma-separated: update, insert.
    #[arg(long, default_value = "update,insert")]
    pub ops: String,
    /// W: the capture modes, comma-separated: unwatched, notify, wal.
    #[arg(long, default_value = "unwatched,notify,wal,recvlogical")]
    pub modes: String,
    /// The node executable.
    #[arg(long, default_value = "node")]
    pub node: String,
    /// Clients connecting at the same time.
    #[arg(long)]
    pub connect_concurrency: Option<usize>,
    /// Seconds of idle time between the connect phase and the first write.
    #[arg(long)]
    pub settle: Option<f64>,
    /// Seconds without any frame that end the tail after the last write.
    #[arg(long)]
    pub quiet: Option<f64>,
    /// Longest tail after the last write, seconds.
    #[arg(long)]
    pub tail_timeout: Option<f64>,
    /// Hard limit for one server's run, seconds.
    #[arg(long)]
    pub deadline: Option<f64>,
    /// Random seed of the write plan (identical for both servers).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Exit non-zero when a run has errors or missing deliveries (always on for smoke).
    #[arg(long)]
    pub strict: bool,
    /// S1–S6: run each scenario this many times, the servers' order
    /// alternating from run to run, and report the median and range of the
    /// pglive ÷ floor ratios over the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
}

//! Command-line and environment configuration. Parsed once in `main`; the
//! library receives plain values and never reads the environment itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::EngineLimits;
use crate::session::SessionLimits;

/// How pglive learns which rows changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum CaptureMode {
    /// Statement-level triggers NOTIFY; one LISTEN connection (the default:
    /// needs no server configuration, costs writers NOTIFY's commit lock).
    #[default]
    Notify,
    /// Logical replication (pgoutput) through a slot pglive owns; the
    /// triggers are detached, so writers pay nothing. Needs `wal_level =
    /// logical` and a role with the REPLICATION attribute.
    Wal,
}

impl CaptureMode {
    /// The name the database's `pglive_capture_mode()` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Notify => "notify",
            CaptureMode::Wal => "wal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// pglive: PostgreSQL query results, live over WebSockets.
#[derive(Debug, Clone, Parser)]
#[command(name = "pglive", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage the replication slot of WAL capture.
    Slot {
        #[command(subcommand)]
        action: SlotAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SlotAction {
    /// Drop pglive's replication slot (`--slot-name`), releasing the WAL it
    /// retains. Refused while a pglive is reading from it. The next start
    /// with `--capture wal` creates a new slot and resyncs every client.
    Drop,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "PGLIVE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Change capture: `notify` (triggers and LISTEN) or `wal` (logical
    /// replication: writers pay nothing; needs `wal_level = logical`).
    #[arg(
        long,
        env = "PGLIVE_CAPTURE",
        value_enum,
        default_value = "notify",
        global = true
    )]
    pub capture: CaptureMode,
    /// Replication slot of WAL capture (default: `pglive_<database>`). Every
    /// pglive server reading the same database needs a slot of its own.
    #[arg(long, env = "PGLIVE_SLOT_NAME", global = true)]
    pub slot_name: Option<String>,
    /// Apply pending migrations before serving.
    #[arg(long, env = "PGLIVE_MIGRATE")]
    pub migrate: bool,
    /// Directory of the built web app to serve at `/`.
    #[arg(long, env = "PGLIVE_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "PGLIVE_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log format.
    #[arg(
        long,
        env = "PGLIVE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Origins allowed to open WebSockets (comma-separated); empty allows any.
    #[arg(long, env = "PGLIVE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Database connections in the pool (refreshes and REST writes).
    #[arg(long, env = "PGLIVE_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
    /// Refresh queries in flight at once, across all groups.
    #[arg(long, env = "PGLIVE_MAX_CONCURRENT_REFRESHES", default_value_t = 8)]
    pub max_concurrent_refreshes: usize,
    /// Rows a live query may return.
    #[arg(long, env = "PGLIVE_MAX_ROWS", default_value_t = 50_000)]
    pub max_rows: u32,
    /// Largest client frame, in bytes.
    #[arg(long, env = "PGLIVE_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Subscriptions per connection.
    #[arg(long, env = "PGLIVE_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub max_subscriptions: usize,
    /// Client messages per second per connection (sustained; bursts of twice that).
    #[arg(long, env = "PGLIVE_MESSAGES_PER_SECOND", default_value_t = 50)]
    pub messages_per_second: u32,
    /// Frames queued per connection before the client counts as lagging.
    #[arg(long, env = "PGLIVE_OUTBOX_FRAMES", default_value_t = 64)]
    pub outbox_frames: usize,
    /// Seconds a write may wait on a client's socket before it is closed.
    #[arg(long, env = "PGLIVE_STALL_TIMEOUT_SECS", default_value_t = 10)]
    pub stall_timeout_secs: u64,
    /// Largest `limit` a live query may ask for.
    #[arg(long, env = "PGLIVE_MAX_QUERY_LIMIT", default_value_t = 10_000)]
    pub max_query_limit: u32,
    /// Live groups (distinct queries per security context) the server keeps at once.
    #[arg(long, env = "PGLIVE_MAX_GROUPS", default_value_t = 10_000)]
    pub max_groups: usize,
    /// Rows all live groups may hold in memory together.
    #[arg(long, env = "PGLIVE_MAX_ROWS_HELD", default_value_t = 2_000_000)]
    pub max_rows_held: usize,
    /// Times in a row a live query may fail in the database before its
    /// subscribers are told `query_failed`.
    #[arg(long, env = "PGLIVE_MAX_QUERY_FAILURES", default_value_t = 3)]
    pub max_query_failures: u32,
}

impl Config {
    /// A configuration with every default and the given database URL.
    pub fn new(database_url: impl Into<String>) -> Config {
        let mut cli = Cli::parse_from(["pglive"]);
        cli.config.database_url = Some(database_url.into());
        cli.config
    }

    pub fn engine_limits(&self) -> EngineLimits {
        EngineLimits {
            max_concurrent_refreshes: self.max_concurrent_refreshes,
            max_rows: self.max_rows,
            max_groups: self.max_groups,
            max_rows_held: self.max_rows_held,
            max_query_failures: self.max_query_failures.max(1),
            ..EngineLimits::default()
        }
    }

    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_frame_bytes: self.max_frame_bytes,
            max_subscriptions: self.max_subscriptions,
            messages_per_second: self.messages_per_second,
            outbox_frames: self.outbox_frames,
            stall_timeout: Duration::from_secs(self.stall_timeout_secs),
            max_query_limit: self.max_query_limit,
        }
    }
}

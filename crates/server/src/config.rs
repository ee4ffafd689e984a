//! Command-line and environment configuration. Parsed once in `main`; the
//! library receives plain values and never reads the environment itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::{AuthConfig, Secret};
// Capture owns its modes; re-exported for `--capture` and as
// `pglive_server::config::CaptureMode`, which tests and the bench name.
pub use crate::capture::CaptureMode;
use crate::connections::ConnLimits;
use crate::engine::EngineLimits;
use crate::session::SessionLimits;

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
    /// Print a token signed with --jwt-secret, for development and scripts.
    Token(TokenArgs),
}

/// `pglive token --sub alice --role app_user --claim tenant=acme`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The `sub` claim.
    #[arg(long)]
    pub sub: Option<String>,
    /// The role claim (see --jwt-role-claim).
    #[arg(long)]
    pub role: Option<String>,
    /// More claims, `name=value` (repeatable; values that parse as JSON are JSON).
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    pub claims: Vec<String>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
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
    /// PostgreSQL connection URL the server serves with: in production a
    /// least-privileged "authenticator" role (see README, "Deploying with
    /// RLS").
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL connection URL that migrations run with (`pglive migrate`,
    /// --migrate): the tables' owner. Default: --database-url.
    #[arg(
        long,
        env = "MIGRATE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub migrate_url: Option<String>,
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
    /// Apply pending migrations before serving (with --migrate-url).
    #[arg(long, env = "PGLIVE_MIGRATE")]
    pub migrate: bool,
    /// Accept tokens even though the server logs in as a superuser or a
    /// BYPASSRLS role (benchmarks, tests). Without it such a server refuses
    /// to start with authentication on: its clients' row-level security
    /// would rest on the role check alone.
    #[arg(long, env = "PGLIVE_ALLOW_PRIVILEGED_LOGIN")]
    pub allow_privileged_login: bool,
    /// Serve without authentication on an address other than loopback.
    /// Without a token every client then reads and writes as the server's
    /// own database role; refused unless given explicitly.
    #[arg(long, env = "PGLIVE_NO_AUTH")]
    pub no_auth: bool,
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
    /// Browser origins allowed to use the WebSocket and the REST API besides
    /// the server's own (comma-separated; `*` allows any).
    #[arg(long, env = "PGLIVE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Host names the server answers to (comma-separated, with or without a
    /// port); empty answers any. Set it against DNS rebinding.
    #[arg(long, env = "PGLIVE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// WebSocket connections open at once; more are refused with 503.
    #[arg(long, env = "PGLIVE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// HTTP connections served at once (before upgrades); more are closed.
    #[arg(long, env = "PGLIVE_MAX_HTTP_CONNECTIONS", default_value_t = 1_024)]
    pub max_http_connections: usize,
    /// Seconds a client has to send request headers (and to start the next
    /// request on an idle kept-alive connection).
    #[arg(long, env = "PGLIVE_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds in-flight HTTP requests may run once shutdown begins.
    #[arg(long, env = "PGLIVE_SHUTDOWN_DEADLINE_SECS", default_value_t = 5)]
    pub shutdown_deadline_secs: u64,
    /// Also serve HTTP/2 without TLS (prior knowledge); off by default.
    #[arg(long, env = "PGLIVE_HTTP2")]
    pub http2: bool,
    /// Secret that signs tokens (HS256 unless --jwt-algorithm says otherwise).
    /// With it (or --jwt-key-file), clients must authenticate.
    #[arg(long, env = "PGLIVE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<Secret>,
    /// Public key that verifies tokens: a PEM file (RSA, EC or Ed25519) or a JWKS.
    #[arg(long, env = "PGLIVE_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    /// The one algorithm tokens must use (HS256, RS256, ES256, EdDSA, ...).
    #[arg(long, env = "PGLIVE_JWT_ALGORITHM", value_parser = parse_algorithm, global = true)]
    pub jwt_algorithm: Option<jsonwebtoken::Algorithm>,
    /// Accepted `iss` values (comma-separated); empty does not check it.
    #[arg(long, env = "PGLIVE_JWT_ISSUER", value_delimiter = ',')]
    pub jwt_issuer: Vec<String>,
    /// Accepted `aud` values (comma-separated); empty does not check it.
    #[arg(long, env = "PGLIVE_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,
    /// The claim that names the PostgreSQL role to read and write as.
    #[arg(
        long,
        env = "PGLIVE_JWT_ROLE_CLAIM",
        default_value = "role",
        global = true
    )]
    pub jwt_role_claim: String,
    /// Roles tokens may name (comma-separated); empty allows any role the
    /// server's own role may switch to that is not privileged (a
    /// superuser, `BYPASSRLS`, the server's own role or a live table's
    /// owner). A privileged role is usable only when named here.
    #[arg(long, env = "PGLIVE_JWT_ROLES", value_delimiter = ',')]
    pub jwt_roles: Vec<String>,
    /// Claims that make up a security context and are visible to SQL
    /// (comma-separated); empty: every claim but exp, iat, nbf and jti.
    /// Name only what policies read (e.g. `tenant`) to share groups.
    #[arg(long, env = "PGLIVE_JWT_CONTEXT_CLAIMS", value_delimiter = ',')]
    pub jwt_context_claims: Vec<String>,
    /// Role for connections and requests without a token; without it they
    /// are refused (when tokens are configured).
    #[arg(long, env = "PGLIVE_ANON_ROLE")]
    pub anon_role: Option<String>,
    /// Seconds a WebSocket has to authenticate before it is closed (4401).
    #[arg(long, env = "PGLIVE_AUTH_TIMEOUT_SECS", default_value_t = 5)]
    pub auth_timeout_secs: u64,
    /// Serve `POST /api/dev/token` (mints tokens with --jwt-secret). For
    /// development only: anyone who can reach it can be anyone.
    #[arg(long, env = "PGLIVE_DEV_TOKENS")]
    pub dev_tokens: bool,
    /// REST requests per second per client address (bursts of twice that).
    #[arg(long, env = "PGLIVE_API_REQUESTS_PER_SECOND", default_value_t = 100)]
    pub api_requests_per_second: u32,
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
    /// Diffs each live query keeps for clients that resume after a reconnect.
    #[arg(long, env = "PGLIVE_HISTORY_DIFFS", default_value_t = 32)]
    pub history_diffs: usize,
    /// Bytes of diffs each live query keeps for resuming clients.
    #[arg(long, env = "PGLIVE_HISTORY_BYTES", default_value_t = 256 * 1024)]
    pub history_bytes: usize,
    /// Bytes of diffs all live queries keep together.
    #[arg(long, env = "PGLIVE_MAX_HISTORY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_history_bytes: usize,
    /// Times in a row a live query may fail in the database before its
    /// subscribers are told `query_failed`.
    #[arg(long, env = "PGLIVE_MAX_QUERY_FAILURES", default_value_t = 3)]
    pub max_query_failures: u32,
    /// Seconds a live query stays current after its last subscriber left,
    /// so that clients reconnecting together resume without a query (0: end
    /// it at once). Lingering queries count against --max-groups and give
    /// way to new ones when it is reached.
    #[arg(long, env = "PGLIVE_GROUP_LINGER_SECS", default_value_t = 15)]
    pub group_linger_secs: u64,
    /// The fraction (0 to 1) of every global budget (--max-groups,
    /// --max-rows-held, --max-history-bytes, and the subscriptions of all
    /// connections) one identity (a token's `sub`, or an anonymous
    /// connection) is sure to get. Past it an identity may only borrow what
    /// leaves that much free for others, so no one locks the others out.
    #[arg(long, env = "PGLIVE_IDENTITY_SHARE", default_value_t = 0.1, value_parser = share)]
    pub identity_share: f64,
}

/// A fraction from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction from 0 to 1")),
    }
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
            history_diffs: self.history_diffs,
            history_bytes: self.history_bytes,
            max_history_bytes: self.max_history_bytes,
            max_subscriptions: self.max_connections.saturating_mul(self.max_subscriptions),
            identity_share: self.identity_share,
            group_linger: Duration::from_secs(self.group_linger_secs),
            ..EngineLimits::default()
        }
    }

    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            secret: self.jwt_secret.clone(),
            key_file: self.jwt_key_file.clone(),
            algorithm: self.jwt_algorithm,
            issuers: self.jwt_issuer.clone(),
            audiences: self.jwt_audience.clone(),
            role_claim: self.jwt_role_claim.clone(),
            roles: self.jwt_roles.clone(),
            anon_role: self.anon_role.clone(),
            context_claims: self.jwt_context_claims.clone(),
            tables: pglive_schema::LiveQuery::TABLES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            allow_privileged_login: self.allow_privileged_login,
        }
    }

    /// Whether clients must present a token (or get the anonymous role).
    pub fn auth_enabled(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_key_file.is_some()
    }

    /// The URL migrations run with: --migrate-url, else --database-url.
    pub fn migrate_url(&self) -> Option<&str> {
        self.migrate_url.as_deref().or(self.database_url.as_deref())
    }

    pub fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            max_http: self.max_http_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            http2: self.http2,
            shutdown_deadline: Duration::from_secs(self.shutdown_deadline_secs),
        }
    }

    /// Descriptors the server needs besides WebSockets: HTTP connections,
    /// the pool, capture, and a margin for files and logs.
    pub fn descriptors_besides_websockets(&self) -> u64 {
        (self.max_http_connections + self.pool_size as usize + 64) as u64
    }

    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_frame_bytes: self.max_frame_bytes,
            max_subscriptions: self.max_subscriptions,
            messages_per_second: self.messages_per_second,
            outbox_frames: self.outbox_frames,
            stall_timeout: Duration::from_secs(self.stall_timeout_secs),
            max_query_limit: self.max_query_limit,
            auth_timeout: Duration::from_secs(self.auth_timeout_secs.max(1)),
        }
    }
}

fn parse_algorithm(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    s.parse().map_err(|_| {
        format!("unknown algorithm {s:?}; use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA")
    })
}

//! What can go wrong in capture's database work, and which of it is the
//! operator's to fix.

/// Typed errors of capture's database work. "Fatal" ones are mistakes in
/// configuration that retrying cannot fix: at start they stop the server
/// with their message; later they keep capture down (and `/readyz` at 503)
/// while it retries.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "WAL capture needs wal_level = logical, and the server runs with wal_level = {0}: set it in postgresql.conf and restart PostgreSQL, or run pglive with --capture notify"
    )]
    WalLevel(String),
    #[error(
        "WAL capture needs a role that may replicate, and {0} may not: ALTER ROLE {0} REPLICATION (as a superuser), or run pglive with --capture notify"
    )]
    NoReplication(String),
    #[error("the database has no pglive_capture_mode(): run `pglive migrate` first")]
    NotMigrated,
    #[error(
        "a pglive server with {other} capture is connected to this database (backend pid {pid}); every server of one database must run with the same --capture"
    )]
    OtherMode { other: &'static str, pid: i32 },
    #[error(
        "cannot switch the database to {mode} capture: {reason}. The owner of the watched tables can run SELECT pglive_capture_mode('{mode}') once."
    )]
    Switch { mode: &'static str, reason: String },
    #[error(
        "replication slot name {0:?} is not allowed: use lower-case letters, digits and underscores, at most 63"
    )]
    SlotName(String),
    #[error(
        "replication slot {slot} belongs to database {database} with plugin {plugin}, not to this database with pgoutput: pick another --slot-name"
    )]
    ForeignSlot {
        slot: String,
        database: String,
        plugin: String,
    },
    #[error(
        "replication slot {slot} is in use by backend pid {pid}: another pglive with the same --slot-name, or one that is still shutting down"
    )]
    SlotInUse { slot: String, pid: i32 },
    #[error("cannot create replication slot {slot}: {reason}")]
    CreateSlot { slot: String, reason: String },
    #[error("bad database URL: {0}")]
    Url(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Unreachable(#[from] crate::db::ConnectError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("the database did not answer within 5 s")]
    Unanswered,
    #[error("replication stream: {0}")]
    Stream(#[from] pgwire_replication::PgWireError),
}

impl CaptureError {
    /// Whether the error is a configuration mistake (see the type's doc).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            CaptureError::WalLevel(_)
                | CaptureError::NoReplication(_)
                | CaptureError::NotMigrated
                | CaptureError::OtherMode { .. }
                | CaptureError::Switch { .. }
                | CaptureError::SlotName(_)
                | CaptureError::ForeignSlot { .. }
                | CaptureError::CreateSlot { .. }
                | CaptureError::Url(_)
        )
    }
}

//! What every run needs: the admin connection, where the results go, and
//! each server's binary or sources (or why it cannot run).

use std::path::PathBuf;

use crate::floor::Floor;

/// What every run needs.
pub struct Ctx {
    pub admin: tokio_postgres::Client,
    pub admin_url: String,
    pub out_dir: PathBuf,
    pub pglive_bin: Result<PathBuf, String>,
    /// The prepared copy of the peer, or why it is unavailable.
    pub peer_dir: Result<PathBuf, String>,
    /// The floor's binary and its prep.sql, or why it is unavailable.
    pub floor: Result<Floor, String>,
    pub node: String,
    pub run_id: String,
    pub stamp: String,
}

//! The database's side of the capture mode. `pglive_capture_mode()` (see
//! `migrations/`) attaches the NOTIFY triggers to every watched table, or
//! detaches them and keeps the publication `pglive` in step; the mode is
//! stored in `pglive_settings`. Each server makes the database's mode its
//! own when it connects, and refuses while a server of the other mode is
//! connected: switching under it would leave that server without changes.

use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::error::CaptureError;
use super::kind::CaptureMode;

/// The mode a server that [`ensure`] refuses to switch under would run.
fn other(mode: CaptureMode) -> CaptureMode {
    match mode {
        CaptureMode::Notify => CaptureMode::Wal,
        CaptureMode::Wal => CaptureMode::Notify,
    }
}

#[derive(QueryableByName)]
struct State {
    #[diesel(sql_type = Bool)]
    migrated: bool,
    #[diesel(sql_type = Bool)]
    published: bool,
}

#[derive(QueryableByName)]
struct Mode {
    #[diesel(sql_type = Nullable<Text>)]
    capture: Option<String>,
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// What [`ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The database was already in the mode.
    Kept,
    /// It was in the other mode and has been switched.
    Switched,
    /// It has no capture modes (migrated before them): only NOTIFY exists.
    Unmanaged,
}

/// Makes `mode` the database's capture mode (see the module's doc).
pub async fn ensure(
    conn: &mut AsyncPgConnection,
    mode: CaptureMode,
) -> Result<Ensured, CaptureError> {
    let state: State = diesel::sql_query(
        "SELECT to_regprocedure('pglive_capture_mode(text)') IS NOT NULL AS migrated, \
                EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pglive') AS published",
    )
    .get_result(conn)
    .await?;
    if !state.migrated {
        return match mode {
            CaptureMode::Notify => Ok(Ensured::Unmanaged),
            CaptureMode::Wal => Err(CaptureError::NotMigrated),
        };
    }
    let current: Mode = diesel::sql_query("SELECT capture FROM pglive_settings")
        .get_result(conn)
        .await?;
    let current = current.capture.unwrap_or_default();
    if current == mode.as_str() && (mode == CaptureMode::Notify || state.published) {
        return Ok(Ensured::Kept);
    }
    let other_server: Option<Pid> = diesel::sql_query(
        "SELECT pid FROM pg_stat_activity \
          WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid() \
          LIMIT 1",
    )
    .bind::<Text, _>(other(mode).application_name())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(other_server) = other_server {
        return Err(CaptureError::OtherMode {
            other: other(mode).as_str(),
            pid: other_server.pid,
        });
    }
    diesel::sql_query("SELECT pglive_capture_mode($1) AS capture")
        .bind::<Text, _>(mode.as_str())
        .get_result::<Mode>(conn)
        .await
        .map_err(|err| CaptureError::Switch {
            mode: mode.as_str(),
            reason: err.to_string(),
        })?;
    if current == mode.as_str() {
        Ok(Ensured::Kept)
    } else {
        tracing::info!(
            from = %current,
            to = mode.as_str(),
            "switched the database's capture mode"
        );
        Ok(Ensured::Switched)
    }
}

//! WAL capture (`--capture wal`): changes read from logical replication, so
//! writers pay nothing (the NOTIFY triggers are detached; see `mode`).
//!
//! One task holds two connections of its own, never from the pool: a
//! replication session streaming the publication `pglive` from pglive's
//! slot (`pgoutput`), and a control connection that prepared it (mode,
//! slot) and then measures the slot every few seconds, which also proves
//! the session alive. Each committed transaction becomes the same
//! [`Change`](crate::engine::Change)s the listener produces
//! ([`Decoder`]); a position is confirmed to the slot only once the readers
//! have handled every change up to it ([`Hub::settled`]), so a pglive
//! killed at any moment loses nothing: the slot replays from the last
//! confirmed commit. After any (re)connect it reports `Change::Everything`,
//! like the listener.
//!
//! The replication protocol is the `pgwire-replication` crate's (a tokio
//! client of the walsender protocol: connection, authentication, bounded
//! event channel, standby status updates carrying only the position we
//! give it), and pgoutput decoding is the `pg_walstream` crate's parser.
//! `pg_walstream` also has a client, but it builds on libpq or aws-lc (C
//! toolchains at build time), retries on its own, and hides keepalives,
//! which we need to confirm positions while the publication is quiet.
//!
//! - [`settings`]: the URL and slot, checked at start, and the replication
//!   session's parameters.
//! - [`visible`]: commits waiting until new snapshots see them, merged per
//!   table when they are published.
//! - [`session`]: one replication session, from START_REPLICATION to its
//!   end; this module is the task around it, which prepares the database
//!   and reconnects.

mod session;
mod settings;
mod visible;

use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use pglive_schema::live::{Listed, TableVisitor};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::session::{Ended, Session};
use self::settings::{PUBLICATION, Settings};
use super::error::CaptureError;
use super::kind::CaptureMode;
use super::status::CaptureStatus;
use super::transaction::{Decoder, LiveTable};
use super::{mode, slot};
use crate::engine::Hub;

/// How long start waits for [`prepare`] before it leaves the rest to the
/// task: creating the slot waits for the transactions running now.
const PREPARE_AT_START: Duration = Duration::from_secs(10);

/// Starts WAL capture. Configuration mistakes stop the server here, with
/// their message; a database not reachable yet is retried by the task.
/// (Bounded: creating the slot waits for the transactions running now; the
/// task goes on waiting while the server serves and reports not ready.)
pub async fn start(
    database_url: &str,
    slot_name: Option<&str>,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) -> Result<(Arc<CaptureStatus>, JoinHandle<()>), CaptureError> {
    let settings = Settings::new(database_url, slot_name)?;
    let prepared = match tokio::time::timeout(PREPARE_AT_START, prepare(&settings, false)).await {
        Ok(Ok(control)) => Some(control),
        Ok(Err(err)) if err.is_fatal() => return Err(err),
        Ok(Err(err)) => {
            tracing::warn!(error = %crate::db::Causes(&err), "cannot prepare WAL capture yet; retrying in the background");
            None
        }
        Err(_) => {
            tracing::warn!(
                "WAL capture is still preparing (waiting for running transactions?); continuing in the background"
            );
            None
        }
    };
    let status = Arc::new(CaptureStatus::new(
        CaptureMode::Wal,
        Some(settings.slot().to_owned()),
    ));
    let task = tokio::spawn(run(settings, prepared, hub, Arc::clone(&status), shutdown));
    Ok((status, task))
}

/// Everything a replication session needs on the database side, checked or
/// made: logical WAL and replication rights, the database in WAL mode (the
/// triggers detached, the publication in step), and the slot (made anew
/// with `fresh`, or when the mode was just switched: WAL written before the
/// publication existed cannot be decoded with it). Returns the control
/// connection.
async fn prepare(settings: &Settings, fresh: bool) -> Result<AsyncPgConnection, CaptureError> {
    let mut conn = crate::db::connect(&CaptureMode::Wal.connection_url(settings.url())).await?;
    slot::preflight(&mut conn).await?;
    let switched = mode::ensure(&mut conn, CaptureMode::Wal).await? == mode::Ensured::Switched;
    if slot::ensure(&mut conn, settings.slot(), fresh || switched).await? == slot::Ensured::Created
    {
        tracing::info!(slot = %settings.slot(), "replication slot created");
    }
    Ok(conn)
}

/// The tables capture reports by (schema, table): the live ones with their
/// key columns, and the ones live tables' policies depend on.
fn live_tables(hub: &Hub) -> Vec<((String, String), LiveTable)> {
    struct Keys(Vec<(&'static str, &'static str, &'static str)>);
    impl TableVisitor for Keys {
        fn visit<T: Listed>(&mut self) {
            self.0.push((T::SCHEMA, T::NAME, T::KEY));
        }
    }
    let mut keys = Keys(Vec::new());
    pglive_schema::tables::visit_tables(&mut keys);
    keys.0
        .into_iter()
        .filter_map(|(schema, table, key)| {
            let name = hub.registry().resolve(schema, table)?;
            Some((
                (schema.to_owned(), table.to_owned()),
                LiveTable {
                    name,
                    key: Some(key),
                },
            ))
        })
        .chain(hub.registry().dependencies().filter_map(|(schema, table)| {
            let name = hub.registry().resolve(schema, table)?;
            Some((
                (schema.to_owned(), table.to_owned()),
                LiveTable { name, key: None },
            ))
        }))
        .collect()
}

/// Streams changes until `shutdown` flips, reconnecting as often as
/// needed. `prepared` is the control connection of a [`prepare`] that
/// already succeeded at start.
async fn run(
    settings: Settings,
    mut prepared: Option<AsyncPgConnection>,
    hub: Hub,
    status: Arc<CaptureStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = Arc::clone(hub.metrics());
    let mut decoder = Decoder::new(live_tables(&hub));
    let mut backoff = crate::backoff::policy();
    let mut connected_before = false;
    let mut fresh_slot = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let control = match prepared.take() {
            Some(conn) => Ok(conn),
            // Creating a slot waits for running transactions, and the mode
            // switch for locks on the watched tables: neither may hold up
            // shutdown.
            None => tokio::select! {
                prepared = prepare(&settings, std::mem::take(&mut fresh_slot)) => prepared,
                _ = shutdown.changed() => break,
            },
        };
        let ended = match control {
            Ok(control) => {
                let mut session = Session {
                    settings: &settings,
                    hub: &hub,
                    status: &status,
                    metrics: &metrics,
                    decoder: &mut decoder,
                    control,
                };
                session
                    .stream(&mut shutdown, &mut connected_before, &mut backoff)
                    .await
            }
            Err(err) => Err(err),
        };
        status.set_up(false);
        metrics.capture_up.set(0);
        match ended {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Lost) => {}
            // Configuration mistakes are the operator's to fix; capture
            // stays down (and /readyz at 503) while it retries.
            Err(err) if err.is_fatal() => {
                tracing::error!(error = %crate::db::Causes(&err), "WAL capture cannot start");
            }
            Err(err) => {
                // The publication was dropped and made again (by hand, or
                // by switching modes twice): the slot's WAL predates it.
                if err
                    .to_string()
                    .contains(&format!("publication \"{PUBLICATION}\" does not exist"))
                {
                    fresh_slot = true;
                }
                tracing::warn!(error = %crate::db::Causes(&err), "WAL capture lost its connection");
            }
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(10));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => break,
        }
    }
    tracing::debug!("WAL capture stopped");
}

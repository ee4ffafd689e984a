//! WAL capture (`--capture wal`): changes read from logical replication, so
//! writers pay nothing (the NOTIFY triggers are detached; see `mode`).
//!
//! One task holds two connections of its own, never from the pool: a
//! replication session streaming the publication `pglive` from pglive's
//! slot (`pgoutput`), and a control connection that prepared it (mode,
//! slot) and then measures the slot every few seconds, which also proves
//! the session alive. Each committed transaction becomes the same
//! [`Change`]s the listener produces ([`Decoder`]); a position is confirmed
//! to the slot only once the readers have handled every change up to it
//! ([`Hub::settled`]), so a pglive killed at any moment loses nothing: the
//! slot replays from the last confirmed commit. After any (re)connect it
//! reports `Change::Everything`, like the listener.
//!
//! The replication protocol is the `pgwire-replication` crate's (a tokio
//! client of the walsender protocol: connection, authentication, bounded
//! event channel, standby status updates carrying only the position we
//! give it), and pgoutput decoding is the `pg_walstream` crate's parser.
//! `pg_walstream` also has a client, but it builds on libpq or aws-lc (C
//! toolchains at build time), retries on its own, and hides keepalives,
//! which we need to confirm positions while the publication is quiet.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::FutureExt;
use pglive_schema::live::{Listed, TableVisitor};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use tokio::sync::watch;

use super::transaction::{Decoder, LiveTable};
use super::{CaptureError, CaptureStatus, mode, slot};
use crate::config::CaptureMode;
use crate::engine::{Change, Hub};
use crate::metrics::Metrics;

/// The name WAL capture's connections show in `pg_stat_activity` (and by
/// which a NOTIFY server recognizes a WAL server on its database).
pub const APPLICATION_NAME: &str = "pglive_wal";

/// The publication `pglive_capture_mode('wal')` keeps in step.
pub const PUBLICATION: &str = "pglive";

/// How often the slot's lag is measured (and the session proven alive).
const MEASURE_EVERY: Duration = Duration::from_secs(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to accept START_REPLICATION.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Events buffered between the replication worker and this task: one per
/// message (a row's key columns, or a transaction boundary). When it is
/// full, the worker stops reading the socket and the walsender waits.
const EVENT_BUFFER: usize = 1024;
/// Messages handled in a row before the loop looks at its timers again.
const BURST: usize = 256;
/// How long the stream may gather while commits wait to be published
/// (half of `UNSEEN_WAIT`: a publication is delayed by at most this).
const GATHER: Duration = Duration::from_millis(1);
/// How soon a confirmed position reaches the server.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Where WAL capture reads from.
#[derive(Debug, Clone)]
pub struct Settings {
    url: String,
    slot: String,
}

impl Settings {
    /// The slot is `slot_name`, else `pglive_<database>`.
    pub fn new(database_url: &str, slot_name: Option<&str>) -> Result<Settings, CaptureError> {
        let slot = match slot_name {
            Some(name) => name.to_owned(),
            None => slot::default_name(database_url)?,
        };
        slot::validate(&slot)?;
        // Refuse what the replication session could not use, now.
        replication_config(database_url, &slot)?;
        Ok(Settings {
            url: database_url.to_owned(),
            slot,
        })
    }

    pub fn slot(&self) -> &str {
        &self.slot
    }
}

/// The session's parameters from the database URL (any libpq form
/// `tokio-postgres` reads). TLS is not offered, as for the pool.
fn replication_config(url: &str, slot: &str) -> Result<ReplicationConfig, CaptureError> {
    let pg = tokio_postgres::Config::from_str(url).map_err(|e| CaptureError::Url(e.to_string()))?;
    if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(CaptureError::Url(
            "sslmode=require: pglive's connections do not use TLS".into(),
        ));
    }
    let user = pg
        .get_user()
        .ok_or_else(|| CaptureError::Url("no user name".into()))?;
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let database = pg.get_dbname().unwrap_or(user);
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let config = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Unix(dir)) => ReplicationConfig::unix(
            dir.to_string_lossy(),
            port,
            user,
            password,
            database,
            slot,
            PUBLICATION,
        ),
        Some(tokio_postgres::config::Host::Tcp(host)) => {
            ReplicationConfig::new(host.as_str(), user, password, database, slot, PUBLICATION)
                .with_port(port)
        }
        None => ReplicationConfig::new("localhost", user, password, database, slot, PUBLICATION)
            .with_port(port),
    };
    Ok(config
        .with_status_interval(STATUS_INTERVAL)
        .with_buffer_size(EVENT_BUFFER)
        .with_application_name(APPLICATION_NAME))
}

/// `url` with our `application_name`, for the control connection.
fn control_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={APPLICATION_NAME}")
}

/// Everything a replication session needs on the database side, checked or
/// made: logical WAL and replication rights, the database in WAL mode (the
/// triggers detached, the publication in step), and the slot (made anew
/// with `fresh`, or when the mode was just switched: WAL written before the
/// publication existed cannot be decoded with it). Returns the control
/// connection.
pub async fn prepare(settings: &Settings, fresh: bool) -> Result<AsyncPgConnection, CaptureError> {
    let mut conn = AsyncPgConnection::establish(&control_url(&settings.url)).await?;
    slot::preflight(&mut conn).await?;
    let switched = mode::ensure(&mut conn, CaptureMode::Wal).await? == mode::Ensured::Switched;
    if slot::ensure(&mut conn, &settings.slot, fresh || switched).await? == slot::Ensured::Created {
        tracing::info!(slot = %settings.slot, "replication slot created");
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

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Lost,
    Shutdown,
}

/// Streams changes until `shutdown` flips, reconnecting as often as
/// needed. `prepared` is the control connection of a [`prepare`] that
/// already succeeded at start.
pub async fn run(
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
                tracing::error!(error = %err, "WAL capture cannot start");
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
                tracing::warn!(error = %err, "WAL capture lost its connection");
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

struct Session<'a> {
    settings: &'a Settings,
    hub: &'a Hub,
    status: &'a CaptureStatus,
    metrics: &'a Metrics,
    decoder: &'a mut Decoder,
    control: AsyncPgConnection,
}

/// Unseen commits are checked and published when the stream pauses and the
/// oldest has waited `UNSEEN_WAIT` (so that one check covers the commits of
/// a couple of milliseconds: under steady writes a check per commit cost
/// both pglive and PostgreSQL a tenth of a core), and at once when
/// `UNSEEN_MAX` wait or the oldest has waited `UNSEEN_AGE`.
const UNSEEN_WAIT: Duration = Duration::from_millis(2);
const UNSEEN_MAX: usize = 256;
const UNSEEN_AGE: Duration = Duration::from_millis(5);

/// A commit received but not yet handed to the hub.
struct Commit {
    /// Its top-level xid; `None` when it changed no live table (or is a
    /// keepalive position), so there is nothing to wait for.
    xid: Option<u32>,
    changes: Vec<Change>,
    end: Lsn,
}

/// Commits waiting to be visible (bounded by `UNSEEN_MAX`).
#[derive(Default)]
struct Unseen {
    commits: Vec<Commit>,
    since: Option<tokio::time::Instant>,
}

impl Unseen {
    fn push(&mut self, xid: Option<u32>, changes: Vec<Change>, end: Lsn) {
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.commits.push(Commit { xid, changes, end });
    }

    fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// When the pause-time check is due (far in the future when empty).
    fn check_at(&self) -> tokio::time::Instant {
        match self.since {
            Some(since) if !self.commits.is_empty() => since + UNSEEN_WAIT,
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        }
    }

    fn due(&self) -> bool {
        self.commits.len() >= UNSEEN_MAX || self.since.is_some_and(|t| t.elapsed() >= UNSEEN_AGE)
    }
}

/// The changes of the commits published together, one per table (the
/// reader would merge them anyway; merged, they wake it once).
#[derive(Default)]
struct Merged {
    everything: bool,
    /// `None`: the whole table.
    tables: Vec<(&'static str, Option<Vec<serde_json::Value>>)>,
}

impl Merged {
    fn add(&mut self, change: Change) {
        let (table, keys) = match change {
            Change::Everything => {
                self.everything = true;
                return;
            }
            Change::Table { table } => (table, None),
            // WAL capture knows no partitions: every context reads.
            Change::Rows { table, keys, .. } => (table, Some(keys)),
        };
        match self.tables.iter_mut().find(|(t, _)| *t == table) {
            None => self.tables.push((table, keys)),
            Some((_, held)) => match (held.as_mut(), keys) {
                (Some(held), Some(keys)) => held.extend(keys),
                _ => *held = None,
            },
        }
    }

    fn into_changes(self) -> Vec<Change> {
        if self.everything {
            return vec![Change::Everything];
        }
        self.tables
            .into_iter()
            .map(|(table, keys)| match keys {
                Some(keys) => Change::Rows {
                    table,
                    keys,
                    parts: None,
                },
                None => Change::Table { table },
            })
            .collect()
    }
}

#[derive(diesel::QueryableByName)]
struct Running {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    running: bool,
}

/// Whether any of `xids` (top-level, 32-bit) is still in progress for a new
/// snapshot: at or past its `xmax` (not completed yet: a transaction that
/// committed in WAL but has not ended is there, not in `xip`), or in its
/// `xip`. The 32-bit comparison with `xmax` is modular, as PostgreSQL's own.
async fn still_running(conn: &mut AsyncPgConnection, xids: &[i64]) -> Result<bool, CaptureError> {
    use diesel_async::RunQueryDsl;
    let found: Running = diesel::sql_query(
        "WITH s AS (SELECT pg_current_snapshot() AS snap), \
              m AS (SELECT pg_snapshot_xmax(snap)::text::bigint & 4294967295 AS xmax FROM s) \
         SELECT EXISTS ( \
             SELECT 1 FROM unnest($1::bigint[]) AS x, m \
              WHERE (x - m.xmax + 4294967296) % 4294967296 < 2147483648 \
                 OR x IN (SELECT xip::text::bigint & 4294967295 FROM s, pg_snapshot_xip(s.snap) AS xip) \
         ) AS running",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(xids)
    .get_result(conn)
    .await?;
    Ok(found.running)
}

/// A position waiting for the readers before it is confirmed.
struct Settling {
    lsn: Lsn,
    done: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Session<'_> {
    async fn stream(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        connected_before: &mut bool,
        backoff: &mut backon::ExponentialBackoff,
    ) -> Result<Ended, CaptureError> {
        let config = replication_config(&self.settings.url, &self.settings.slot)?;
        let mut client = ReplicationClient::connect(config).await?;
        match tokio::time::timeout(START_TIMEOUT, client.wait_started()).await {
            Ok(started) => started?,
            Err(_) => {
                return Err(CaptureError::Stream(pgwire_replication::PgWireError::Io(
                    Arc::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "START_REPLICATION was not accepted in time",
                    )),
                )));
            }
        }
        self.status.set_up(true);
        self.metrics.capture_up.set(1);
        if *connected_before {
            self.metrics.capture_reconnects.inc();
            tracing::info!(slot = %self.settings.slot, "WAL capture reconnected; resyncing every group");
        } else {
            tracing::info!(slot = %self.settings.slot, publication = PUBLICATION, "streaming changes from the replication slot");
        }
        *connected_before = true;
        *backoff = crate::backoff::policy();
        self.decoder.reset();
        // Everything may have changed while no one was reading.
        self.hub.changed(Change::Everything);

        let ended = self.events(&mut client, shutdown).await;
        if matches!(ended, Ok(Ended::Shutdown)) {
            // CopyDone, then let the worker finish (bounded).
            client.stop();
            let _ = tokio::time::timeout(Duration::from_secs(2), client.shutdown()).await;
        } else {
            client.abort();
        }
        ended
    }

    async fn events(
        &mut self,
        client: &mut ReplicationClient,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended, CaptureError> {
        // The transaction being received (its top-level xid).
        let mut open: Option<u32> = None;
        // Committed transactions whose changes wait until they are visible.
        let mut unseen = Unseen::default();
        // The end of the last commit (or keepalive position outside a
        // transaction) whose changes went to the hub, and the last position
        // confirmed to the slot.
        let mut emitted = Lsn(0);
        let mut confirmed = Lsn(0);
        let mut settling: Option<Settling> = None;
        let mut measure = tokio::time::interval(MEASURE_EVERY);
        measure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if settling.is_none() && emitted > confirmed {
                settling = Some(Settling {
                    lsn: emitted,
                    done: Box::pin(self.hub.settled()),
                });
            }
            // Biased: confirming and measuring first, so that a stream that
            // never pauses cannot starve them; unseen commits are published
            // when the stream pauses (after `UNSEEN_WAIT`), or once they
            // are many or old.
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(Ended::Shutdown),
                () = async {
                    match settling.as_mut() {
                        Some(s) => s.done.as_mut().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(done) = settling.take() {
                        client.update_applied_lsn(done.lsn);
                        confirmed = done.lsn;
                    }
                }
                _ = measure.tick() => {
                    if let Some(ended) = self.measure().await {
                        return Ok(ended);
                    }
                }
                event = client.recv() => {
                    // Then whatever else is ready, without going round the
                    // select (and its timers) per message.
                    let mut event = event?;
                    let mut caught_up = false;
                    for _ in 0..BURST {
                        if let Some(ended) = self
                            .on_event(event, &mut open, &mut unseen, &mut emitted, shutdown)
                            .await?
                        {
                            return Ok(ended);
                        }
                        match client.recv().now_or_never() {
                            Some(next) => event = next?,
                            None => {
                                caught_up = true;
                                break;
                            }
                        }
                    }
                    // Commits wait at least `UNSEEN_WAIT` before they are
                    // published, so while some wait, let the stream gather
                    // for `GATHER` instead of waking for every message: under
                    // steady writes the walsender sends each message on its
                    // own, and waking per message was most of this task's
                    // CPU (the writers' CPU, on a small machine).
                    if caught_up && !unseen.is_empty() {
                        tokio::time::sleep(GATHER).await;
                    }
                }
                () = tokio::time::sleep_until(unseen.check_at()), if !unseen.is_empty() => {
                    self.publish(&mut unseen, &mut emitted, shutdown).await?;
                }
            }
        }
    }

    /// One event of the replication stream; `Some` when the stream ended.
    async fn on_event(
        &mut self,
        event: Option<ReplicationEvent>,
        open: &mut Option<u32>,
        unseen: &mut Unseen,
        emitted: &mut Lsn,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Ended>, CaptureError> {
        match event {
            Some(ReplicationEvent::Begin { xid, .. }) => {
                *open = Some(xid);
                self.decoder.begin();
            }
            Some(ReplicationEvent::XLogData { data, .. }) => {
                if let Err(err) = self.decoder.message(data) {
                    self.metrics.notifications_malformed.inc();
                    tracing::warn!(error = %err, "unusable change in the replication stream; refreshing everything");
                }
            }
            Some(ReplicationEvent::Commit { end_lsn, .. }) => {
                self.metrics.capture_transactions.inc();
                let changes = self.decoder.commit();
                unseen.push(
                    open.take().filter(|_| !changes.is_empty()),
                    changes,
                    end_lsn,
                );
                if unseen.due() {
                    self.publish(unseen, emitted, shutdown).await?;
                }
            }
            Some(ReplicationEvent::KeepAlive { wal_end, .. }) => {
                // Everything before a keepalive was sent before it: between
                // transactions, its position is handled once what came
                // before is.
                if open.is_none() {
                    unseen.push(None, Vec::new(), wal_end);
                }
            }
            Some(ReplicationEvent::Message { .. }) => {}
            Some(ReplicationEvent::StoppedAt { .. }) | None => {
                tracing::warn!("the replication stream ended");
                return Ok(Some(Ended::Lost));
            }
        }
        Ok(None)
    }

    /// Hands the unseen commits' changes to the hub once every one of them
    /// is visible to new snapshots. A commit reaches the replication stream
    /// as soon as its WAL is flushed, a moment before the committing backend
    /// makes it visible; a reader that read its rows in that moment would
    /// read them as they were, and no later change would correct them.
    /// (NOTIFY is delivered after that moment, so the listener need not
    /// wait.) Usually the first check finds them visible.
    async fn publish(
        &mut self,
        unseen: &mut Unseen,
        emitted: &mut Lsn,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), CaptureError> {
        let xids: Vec<i64> = unseen
            .commits
            .iter()
            .filter_map(|c| c.xid)
            .map(i64::from)
            .collect();
        let mut pause = Duration::from_millis(1);
        let started = tokio::time::Instant::now();
        while !xids.is_empty() {
            let running =
                tokio::time::timeout(QUERY_TIMEOUT, still_running(&mut self.control, &xids))
                    .await
                    .map_err(|_| CaptureError::Unanswered)??;
            if !running {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                tracing::warn!(xids = ?xids, "committed transactions are still not visible after 10 s (waiting for synchronous replication?)");
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return Ok(()),
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let mut changes = Merged::default();
        for commit in unseen.commits.drain(..) {
            for change in commit.changes {
                self.metrics.notifications.inc();
                changes.add(change);
            }
            *emitted = (*emitted).max(commit.end);
        }
        for change in changes.into_changes() {
            self.hub.changed(change);
        }
        unseen.since = None;
        Ok(())
    }

    /// Measures the slot's lag; `Some(Lost)` when the session is dead
    /// without having noticed (the slot inactive or gone, the database not
    /// answering).
    async fn measure(&mut self) -> Option<Ended> {
        let slot = &self.settings.slot;
        match tokio::time::timeout(QUERY_TIMEOUT, slot::lag(&mut self.control, slot)).await {
            Ok(Ok(Some(lag))) => {
                self.status.set_slot_lag(lag.bytes);
                self.metrics.capture_slot_lag_bytes.set(lag.bytes);
                if lag.active {
                    None
                } else {
                    tracing::warn!(slot = %slot, "the replication slot is not being read; reconnecting");
                    Some(Ended::Lost)
                }
            }
            Ok(Ok(None)) => {
                tracing::warn!(slot = %slot, "the replication slot was dropped; recreating it");
                Some(Ended::Lost)
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot measure the replication slot; reconnecting");
                Some(Ended::Lost)
            }
            Err(_) => {
                tracing::warn!("the database did not answer in time; reconnecting");
                Some(Ended::Lost)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_published_together_merge_per_table() {
        use serde_json::json;
        let mut m = Merged::default();
        m.add(Change::Rows {
            table: "items",
            keys: vec![json!(1)],
            parts: None,
        });
        m.add(Change::Rows {
            table: "tasks",
            keys: vec![json!(2)],
            parts: None,
        });
        m.add(Change::Rows {
            table: "items",
            keys: vec![json!(3)],
            parts: None,
        });
        m.add(Change::Table { table: "tasks" });
        m.add(Change::Rows {
            table: "tasks",
            keys: vec![json!(4)],
            parts: None,
        });
        assert_eq!(
            m.into_changes(),
            vec![
                Change::Rows {
                    table: "items",
                    keys: vec![json!(1), json!(3)],
                    parts: None,
                },
                Change::Table { table: "tasks" },
            ]
        );
        let mut m = Merged::default();
        m.add(Change::Table { table: "items" });
        m.add(Change::Everything);
        assert_eq!(m.into_changes(), vec![Change::Everything]);
    }

    #[test]
    fn urls_become_replication_configs() {
        let c = replication_config("postgres://bob:s%40cret@db.example:6543/app", "s").unwrap();
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.password.as_str()
            ),
            ("db.example", 6543, "bob", "s@cret")
        );
        assert_eq!((c.database.as_str(), c.slot.as_str()), ("app", "s"));
        assert_eq!(c.application_name.as_deref(), Some(APPLICATION_NAME));
        let c = replication_config("host=/run/postgresql user=bob", "s").unwrap();
        assert!(c.is_unix_socket());
        assert_eq!(c.database, "bob");
        assert!(replication_config("postgres://bob@h/db?sslmode=require", "s").is_err());
        assert!(
            replication_config("postgres://h/db", "s").is_err(),
            "no user"
        );
    }
}

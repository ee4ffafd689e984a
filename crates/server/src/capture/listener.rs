//! NOTIFY capture, the default: the only module that knows `LISTEN`.
//!
//! It holds one dedicated connection (never from the pool, whose connections
//! come and go), turns each change notice into a [`Change`] for the hub, and
//! survives losing the connection: it reconnects with capped exponential
//! backoff and jitter, listens again, and then reports every table changed,
//! because notices sent while it was down are gone.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use pglive_schema::notice::{CHANNEL, ChangeNotice};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::CaptureError;
use super::kind::CaptureMode;
use super::mode;
use super::status::CaptureStatus;
use crate::db::Causes;
use crate::engine::{Change, Hub};
use crate::metrics::Metrics;

/// How often an idle listener checks that its connection still works; a
/// half-open TCP connection would otherwise look like a quiet database.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns a notice payload into a change for a live table. Payloads that do not
/// parse are logged and treated as "the whole table changed" when the table
/// can still be recognized, else as "everything changed"; changes to tables
/// that are not live are ignored.
pub fn parse(payload: &str, hub: &Hub, metrics: &Metrics) -> Option<Change> {
    match serde_json::from_str::<ChangeNotice>(payload) {
        Ok(notice) => {
            let table = hub.registry().resolve(&notice.schema, &notice.table)?;
            Some(match notice.touched_keys() {
                Some(keys) => Change::Rows {
                    table,
                    keys: keys.cloned().collect(),
                    parts: notice.parts.clone(),
                },
                None => Change::Table { table },
            })
        }
        Err(err) => {
            metrics.notifications_malformed.inc();
            // Recover the table if we can; otherwise every table is suspect.
            let value: Option<serde_json::Value> = serde_json::from_str(payload).ok();
            let named = value
                .as_ref()
                .and_then(|v| v.get("table"))
                .and_then(|t| t.as_str())
                .and_then(|t| hub.registry().get(t))
                .map(|t| t.name());
            tracing::warn!(error = %err, payload = %payload.chars().take(200).collect::<String>(), "malformed change notice; refreshing");
            Some(match named {
                Some(table) => Change::Table { table },
                None => Change::Everything,
            })
        }
    }
}

/// Listens until `shutdown` flips, reconnecting as often as needed.
async fn run(
    database_url: String,
    hub: Hub,
    status: Arc<CaptureStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = CaptureMode::Notify.connection_url(&database_url);
    let metrics = Arc::clone(hub.metrics());
    let mut backoff = crate::backoff::policy();
    let mut connected_before = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match connect(&url).await {
            Ok(mut conn) => {
                status.set_up(true);
                metrics.capture_up.set(1);
                if connected_before {
                    metrics.capture_reconnects.inc();
                    tracing::info!("listener reconnected; resyncing every group");
                } else {
                    tracing::info!(channel = CHANNEL, "listening for changes");
                }
                connected_before = true;
                backoff = crate::backoff::policy();
                // Everything may have changed while no one was listening.
                hub.changed(Change::Everything);
                let ended = listen(&mut conn, &hub, &metrics, &mut shutdown).await;
                status.set_up(false);
                metrics.capture_up.set(0);
                if ended == Ended::Shutdown {
                    break;
                }
            }
            // Another server switched the database to WAL capture and is
            // still connected: the triggers are detached, so this server
            // would hear nothing. Stay down (and /readyz at 503) until the
            // fleet agrees.
            Err(err) if err.is_fatal() => {
                tracing::error!(error = %Causes(&err), "NOTIFY capture cannot start");
            }
            Err(err) => {
                tracing::warn!(error = %Causes(&err), "listener cannot connect");
            }
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(10));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => break,
        }
    }
    tracing::debug!("listener stopped");
}

/// Connects, makes sure the database is in NOTIFY mode (the triggers
/// attached; see `mode`), and listens.
async fn connect(url: &str) -> Result<AsyncPgConnection, CaptureError> {
    let mut conn = crate::db::connect(url).await?;
    mode::ensure(&mut conn, CaptureMode::Notify).await?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(conn)
}

/// Starts NOTIFY capture: [`check`], then the listener's task.
pub async fn start(
    database_url: &str,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) -> Result<(Arc<CaptureStatus>, JoinHandle<()>), CaptureError> {
    check(database_url).await?;
    let status = Arc::new(CaptureStatus::new(CaptureMode::Notify, None));
    let task = tokio::spawn(run(
        database_url.to_owned(),
        hub,
        Arc::clone(&status),
        shutdown,
    ));
    Ok((status, task))
}

/// One attempt at start: a configuration mistake (a WAL server on the same
/// database) stops the server with its message; a database that cannot be
/// reached yet is left to the listener's retries.
async fn check(database_url: &str) -> Result<(), CaptureError> {
    match connect(&CaptureMode::Notify.connection_url(database_url)).await {
        Err(err) if err.is_fatal() => Err(err),
        Err(err) => {
            tracing::warn!(error = %Causes(&err), "cannot prepare NOTIFY capture yet; retrying in the background");
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Lost,
    Shutdown,
}

async fn listen(
    conn: &mut AsyncPgConnection,
    hub: &Hub,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    loop {
        let next = {
            let stream = conn.notifications_stream();
            let mut stream = std::pin::pin!(stream);
            tokio::select! {
                item = stream.next() => Some(item),
                () = tokio::time::sleep(PING_EVERY) => None,
                _ = shutdown.changed() => return Ended::Shutdown,
            }
        };
        match next {
            Some(Some(Ok(notification))) => {
                metrics.notifications.inc();
                if let Some(change) = parse(&notification.payload, hub, metrics) {
                    hub.changed(change);
                }
            }
            Some(Some(Err(err))) => {
                tracing::warn!(error = %err, "listener connection lost");
                return Ended::Lost;
            }
            Some(None) => {
                tracing::warn!("listener connection closed");
                return Ended::Lost;
            }
            None => {
                // Quiet for a while: prove the connection is alive.
                match tokio::time::timeout(PING_TIMEOUT, conn.batch_execute("SELECT 1")).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "listener ping failed");
                        return Ended::Lost;
                    }
                    Err(_) => {
                        tracing::warn!("listener ping timed out");
                        return Ended::Lost;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::EngineLimits;

    async fn hub() -> Hub {
        // Parsing needs the registry, not a database.
        let pool = crate::db::pool("postgres://nobody@127.0.0.1:9/none", 1)
            .await
            .unwrap();
        Hub::start(pool, Arc::new(Metrics::default()), EngineLimits::default())
    }

    #[tokio::test]
    async fn notices_parse_into_changes() {
        let hub = hub().await;
        let m = Metrics::default();
        let c = parse(
            r#"{"v":1,"schema":"public","table":"items","op":"UPDATE","keys":["2"],"old_keys":[1]}"#,
            &hub,
            &m,
        );
        assert_eq!(
            c,
            Some(Change::Rows {
                table: "items",
                keys: vec![json!("2"), json!(1)],
                parts: None,
            })
        );
        let c = parse(
            r#"{"v":1,"schema":"public","table":"tasks","op":"TRUNCATE","keys":null,"old_keys":null}"#,
            &hub,
            &m,
        );
        assert_eq!(c, Some(Change::Table { table: "tasks" }));
        let other = r#"{"v":1,"schema":"public","table":"other","op":"INSERT","keys":[1]}"#;
        assert_eq!(parse(other, &hub, &m), None);
        let elsewhere = r#"{"v":1,"schema":"elsewhere","table":"items","op":"INSERT","keys":[1]}"#;
        assert_eq!(parse(elsewhere, &hub, &m), None);
    }

    #[tokio::test]
    async fn malformed_notices_refresh_instead_of_crashing() {
        let hub = hub().await;
        let m = Metrics::default();
        let c = parse(r#"{"table":"items","op":"WHAT"}"#, &hub, &m);
        assert_eq!(c, Some(Change::Table { table: "items" }));
        assert_eq!(parse("not json", &hub, &m), Some(Change::Everything));
        assert_eq!(m.notifications_malformed.get(), 2);
    }
}

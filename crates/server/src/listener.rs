//! The listener: the only module that knows `LISTEN`.
//!
//! It holds one dedicated connection (never from the pool, whose connections
//! come and go), turns each change notice into a [`Change`] for the hub, and
//! survives losing the connection: it reconnects with capped exponential
//! backoff and jitter, listens again, and then marks every table changed,
//! because notices sent while it was down are gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use pglive_schema::notice::{CHANNEL, ChangeNotice};
use rand::Rng;
use tokio::sync::watch;

use crate::hub::{Change, Hub};
use crate::metrics::Metrics;
use crate::table::{Key, Registry};

/// How often an idle listener checks that its connection still works; a
/// half-open TCP connection would otherwise look like a quiet database.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// The name the listener's session shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "pglive_listener";

/// Whether the listener is connected and listening; read by `/readyz`.
#[derive(Debug, Default)]
pub struct ListenerStatus {
    up: AtomicBool,
}

impl ListenerStatus {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// Adds `application_name` to a connection URL so operators (and the chaos
/// test) can find the listener's backend.
fn listener_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={APPLICATION_NAME}")
}

/// Turns a notice payload into a change for a live table. Payloads that do not
/// parse are logged and treated as "the whole table changed" when the table
/// can still be recognized; changes to tables that are not live are ignored.
pub fn parse(payload: &str, registry: &Registry, metrics: &Metrics) -> Option<Change> {
    match serde_json::from_str::<ChangeNotice>(payload) {
        Ok(notice) => {
            let table = registry.by_notice(&notice.schema, &notice.table)?;
            let keys = notice
                .touched_keys()
                .and_then(|keys| keys.map(|k| k.as_i64()).collect::<Option<Vec<Key>>>());
            Some(Change { table, keys })
        }
        Err(err) => {
            Metrics::inc(&metrics.notifications_malformed_total);
            // Recover the table if we can; otherwise every table is suspect.
            let value: Option<serde_json::Value> = serde_json::from_str(payload).ok();
            let named = value
                .as_ref()
                .and_then(|v| v.get("table"))
                .and_then(|t| t.as_str())
                .and_then(|t| registry.get(t))
                .map(|t| t.name());
            tracing::warn!(error = %err, payload = %payload.chars().take(200).collect::<String>(), "malformed change notice; refreshing");
            match named {
                Some(table) => Some(Change { table, keys: None }),
                None => Some(Change {
                    table: "",
                    keys: None,
                }),
            }
        }
    }
}

/// Listens until `shutdown` flips, reconnecting as often as needed.
pub async fn run(
    database_url: String,
    hub: Hub,
    status: Arc<ListenerStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = listener_url(&database_url);
    let metrics = Arc::clone(hub.metrics());
    let mut backoff = BACKOFF_START;
    let mut connected_before = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match connect(&url).await {
            Ok(mut conn) => {
                status.up.store(true, Ordering::SeqCst);
                metrics.listener_up.store(1, Ordering::Relaxed);
                if connected_before {
                    Metrics::inc(&metrics.listener_reconnects_total);
                    tracing::info!("listener reconnected; resyncing every group");
                } else {
                    tracing::info!(channel = CHANNEL, "listening for changes");
                }
                connected_before = true;
                backoff = BACKOFF_START;
                // Everything may have changed while no one was listening.
                hub.resync_all();
                let ended = listen(&mut conn, &hub, &metrics, &mut shutdown).await;
                status.up.store(false, Ordering::SeqCst);
                metrics.listener_up.store(0, Ordering::Relaxed);
                if ended == Ended::Shutdown {
                    break;
                }
            }
            Err(err) => tracing::warn!(error = %err, "listener cannot connect"),
        }
        let jittered = rand::rng().random_range(backoff / 2..=backoff);
        tokio::select! {
            () = tokio::time::sleep(jittered) => {}
            _ = shutdown.changed() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_CAP);
    }
    tracing::debug!("listener stopped");
}

async fn connect(url: &str) -> Result<AsyncPgConnection, diesel::ConnectionError> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
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
                Metrics::inc(&metrics.notifications_total);
                match parse(&notification.payload, hub.registry(), metrics) {
                    Some(change) if change.table.is_empty() => hub.resync_all(),
                    Some(change) => hub.changed(&change),
                    None => {}
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
    use super::*;
    use crate::tables;

    #[test]
    fn notices_parse_into_changes() {
        let registry = tables::registry();
        let m = Metrics::default();
        let c = parse(
            r#"{"v":1,"schema":"public","table":"items","op":"UPDATE","keys":[2],"old_keys":[1]}"#,
            &registry,
            &m,
        )
        .unwrap();
        assert_eq!(
            c,
            Change {
                table: "items",
                keys: Some(vec![2, 1])
            }
        );
        let c = parse(r#"{"v":1,"schema":"public","table":"tasks","op":"TRUNCATE","keys":null,"old_keys":null}"#, &registry, &m).unwrap();
        assert_eq!(
            c,
            Change {
                table: "tasks",
                keys: None
            }
        );
        assert!(
            parse(
                r#"{"v":1,"schema":"public","table":"other","op":"INSERT","keys":[1]}"#,
                &registry,
                &m
            )
            .is_none()
        );
        assert!(
            parse(
                r#"{"v":1,"schema":"elsewhere","table":"items","op":"INSERT","keys":[1]}"#,
                &registry,
                &m
            )
            .is_none()
        );
    }

    #[test]
    fn malformed_notices_refresh_instead_of_crashing() {
        let registry = tables::registry();
        let m = Metrics::default();
        let c = parse(r#"{"table":"items","op":"WHAT"}"#, &registry, &m).unwrap();
        assert_eq!(
            c,
            Change {
                table: "items",
                keys: None
            }
        );
        let c = parse("not json", &registry, &m).unwrap();
        assert_eq!(
            c,
            Change {
                table: "",
                keys: None
            }
        );
        let c = parse(
            r#"{"v":1,"schema":"public","table":"items","op":"INSERT","keys":["a"]}"#,
            &registry,
            &m,
        )
        .unwrap();
        assert_eq!(
            c,
            Change {
                table: "items",
                keys: None
            }
        );
        assert_eq!(m.notifications_malformed_total.load(Ordering::Relaxed), 2);
    }
}

//! One replication session of WAL capture: the stream read event by event,
//! each committed transaction decoded into changes, published once visible
//! (see `visible`), and each position confirmed to the slot only once the
//! readers have handled every change up to it ([`Hub::settled`]). The slot
//! is measured every few seconds on the control connection, which also
//! proves the session alive.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::watch;

use super::settings::{PUBLICATION, QUERY_TIMEOUT, Settings, replication_config};
use super::visible::{self, Unseen, Waited};
use crate::capture::error::CaptureError;
use crate::capture::slot;
use crate::capture::status::CaptureStatus;
use crate::capture::transaction::Decoder;
use crate::engine::{Change, Hub};
use crate::metrics::Metrics;

/// How often the slot's lag is measured (and the session proven alive).
const MEASURE_EVERY: Duration = Duration::from_secs(5);
/// How long the server may take to accept START_REPLICATION.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages handled in a row before the loop looks at its timers again.
const BURST: usize = 256;
/// How long the stream may gather while commits wait to be published
/// (half of `UNSEEN_WAIT`: a publication is delayed by at most this).
const GATHER: Duration = Duration::from_millis(1);

/// How a session ended, when not with an error.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    Lost,
    Shutdown,
}

/// One replication session: the stream from the slot, and the control
/// connection [`super::prepare`] made, which checks visibility and measures
/// the slot. The decoder outlives it (the task's), and is reset per session.
pub(super) struct Session<'a> {
    pub(super) settings: &'a Settings,
    pub(super) hub: &'a Hub,
    pub(super) status: &'a CaptureStatus,
    pub(super) metrics: &'a Metrics,
    pub(super) decoder: &'a mut Decoder,
    pub(super) control: AsyncPgConnection,
}

/// A position waiting for the readers before it is confirmed.
struct Settling {
    lsn: Lsn,
    done: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Session<'_> {
    pub(super) async fn stream(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        connected_before: &mut bool,
        backoff: &mut backon::ExponentialBackoff,
    ) -> Result<Ended, CaptureError> {
        let config = replication_config(self.settings.url(), self.settings.slot())?;
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
            tracing::info!(slot = %self.settings.slot(), "WAL capture reconnected; resyncing every group");
        } else {
            tracing::info!(slot = %self.settings.slot(), publication = PUBLICATION, "streaming changes from the replication slot");
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
        if visible::wait(&mut self.control, &unseen.xids(), shutdown).await? == Waited::Shutdown {
            return Ok(());
        }
        let (changes, end) = unseen.take(self.metrics);
        *emitted = (*emitted).max(end);
        for change in changes {
            self.hub.changed(change);
        }
        Ok(())
    }

    /// Measures the slot's lag; `Some(Lost)` when the session is dead
    /// without having noticed (the slot inactive or gone, the database not
    /// answering).
    async fn measure(&mut self) -> Option<Ended> {
        let slot = self.settings.slot();
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

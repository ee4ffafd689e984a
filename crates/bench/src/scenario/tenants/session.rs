//! An RLS or RECONNECT client's connections: authenticate, subscribe to all
//! of `items`, feed every frame to its `receiver::State`, and follow the
//! control stages (drop the connection, come back and resubscribe, with
//! `since` when resuming).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use pglive_schema::wire::Since;
use pglive_testkit::Client;
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit, watch};

use super::receiver::{LiveOutcome, LiveShared, STAGE_DROP, STAGE_RECONNECT, STAGE_STOP, State};
use crate::connection::{self, GATE_HOLD, SUBSCRIPTION};

/// What one client connects to and as whom.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    pub url: String,
    /// Sent as `{"type":"auth","token":…}` before subscribing.
    pub token: Option<String>,
    /// Every row the client receives must have this tenant.
    pub tenant: Option<String>,
    /// Resubscribe with `since` after a reconnect (else: a fresh snapshot).
    pub resume: bool,
    pub read_buffer: usize,
}

/// Runs one client: connect, subscribe, follow the control stages (drop,
/// reconnect) until `STAGE_STOP`. `gate` holds the connect slots, as in
/// `connection::session`.
pub async fn run(
    shared: Arc<LiveShared>,
    spec: LiveSpec,
    gate: Arc<Semaphore>,
    mut ctl: watch::Receiver<u8>,
) -> LiveOutcome {
    let mut st = State::new(Arc::clone(&shared), spec.tenant.clone());
    let first = session(&mut st, &spec, &gate, &mut ctl, None, STAGE_DROP).await;
    if let Err(e) = first {
        st.out.error = Some(format!("{e:#}"));
        st.out.closed_early = true;
    }
    if !st.out.ready {
        shared.finished.fetch_add(1, Ordering::Release);
    }
    if st.out.error.is_none() && *ctl.borrow() < STAGE_STOP {
        // Dropped; wait for the signal to come back.
        while *ctl.borrow_and_update() < STAGE_RECONNECT {
            if ctl.changed().await.is_err() {
                return st.out;
            }
        }
        if *ctl.borrow() < STAGE_STOP {
            let since = if spec.resume {
                st.out.epoch.clone().map(|epoch| Since {
                    epoch,
                    version: st.out.version,
                })
            } else {
                None
            };
            st.out.reconnected = true;
            st.out.since_sent = since.clone();
            if let Err(e) = session(&mut st, &spec, &gate, &mut ctl, since, STAGE_STOP).await {
                st.out.error = Some(format!("reconnect: {e:#}"));
                st.out.closed_early = true;
            }
        }
    }
    st.out
}

/// One connection: until the control stage reaches `until` (then the socket
/// is dropped) or the connection ends (an error).
async fn session(
    st: &mut State,
    spec: &LiveSpec,
    gate: &Semaphore,
    ctl: &mut watch::Receiver<u8>,
    since: Option<Since>,
    until: u8,
) -> Result<()> {
    let permit = gate.acquire().await.context("connect gate closed")?;
    let mut client = connection::open(&spec.url, spec.read_buffer).await?;
    st.out.connected = true;
    st.shared.open.fetch_add(1, Ordering::AcqRel);
    let res = session_frames(st, spec, &mut client, permit, ctl, since, until).await;
    st.shared.open.fetch_sub(1, Ordering::AcqRel);
    // Dropping `client` closes the socket without a close frame.
    res
}

async fn session_frames(
    st: &mut State,
    spec: &LiveSpec,
    client: &mut Client,
    permit: SemaphorePermit<'_>,
    ctl: &mut watch::Receiver<u8>,
    since: Option<Since>,
    until: u8,
) -> Result<()> {
    st.authenticated = false;
    let mut subscribed = false;
    if let Some(token) = &spec.token {
        client.try_auth(token).await.context("send auth")?;
    }
    let mut permit = Some(permit);
    let gate_deadline = tokio::time::Instant::now() + GATE_HOLD;
    let query = json!({"table": "items"});
    loop {
        if !subscribed && (spec.token.is_none() || st.authenticated) {
            if st.out.reconnected {
                st.resubscribing();
            }
            client
                .try_subscribe(SUBSCRIPTION, &query, since.as_ref())
                .await
                .context("send subscribe")?;
            subscribed = true;
        }
        if *ctl.borrow_and_update() >= until {
            return Ok(());
        }
        let next = tokio::select! {
            biased;
            changed = ctl.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                continue;
            }
            _ = tokio::time::sleep_until(gate_deadline), if permit.is_some() => {
                permit = None;
                continue;
            }
            next = client.next_frame() => next,
        };
        st.on_frame(next?.as_bytes());
        if st.answered() {
            permit = None;
        }
    }
}

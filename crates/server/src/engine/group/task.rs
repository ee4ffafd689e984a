//! A group's task: it waits for changes, applies them to the window or
//! re-runs the query, publishes the result, and serves snapshots, until the
//! group ends. A failing query is retried with the server's backoff policy
//! and, after too many failures in a row, ends the group.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pglive_schema::ErrorCode;
use pglive_schema::wire::DelayReason;

use crate::engine::budget::Resource;
use crate::engine::reads::{ReadError, Reads};
use crate::engine::table::{Key, LiveTable};

use super::current::{Current, publish, serve_snapshots};
use super::related::{self, Touch};
use super::shared::GroupShared;
use super::window::{Applied, Rows, Window, apply, load};

/// The rows a window publishes: its first `limit` (all without a limit,
/// sharing the window's vector).
fn published<T>(window: &Window<T>, limit: Option<u32>) -> Rows<T> {
    match limit {
        None => Arc::clone(&window.prefix),
        Some(limit) => Arc::new(window.prefix.iter().take(limit as usize).cloned().collect()),
    }
}

/// What a group's task owns: the group it keeps current, the engine's reads,
/// and the query it runs.
pub(super) struct GroupTask<T: LiveTable> {
    pub(super) shared: Arc<GroupShared<T>>,
    pub(super) reads: Arc<Reads>,
    pub(super) query: T::Query,
}

impl<T: LiveTable> GroupTask<T> {
    /// Keeps the group's result current until the group ends.
    pub(super) async fn run(self) {
        let GroupTask {
            shared,
            reads,
            query,
        } = self;
        let limit = T::limit(&query);
        let counted = T::counted(&query);
        // The relations the query includes, each holding the related rows
        // of the published rows.
        let mut includes = related::includes::<T>(&query);
        let mut current: Option<Current<T>> = None;
        let mut held = 0usize;
        let mut failures: u32 = 0;
        let mut backoff = crate::backoff::policy();
        tracing::debug!(table = T::NAME, group = %shared.key, "group started");
        loop {
            // A lingering group has no member whose leaving would close it:
            // shutdown ends it directly.
            tokio::select! {
                () = shared.wake.notified() => {}
                () = reads.shutdown.cancelled() => break,
            }
            if shared.is_closed() {
                break;
            }
            let pending = shared.take_pending();
            let mut full = current.is_none() || pending.all;
            let mut next: Option<Window<T>> = None;
            // The keys the batches touched, when they alone changed the
            // result (not a re-run): the diff need only look at them.
            let mut touched: Option<HashSet<Key<T>>> = None;
            if let (false, Some(now)) = (full, current.as_ref()) {
                match apply::<T>(&query, limit, &now.window, &pending.batches) {
                    Applied::Unchanged => {}
                    Applied::Changed(window, keys) => {
                        next = Some(window);
                        touched = Some(keys);
                    }
                    Applied::NeedsQuery => full = true,
                }
            }
            if full {
                touched = None;
            }
            // The query's rows (on a re-run) and its live count: a window
            // that is its whole result counts itself; a limited window that
            // is not is counted again after every round with changes, so
            // that the count converges on what the database has once the
            // changes stop (see README "Live counts").
            let mut count = current.as_ref().and_then(|c| c.count);
            // Related entries that changed this round, encoded.
            let mut related_changes: Vec<serde_json::Value> = Vec::new();
            let read: Result<(), ReadError> = async {
                if full {
                    next = Some(load::<T>(&reads, &shared.ctx, &query).await?);
                }
                if counted {
                    let basis = next.as_ref().or(current.as_ref().map(|c| &c.window));
                    match basis {
                        Some(w) if w.boundary.is_none() => count = Some(w.prefix.len() as u64),
                        Some(_) if full || !pending.batches.is_empty() => {
                            count = Some(reads.count::<T>(&shared.ctx, &query).await?);
                        }
                        _ => {}
                    }
                }
                if !includes.is_empty() {
                    let rows = match (&next, &current) {
                        (Some(window), _) => published(window, limit),
                        (None, Some(now)) => Arc::clone(&now.rows),
                        (None, None) => Arc::new(Vec::new()),
                    };
                    for include in &mut includes {
                        let touch = Touch::of(&pending.related, include.target(), full);
                        let changed = include.refresh(&reads, &shared.ctx, &rows, &touch).await?;
                        related_changes.extend(changed);
                    }
                }
                Ok(())
            }
            .await;
            match read {
                Ok(()) => {
                    if failures > 0 {
                        shared.tell_status(&reads, None);
                        failures = 0;
                        backoff = crate::backoff::policy();
                    }
                }
                Err(err) => {
                    if matches!(err, ReadError::ShuttingDown) || shared.is_closed() {
                        break;
                    }
                    let unavailable =
                        matches!(err, ReadError::Unavailable(_)) || !reads.probe().await;
                    if !unavailable {
                        failures += 1;
                        if failures == 1 {
                            shared.tell_status(&reads, Some(DelayReason::QueryFailing));
                        }
                        tracing::debug!(table = T::NAME, group = %shared.key, error = %err, failures, "query refused");
                        if failures >= reads.limits.max_query_failures {
                            reads.metrics.query_failures.inc();
                            tracing::info!(table = T::NAME, error = %err, "a live query kept failing; its subscribers were told query_failed");
                            let message = format!(
                                "the query failed {failures} times in a row ({}); the subscription was stopped",
                                err.class()
                            );
                            shared.end(&reads, ErrorCode::QueryFailed, &message);
                            break;
                        }
                    }
                    // Nothing is lost: the whole query runs again after a
                    // capped backoff. Members keep their last state meanwhile.
                    shared.mark_all(pending.noticed);
                    let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = reads.shutdown.cancelled() => break,
                    }
                    continue;
                }
            }
            // Only the count or related rows changed: publish the same
            // window with them.
            if next.is_none()
                && let Some(now) = current.as_ref()
                && (count != now.count || !related_changes.is_empty())
            {
                next = Some(Window {
                    prefix: Arc::clone(&now.window.prefix),
                    boundary: now.window.boundary.clone(),
                });
            }
            if let Some(window) = next {
                let rows: Rows<T> = published(&window, limit);
                if rows.len() > reads.limits.max_rows as usize {
                    shared.end(
                        &reads,
                        ErrorCode::ResultTooLarge,
                        "the query's result has more rows than the server serves live; add a filter or a limit",
                    );
                    break;
                }
                let want = window.prefix.len() + includes.iter().map(|i| i.held()).sum::<usize>();
                if !reads
                    .budget
                    .resize(&shared.account, Resource::Rows, held, want)
                {
                    shared.end(
                        &reads,
                        ErrorCode::ServerBusy,
                        "the server holds as many live rows as it may; try again later or narrow the query",
                    );
                    break;
                }
                reads
                    .metrics
                    .rows_held
                    .set(reads.budget.used(Resource::Rows) as i64);
                held = want;
                // A limited result also loses rows no batch touched (pushed
                // past the limit): only an unlimited one takes the short cut.
                let touched = touched.as_ref().filter(|_| limit.is_none());
                current = Some(publish::<T>(
                    &shared,
                    &reads,
                    current.take(),
                    (window, rows, count.filter(|_| counted)),
                    std::mem::take(&mut related_changes),
                    touched,
                    pending.noticed,
                ));
            }
            if let Some(current) = current.as_mut() {
                serve_snapshots::<T>(&shared, &reads, current, pending.resync, &includes);
            }
        }
        reads
            .budget
            .resize(&shared.account, Resource::Rows, held, 0);
        reads
            .metrics
            .rows_held
            .set(reads.budget.used(Resource::Rows) as i64);
        if let Some(mut current) = current {
            current.history.clear(&reads, &shared.account);
        }
        tracing::debug!(table = T::NAME, group = %shared.key, "group ended");
    }
}

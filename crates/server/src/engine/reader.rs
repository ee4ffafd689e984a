//! The change reader: one task per live table. It reads the rows that
//! changes name once per security context that has groups on the table, and
//! hands them to every group of that context.
//!
//! Without it, each group would re-read the changed keys itself: with 2,000
//! filtered subscriptions on one table, one write would cost 2,000 queries.
//! With it, a write costs one keyed read per table and context; each group
//! then decides in memory, with [`LiveTable::matches`], whether the rows
//! enter, change or leave its result.
//!
//! It reads them too for the contexts of other tables' groups whose query
//! includes this table, and hands those groups the same batch: a change to
//! a related row costs one read per context, however many groups include
//! it (each then decides in memory which of its entries the rows touch; see
//! `group::related`).
//!
//! The reader is also the table's point of order: whole-table changes pass
//! through it too, so every group sees batches and "re-run" in the order the
//! reader read them. A batch read before some commit is always followed by
//! the batch or re-run that the commit's own change causes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::group::{Batch, Groups, Including, RelatedBatch};
use super::reads::{ReadError, Reads};
use super::table::{Context, Key, LiveTable, Noticed, Partition};

/// The most partition values a batch remembers; past it, every context
/// reads (as without a hint).
const MAX_PARTS: usize = 1_000;

/// Which partitions pending changes touched.
#[derive(Debug, Default)]
enum Parts {
    /// No change is pending.
    #[default]
    None,
    /// Every pending change named its partitions, by this claim.
    Known {
        claim: String,
        values: HashSet<String>,
    },
    /// Some change did not (no hint, WAL capture, too many): every context
    /// reads.
    Unknown,
}

impl Parts {
    fn add(&mut self, parts: Option<Partition>) {
        *self = match (std::mem::take(self), parts) {
            (Parts::Unknown, _) | (_, None) => Parts::Unknown,
            (Parts::None, Some(p)) => Parts::Known {
                claim: p.claim,
                values: p.values.into_iter().collect(),
            },
            (Parts::Known { claim, mut values }, Some(p)) if claim == p.claim => {
                values.extend(p.values);
                if values.len() > MAX_PARTS {
                    Parts::Unknown
                } else {
                    Parts::Known { claim, values }
                }
            }
            (Parts::Known { .. }, Some(_)) => Parts::Unknown,
        };
    }

    /// Whether `ctx` may see a row of these partitions. A context without
    /// the claim (another role, anonymous) always may: the hint says
    /// nothing about it.
    fn concern(&self, ctx: &Context) -> bool {
        match self {
            Parts::Known { claim, values } => ctx
                .claim_text(claim)
                .is_none_or(|mine| values.contains(&mine)),
            Parts::None | Parts::Unknown => true,
        }
    }
}

struct Pending<K> {
    all: bool,
    keys: HashSet<K>,
    /// The partitions the pending keys' rows are in, old and new.
    parts: Parts,
    /// Changes recorded since the reader started (never reset): what
    /// [`ReaderShared::settled`] waits for.
    marked: u64,
    /// When the earliest pending change was noticed.
    noticed: Option<Noticed>,
}

impl<K> Default for Pending<K> {
    fn default() -> Self {
        Pending {
            all: false,
            keys: HashSet::new(),
            parts: Parts::None,
            marked: 0,
            noticed: None,
        }
    }
}

/// The part of a reader that capture writes to (through the hub).
pub struct ReaderShared<T: LiveTable> {
    /// Written by capture, taken by the reader task; never held across an `.await`.
    pending: Mutex<Pending<Key<T>>>,
    /// Wakes the reader; one stored permit coalesces any number of changes
    /// that arrive during a read into one follow-up read.
    wake: Notify,
    /// How many recorded changes the reader has handled (read and offered
    /// to the groups, or passed on as "re-run"). Written only by the reader
    /// task, watched by [`ReaderShared::settled`]; it closes when this
    /// shared state is dropped with the engine.
    handled: watch::Sender<u64>,
    max_keys: usize,
}

impl<T: LiveTable> std::fmt::Debug for ReaderShared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderShared")
            .field("table", &T::NAME)
            .finish_non_exhaustive()
    }
}

impl<T: LiveTable> ReaderShared<T> {
    pub fn new(max_keys: usize) -> ReaderShared<T> {
        ReaderShared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            handled: watch::Sender::new(0),
            max_keys,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending<Key<T>>> {
        // Each critical section is one merge or take; a panic cannot leave it half done.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records changed keys and wakes the reader. Past the bound on pending
    /// keys the change escalates to "the whole table".
    pub fn mark(
        &self,
        keys: impl IntoIterator<Item = Key<T>>,
        noticed: Option<Noticed>,
        parts: Option<Partition>,
    ) {
        {
            let mut pending = self.lock();
            pending.marked += 1;
            pending.noticed = Noticed::earliest(pending.noticed, noticed);
            if !pending.all {
                pending.keys.extend(keys);
                pending.parts.add(parts);
                if pending.keys.len() > self.max_keys {
                    pending.all = true;
                    pending.keys = HashSet::new();
                }
            }
        }
        self.wake.notify_one();
    }

    /// The whole table may have changed.
    pub fn mark_all(&self, noticed: Option<Noticed>) {
        {
            let mut pending = self.lock();
            pending.marked += 1;
            pending.noticed = Noticed::earliest(pending.noticed, noticed);
            pending.all = true;
            pending.keys = HashSet::new();
        }
        self.wake.notify_one();
    }

    /// Takes the pending work, and how many changes it covers.
    fn take(&self) -> (Pending<Key<T>>, u64) {
        let mut pending = self.lock();
        let marked = pending.marked;
        let taken = Pending {
            all: std::mem::take(&mut pending.all),
            keys: std::mem::take(&mut pending.keys),
            parts: std::mem::take(&mut pending.parts),
            marked,
            noticed: pending.noticed.take(),
        };
        (taken, marked)
    }

    /// Completes once the reader has handled every change recorded before
    /// this call: their rows were read and offered to the groups (or the
    /// groups told to re-run). Changes recorded later do not delay it, so it
    /// completes under a steady stream of writes too. WAL capture confirms
    /// a position to its replication slot only after this.
    pub fn settled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let target = self.lock().marked;
        let mut handled = self.handled.subscribe();
        async move {
            // Closed only when the engine stops: nothing is left to wait for.
            let _ = handled.wait_for(|done| *done >= target).await;
        }
    }

    fn handled(&self, marked: u64) {
        self.handled.send_if_modified(|done| {
            let newer = marked > *done;
            if newer {
                *done = marked;
            }
            newer
        });
    }
}

/// Reads changed rows of `T` until the server shuts down, for `T`'s groups
/// and for the groups of `including` (other tables' groups, whose queries
/// may include `T`).
pub async fn run<T: LiveTable>(
    shared: Arc<ReaderShared<T>>,
    groups: Arc<Groups<T>>,
    including: Vec<Arc<dyn Including>>,
    reads: Arc<Reads>,
) {
    // Lingering groups are swept a few times per linger period; without
    // lingering there is nothing to sweep but groups that ended on their
    // own, which their members' leaves remove.
    let linger = reads.limits.group_linger;
    let mut sweep = tokio::time::interval((linger / 4).max(Duration::from_millis(250)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.wake.notified() => {}
            _ = sweep.tick(), if !linger.is_zero() => {
                groups.sweep();
                continue;
            }
            () = reads.shutdown.cancelled() => break,
        }
        let (pending, marked) = shared.take();
        if pending.all {
            groups.mark_all(pending.noticed);
            for other in &including {
                other.related_changed_all(T::NAME, pending.noticed);
            }
            shared.handled(marked);
            continue;
        }
        if pending.keys.is_empty() {
            shared.handled(marked);
            continue;
        }
        let keys: Vec<Key<T>> = pending.keys.iter().cloned().collect();
        let keys = &keys;
        let key_set = Arc::new(pending.keys);
        // One read per context that has groups now and may see the rows, a
        // few at a time; each context's groups get their batch as soon as it
        // is read. With a partition hint, a context of another partition
        // could see none of the rows, before or after: its read would find
        // nothing, and its groups hold none of them, so it is skipped.
        let concurrency = reads.limits.max_concurrent_refreshes.max(1);
        let reads_ref = &reads;
        // The contexts of this table's groups, and those of other tables'
        // groups that include it (with none of this table's groups).
        let mut contexts: HashMap<Arc<Context>, Vec<_>> = groups.by_context().into_iter().collect();
        for other in &including {
            for ctx in other.contexts_including(T::NAME) {
                contexts.entry(ctx).or_default();
            }
        }
        let (concerned, skipped): (Vec<_>, Vec<_>) = contexts
            .into_iter()
            .partition(|(ctx, _)| pending.parts.concern(ctx));
        reads
            .metrics
            .reads_skipped_by_partition
            .inc_by(skipped.len() as u64);
        let mut results = futures_util::stream::iter(concerned)
            .map(|(ctx, members)| async move {
                let result = reads_ref.fetch::<T>(&ctx, keys).await;
                (ctx, members, result)
            })
            .buffer_unordered(concurrency);
        while let Some((ctx, members, result)) = results.next().await {
            match result {
                Ok(rows) => {
                    let batch = Arc::new(Batch {
                        keys: Arc::clone(&key_set),
                        rows,
                        noticed: pending.noticed,
                    });
                    for group in members {
                        group.offer(&batch);
                    }
                    let related: RelatedBatch = batch;
                    for other in &including {
                        other.offer_related(&ctx, T::NAME, Some(&related), pending.noticed);
                    }
                }
                Err(ReadError::ShuttingDown) => return,
                Err(err) => {
                    // The changed rows could not be read for this context: its
                    // groups re-run their queries instead (in order: after every
                    // batch they already have), and retry on their own. The
                    // reader never stalls its table.
                    tracing::debug!(table = T::NAME, error = %err, "reading changed rows failed; re-running the context's queries");
                    for group in members {
                        group.mark_all(pending.noticed);
                    }
                    for other in &including {
                        other.offer_related(&ctx, T::NAME, None, pending.noticed);
                    }
                }
            }
        }
        shared.handled(marked);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use pglive_schema::Item;
    use pglive_schema::scalar::Int8;

    use super::*;

    fn ctx(claims: Option<&str>) -> Context {
        Context {
            role: Some("pglive_user".into()),
            claims: claims.map(Into::into),
        }
    }

    fn part(claim: &str, values: &[&str]) -> Option<Partition> {
        Some(Partition {
            claim: claim.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        })
    }

    /// Partition values merge per claim; a change without them, another
    /// claim, or too many values make every context read again.
    #[test]
    fn partitions_decide_which_contexts_read() {
        let acme = ctx(Some(r#"{"tenant":"acme"}"#));
        let globex = ctx(Some(r#"{"tenant":"globex"}"#));
        let numbered = ctx(Some(r#"{"tenant":7}"#));
        let anonymous = ctx(None);
        let other_claim = ctx(Some(r#"{"org":"acme"}"#));

        let mut parts = Parts::default();
        assert!(parts.concern(&globex), "nothing pending says nothing");
        parts.add(part("tenant", &["acme"]));
        assert!(parts.concern(&acme));
        assert!(!parts.concern(&globex));
        assert!(!parts.concern(&numbered));
        assert!(parts.concern(&anonymous), "no claim: the hint says nothing");
        assert!(parts.concern(&other_claim));
        parts.add(part("tenant", &["7"]));
        assert!(parts.concern(&numbered), "numbers compare as text");
        assert!(!parts.concern(&globex));

        let mut unknown = Parts::default();
        unknown.add(part("tenant", &["acme"]));
        unknown.add(None);
        assert!(unknown.concern(&globex));
        unknown.add(part("tenant", &["acme"]));
        assert!(unknown.concern(&globex), "unknown stays unknown");

        let mut mixed = Parts::default();
        mixed.add(part("tenant", &["acme"]));
        mixed.add(part("org", &["acme"]));
        assert!(mixed.concern(&globex));

        let many: Vec<String> = (0..=MAX_PARTS).map(|i| i.to_string()).collect();
        let mut overflow = Parts::default();
        overflow.add(Some(Partition {
            claim: "tenant".into(),
            values: many[..MAX_PARTS].to_vec(),
        }));
        assert!(!overflow.concern(&globex));
        overflow.add(Some(Partition {
            claim: "tenant".into(),
            values: many[MAX_PARTS..].to_vec(),
        }));
        assert!(
            overflow.concern(&globex),
            "past the cap every context reads"
        );
    }

    /// `settled` waits for the changes recorded before it, not for later
    /// ones: under a steady stream of changes it still completes.
    #[tokio::test]
    async fn settled_waits_only_for_earlier_changes() {
        let shared = ReaderShared::<Item>::new(10);
        // Nothing recorded: settled at once.
        assert!(shared.settled().now_or_never().is_some());
        shared.mark([Int8(1)], None, None);
        let mut first = Box::pin(shared.settled());
        assert!(first.as_mut().now_or_never().is_none());
        shared.mark_all(None);
        let second = shared.settled();
        // The reader takes both changes and handles them in one round.
        let (pending, marked) = shared.take();
        assert!(pending.all);
        assert_eq!(marked, 2);
        shared.mark([Int8(2)], None, None);
        shared.handled(marked);
        tokio::time::timeout(Duration::from_secs(1), first)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .unwrap();
        // The change recorded after the take is not handled yet.
        assert!(shared.settled().now_or_never().is_none());
    }
}

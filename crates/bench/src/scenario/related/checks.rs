//! What the clients saw, checked: every write that changed a task a client
//! watches must reach it (its count of that task becomes the one the write
//! left), and every client must end up with its page as a fresh run of the
//! nested query returns it.
//!
//! Deliveries are counted from each client's log of related entries. Per
//! client and task, the writes that changed the task leave counts c1, c2,
//! …; each entry received for the task is matched to the latest write that
//! was sent before the entry arrived, that is not earlier than the previous
//! entry's match, and that left the entry's count. A write has reached the
//! client at the first entry matched to it or to a later write (a later
//! write stands for an earlier one a coalesced diff skipped, as in the
//! other scenarios). An entry that matches no write is counted as
//! unexplained. A write that changed two watched tasks of one page (a move
//! within a page) has reached the client when both have.

use std::collections::HashMap;

use serde::Serialize;

use super::client::{RelOutcome, Window};
use super::nested::{PageState, page_of};
use super::writer::OpRecord;
use crate::report::{Percentiles, percentiles};

/// Deliveries of the writes to the clients watching the tasks they
/// changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RDeliveries {
    pub expected: u64,
    pub seen: u64,
    pub missing: u64,
    /// Commit → the client's count reflects the write.
    pub latency_ms: Percentiles,
    /// Entries whose count no write left at that point.
    pub unexplained_entries: u64,
    pub examples: Vec<String>,
}

/// The first time (µs since t0) client `o` showed each write of `ops` that
/// touched `task`, or a later one (`None`: never); `unexplained` counts its
/// entries for `task` that match no write.
fn receipts_for_task(
    o: &RelOutcome,
    task: i64,
    writes: &[(usize, u64)],
    ops: &[OpRecord],
    unexplained: &mut u64,
) -> Vec<Option<u64>> {
    // first_at[k]: the first arrival matched to writes[k].
    let mut first_at: Vec<Option<u64>> = vec![None; writes.len()];
    let mut cur = 0usize;
    for e in o.log.iter().filter(|e| e.task == task) {
        let found = (cur..writes.len()).rev().find(|&k| {
            let (s, count) = writes[k];
            ops[s].sent_us <= e.at_us && count == e.count
        });
        match found {
            Some(k) => {
                cur = k;
                if first_at[k].is_none() {
                    first_at[k] = Some(e.at_us);
                }
            }
            None => *unexplained += 1,
        }
    }
    // A write is shown once it or a later one is.
    let mut best: Option<u64> = None;
    let mut out: Vec<Option<u64>> = first_at
        .iter()
        .rev()
        .map(|t| {
            if let Some(t) = *t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
            best
        })
        .collect();
    out.reverse();
    out
}

/// Counts every write's deliveries to the clients watching a task it
/// changed (client i on page `page_of_client[i]`); only pages below
/// `pages` are watched.
pub fn deliveries(
    ops: &[OpRecord],
    outcomes: &[RelOutcome],
    page_of_client: &[usize],
) -> RDeliveries {
    let mut d = RDeliveries::default();
    // Per task: the writes that changed it, with the count each left.
    let mut by_task: HashMap<i64, Vec<(usize, u64)>> = HashMap::new();
    for (s, op) in ops.iter().enumerate() {
        for (t, c) in op.touched() {
            by_task.entry(t).or_default().push((s, c));
        }
    }
    let mut lat = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let page = page_of_client[i];
        // Per write: when every watched task it changed showed it.
        let mut shown: HashMap<usize, Option<u64>> = HashMap::new();
        for (&task, writes) in by_task.iter().filter(|(t, _)| page_of(**t) == page) {
            let got = receipts_for_task(o, task, writes, ops, &mut d.unexplained_entries);
            for (k, &(s, _)) in writes.iter().enumerate() {
                let e = shown.entry(s).or_insert(Some(0));
                *e = match (*e, got[k]) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
        for (s, at) in shown {
            d.expected += 1;
            match at {
                Some(at) => {
                    d.seen += 1;
                    lat.push(
                        u32::try_from(at.saturating_sub(ops[s].commit_us)).unwrap_or(u32::MAX),
                    );
                }
                None => {
                    d.missing += 1;
                    if d.examples.len() < 5 {
                        d.examples.push(format!(
                            "client {i} (page {page}) never showed write {s} ({:?} → {:?})",
                            ops[s].from, ops[s].to
                        ));
                    }
                }
            }
        }
    }
    d.latency_ms = percentiles(lat);
    d
}

/// What the clients' pages are checked against.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RConvergence {
    pub clients_converged: usize,
    pub clients_diverged: usize,
    pub examples: Vec<String>,
}

/// A client's windows without the empty ones (an entry with no comments
/// and a count of 0 is the same as no entry).
fn nonempty(w: &HashMap<i64, Window>) -> HashMap<i64, Window> {
    w.iter()
        .filter(|(_, w)| w.count > 0 || !w.comments.is_empty())
        .map(|(k, w)| (*k, w.clone()))
        .collect()
}

/// Compares every client's page with a fresh read of it (`want[page]`).
pub fn converge(
    outcomes: &[RelOutcome],
    page_of_client: &[usize],
    want: &[PageState],
) -> RConvergence {
    let mut c = RConvergence::default();
    for (i, o) in outcomes.iter().enumerate() {
        let w = &want[page_of_client[i]];
        let got = nonempty(&o.windows);
        if o.tasks == w.tasks && got == w.windows {
            c.clients_converged += 1;
            continue;
        }
        c.clients_diverged += 1;
        if c.examples.len() < 5 {
            let differ: Vec<String> = w
                .tasks
                .iter()
                .filter(|t| got.get(t) != w.windows.get(t))
                .take(3)
                .map(|t| {
                    format!(
                        "task {t}: has {:?}, want {:?}",
                        got.get(t).map(|w| (w.count, w.comments.len())),
                        w.windows.get(t).map(|w| (w.count, w.comments.len()))
                    )
                })
                .collect();
            c.examples.push(format!(
                "client {i} (page {}): {} tasks, want {}; {}",
                page_of_client[i],
                o.tasks.len(),
                w.tasks.len(),
                differ.join("; ")
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::super::client::Entry;
    use super::*;

    fn op(task: i64, count: u64, sent_us: u64) -> OpRecord {
        OpRecord {
            insert: true,
            from: None,
            to: (task, count),
            sent_us,
            commit_us: sent_us + 10,
            round_trip_us: 10,
        }
    }

    #[test]
    fn coalesced_and_missing_writes() {
        // Task 1 (page 0) gets three inserts; the client sees the second
        // (the first was coalesced into it) but never the third.
        let ops = vec![op(1, 6, 100), op(1, 7, 200), op(1, 8, 300), op(21, 3, 400)];
        let o = RelOutcome {
            log: vec![
                Entry {
                    task: 1,
                    count: 7,
                    at_us: 250,
                },
                Entry {
                    task: 1,
                    count: 9,
                    at_us: 260,
                },
            ],
            ..RelOutcome::default()
        };
        let d = deliveries(&ops, &[o], &[0]);
        // Write 3 is on page 1: not this client's.
        assert_eq!((d.expected, d.seen, d.missing), (3, 2, 1));
        assert_eq!(d.unexplained_entries, 1);
        assert_eq!(d.latency_ms.count, 2);
    }
}

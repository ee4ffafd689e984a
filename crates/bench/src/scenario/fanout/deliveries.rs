//! Deliveries: when each write reached each client that should see it,
//! from what the clients recorded and what the writer published.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::receiver::ClientOutcome;
use crate::report::{Percentiles, percentiles};
use crate::shared::{KIND_NONE, Shared};
use crate::writer::WriterOutcome;

/// Delivery statistics over all clients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deliveries {
    pub expected: u64,
    pub seen: u64,
    pub missing: u64,
    /// Deliveries stamped before the writer saw its COMMIT return (counted
    /// as 0 ms).
    pub before_commit_ack: u64,
    pub latency_ms: Percentiles,
    pub clients_converged: usize,
    /// When the last client had seen every write meant for it, after the
    /// last commit; `None` if some client never did.
    pub converged_after_last_commit_ms: Option<f64>,
    /// Latest frame of any client, after the last commit.
    pub sending_after_last_commit_ms: f64,
    pub deliveries_per_second: f64,
    /// Clients that missed something: (client index, missing count), first few.
    pub missing_examples: Vec<(usize, u64)>,
}

/// Computes deliveries. A write counts as delivered to a client at the first
/// frame carrying its marker (or, for a DELETE, its key in `deletes` / the
/// marker's disappearance from a full state), or when a later write to the
/// same row is delivered (the client then has a state at least that new: a
/// snapshot-based or coalescing server legitimately skips intermediate
/// values).
pub fn deliveries(
    shared: &Shared,
    outcomes: &[ClientOutcome],
    groups: &[u32],
    writer: &WriterOutcome,
) -> Deliveries {
    let n = shared.slots.len();
    let kind: Vec<u8> = shared
        .slots
        .iter()
        .map(|s| s.kind.load(Ordering::Acquire))
        .collect();
    let group: Vec<u32> = shared
        .slots
        .iter()
        .map(|s| s.group.load(Ordering::Acquire))
        .collect();
    let commit: Vec<u64> = shared
        .slots
        .iter()
        .map(|s| s.commit_us.load(Ordering::Acquire))
        .collect();
    let mut succ: Vec<Option<usize>> = vec![None; n];
    for (s, slot) in shared.slots.iter().enumerate() {
        let prev = slot.prev.load(Ordering::Acquire) as usize;
        if prev > 0 && commit[s] != 0 {
            succ[prev - 1] = Some(s);
        }
    }
    let last_commit = writer.last_commit_us;
    let first_commit = writer.first_commit_us;
    let mut d = Deliveries::default();
    let mut lat: Vec<u32> = Vec::new();
    let mut eff: Vec<u32> = vec![0; n];
    let mut all_converged = true;
    let mut converged_at: u64 = 0;
    let mut last_delivery: u64 = 0;
    for (ci, (out, &g)) in outcomes.iter().zip(groups).enumerate() {
        let mut missing = 0u64;
        let mut client_last = 0u64;
        for s in (0..n).rev() {
            if kind[s] == KIND_NONE || commit[s] == 0 {
                eff[s] = 0;
                continue;
            }
            let mut e = out.recv.get(s).copied().unwrap_or(0);
            if let Some(t) = succ[s] {
                let et = eff[t];
                if et != 0 && (e == 0 || et < e) {
                    e = et;
                }
            }
            eff[s] = e;
            if group[s] != g {
                continue;
            }
            d.expected += 1;
            if e == 0 {
                missing += 1;
                continue;
            }
            d.seen += 1;
            let at = u64::from(e - 1);
            let committed = commit[s] - 1;
            if at < committed {
                d.before_commit_ack += 1;
            }
            lat.push(u32::try_from(at.saturating_sub(committed)).unwrap_or(u32::MAX));
            client_last = client_last.max(at);
        }
        last_delivery = last_delivery.max(client_last);
        if missing == 0 {
            d.clients_converged += 1;
            converged_at = converged_at.max(client_last);
        } else {
            all_converged = false;
            if d.missing_examples.len() < 10 {
                d.missing_examples.push((ci, missing));
            }
        }
        d.missing += missing;
        if out.last_frame_us > last_commit {
            d.sending_after_last_commit_ms = d
                .sending_after_last_commit_ms
                .max((out.last_frame_us - last_commit) as f64 / 1000.0);
        }
    }
    d.latency_ms = percentiles(lat);
    if all_converged && d.expected > 0 {
        d.converged_after_last_commit_ms =
            Some(converged_at.saturating_sub(last_commit) as f64 / 1000.0);
    }
    let span = last_delivery.saturating_sub(first_commit) as f64 / 1e6;
    if span > 0.0 {
        d.deliveries_per_second = d.seen as f64 / span;
    }
    d
}

//! A group's recent diffs, as sent, for clients that resume after a
//! reconnect: a resuming member gets what it missed from here, at no cost to
//! the database.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::engine::budget::{Account, Resource};
use crate::engine::reads::Reads;

/// A group's recent diff bodies, as sent, for clients that resume after a
/// reconnect. Contiguous: each diff starts at the version the previous one
/// ended at. Bounded by count and bytes per group, and by the budget of all
/// groups together (charged to the account that made the group exist).
#[derive(Default)]
pub(super) struct History {
    diffs: VecDeque<(u64, u64, Bytes)>,
    bytes: usize,
}

impl History {
    pub(super) fn push(
        &mut self,
        (from, to): (u64, u64),
        body: Bytes,
        reads: &Reads,
        account: &Account,
    ) {
        if self.diffs.back().is_some_and(|d| d.1 != from) {
            self.clear(reads, account);
        }
        let limits = &reads.limits;
        if limits.history_diffs == 0 || body.len() > limits.history_bytes {
            self.clear(reads, account);
            return;
        }
        while self.diffs.len() >= limits.history_diffs
            || self.bytes + body.len() > limits.history_bytes
        {
            self.pop(reads, account);
        }
        if !reads.budget.take(account, Resource::History, body.len()) {
            // Every group's history together is at its bound (or its
            // identity's share is): this group keeps none rather than a gap.
            self.clear(reads, account);
            return;
        }
        self.bytes += body.len();
        self.diffs.push_back((from, to, body));
        reads
            .metrics
            .history_bytes
            .set(reads.budget.used(Resource::History) as i64);
    }

    fn pop(&mut self, reads: &Reads, account: &Account) {
        if let Some((_, _, body)) = self.diffs.pop_front() {
            self.bytes -= body.len();
            reads.budget.release(account, Resource::History, body.len());
        }
    }

    pub(super) fn clear(&mut self, reads: &Reads, account: &Account) {
        while !self.diffs.is_empty() {
            self.pop(reads, account);
        }
        reads
            .metrics
            .history_bytes
            .set(reads.budget.used(Resource::History) as i64);
    }

    /// The diffs from `version` to the newest, if this history holds them all.
    pub(super) fn since(&self, version: u64, current: u64) -> Option<Vec<Bytes>> {
        if version == current {
            return Some(Vec::new());
        }
        let start = self.diffs.iter().position(|d| d.0 == version)?;
        Some(self.diffs.iter().skip(start).map(|d| d.2.clone()).collect())
    }
}

//! What all groups may hold together, and each identity's fair share of it.
//!
//! Four global budgets bound what clients can make the server hold: groups,
//! rows held by groups, bytes of diff history, and subscriptions. Each is
//! also shared fairly between identities (an [`Account`]: a token's `sub`,
//! or one connection when anonymous). A group is charged to the account
//! that made it exist, once, however many others share it; a subscription
//! to the account of its connection.
//!
//! The share rule: an account may always take up to its share (`share` ×
//! the budget, rounded down, at least one unit); past its share it may
//! borrow only what leaves the share's worth free for others (nothing is
//! kept free in a budget smaller than one share's worth of units: there
//! fairness would mean refusing most of what is asked). So one identity alone can use
//! most of an idle server, but can never take the last share: whoever comes
//! next still gets theirs. Past both, the caller answers `server_busy` to
//! that client's new subscriptions only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// One identity's part of every budget. Held by its connections' members
/// and by the groups it made exist; charges are released by the same
/// [`Budget`] that took them.
#[derive(Debug, Default)]
pub struct Account {
    groups: AtomicUsize,
    rows: AtomicUsize,
    history: AtomicUsize,
    subscriptions: AtomicUsize,
}

/// The kinds of budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Groups,
    Rows,
    History,
    Subscriptions,
}

impl Account {
    fn used(&self, resource: Resource) -> &AtomicUsize {
        match resource {
            Resource::Groups => &self.groups,
            Resource::Rows => &self.rows,
            Resource::History => &self.history,
            Resource::Subscriptions => &self.subscriptions,
        }
    }

    /// What the account holds of `resource` now.
    #[cfg(test)]
    pub fn holds(&self, resource: Resource) -> usize {
        self.used(resource).load(Ordering::SeqCst)
    }
}

/// One global budget: its use, its bound, and each account's share.
#[derive(Debug)]
struct Limit {
    used: AtomicUsize,
    max: usize,
    /// What an account is sure to get.
    share: usize,
    /// What borrowing leaves free.
    reserve: usize,
}

impl Limit {
    fn new(max: usize, fraction: f64) -> Limit {
        // Rounded down, at least one, at most the whole budget.
        let share = ((max as f64) * fraction.clamp(0.0, 1.0)) as usize;
        Limit {
            used: AtomicUsize::new(0),
            max,
            share: share.clamp(1, max.max(1)),
            reserve: share.min(max),
        }
    }

    /// Takes `n` for `account` under the share rule; false (nothing taken)
    /// when it may not.
    fn take(&self, account: &AtomicUsize, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        // The account first: concurrent takes of one account each see the
        // others', so no two of them both count as "within the share".
        let before = account.fetch_add(n, Ordering::SeqCst);
        let within = before + n <= self.share;
        let bound = if within {
            self.max
        } else {
            self.max - self.reserve
        };
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + n <= bound).then_some(used + n)
            })
            .is_ok();
        if !taken {
            account.fetch_sub(n, Ordering::SeqCst);
        }
        taken
    }

    fn release(&self, account: &AtomicUsize, n: usize) {
        account.fetch_sub(n, Ordering::SeqCst);
        self.used.fetch_sub(n, Ordering::SeqCst);
    }
}

/// The fraction of every budget an identity is sure to get, unless the
/// configuration says otherwise.
pub const DEFAULT_SHARE: f64 = 0.1;

/// Every global budget, and the accounts of the identities that hold them.
#[derive(Debug)]
pub struct Budget {
    groups: Limit,
    rows: Limit,
    history: Limit,
    subscriptions: Limit,
    /// Accounts of identities with a name (a token's `sub`), so that all of
    /// one user's connections share one. Entries whose account nobody holds
    /// any more are pruned when the map has doubled since the last prune,
    /// so it stays within twice the accounts alive. Locked for one lookup
    /// or insert at a time, never across an `.await`.
    named: Mutex<Named>,
}

#[derive(Debug, Default)]
struct Named {
    accounts: HashMap<String, Weak<Account>>,
    pruned_at: usize,
}

/// What each budget allows: the server's bounds and the identity share.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub groups: usize,
    pub rows: usize,
    pub history_bytes: usize,
    pub subscriptions: usize,
    /// The fraction of each an identity is sure to get (0 to 1).
    pub share: f64,
}

impl Budget {
    pub fn new(bounds: Bounds) -> Budget {
        Budget {
            groups: Limit::new(bounds.groups, bounds.share),
            rows: Limit::new(bounds.rows, bounds.share),
            history: Limit::new(bounds.history_bytes, bounds.share),
            subscriptions: Limit::new(bounds.subscriptions, bounds.share),
            named: Mutex::new(Named::default()),
        }
    }

    fn limit(&self, resource: Resource) -> &Limit {
        match resource {
            Resource::Groups => &self.groups,
            Resource::Rows => &self.rows,
            Resource::History => &self.history,
            Resource::Subscriptions => &self.subscriptions,
        }
    }

    /// The account of the identity `name` (a token's `sub`), shared by all
    /// its connections; a fresh one of its own for `None` (an anonymous
    /// connection is its own identity).
    pub fn account(&self, name: Option<&str>) -> Arc<Account> {
        let Some(name) = name else {
            return Arc::new(Account::default());
        };
        let mut named = self.named.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(account) = named.accounts.get(name).and_then(Weak::upgrade) {
            return account;
        }
        if named.accounts.len() >= 2 * named.pruned_at.max(64) {
            named.accounts.retain(|_, a| a.strong_count() > 0);
            named.pruned_at = named.accounts.len();
        }
        let account = Arc::new(Account::default());
        named
            .accounts
            .insert(name.to_owned(), Arc::downgrade(&account));
        account
    }

    /// Takes `n` of `resource` for `account`; false (nothing taken) past the
    /// global bound or the account's share (see the module's doc).
    pub fn take(&self, account: &Account, resource: Resource, n: usize) -> bool {
        self.limit(resource).take(account.used(resource), n)
    }

    /// Gives back `n` of `resource` that `account` took.
    pub fn release(&self, account: &Account, resource: Resource, n: usize) {
        self.limit(resource).release(account.used(resource), n);
    }

    /// Moves `account`'s charge of `resource` from `from` to `to`; false
    /// (nothing moved) when growing may not.
    pub fn resize(&self, account: &Account, resource: Resource, from: usize, to: usize) -> bool {
        if to <= from {
            self.release(account, resource, from - to);
            true
        } else {
            self.take(account, resource, to - from)
        }
    }

    /// What all accounts hold of `resource` now.
    pub fn used(&self, resource: Resource) -> usize {
        self.limit(resource).used.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(groups: usize, share: f64) -> Budget {
        Budget::new(Bounds {
            groups,
            rows: 1_000,
            history_bytes: 1_000,
            subscriptions: 1_000,
            share,
        })
    }

    #[test]
    fn one_identity_borrows_but_never_takes_the_last_share() {
        let b = budget(100, 0.1);
        let alice = b.account(Some("alice"));
        let mut took = 0;
        while b.take(&alice, Resource::Groups, 1) {
            took += 1;
        }
        assert_eq!(took, 90, "borrowing stops a share short of the bound");
        let bob = b.account(Some("bob"));
        for _ in 0..10 {
            assert!(b.take(&bob, Resource::Groups, 1), "bob gets his share");
        }
        assert!(!b.take(&bob, Resource::Groups, 1), "the budget is full");
        assert_eq!(b.used(Resource::Groups), 100);
        b.release(&alice, Resource::Groups, 90);
        assert_eq!(alice.holds(Resource::Groups), 0);
        assert!(b.take(&bob, Resource::Groups, 1), "bob may borrow now");
    }

    #[test]
    fn a_refused_take_leaves_nothing_charged() {
        let b = budget(10, 0.5);
        let a = b.account(None);
        assert!(!b.take(&a, Resource::Rows, 2_000));
        assert_eq!(a.holds(Resource::Rows), 0);
        assert_eq!(b.used(Resource::Rows), 0);
        assert!(b.resize(&a, Resource::Rows, 0, 400));
        assert!(b.resize(&a, Resource::Rows, 400, 100));
        assert_eq!(b.used(Resource::Rows), 100);
    }

    #[test]
    fn one_name_is_one_account_and_anonymous_connections_are_their_own() {
        let b = budget(10, 0.1);
        let first = b.account(Some("alice"));
        assert!(Arc::ptr_eq(&first, &b.account(Some("alice"))));
        assert!(!Arc::ptr_eq(&b.account(None), &b.account(None)));
        drop(first);
        // Forgotten names are pruned as the map grows.
        for i in 0..1_000 {
            let _ = b.account(Some(&format!("user{i}")));
        }
        assert!(b.named.lock().unwrap().accounts.len() <= 2 * 64 + 1);
    }

    #[test]
    fn a_share_of_the_whole_budget_or_of_a_tiny_one_still_works() {
        let whole = budget(5, 1.0);
        let a = whole.account(None);
        for _ in 0..5 {
            assert!(whole.take(&a, Resource::Groups, 1));
        }
        // Smaller than one share's worth: nothing is kept free.
        let tiny = budget(2, 0.1);
        let (a, b) = (tiny.account(None), tiny.account(None));
        assert!(tiny.take(&a, Resource::Groups, 1));
        assert!(tiny.take(&a, Resource::Groups, 1));
        assert!(!tiny.take(&b, Resource::Groups, 1));
        let small = budget(20, 0.1);
        let a = small.account(None);
        while small.take(&a, Resource::Groups, 1) {}
        assert_eq!(small.used(Resource::Groups), 18, "two kept free");
    }
}

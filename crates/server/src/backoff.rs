//! The one retry policy of every task that reconnects or retries on its
//! own: capture's LISTEN connection and replication session, and a group
//! whose query PostgreSQL refuses.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays of 100 ms doubling to 5 s, jittered, without end. Short at first
/// because most losses are a blip (a restarting PostgreSQL answers again
/// within a second); capped at 5 s because a client sees "delayed" for as
/// long as we wait; jittered so that many tasks (or servers) failing
/// together do not all retry in the same instant.
pub fn policy() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let delays: Vec<Duration> = policy().take(20).collect();
        assert_eq!(delays.len(), 20, "the policy never gives up");
        // Jitter adds up to one more delay on top of each.
        assert!(delays[0] <= Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(10)));
        assert!(delays[19] >= Duration::from_secs(5));
    }
}

//! The per-connection message rate limit: a token bucket (the `governor`
//! crate) that every client frame draws from, pings and binary frames
//! included, plus what to do about a client that keeps flooding.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// What to do with one client frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Drop it; `tell` when the client should get a `rate_limited` error
    /// (at most one a second).
    Drop {
        tell: bool,
    },
    /// The client kept flooding far past its limit: close the connection.
    Close,
}

pub struct RateLimit {
    bucket: DefaultDirectRateLimiter,
    /// Frames dropped since the last allowed one.
    dropped: u32,
    /// Dropped frames after which the connection is closed.
    close_after: u32,
    told_at: Option<Instant>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// `per_second` sustained, bursts of twice that.
    pub fn new(per_second: u32) -> RateLimit {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        RateLimit {
            bucket: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            dropped: 0,
            // Ten bursts' worth of frames ignored in a row is not a client
            // that slows down when told.
            close_after: burst.get().saturating_mul(10),
            told_at: None,
        }
    }

    pub fn check(&mut self) -> Verdict {
        if self.bucket.check().is_ok() {
            self.dropped = 0;
            return Verdict::Allow;
        }
        self.dropped = self.dropped.saturating_add(1);
        if self.dropped > self.close_after {
            return Verdict::Close;
        }
        let now = Instant::now();
        let tell = self
            .told_at
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if tell {
            self.told_at = Some(now);
        }
        Verdict::Drop { tell }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_pass_floods_are_told_once_then_closed() {
        let mut rate = RateLimit::new(5);
        for _ in 0..10 {
            assert_eq!(rate.check(), Verdict::Allow);
        }
        assert_eq!(rate.check(), Verdict::Drop { tell: true });
        assert_eq!(rate.check(), Verdict::Drop { tell: false });
        let mut last = Verdict::Allow;
        for _ in 0..200 {
            last = rate.check();
            if last == Verdict::Close {
                break;
            }
        }
        assert_eq!(last, Verdict::Close);
    }
}

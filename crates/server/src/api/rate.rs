//! Requests per second per client address, over the whole API: past its
//! rate (and a burst of twice that), an address is refused with 429 until it
//! slows down.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use futures_util::future::ready;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use warp::Filter;
use warp::reject::Rejection;

use super::rejection::Refused;
use crate::connections::ClientAddr;

/// Client addresses the rate limiter remembers before it forgets the idle ones.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Requests per second per client address (bursts of twice that). Its
/// memory is one entry per recent address, pruned past
/// `MAX_TRACKED_CLIENTS`.
pub(super) struct PerAddress(DefaultKeyedRateLimiter<IpAddr>);

impl PerAddress {
    pub(super) fn new(per_second: u32) -> PerAddress {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        PerAddress(RateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        ))
    }

    /// Whether a request from `addr` may proceed now (one without a known
    /// address always may).
    fn admits(&self, addr: Option<ClientAddr>) -> bool {
        let Some(ClientAddr(addr)) = addr else {
            return true;
        };
        if self.0.len() > MAX_TRACKED_CLIENTS {
            self.0.retain_recent();
        }
        self.0.check_key(&addr.ip()).is_ok()
    }
}

/// Passes the requests `limiter` admits; refuses the others.
pub(super) fn limit(
    limiter: Arc<PerAddress>,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and_then(move |addr: Option<ClientAddr>| {
            ready(if limiter.admits(addr) {
                Ok(())
            } else {
                Err(warp::reject::custom(Refused::RateLimited))
            })
        })
        .untuple_one()
}

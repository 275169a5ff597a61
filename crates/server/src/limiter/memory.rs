//! The in-process rate limiter: one GCRA bucket per (category, key), from `governor`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use super::{Category, Decision, Quota, RateLimiter};

type KeyedLimiter =
    governor::RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

struct Bucket {
    limiter: KeyedLimiter,
    quota: Quota,
}

/// Buckets live in memory: a restart forgets them, and several instances each count on
/// their own. Stale keys are dropped by [`RateLimiter::forget_idle`].
pub struct InProcessLimiter {
    buckets: HashMap<Category, Bucket>,
    clock: DefaultClock,
}

impl InProcessLimiter {
    pub fn new(quotas: impl IntoIterator<Item = (Category, Quota)>) -> Self {
        let buckets = quotas
            .into_iter()
            .map(|(category, quota)| {
                let burst = NonZeroU32::new(quota.requests).unwrap_or(NonZeroU32::MIN);
                let replenish = quota.period / burst.get();
                let governor_quota = governor::Quota::with_period(replenish.max(Duration::from_nanos(1)))
                    .expect("period is positive")
                    .allow_burst(burst);
                let limiter =
                    governor::RateLimiter::keyed(governor_quota).with_middleware::<StateInformationMiddleware>();
                (category, Bucket { limiter, quota })
            })
            .collect();
        Self { buckets, clock: DefaultClock::default() }
    }
}

impl RateLimiter for InProcessLimiter {
    /// Drops buckets that are full again, so memory does not grow with every IP seen.
    fn forget_idle(&self) {
        for bucket in self.buckets.values() {
            bucket.limiter.retain_recent();
            bucket.limiter.shrink_to_fit();
        }
    }

    fn check(&self, category: Category, key: &str) -> Decision {
        let Some(bucket) = self.buckets.get(&category) else {
            return Decision {
                allowed: true,
                limit: u32::MAX,
                remaining: u32::MAX,
                retry_after: Duration::ZERO,
                reset_after: Duration::ZERO,
            };
        };
        let limit = bucket.quota.requests;
        let per_request = bucket.quota.period / limit.max(1);
        match bucket.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset_after: per_request * (limit - remaining),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    retry_after: wait,
                    reset_after: wait + per_request * (limit - 1),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_past_its_quota_and_others_are_not() {
        let quota = Quota { requests: 3, period: Duration::from_secs(60) };
        let limiter = InProcessLimiter::new([(Category::Auth, quota)]);
        for expected_remaining in [2, 1, 0] {
            let decision = limiter.check(Category::Auth, "1.2.3.4|a@b.c");
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.check(Category::Auth, "1.2.3.4|a@b.c");
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(15) && refused.retry_after <= Duration::from_secs(20));
        assert!(limiter.check(Category::Auth, "5.6.7.8|a@b.c").allowed);
        assert!(limiter.check(Category::General, "anything").allowed);
    }
}

//! The in-process rate limiter: one GCRA bucket per (category, key), from `governor`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use super::{Category, Decision, LimitsUnavailable, Quota, RateLimiter, bounded_key};

type KeyedLimiter<C> = governor::RateLimiter<String, DefaultKeyedStateStore<String>, C, StateInformationMiddleware>;

struct Bucket<C: Clock> {
    limiter: KeyedLimiter<C>,
    quota: Quota,
}

/// Buckets live in memory: a restart forgets them, and several instances each count on
/// their own. A key is kept only while its bucket is refilling (at most its category's
/// period, plus one request's share, after its last request): [`RateLimiter::forget_idle`]
/// drops the others, so memory follows the number of callers seen within a period, at a
/// bounded size per key ([`bounded_key`]).
pub struct InProcessLimiter<C: Clock = DefaultClock> {
    buckets: HashMap<Category, Bucket<C>>,
    clock: C,
}

impl InProcessLimiter {
    pub fn new(quotas: impl IntoIterator<Item = (Category, Quota)>) -> Self {
        Self::with_clock(quotas, DefaultClock::default())
    }
}

impl<C: Clock + Clone> InProcessLimiter<C> {
    pub fn with_clock(quotas: impl IntoIterator<Item = (Category, Quota)>, clock: C) -> Self {
        let buckets = quotas
            .into_iter()
            .map(|(category, quota)| {
                let burst = NonZeroU32::new(quota.requests).unwrap_or(NonZeroU32::MIN);
                let replenish = quota.period / burst.get();
                let governor_quota = governor::Quota::with_period(replenish.max(Duration::from_nanos(1)))
                    .expect("period is positive")
                    .allow_burst(burst);
                let limiter = governor::RateLimiter::dashmap_with_clock(governor_quota, clock.clone())
                    .with_middleware::<StateInformationMiddleware>();
                (category, Bucket { limiter, quota })
            })
            .collect();
        Self { buckets, clock }
    }

    /// How many keys the limiter holds state for, over all categories.
    pub fn tracked_keys(&self) -> usize {
        self.buckets.values().map(|bucket| bucket.limiter.len()).sum()
    }
}

#[async_trait::async_trait]
impl<C: Clock + Send + Sync> RateLimiter for InProcessLimiter<C>
where
    C::Instant: Send + Sync,
{
    /// Drops buckets that are full again, so memory does not grow with every IP seen.
    fn forget_idle(&self) {
        for bucket in self.buckets.values() {
            bucket.limiter.retain_recent();
            bucket.limiter.shrink_to_fit();
        }
    }

    async fn check(&self, category: Category, key: &str) -> Result<Decision, LimitsUnavailable> {
        Ok(self.check_now(category, key))
    }
}

impl<C: Clock> InProcessLimiter<C> {
    /// [`RateLimiter::check`], which cannot fail here.
    pub fn check_now(&self, category: Category, key: &str) -> Decision {
        let Some(bucket) = self.buckets.get(&category) else {
            return Decision::UNLIMITED;
        };
        let limit = bucket.quota.requests;
        let per_request = bucket.quota.period / limit.max(1);
        match bucket.limiter.check_key(&bounded_key(key).into_owned()) {
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
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_key_is_refused_past_its_quota_and_others_are_not() {
        let quota = Quota { requests: 3, period: Duration::from_secs(60) };
        let limiter = InProcessLimiter::new([(Category::Auth, quota)]);
        for expected_remaining in [2, 1, 0] {
            let decision = limiter.check_now(Category::Auth, "1.2.3.4|a@b.c");
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.check_now(Category::Auth, "1.2.3.4|a@b.c");
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(15) && refused.retry_after <= Duration::from_secs(20));
        assert!(limiter.check_now(Category::Auth, "5.6.7.8|a@b.c").allowed);
        assert!(limiter.check_now(Category::General, "anything").allowed);
    }

    #[test]
    fn idle_keys_are_forgotten_once_their_buckets_have_refilled() {
        let clock = FakeRelativeClock::default();
        let quota = Quota { requests: 5, period: Duration::from_secs(60) };
        let limiter = InProcessLimiter::with_clock([(Category::Auth, quota)], clock.clone());
        let huge_email = "x".repeat(64 * 1024);
        for n in 0..1_000 {
            let key = format!("ip:10.0.{}.{}|{n}{huge_email}", n / 256, n % 256);
            for _ in 0..5 {
                assert!(limiter.check_now(Category::Auth, &key).allowed);
            }
            assert!(!limiter.check_now(Category::Auth, &key).allowed);
        }
        assert_eq!(limiter.tracked_keys(), 1_000);
        clock.advance(Duration::from_secs(30));
        limiter.forget_idle();
        assert_eq!(limiter.tracked_keys(), 1_000, "keys whose buckets are still refilling are kept");
        // A spent bucket has refilled one period after its last request, plus one
        // request's share (12 s here).
        clock.advance(Duration::from_secs(43));
        limiter.forget_idle();
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn a_refusal_stops_the_later_quotas_from_counting() {
        let quotas = [
            (Category::AuthIp, Quota { requests: 2, period: Duration::from_secs(60) }),
            (Category::Auth, Quota { requests: 5, period: Duration::from_secs(60) }),
        ];
        let limiter = InProcessLimiter::new(quotas);
        let attempt = async |email: &str| {
            limiter.check_all(&[(Category::AuthIp, "ip:a"), (Category::Auth, email)]).await.unwrap()
        };
        assert_eq!(attempt("ip:a|one").await.remaining, 1, "the tightest quota is reported");
        assert!(attempt("ip:a|two").await.allowed);
        let refused = attempt("ip:a|three").await;
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 2);
        assert_eq!(limiter.tracked_keys(), 3, "the refused e-mail was never counted");
    }
}

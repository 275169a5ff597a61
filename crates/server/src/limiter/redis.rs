//! The rate limiter several API instances share: GCRA in a Lua script run by Redis, so
//! that every instance counts against the same buckets and the spec's limits hold
//! across them.
//!
//! A bucket is one key, `{prefix}limit:{category}:{bounded key}`, holding its
//! theoretical arrival time (microseconds of Redis's clock, so the instances' clocks do
//! not matter). It expires when the bucket is full again, so Redis keeps only the keys
//! seen within a period. While Redis does not answer, `rate_limit_on_redis_error`
//! decides: `open` counts in this instance's memory instead ([`InProcessLimiter`]),
//! `closed` refuses with [`LimitsUnavailable`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::memory::InProcessLimiter;
use super::{Category, Decision, LimitsUnavailable, Quota, RateLimiter, bounded_key};
use crate::config::RedisErrorPolicy;
use crate::redis_link::{PAUSE_AFTER_FAILURE, RedisLink};

/// Charges each bucket of `KEYS` in turn (`ARGV`: its limit and emission interval in
/// microseconds, per key) and stops after the first that refuses. Returns, per bucket
/// checked, `{allowed, remaining, retry_after_us, reset_after_us}`.
const GCRA_SCRIPT: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local decisions = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local interval = tonumber(ARGV[2 * i])
  local capacity = interval * limit
  local tat = math.max(tonumber(redis.call('GET', key)) or now, now)
  local next_tat = tat + interval
  if next_tat - now <= capacity then
    local refill = next_tat - now
    redis.call('SET', key, string.format('%.0f', next_tat), 'PX', math.max(1, math.ceil(refill / 1000)))
    decisions[i] = {1, math.floor((capacity - refill) / interval), 0, refill}
  else
    decisions[i] = {0, 0, next_tat - capacity - now, tat - now}
    break
  end
end
return decisions
";

pub struct RedisLimiter {
    link: Arc<RedisLink>,
    script: redis::Script,
    quotas: HashMap<Category, Quota>,
    on_error: RedisErrorPolicy,
    /// Counts while Redis does not answer, with `on_error = open`.
    fallback: InProcessLimiter,
}

impl RedisLimiter {
    pub fn new(
        link: Arc<RedisLink>,
        quotas: impl IntoIterator<Item = (Category, Quota)>,
        on_error: RedisErrorPolicy,
    ) -> Self {
        let quotas: HashMap<Category, Quota> = quotas.into_iter().collect();
        let fallback = InProcessLimiter::new(quotas.clone());
        Self { link, script: redis::Script::new(GCRA_SCRIPT), quotas, on_error, fallback }
    }

    /// One script call for all of `checks` that have a quota.
    async fn check_in_redis(&self, checks: &[(Category, Quota, &str)]) -> Result<Decision, String> {
        let mut invocation = self.script.prepare_invoke();
        for &(category, quota, key) in checks {
            let interval = quota.period.as_micros() as u64 / u64::from(quota.requests.max(1));
            invocation.key(self.link.key(&format!("limit:{}:{}", category.as_str(), bounded_key(key))));
            invocation.arg(quota.requests).arg(interval.max(1));
        }
        let answers: Vec<(u8, u32, u64, u64)> = self
            .link
            .call("check rate limits", |mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(|error| error.to_string())?;
        let decisions =
            answers.into_iter().zip(checks).map(|((allowed, remaining, retry_us, reset_us), check)| Decision {
                allowed: allowed == 1,
                limit: check.1.requests,
                remaining,
                retry_after: Duration::from_micros(retry_us),
                reset_after: Duration::from_micros(reset_us),
            });
        Ok(Decision::combined(decisions))
    }

    async fn when_unavailable(
        &self,
        checks: &[(Category, &str)],
        reason: String,
    ) -> Result<Decision, LimitsUnavailable> {
        match self.on_error {
            RedisErrorPolicy::Open => self.fallback.check_all(checks).await,
            RedisErrorPolicy::Closed => Err(LimitsUnavailable { reason, retry_after: PAUSE_AFTER_FAILURE }),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, category: Category, key: &str) -> Result<Decision, LimitsUnavailable> {
        self.check_all(&[(category, key)]).await
    }

    async fn check_all(&self, checks: &[(Category, &str)]) -> Result<Decision, LimitsUnavailable> {
        let limited: Vec<(Category, Quota, &str)> = checks
            .iter()
            .filter_map(|&(category, key)| self.quotas.get(&category).map(|&quota| (category, quota, key)))
            .collect();
        if limited.is_empty() {
            return Ok(Decision::UNLIMITED);
        }
        match self.check_in_redis(&limited).await {
            Ok(decision) => Ok(decision),
            Err(reason) => self.when_unavailable(checks, reason).await,
        }
    }

    fn forget_idle(&self) {
        self.fallback.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::redis_link::testing::{link_to, test_link};

    const MINUTE: Duration = Duration::from_secs(60);

    fn limiter(link: Arc<RedisLink>, quotas: &[(Category, Quota)]) -> RedisLimiter {
        RedisLimiter::new(link, quotas.iter().copied(), RedisErrorPolicy::Open)
    }

    #[tokio::test]
    async fn redis_two_instances_share_one_quota() {
        let Some(link) = test_link("redis_two_instances_share_one_quota") else {
            return;
        };
        let quotas = [(Category::FaceVerification, Quota { requests: 4, period: MINUTE })];
        // Two instances: two limiters, each with its own connection, on one key space.
        let a = limiter(link.clone(), &quotas);
        let b = limiter(Arc::new(link_to(&std::env::var("ROLLCALL_TEST_REDIS_URL").unwrap(), &link.key(""))), &quotas);
        let mut remaining = Vec::new();
        for instance in [&a, &b, &a, &b] {
            let decision = instance.check(Category::FaceVerification, "user:1").await.unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.limit, 4);
            remaining.push(decision.remaining);
        }
        assert_eq!(remaining, [3, 2, 1, 0]);
        let refused = b.check(Category::FaceVerification, "user:1").await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        // One request's share of the minute (15 s) is what the caller waits.
        assert!(refused.retry_after > Duration::from_secs(14) && refused.retry_after <= Duration::from_secs(15));
        assert!(refused.reset_after > Duration::from_secs(59) && refused.reset_after <= MINUTE);
        assert!(a.check(Category::FaceVerification, "user:1").await.is_ok_and(|decision| !decision.allowed));
        assert!(a.check(Category::FaceVerification, "user:2").await.unwrap().allowed, "other callers are apart");
        assert!(a.check(Category::Reports, "user:1").await.unwrap().allowed, "no quota, no limit");
    }

    #[tokio::test]
    async fn redis_a_refusal_stops_the_later_quotas_from_counting() {
        let Some(link) = test_link("redis_a_refusal_stops_the_later_quotas_from_counting") else {
            return;
        };
        let quotas = [
            (Category::AuthIp, Quota { requests: 2, period: MINUTE }),
            (Category::Auth, Quota { requests: 5, period: MINUTE }),
        ];
        let limiter = limiter(link.clone(), &quotas);
        let attempt = async |email: &str| {
            limiter.check_all(&[(Category::AuthIp, "ip:a"), (Category::Auth, email)]).await.unwrap()
        };
        assert_eq!(attempt("ip:a|one").await.remaining, 1, "the tightest quota is reported");
        assert!(attempt("ip:a|two").await.allowed);
        let refused = attempt("ip:a|three").await;
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 2);
        let kept = |name: &str| {
            let key = link.key(&format!("limit:auth:{name}"));
            link.call("read a bucket", |mut connection| async move {
                redis::cmd("PTTL").arg(key).query_async::<i64>(&mut connection).await
            })
        };
        assert_eq!(kept("ip:a|three").await.unwrap(), -2, "the refused e-mail was never counted");
        let ttl_ms = kept("ip:a|one").await.unwrap();
        assert!(ttl_ms > 0 && ttl_ms <= 12_000, "a bucket expires once full again: {ttl_ms} ms");
    }

    #[tokio::test]
    async fn redis_long_keys_are_kept_hashed() {
        let Some(link) = test_link("redis_long_keys_are_kept_hashed") else {
            return;
        };
        let limiter = limiter(link.clone(), &[(Category::Auth, Quota { requests: 1, period: MINUTE })]);
        let long = format!("ip:1.2.3.4|{}", "x".repeat(100_000));
        assert!(limiter.check(Category::Auth, &long).await.unwrap().allowed);
        assert!(!limiter.check(Category::Auth, &long).await.unwrap().allowed);
        let pattern = link.key("limit:auth:*");
        let keys: Vec<String> = link
            .call("list buckets", |mut connection| async move {
                redis::cmd("KEYS").arg(pattern).query_async(&mut connection).await
            })
            .await
            .unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].len() < 200 && keys[0].contains("sha256:"), "{}", keys[0]);
    }

    /// Nothing listens on port 1.
    const UNREACHABLE: &str = "redis://127.0.0.1:1";

    #[tokio::test]
    async fn redis_unreachable_and_open_counts_in_this_instance_promptly() {
        let link = Arc::new(link_to(UNREACHABLE, "unreachable:"));
        let limiter = limiter(link, &[(Category::Auth, Quota { requests: 2, period: MINUTE })]);
        let started = Instant::now();
        for _ in 0..2 {
            assert!(limiter.check(Category::Auth, "ip:a|x").await.unwrap().allowed);
        }
        let refused = limiter.check(Category::Auth, "ip:a|x").await.unwrap();
        assert!(!refused.allowed, "login limits still hold per instance");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn redis_unreachable_and_closed_refuses_promptly() {
        let link = Arc::new(link_to(UNREACHABLE, "unreachable:"));
        let quotas = [(Category::General, Quota { requests: 100, period: MINUTE })];
        let limiter = RedisLimiter::new(link, quotas, RedisErrorPolicy::Closed);
        let started = Instant::now();
        for _ in 0..3 {
            let refused = limiter.check(Category::General, "user:1").await.unwrap_err();
            assert_eq!(refused.retry_after, PAUSE_AFTER_FAILURE);
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(limiter.check(Category::Reports, "user:1").await.unwrap().allowed, "no quota, nothing to check");
    }
}

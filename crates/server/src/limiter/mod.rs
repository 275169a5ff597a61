//! Rate limits per category of endpoint. The [`RateLimiter`] trait is what the API
//! calls; [`memory::InProcessLimiter`] (governor) serves one instance, and
//! [`redis::RedisLimiter`] several instances that share their counts in Redis.

pub mod inflight;
pub mod memory;
pub mod redis;

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Config;

/// The spec's endpoint categories, and a few of our own, each with its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Login: per client IP and e-mail (the spec's "authentication" row).
    Auth,
    /// Login: per client IP, whatever the e-mail, so one address cannot try every account.
    AuthIp,
    /// Refresh and logout: per client IP.
    Session,
    /// Face verification: per caller.
    FaceVerification,
    /// Polling the status of one's own tasks: per caller, apart from the general budget.
    TaskStatus,
    /// Reports: per caller.
    Reports,
    /// Everything else: per caller.
    General,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Self::Auth,
        Self::AuthIp,
        Self::Session,
        Self::FaceVerification,
        Self::TaskStatus,
        Self::Reports,
        Self::General,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthIp => "auth_ip",
            Self::Session => "session",
            Self::FaceVerification => "face_verification",
            Self::TaskStatus => "task_status",
            Self::Reports => "reports",
            Self::General => "general",
        }
    }
}

/// The rate-limit key of a client address. An IPv6 client usually holds a whole /64, so
/// its addresses count as one; otherwise a single client could use 2^64 keys.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            format!("ip:{}/64", std::net::Ipv6Addr::from(network))
        }
        None => "ip:unknown".to_owned(),
    }
}

/// Keys longer than this are kept as their SHA-256 instead.
pub const MAX_KEY_BYTES: usize = 64;

/// `key`, or `sha256:<hex>` of it when it is longer than [`MAX_KEY_BYTES`], so that a
/// limiter's memory per key is bounded whatever a caller sends (and e-mail addresses
/// are not kept in the clear). A kept key is never 71 bytes long, so the two forms
/// cannot collide.
pub fn bounded_key(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes()))))
    }
}

/// At most `requests` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub requests: u32,
    pub period: Duration,
}

impl Quota {
    pub fn for_category(config: &Config, category: Category) -> Self {
        let (requests, per_secs) = match category {
            Category::Auth => (config.rate_limit_auth_requests, config.rate_limit_auth_per_secs),
            Category::AuthIp => (config.rate_limit_auth_ip_requests, config.rate_limit_auth_ip_per_secs),
            Category::Session => (config.rate_limit_session_requests, config.rate_limit_session_per_secs),
            Category::FaceVerification => {
                (config.rate_limit_face_verification_requests, config.rate_limit_face_verification_per_secs)
            }
            Category::TaskStatus => (config.rate_limit_task_status_requests, config.rate_limit_task_status_per_secs),
            Category::Reports => (config.rate_limit_reports_requests, config.rate_limit_reports_per_secs),
            Category::General => (config.rate_limit_general_requests, config.rate_limit_general_per_secs),
        };
        Self { requests: requests.max(1), period: Duration::from_secs(per_secs.max(1)) }
    }
}

/// The answer for one request: allowed or not, and what to tell the client in the
/// `X-RateLimit-*` and `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the caller may try again (0 when allowed).
    pub retry_after: Duration,
    /// Until the quota is full again.
    pub reset_after: Duration,
}

impl Decision {
    /// The answer when no quota applies.
    pub const UNLIMITED: Decision = Decision {
        allowed: true,
        limit: u32::MAX,
        remaining: u32::MAX,
        retry_after: Duration::ZERO,
        reset_after: Duration::ZERO,
    };
}

/// The shared limits cannot be read and the configuration says to refuse requests then
/// (`rate_limit_on_redis_error = "closed"`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate limits cannot be checked: {reason}")]
pub struct LimitsUnavailable {
    pub reason: String,
    /// When to try again.
    pub retry_after: Duration,
}

#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request of `key` in `category` and says whether it may proceed.
    /// Implementations keep at most [`bounded_key`] of a key.
    async fn check(&self, category: Category, key: &str) -> Result<Decision, LimitsUnavailable>;

    /// Counts one request against each quota in turn and stops at the first that refuses
    /// it, whose decision is returned; the later quotas are not charged (nor their keys
    /// kept). When all allow it, the decision with the fewest requests left.
    async fn check_all(&self, checks: &[(Category, &str)]) -> Result<Decision, LimitsUnavailable> {
        let mut decisions = Vec::with_capacity(checks.len());
        for &(category, key) in checks {
            let decision = self.check(category, key).await?;
            decisions.push(decision);
            if !decision.allowed {
                break;
            }
        }
        Ok(Decision::combined(decisions))
    }

    /// Drops state of keys that are idle again; called every minute.
    fn forget_idle(&self) {}
}

impl Decision {
    /// The refusal among `decisions` (the last of them, as checking stops there), else
    /// the one with the fewest requests left; [`Decision::UNLIMITED`] when empty.
    pub fn combined(decisions: impl IntoIterator<Item = Decision>) -> Decision {
        let mut tightest = Decision::UNLIMITED;
        for decision in decisions {
            if !decision.allowed {
                return decision;
            }
            if decision.remaining < tightest.remaining {
                tightest = decision;
            }
        }
        tightest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_64_and_ipv4_per_address() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(ip_key(ip("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(ip_key(ip("::ffff:203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), "ip:2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("2001:db8:1:2:bbbb::9")), ip_key(ip("2001:db8:1:2:aaaa::1")));
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip_key(ip("2001:db8:1:2::1")));
        assert_eq!(ip_key(None), "ip:unknown");
    }

    #[test]
    fn long_keys_are_kept_as_a_fixed_size_hash() {
        assert_eq!(bounded_key("user:42"), "user:42");
        let long = format!("ip:1.2.3.4|{}", "x".repeat(2 * 1024 * 1024));
        let kept = bounded_key(&long);
        assert_eq!(kept.len(), "sha256:".len() + 64);
        assert_eq!(kept, bounded_key(&long));
        assert_ne!(kept, bounded_key(&format!("{long}y")));
    }
}

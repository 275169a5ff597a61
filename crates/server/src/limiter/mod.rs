//! Rate limits per category of endpoint. The [`RateLimiter`] trait is what the API
//! calls; [`memory::InProcessLimiter`] (governor) serves one instance, and a shared
//! store (e.g. Redis) can implement the same trait for several instances.

pub mod memory;

use std::time::Duration;

use crate::config::Config;

/// The spec's endpoint categories, each with its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Login, refresh: per client IP and e-mail.
    Auth,
    /// Face verification: per caller.
    FaceVerification,
    /// Reports: per caller.
    Reports,
    /// Everything else: per caller.
    General,
}

impl Category {
    pub const ALL: [Category; 4] = [Self::Auth, Self::FaceVerification, Self::Reports, Self::General];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::FaceVerification => "face_verification",
            Self::Reports => "reports",
            Self::General => "general",
        }
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
            Category::FaceVerification => {
                (config.rate_limit_face_verification_requests, config.rate_limit_face_verification_per_secs)
            }
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

pub trait RateLimiter: Send + Sync {
    /// Counts one request of `key` in `category` and says whether it may proceed.
    fn check(&self, category: Category, key: &str) -> Decision;

    /// Drops state of keys that are idle again; called every minute.
    fn forget_idle(&self) {}
}

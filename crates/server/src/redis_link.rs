//! The connection to Redis that API instances share state through (`redis_url`): the
//! rate limits ([`crate::limiter::redis`]) and live events ([`crate::events::relay`]).
//!
//! Every call is bounded by [`CALL_TIMEOUT`], so a Redis that is down or unreachable
//! costs a request at most that long, and after a failure calls fail at once for
//! [`PAUSE_AFTER_FAILURE`] instead of each waiting out the timeout.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};

/// The longest one Redis call may take, connecting included.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long calls fail without trying once one has failed.
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// At most one warning per this period while Redis keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Redis did not answer (in time); the message says why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis is unavailable: {0}")]
pub struct RedisUnavailable(pub String);

pub struct RedisLink {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
    /// Tells this instance's messages apart from the others' on shared channels.
    instance_id: String,
    /// The URL with its password masked, for messages.
    masked_url: String,
    started: Instant,
    /// Milliseconds after `started` until which calls fail at once (0: none failed).
    paused_until_ms: AtomicU64,
    last_warning_ms: AtomicU64,
}

impl RedisLink {
    /// Prepares the connection; it is made on the first call and remade after a failure,
    /// so a Redis that is down at start-up does not stop the server.
    pub fn open(url: &SecretString, prefix: &str) -> anyhow::Result<Self> {
        let masked_url = crate::app::redact_url(url.expose_secret());
        let client = redis::Client::open(url.expose_secret())
            .map_err(|error| anyhow::anyhow!("redis_url {masked_url} is not a valid Redis URL: {error}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(CALL_TIMEOUT);
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|error| anyhow::anyhow!("cannot prepare the Redis connection to {masked_url}: {error}"))?;
        Ok(Self {
            client,
            connection,
            prefix: prefix.to_owned(),
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            masked_url,
            started: Instant::now(),
            paused_until_ms: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(0),
        })
    }

    /// `name` in this deployment's key space (`redis_key_prefix`).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub fn masked_url(&self) -> &str {
        &self.masked_url
    }

    /// A client for connections of their own (pub/sub cannot share the multiplexed one).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `call` on the shared connection within [`CALL_TIMEOUT`]. Fails at once while
    /// paused after a failure; a failure starts a pause and is logged (at most once a
    /// minute), and the first success after failures is logged too.
    pub async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.elapsed_ms() < self.paused_until_ms.load(Ordering::Relaxed) {
            return Err(RedisUnavailable("it failed less than a second ago".into()));
        }
        let outcome = match tokio::time::timeout(CALL_TIMEOUT, call(self.connection.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(RedisUnavailable(error.to_string())),
            Err(_) => Err(RedisUnavailable(format!("no answer within {} ms", CALL_TIMEOUT.as_millis()))),
        };
        match &outcome {
            Ok(_) => self.note_success(),
            Err(error) => self.note_failure(what, error),
        }
        outcome
    }

    fn note_success(&self) {
        if self.paused_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!(redis.url = %self.masked_url, "Redis answers again");
        }
    }

    fn note_failure(&self, what: &str, error: &RedisUnavailable) {
        let now = self.elapsed_ms();
        self.paused_until_ms.store(now + PAUSE_AFTER_FAILURE.as_millis() as u64, Ordering::Relaxed);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due && self.last_warning_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(redis.url = %self.masked_url, %error, "cannot {what} in Redis (warned at most once a minute)");
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        let ping = self.call("answer PING", |mut connection| async move {
            redis::cmd("PING").query_async::<String>(&mut connection).await
        });
        ping.await.map(drop)
    }

    /// The round trip of a PING and what `INFO memory` says.
    pub async fn health(&self) -> RedisStatus {
        let started = Instant::now();
        if let Err(error) = self.ping().await {
            return RedisStatus { response_time: started.elapsed(), memory: None, error: Some(error.to_string()) };
        }
        let response_time = started.elapsed();
        let info = self.call("read INFO memory", |mut connection| async move {
            redis::cmd("INFO").arg("memory").query_async::<String>(&mut connection).await
        });
        match info.await {
            Ok(info) => RedisStatus { response_time, memory: Some(MemoryUse::from_info(&info)), error: None },
            Err(error) => RedisStatus { response_time, memory: None, error: Some(error.to_string()) },
        }
    }
}

/// What [`RedisLink::health`] found.
#[derive(Debug, Clone)]
pub struct RedisStatus {
    pub response_time: Duration,
    pub memory: Option<MemoryUse>,
    /// Why Redis is not healthy (`None`: it is).
    pub error: Option<String>,
}

/// Memory figures of `INFO memory`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    pub used: u64,
    /// `maxmemory`; `None` when unlimited.
    pub max: Option<u64>,
    /// The host's memory, when Redis reports it.
    pub system: Option<u64>,
}

impl MemoryUse {
    fn from_info(info: &str) -> Self {
        let field = |name: &str| {
            info.lines()
                .filter_map(|line| line.trim().split_once(':'))
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value.trim().parse::<u64>().ok())
        };
        let nonzero = |value: Option<u64>| value.filter(|&bytes| bytes > 0);
        Self {
            used: field("used_memory").unwrap_or(0),
            max: nonzero(field("maxmemory")),
            system: nonzero(field("total_system_memory")),
        }
    }

    /// The share of the memory Redis may use that it uses: of `maxmemory`, or of the
    /// host's memory when unlimited.
    pub fn share(&self) -> Option<f64> {
        self.max.or(self.system).map(|limit| self.used as f64 / limit as f64)
    }
}

/// For tests against a real Redis, named by `ROLLCALL_TEST_REDIS_URL`.
#[cfg(test)]
pub mod testing {
    use std::sync::Arc;

    use super::RedisLink;

    /// A link with a key prefix of its own, or `None` (with a notice) when
    /// `ROLLCALL_TEST_REDIS_URL` is unset.
    pub fn test_link(test: &str) -> Option<Arc<RedisLink>> {
        test_url(test).map(|url| Arc::new(link_to(&url, &unique_prefix())))
    }

    /// `ROLLCALL_TEST_REDIS_URL`, or `None` (with a notice that `test` is skipped).
    pub fn test_url(test: &str) -> Option<String> {
        let url = std::env::var("ROLLCALL_TEST_REDIS_URL").ok().filter(|url| !url.is_empty());
        if url.is_none() {
            eprintln!("note: ROLLCALL_TEST_REDIS_URL is unset: {test} skipped");
        }
        url
    }

    pub fn unique_prefix() -> String {
        format!("rollcall-test:{}:", uuid::Uuid::new_v4().simple())
    }

    pub fn link_to(url: &str, prefix: &str) -> RedisLink {
        RedisLink::open(&url.to_owned().into(), prefix).expect("a valid Redis URL")
    }

    /// As if a call had just failed: calls fail at once for [`super::PAUSE_AFTER_FAILURE`].
    pub fn fail_now(link: &RedisLink) {
        link.note_failure("test", &super::RedisUnavailable("a failure made by the test".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_figures_are_read_from_info() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:4194304\r\ntotal_system_memory:8388608\r\n";
        let memory = MemoryUse::from_info(info);
        assert_eq!(memory, MemoryUse { used: 1_048_576, max: Some(4_194_304), system: Some(8_388_608) });
        assert_eq!(memory.share(), Some(0.25));
        let unlimited = MemoryUse::from_info("used_memory:1048576\r\nmaxmemory:0\r\ntotal_system_memory:8388608\r\n");
        assert_eq!(unlimited.share(), Some(0.125));
    }

    #[tokio::test]
    async fn redis_health_reports_memory_and_round_trip() {
        let Some(link) = testing::test_link("redis_health_reports_memory_and_round_trip") else {
            return;
        };
        let status = link.health().await;
        assert_eq!(status.error, None);
        assert!(status.response_time < CALL_TIMEOUT);
        let memory = status.memory.expect("INFO memory answered");
        assert!(memory.used > 0);
        assert!(memory.share().is_some_and(|share| share > 0.0 && share < 1.0));
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_promptly_and_then_at_once() {
        let link = RedisLink::open(&SecretString::from("redis://:secret@127.0.0.1:1"), "test:").unwrap();
        assert_eq!(link.masked_url(), "redis://:***@127.0.0.1:1");
        let started = Instant::now();
        let ping = |mut connection: ConnectionManager| async move {
            redis::cmd("PING").query_async::<String>(&mut connection).await
        };
        assert!(link.call("ping", ping).await.is_err());
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_millis(200), "{:?}", started.elapsed());
        let again = Instant::now();
        let error = link.call("ping", ping).await.unwrap_err();
        assert!(again.elapsed() < Duration::from_millis(50));
        assert!(error.to_string().contains("less than a second ago"), "{error}");
    }
}

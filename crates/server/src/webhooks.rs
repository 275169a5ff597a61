//! Outgoing webhooks: a durable outbox fed by the [`EventBus`](crate::events::EventBus)
//! and a background deliverer that POSTs each queued delivery, signed, with exponential
//! backoff.
//!
//! Publishing an event only inserts rows ([`WebhookOutbox`]); the HTTP requests happen
//! in [`run_deliverer`], so a slow or dead receiver never holds up the request or task
//! that caused the event. A delivery is sent at least once: receivers can drop repeats
//! by `X-Rollcall-Delivery`.
//!
//! Signature: `X-Rollcall-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`
//! with `timestamp` the `X-Rollcall-Timestamp` header (unix seconds).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use tokio_util::sync::CancellationToken;

use crate::crypto::Sealer;
use crate::domain::users::Invalid;
use crate::events::{Event, EventKind, EventSink};
use crate::metrics::Metrics;
use crate::outbound;
use crate::store::webhooks::{self as webhook_store, DeliveryRecord, Outcome};
use crate::store::{Db, Tx};

/// Longest a receiver may take to answer one delivery.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery stays with its deliverer before another may take it.
const LEASE: Duration = Duration::from_secs(30);
/// How often the deliverer looks for due deliveries when nothing wakes it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Deliveries in flight at once.
const MAX_IN_FLIGHT: usize = 8;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long shutdown waits for deliveries in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest URL accepted.
const URL_MAX: usize = 2048;

/// Wakes the deliverer when a delivery is queued.
pub type Wakeup = Arc<Notify>;

/// An http(s) URL with a host.
pub fn parse_url(raw: &str) -> Result<String, Invalid> {
    let raw = raw.trim();
    if raw.len() > URL_MAX {
        return Err(Invalid::new("url", format!("must be at most {URL_MAX} characters")));
    }
    let url = url::Url::parse(raw).map_err(|e| Invalid::new("url", format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Invalid::new("url", "must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::new("url", "must name a host"));
    }
    Ok(url.to_string())
}

/// Refuses a parsed URL that is, or resolves to, a loopback, private or otherwise
/// non-public address, unless `allow_private_networks` (see [`crate::outbound`]).
pub async fn check_destination(url: &str, allow_private_networks: bool) -> Result<(), Invalid> {
    if allow_private_networks {
        return Ok(());
    }
    let url = url::Url::parse(url).map_err(|e| Invalid::new("url", format!("is not a valid URL ({e})")))?;
    outbound::check_url(&url).await.map_err(|refused| Invalid::new("url", refused.to_string()))
}

/// A non-empty set of known event kinds, in canonical order, as stored (comma-separated).
pub fn parse_events(names: &[String]) -> Result<String, Invalid> {
    let mut kinds = Vec::new();
    for name in names {
        let kind = EventKind::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
            Invalid::new("events", format!("unknown event {name:?}; known events: {}", known.join(", ")))
        })?;
        kinds.push(kind);
    }
    if kinds.is_empty() {
        return Err(Invalid::new("events", "must name at least one event"));
    }
    let ordered: Vec<&str> =
        EventKind::ALL.into_iter().filter(|kind| kinds.contains(kind)).map(EventKind::as_str).collect();
    Ok(ordered.join(","))
}

/// A signing secret chosen by the admin: 16 to 256 printable characters.
pub fn parse_secret(raw: &str) -> Result<String, Invalid> {
    if !(16..=256).contains(&raw.chars().count()) {
        return Err(Invalid::new("secret", "must be between 16 and 256 characters"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid::new("secret", "must not contain spaces or control characters"));
    }
    Ok(raw.to_owned())
}

/// A new random signing secret.
pub fn generate_secret() -> String {
    format!("whsec_{}", crate::domain::auth::random_token(32))
}

/// `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones:
/// `base * 2^(attempts - 1)`, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The durable sink: queues a delivery for every active webhook subscribed to the
/// event's kind. Idempotent per (webhook, event key), so an event published again after
/// a crash is not sent twice.
pub struct WebhookOutbox {
    wakeup: Wakeup,
}

impl WebhookOutbox {
    pub fn new(wakeup: Wakeup) -> Self {
        Self { wakeup }
    }
}

#[async_trait::async_trait]
impl EventSink for WebhookOutbox {
    async fn record(&self, tx: &Tx, event: &Event) -> anyhow::Result<()> {
        let kind = event.kind.as_str();
        let subscribers: Vec<i64> = webhook_store::list_active(tx)
            .await?
            .into_iter()
            .filter(|webhook| webhook.subscribes_to(kind))
            .map(|webhook| webhook.id)
            .collect();
        if subscribers.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_string(&event.body())?;
        let queued = webhook_store::enqueue(tx, &subscribers, kind, &event.key, &payload).await?;
        tracing::debug!(event = kind, webhook.deliveries = queued, "queued webhook deliveries");
        Ok(())
    }

    fn committed(&self) {
        self.wakeup.notify_one();
    }
}

/// What the deliverer needs.
pub struct DelivererParts {
    pub db: Db,
    pub sealer: Sealer,
    pub wakeup: Wakeup,
    /// The wait after a first failed attempt; it doubles with each further one.
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// Whether receivers may be on loopback, private or link-local networks.
    pub allow_private_networks: bool,
    pub metrics: Arc<Metrics>,
}

/// Sends deliveries until `shutdown` is cancelled, then waits a moment for those in
/// flight. A delivery cut short is sent again once its lease expires.
pub async fn run_deliverer(parts: DelivererParts, shutdown: CancellationToken) {
    let deliverer = match Deliverer::new(parts) {
        Ok(deliverer) => Arc::new(deliverer),
        Err(error) => {
            tracing::error!(error = %error, "the webhook deliverer could not start");
            return;
        }
    };
    let db = deliverer.db.clone();
    let mut in_flight: JoinSet<Option<DateTime<Utc>>> = JoinSet::new();
    // The earliest retry scheduled by this process, so short backoffs are not rounded up
    // to the poll interval.
    let mut next_retry: Option<DateTime<Utc>> = None;
    tracing::info!(max_attempts = deliverer.max_attempts, "webhook deliverer started");
    loop {
        while in_flight.len() < MAX_IN_FLIGHT {
            let lease_until = Utc::now() + LEASE;
            match webhook_store::claim_next(&db, lease_until).await {
                Ok(Some(delivery)) => {
                    let deliverer = deliverer.clone();
                    in_flight.spawn(async move { deliverer.deliver(delivery).await });
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "could not claim a webhook delivery");
                    break;
                }
            }
        }
        let wait = next_retry
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .map_or(POLL_INTERVAL, |until| until.min(POLL_INTERVAL));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = deliverer.wakeup.notified() => {}
            () = tokio::time::sleep(wait) => {}
            Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Some(retry_at) = finished_retry(finished) {
                    next_retry = Some(next_retry.map_or(retry_at, |at| at.min(retry_at)));
                }
                continue;
            }
        }
        if next_retry.is_some_and(|at| at <= Utc::now()) {
            next_retry = None;
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(finished) = in_flight.join_next().await {
            finished_retry(finished);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            webhook.in_flight = in_flight.len(),
            "webhook deliverer stopped with deliveries in flight; they will be retried"
        );
        in_flight.abort_all();
    } else {
        tracing::info!("webhook deliverer stopped");
    }
}

/// The retry time a finished delivery reported; a panic is logged (its row stays
/// claimed and is retried when the lease expires).
fn finished_retry(finished: Result<Option<DateTime<Utc>>, tokio::task::JoinError>) -> Option<DateTime<Utc>> {
    match finished {
        Ok(retry_at) => retry_at,
        Err(error) => {
            if error.is_panic() {
                tracing::error!("a webhook delivery panicked; it will be retried when its lease expires");
            }
            None
        }
    }
}

struct Deliverer {
    db: Db,
    sealer: Sealer,
    client: reqwest::Client,
    wakeup: Wakeup,
    retry_base: Duration,
    max_attempts: u32,
    allow_private_networks: bool,
    metrics: Arc<Metrics>,
}

impl Deliverer {
    fn new(parts: DelivererParts) -> anyhow::Result<Self> {
        Ok(Self {
            db: parts.db,
            sealer: parts.sealer,
            client: http_client(parts.allow_private_networks)?,
            wakeup: parts.wakeup,
            retry_base: parts.retry_base,
            max_attempts: parts.max_attempts.max(1),
            allow_private_networks: parts.allow_private_networks,
            metrics: parts.metrics,
        })
    }

    /// Makes one attempt and records its outcome; returns when to try again, if ever.
    async fn deliver(&self, delivery: DeliveryRecord) -> Option<DateTime<Utc>> {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
        let outcome = if attempts > self.max_attempts {
            // Claimed again after a deliverer died during the last allowed attempt.
            Outcome::Failed {
                status_code: delivery.last_status_code,
                error: delivery
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the deliverer stopped during the last attempt".into()),
            }
        } else {
            match self.attempt(&delivery).await {
                Ok(status_code) => Outcome::Delivered { status_code },
                Err((status_code, error)) if attempts >= self.max_attempts => Outcome::Failed { status_code, error },
                Err((status_code, error)) => {
                    let next_attempt_at = Utc::now() + backoff(self.retry_base, attempts);
                    Outcome::Retry { next_attempt_at, status_code, error }
                }
            }
        };
        let retry_at = match &outcome {
            Outcome::Retry { next_attempt_at, .. } => Some(*next_attempt_at),
            _ => None,
        };
        let (status, counted_as) = match &outcome {
            Outcome::Delivered { .. } => (webhook_store::DELIVERED, "delivered"),
            Outcome::Retry { .. } => (webhook_store::PENDING, "retried"),
            Outcome::Failed { .. } => (webhook_store::FAILED, "failed"),
        };
        self.metrics.record_webhook_delivery(counted_as);
        match webhook_store::record_outcome(&self.db, &delivery.claim(), outcome).await {
            Ok(true) => {
                tracing::info!(
                    webhook.id = delivery.webhook_id,
                    webhook.delivery = delivery.id,
                    event = %delivery.event,
                    attempts,
                    status,
                    "webhook delivery attempt ended"
                );
                retry_at
            }
            Ok(false) => None,
            Err(error) => {
                tracing::warn!(webhook.delivery = delivery.id, error = %error, "could not record a webhook delivery");
                None
            }
        }
    }

    /// One signed POST. `Ok(status)` on 2xx; otherwise the status (if any) and the error.
    async fn attempt(&self, delivery: &DeliveryRecord) -> Result<i64, (Option<i64>, String)> {
        let webhook = match webhook_store::find(&self.db, delivery.webhook_id).await {
            Ok(Some(webhook)) => webhook,
            Ok(None) => return Err((None, "the webhook was deleted".into())),
            Err(error) => return Err((None, format!("could not read the webhook: {error}"))),
        };
        if !webhook.is_active {
            return Err((None, "the webhook is deactivated".into()));
        }
        if !self.allow_private_networks {
            // IP-literal hosts never reach the resolver that filters names.
            let url = url::Url::parse(&webhook.url).map_err(|error| (None, format!("invalid URL: {error}")))?;
            outbound::check_literal(&url).map_err(|refused| (None, format!("not sent: {refused}")))?;
        }
        let binding = crate::store::sealed::webhook_secret_binding(webhook.id);
        let secret = self
            .sealer
            .open(&webhook.secret, &binding)
            .map_err(|error| (None, format!("cannot read the secret: {error}")))?;
        let timestamp = Utc::now().timestamp();
        let response = self
            .client
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Rollcall-Event", &delivery.event)
            .header("X-Rollcall-Delivery", delivery.id.to_string())
            .header("X-Rollcall-Timestamp", timestamp.to_string())
            .header("X-Rollcall-Signature", signature(&secret, timestamp, &delivery.payload))
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|error| (None, describe_error(&error)))?;
        let status = response.status();
        if status.is_success() {
            Ok(i64::from(status.as_u16()))
        } else {
            Err((Some(i64::from(status.as_u16())), format!("the receiver answered {status}")))
        }
    }
}

/// The deliverer's client: no redirects (a receiver cannot send it elsewhere) and, unless
/// private networks are allowed, no proxy from the environment (the address check must see
/// the real destination) and a resolver that only returns public addresses.
fn http_client(allow_private_networks: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Rollcall-Webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private_networks {
        builder
    } else {
        builder.no_proxy().dns_resolver(Arc::new(outbound::PublicOnlyResolver))
    };
    builder.build()
}

/// A reqwest error without its URL (URLs of webhooks often carry tokens).
fn describe_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert_eq!(parse_url(" https://example.com/hook ").unwrap(), "https://example.com/hook");
        for bad in ["", "example.com/hook", "ftp://example.com/", "file:///etc/passwd", "http://", "mailto:a@b.c"] {
            assert!(parse_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn private_destinations_are_refused_unless_allowed() {
        for url in ["http://127.0.0.1:9000/x", "http://localhost:9000/x", "http://10.0.0.8/x", "http://[fe80::1]/x"] {
            let refused = check_destination(url, false).await.unwrap_err();
            assert_eq!(refused.field, "url");
            assert!(refused.message.contains(outbound::ALLOW_SETTING), "{url}: {}", refused.message);
            assert!(check_destination(url, true).await.is_ok(), "{url} refused although allowed");
        }
        assert!(check_destination("https://93.184.216.34/hook", false).await.is_ok());
    }

    #[test]
    fn events_are_known_deduplicated_and_ordered() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_events(&names(&["spoofing_detected", "attendance_logged", "spoofing_detected"])).unwrap(),
            "attendance_logged,spoofing_detected"
        );
        assert!(parse_events(&names(&[])).is_err());
        assert!(parse_events(&names(&["attendance_logged", "user_deleted"])).is_err());
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Reference: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature(b"secret", 1_700_000_000, r#"{"a":1}"#),
            "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_millis(200);
        assert_eq!(backoff(base, 1), Duration::from_millis(200));
        assert_eq!(backoff(base, 2), Duration::from_millis(400));
        assert_eq!(backoff(base, 4), Duration::from_millis(1600));
        assert_eq!(backoff(base, 60), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(2), 20), MAX_BACKOFF);
    }

    #[test]
    fn generated_secrets_are_accepted_as_secrets() {
        let secret = generate_secret();
        assert_eq!(parse_secret(&secret).unwrap(), secret);
        assert!(parse_secret("short").is_err());
        assert!(parse_secret("has a space in it, sixteen+").is_err());
    }
}

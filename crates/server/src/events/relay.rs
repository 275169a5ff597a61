//! Live events between API instances: each instance PUBLISHes the events it announces
//! on `{prefix}events` and rebroadcasts to its own subscribers those that other
//! instances published, so that an SSE client sees every event once, whichever
//! instance it happened on.
//!
//! Live events are best effort, like the in-process broadcast: a publish that fails is
//! retried for up to 30 s, so a Redis that is slow or reconnecting delays
//! them; while Redis stays down they stay on their instance, and the subscription is
//! remade (with backoff) when it is back. Durable consumers (webhooks) do not depend on this.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, EventBus, EventKind};
use crate::redis_link::{CALL_TIMEOUT, RedisLink};

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const MIN_PUBLISH_BACKOFF: Duration = Duration::from_millis(100);
/// An event that could not be published for this long after it happened is dropped
/// rather than shown as live news late.
const MAX_RELAY_AGE: Duration = Duration::from_secs(30);
const MAX_PUBLISH_BACKOFF: Duration = Duration::from_secs(2);
/// A subscription that hears nothing, not even a PING's answer, for this long is
/// remade: a connection can die without being closed.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// An event on the channel, with the instance that announced it.
#[derive(Serialize, Deserialize)]
struct Relayed {
    instance: String,
    event: String,
    key: String,
    timestamp: String,
    data: Value,
}

impl Relayed {
    fn new(instance: &str, event: &Event) -> Self {
        Self {
            instance: instance.to_owned(),
            event: event.kind.as_str().to_owned(),
            key: event.key.clone(),
            timestamp: event.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            data: event.data.clone(),
        }
    }

    fn into_event(self) -> Option<Event> {
        let kind = EventKind::parse(&self.event)?;
        let timestamp = DateTime::parse_from_rfc3339(&self.timestamp).ok()?.with_timezone(&Utc);
        Some(Event { kind, key: self.key, timestamp, data: self.data })
    }
}

/// The channel live events travel on.
pub fn channel(link: &RedisLink) -> String {
    link.key("events")
}

/// Relays `bus`'s announced events to the other instances and theirs to `bus`'s
/// subscribers, until `shutdown`.
pub async fn run(link: Arc<RedisLink>, bus: Arc<EventBus>, shutdown: CancellationToken) {
    let Some(outgoing) = bus.take_outgoing() else {
        tracing::warn!("live event relay not started: the event bus is not relayed, or already is");
        return;
    };
    tokio::join!(publish_announced(&link, outgoing, &shutdown), rebroadcast_others(&link, &bus, &shutdown));
    tracing::info!("live event relay stopped");
}

async fn publish_announced(link: &RedisLink, mut outgoing: mpsc::Receiver<Event>, shutdown: &CancellationToken) {
    let channel = channel(link);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = outgoing.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let Ok(payload) = serde_json::to_string(&Relayed::new(link.instance_id(), &event)) else {
            continue;
        };
        publish_until_relayed_or_stale(link, &channel, &event, payload, shutdown).await;
    }
}

/// Publishes `payload`, retrying with backoff while Redis fails (a timeout under load, a
/// reconnection), so that a hiccup delays live events rather than losing them. An event
/// older than [`MAX_RELAY_AGE`] is no longer live news: it is dropped (and stays on this
/// instance), and so are those queued behind it as they come up stale.
async fn publish_until_relayed_or_stale(
    link: &RedisLink,
    channel: &str,
    event: &Event,
    payload: String,
    shutdown: &CancellationToken,
) {
    let mut backoff = MIN_PUBLISH_BACKOFF;
    loop {
        if Utc::now().signed_duration_since(event.timestamp).to_std().is_ok_and(|age| age > MAX_RELAY_AGE) {
            tracing::debug!(event.key = %event.key, "live event not relayed: Redis failed until it was stale");
            return;
        }
        let (channel, payload) = (channel.to_owned(), payload.clone());
        // A failure is logged by the link.
        let published = link
            .call("publish a live event", |mut connection| async move {
                redis::cmd("PUBLISH").arg(channel).arg(payload).query_async::<i64>(&mut connection).await
            })
            .await;
        if published.is_ok() {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_PUBLISH_BACKOFF);
    }
}

/// How a subscription ended.
enum Ended {
    Shutdown,
    Lost { subscribed: bool, error: String },
}

async fn rebroadcast_others(link: &RedisLink, bus: &EventBus, shutdown: &CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match listen(link, bus, shutdown).await {
            Ended::Shutdown => return,
            Ended::Lost { subscribed, error } => {
                if subscribed {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(redis.url = %link.masked_url(), %error, retry_in_ms = backoff.as_millis() as u64,
                    "live events from other instances interrupted; subscribing again");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Subscribes and rebroadcasts the other instances' events until the connection is lost
/// or `shutdown`.
async fn listen(link: &RedisLink, bus: &EventBus, shutdown: &CancellationToken) -> Ended {
    let lost = |subscribed, error: String| Ended::Lost { subscribed, error };
    let pubsub = match tokio::time::timeout(CALL_TIMEOUT, link.client().get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => return lost(false, error.to_string()),
        Err(_) => return lost(false, "no connection within the timeout".into()),
    };
    let (mut sink, mut messages) = pubsub.split();
    match tokio::time::timeout(CALL_TIMEOUT, sink.subscribe(channel(link))).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return lost(false, error.to_string()),
        Err(_) => return lost(false, "SUBSCRIBE was not confirmed within the timeout".into()),
    }
    tracing::info!(redis.url = %link.masked_url(), "receiving live events from the other instances");
    let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
    keepalive.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ended::Shutdown,
            message = messages.next() => match message {
                Some(message) => rebroadcast(link, bus, message.get_payload_bytes()),
                None => return lost(true, "the connection closed".into()),
            },
            _ = keepalive.tick() => {
                if !matches!(tokio::time::timeout(CALL_TIMEOUT, sink.ping::<String>()).await, Ok(Ok(_))) {
                    return lost(true, "PING was not answered".into());
                }
            }
        }
    }
}

fn rebroadcast(link: &RedisLink, bus: &EventBus, payload: &[u8]) {
    let Ok(relayed) = serde_json::from_slice::<Relayed>(payload) else {
        tracing::warn!("ignored a live event from Redis that is not one of ours");
        return;
    };
    if relayed.instance == link.instance_id() {
        return;
    }
    match relayed.into_event() {
        Some(event) => bus.broadcast_relayed(event),
        None => tracing::warn!("ignored a live event from Redis of an unknown kind or time"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;
    use crate::redis_link::testing::{link_to, test_url, unique_prefix};

    fn arrival(n: u32) -> Event {
        Event {
            kind: EventKind::AttendanceLogged,
            key: format!("attendance:{n}"),
            timestamp: Utc::now(),
            data: json!({"employee_id": format!("FAC{n:03}")}),
        }
    }

    /// An instance: its bus, relayed through its own connection.
    fn instance(url: &str, prefix: &str, shutdown: &CancellationToken) -> Arc<EventBus> {
        instance_on(Arc::new(link_to(url, prefix)), shutdown)
    }

    fn instance_on(link: Arc<RedisLink>, shutdown: &CancellationToken) -> Arc<EventBus> {
        let bus = Arc::new(EventBus::relayed(Vec::new()));
        tokio::spawn(run(link, bus.clone(), shutdown.clone()));
        bus
    }

    /// The next event's key, past the probes of [`until_relayed`].
    async fn next_key(subscriber: &mut tokio::sync::broadcast::Receiver<Event>) -> String {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), subscriber.recv()).await;
            let key = event.expect("an event within 5 s").expect("no event missed").key;
            if key != "probe" {
                return key;
            }
        }
    }

    /// Subscriptions are made in the background: announces probes on `from` until one
    /// reaches `to`.
    async fn until_relayed(from: &EventBus, to: &mut tokio::sync::broadcast::Receiver<Event>) {
        for _ in 0..25 {
            from.announce([Event { key: "probe".into(), ..arrival(0) }]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), to.recv()).await {
                return;
            }
        }
        panic!("no event was relayed within 5 s");
    }

    #[tokio::test]
    async fn redis_events_of_one_instance_reach_the_others_once() {
        let Some(url) = test_url("redis_events_of_one_instance_reach_the_others_once") else {
            return;
        };
        let prefix = unique_prefix();
        let shutdown = CancellationToken::new();
        let (a, b) = (instance(&url, &prefix, &shutdown), instance(&url, &prefix, &shutdown));
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        until_relayed(&a, &mut on_b).await;
        until_relayed(&b, &mut on_a).await;
        b.announce([arrival(1), arrival(2)]);
        for subscriber in [&mut on_a, &mut on_b] {
            assert_eq!(next_key(subscriber).await, "attendance:1");
            assert_eq!(next_key(subscriber).await, "attendance:2");
        }
        a.announce([arrival(3)]);
        assert_eq!(next_key(&mut on_b).await, "attendance:3");
        assert_eq!(next_key(&mut on_a).await, "attendance:3");
        // Time for an echo to come back, if one were going to.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for subscriber in [&mut on_a, &mut on_b] {
            while let Ok(event) = subscriber.try_recv() {
                assert_eq!(event.key, "probe", "each event is seen once per instance");
            }
            assert!(matches!(subscriber.try_recv(), Err(TryRecvError::Empty)));
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn redis_events_announced_while_redis_fails_are_relayed_once_it_answers() {
        let Some(url) = test_url("redis_events_announced_while_redis_fails_are_relayed_once_it_answers") else {
            return;
        };
        let prefix = unique_prefix();
        let shutdown = CancellationToken::new();
        let link_a = Arc::new(link_to(&url, &prefix));
        let (a, b) = (instance_on(link_a.clone(), &shutdown), instance(&url, &prefix, &shutdown));
        let mut on_b = b.subscribe();
        until_relayed(&a, &mut on_b).await;
        // A call timed out under load: the link refuses calls for a second.
        crate::redis_link::testing::fail_now(&link_a);
        a.announce([arrival(1), arrival(2)]);
        assert_eq!(next_key(&mut on_b).await, "attendance:1");
        assert_eq!(next_key(&mut on_b).await, "attendance:2");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn redis_down_keeps_events_on_their_instance() {
        let shutdown = CancellationToken::new();
        let bus = instance("redis://127.0.0.1:1", "unreachable:", &shutdown);
        let mut local = bus.subscribe();
        bus.announce([arrival(1)]);
        assert_eq!(next_key(&mut local).await, "attendance:1");
        shutdown.cancel();
    }

    #[test]
    fn an_event_survives_the_wire() {
        let event = Event {
            kind: EventKind::AttendanceLogged,
            key: "attendance:7".into(),
            timestamp: "2024-03-15T08:45:23.123456Z".parse().unwrap(),
            data: json!({"employee_id": "FAC001"}),
        };
        let wire = serde_json::to_string(&Relayed::new("a", &event)).unwrap();
        let back = serde_json::from_str::<Relayed>(&wire).unwrap().into_event().unwrap();
        assert_eq!(
            (back.kind, back.key, back.timestamp, back.data),
            (event.kind, event.key, event.timestamp, event.data)
        );
    }
}

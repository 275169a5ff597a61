//! Domain events (`attendance_logged`, `spoofing_detected`, `enrollment_completed`,
//! `attendance_voided`):
//! recorded by the code that caused them in the same transaction as the change itself
//! (the webhook outbox), and broadcast live (Server-Sent Events) once it has committed.
//! With Redis configured, live events also reach the subscribers of the other API
//! instances ([`relay`]).

pub mod relay;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::store::Tx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    AttendanceLogged,
    SpoofingDetected,
    EnrollmentCompleted,
    AttendanceVoided,
    DisputeResolved,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        Self::AttendanceLogged,
        Self::SpoofingDetected,
        Self::EnrollmentCompleted,
        Self::AttendanceVoided,
        Self::DisputeResolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AttendanceLogged => "attendance_logged",
            Self::SpoofingDetected => "spoofing_detected",
            Self::EnrollmentCompleted => "enrollment_completed",
            Self::AttendanceVoided => "attendance_voided",
            Self::DisputeResolved => "dispute_resolved",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Something that happened. `key` identifies the occurrence (e.g. `attendance:42`), so a
/// sink that sees the same event twice (a task re-run after a crash) can drop the copy.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    pub timestamp: DateTime<Utc>,
    pub data: Value,
}

impl Event {
    /// The wire form, as in the spec's webhook body.
    pub fn body(&self) -> Value {
        json!({
            "event": self.kind.as_str(),
            "timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            "data": self.data,
        })
    }
}

/// A durable consumer of events: it records them in the transaction that made them
/// happen, so an event exists exactly when the change it reports does.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    async fn record(&self, tx: &Tx, event: &Event) -> anyhow::Result<()>;
    /// The transaction that recorded events committed (e.g. wake a deliverer).
    fn committed(&self) {}
}

/// Hands events to the durable sinks inside a transaction, then, once it has committed,
/// to live subscribers.
pub struct EventBus {
    sinks: Vec<Arc<dyn EventSink>>,
    live: broadcast::Sender<Event>,
    /// Announced events on their way to the other instances ([`relay`]), when relayed.
    outgoing: Option<mpsc::Sender<Event>>,
    /// The other end of `outgoing`, until the relay takes it.
    outgoing_queue: Mutex<Option<mpsc::Receiver<Event>>>,
}

impl EventBus {
    /// Live subscribers that fall this far behind miss events (and are told so).
    const LIVE_BUFFER: usize = 1024;

    pub fn new(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        Self { sinks, live: broadcast::channel(Self::LIVE_BUFFER).0, outgoing: None, outgoing_queue: Mutex::new(None) }
    }

    /// A bus whose announced events are also handed to [`relay::run`] for the other
    /// instances. Events beyond the live buffer (1,024) waiting to leave (Redis down)
    /// are not relayed.
    pub fn relayed(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        let (sender, receiver) = mpsc::channel(Self::LIVE_BUFFER);
        Self { outgoing: Some(sender), outgoing_queue: Mutex::new(Some(receiver)), ..Self::new(sinks) }
    }

    /// The announced events to relay; `None` if the bus is not relayed or they were taken.
    pub fn take_outgoing(&self) -> Option<mpsc::Receiver<Event>> {
        self.outgoing_queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Records `event` in every durable sink, as part of `tx`. Nothing is sent until
    /// [`EventBus::announce`] after the commit.
    pub async fn record(&self, tx: &Tx, event: &Event) -> anyhow::Result<()> {
        for sink in &self.sinks {
            sink.record(tx, event).await?;
        }
        Ok(())
    }

    /// Tells sinks and live subscribers about events whose transaction has committed.
    pub fn announce(&self, events: impl IntoIterator<Item = Event>) {
        for sink in &self.sinks {
            sink.committed();
        }
        for event in events {
            if let Some(outgoing) = &self.outgoing
                && outgoing.try_send(event.clone()).is_err()
            {
                tracing::warn!(event.key = %event.key, "live event not relayed to the other instances: too many waiting");
            }
            let _ = self.live.send(event);
        }
    }

    /// Gives live subscribers an event another instance announced.
    pub fn broadcast_relayed(&self, event: Event) {
        let _ = self.live.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_spec_shape() {
        let event = Event {
            kind: EventKind::AttendanceLogged,
            key: "attendance:1".into(),
            timestamp: "2024-03-15T08:45:23Z".parse().unwrap(),
            data: json!({"employee_id": "FAC001"}),
        };
        assert_eq!(
            event.body(),
            json!({"event": "attendance_logged", "timestamp": "2024-03-15T08:45:23Z", "data": {"employee_id": "FAC001"}})
        );
        assert_eq!(EventKind::parse("spoofing_detected"), Some(EventKind::SpoofingDetected));
        assert_eq!(EventKind::parse("nope"), None);
    }
}

//! Recording that a person arrived: at most one log per person per cooldown, and never
//! two for one task (a task re-run after a crash finds its own earlier log).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::events::{Event, EventBus, EventKind};
use crate::store::Db;
pub use crate::store::attendance::NewAttendance;
use crate::store::attendance::{self as attendance_store, AttendanceRecord};
use crate::store::users::UserRecord;

/// One recognised arrival of an active person.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    pub user: &'a UserRecord,
    pub log: NewAttendance,
}

#[derive(Debug, Clone)]
pub enum Logged {
    /// A new log.
    New(AttendanceRecord),
    /// This task had logged this arrival already (it is being run again).
    AlreadyByThisTask(AttendanceRecord),
    /// The person was logged at `previous` and the cooldown has not passed.
    Cooldown { previous: DateTime<Utc> },
}

impl Logged {
    pub fn record(&self) -> Option<&AttendanceRecord> {
        match self {
            Self::New(record) | Self::AlreadyByThisTask(record) => Some(record),
            Self::Cooldown { .. } => None,
        }
    }
}

/// Serialises the check-then-insert of arrivals, so two frames of one person processed
/// at the same moment cannot both pass the cooldown check.
pub struct AttendanceDesk {
    cooldown: Duration,
    lock: tokio::sync::Mutex<()>,
}

impl AttendanceDesk {
    pub fn new(cooldown: Duration) -> Self {
        Self { cooldown, lock: tokio::sync::Mutex::new(()) }
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Logs the arrival unless the cooldown forbids it, then publishes
    /// `attendance_logged`. A repeat of the same task publishes again (sinks drop the copy
    /// by the event's key), so an event lost to a crash is sent on the re-run.
    pub async fn log(&self, db: &Db, events: &EventBus, arrival: Arrival<'_>) -> anyhow::Result<Logged> {
        let _serialised = self.lock.lock().await;
        if let Some(task_id) = &arrival.log.task_id
            && let Some(record) = attendance_store::find_for_task(db, task_id, arrival.user.id).await?
        {
            events.publish(attendance_event(arrival.user, &record)).await?;
            return Ok(Logged::AlreadyByThisTask(record));
        }
        let since = arrival.log.timestamp - chrono::Duration::from_std(self.cooldown)?;
        if let Some(previous) = attendance_store::latest_since(db, arrival.user.id, since).await? {
            return Ok(Logged::Cooldown { previous: previous.timestamp });
        }
        let record = match attendance_store::insert(db, arrival.user.id, &arrival.log).await? {
            Some(record) => record,
            None => anyhow::bail!("attendance for task {:?} appeared while it was being logged", arrival.log.task_id),
        };
        events.publish(attendance_event(arrival.user, &record)).await?;
        Ok(Logged::New(record))
    }
}

fn attendance_event(user: &UserRecord, record: &AttendanceRecord) -> Event {
    Event {
        kind: EventKind::AttendanceLogged,
        key: format!("attendance:{}", record.id),
        timestamp: record.timestamp,
        data: json!({
            "attendance_id": record.id,
            "employee_id": user.employee_id,
            "name": user.full_name(),
            "camera_id": record.camera_id,
            "location": record.location,
            "confidence": record.confidence,
            "source": record.source,
        }),
    }
}

//! Recording that a person arrived: at most one log per person per cooldown, and never
//! two for one task (a task re-run after a crash finds its own earlier log), across any
//! number of processes sharing the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::crypto::Sealer;
use crate::domain::auth::Principal;
use crate::domain::calendar::Calendar;
use crate::domain::users::Role;
use crate::events::{Event, EventBus, EventKind};
use crate::queue::begin_for_task;
use crate::store::attendance::{self as attendance_store, AttendanceRecord};
pub use crate::store::attendance::{AttendanceFilter, NewAttendance};
use crate::store::attendance_counts::{self, CountKey};
use crate::store::evidence as evidence_store;
use crate::store::sealed;
use crate::store::tasks::TaskClaim;
use crate::store::users as user_store;
use crate::store::users::UserRecord;
use crate::store::{Db, StoreResult, Tx};

/// One recognised arrival of an active person.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    pub user: &'a UserRecord,
    pub log: NewAttendance,
    /// The face crop it was decided on (JPEG), kept sealed with the log.
    pub face_crop: Option<Vec<u8>>,
}

impl<'a> Arrival<'a> {
    /// An arrival kept with no face crop (manual marks, reports, or evidence turned off).
    pub fn without_crop(user: &'a UserRecord, log: NewAttendance) -> Self {
        Self { user, log, face_crop: None }
    }
}

#[derive(Debug, Clone)]
pub enum Logged {
    /// A new log.
    New(AttendanceRecord),
    /// This task had logged this arrival already (it is being run again).
    AlreadyByThisTask(AttendanceRecord),
    /// The person was logged at `previous` (log `previous_id`), less than the cooldown
    /// before or after this arrival.
    Cooldown { previous: DateTime<Utc>, previous_id: i64 },
}

impl Logged {
    pub fn record(&self) -> Option<&AttendanceRecord> {
        match self {
            Self::New(record) | Self::AlreadyByThisTask(record) => Some(record),
            Self::Cooldown { .. } => None,
        }
    }
}

/// Logs arrivals. The cooldown check and the log it allows are one transaction that
/// the database serialises (the write lock on SQLite, the person's row lock on
/// PostgreSQL), so it holds for any number of workers and processes.
pub struct AttendanceDesk {
    db: Db,
    events: Arc<EventBus>,
    /// Seals face crops for their log.
    sealer: Sealer,
    /// The local days and hours logs are counted in.
    calendar: Calendar,
    /// Zero: no cooldown, every arrival is logged.
    cooldown: Duration,
}

impl AttendanceDesk {
    pub fn new(db: Db, events: Arc<EventBus>, sealer: Sealer, calendar: Calendar, cooldown: Duration) -> Self {
        Self { db, events, sealer, calendar, cooldown }
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Logs the arrival unless the cooldown forbids it, with its `attendance_logged` event
    /// in the same transaction. `task` is the claim of the task that saw the arrival: when
    /// it no longer holds, nothing is written ([`ClaimLost`](crate::queue::ClaimLost)). A task run again finds the
    /// log it made before, whose event was recorded with it.
    pub async fn log(&self, task: Option<&TaskClaim>, arrival: Arrival<'_>) -> anyhow::Result<Logged> {
        let tx = begin_for_task(&self.db, task).await?;
        let (logged, event) = self.log_in(&tx, arrival).await?;
        if let Some(event) = event {
            tx.commit().await?;
            self.events.announce([event]);
        }
        Ok(logged)
    }

    /// [`Self::log`] within `tx`: a new log comes with its event, recorded in `tx` and to
    /// be announced once `tx` commits.
    pub(crate) async fn log_in(&self, tx: &Tx, arrival: Arrival<'_>) -> anyhow::Result<(Logged, Option<Event>)> {
        let Some(user) = user_store::lock(tx, arrival.user.id).await? else {
            anyhow::bail!("user {} was deleted while their arrival was logged", arrival.user.employee_id);
        };
        if let Some(task_id) = &arrival.log.task_id
            && let Some(record) = attendance_store::find_for_task(tx, task_id, user.id).await?
        {
            return Ok((Logged::AlreadyByThisTask(record), None));
        }
        if !self.cooldown.is_zero() {
            // Both sides: a backdated arrival (a manual mark, a late report) is refused
            // next to a log after it as well as next to one before it.
            let cooldown = chrono::Duration::from_std(self.cooldown)?;
            let (since, until) = (arrival.log.timestamp - cooldown, arrival.log.timestamp + cooldown);
            if let Some(previous) = attendance_store::latest_between(tx, user.id, since, until).await? {
                return Ok((Logged::Cooldown { previous: previous.timestamp, previous_id: previous.id }, None));
            }
        }
        let Some(record) = attendance_store::insert(tx, user.id, &arrival.log).await? else {
            anyhow::bail!("attendance for task {:?} appeared while it was being logged", arrival.log.task_id);
        };
        self.count(tx, &user, &record, 1).await?;
        // Erasing a person's face data clears `face_enrolled` under the same row lock:
        // a crop arriving after the erasure is not kept.
        if let Some(crop) = arrival.face_crop.as_ref().filter(|_| user.face_enrolled) {
            let sealed = self.sealer.seal(crop, &sealed::arrival_evidence_binding(record.id));
            evidence_store::insert(tx, record.id, sealed, Utc::now()).await?;
        }
        let event = attendance_event(&user, &record);
        self.events.record(tx, &event).await?;
        Ok((Logged::New(record), Some(event)))
    }

    /// Counts `record` of `user` in the attendance counts (`change` 1), or no longer (-1).
    async fn count(&self, tx: &Tx, user: &UserRecord, record: &AttendanceRecord, change: i64) -> StoreResult<()> {
        let (day, hour) = self.calendar.day_and_hour(record.timestamp);
        attendance_counts::count_log(tx, user.id, &CountKey::of(user), &day, hour, change).await
    }

    /// Deletes the logs before `cutoff` (with their disputes and face crops) and their
    /// counts; how many logs went.
    pub async fn delete_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let deleted = attendance_store::delete_before(&self.db, cutoff).await?;
        crate::domain::attendance_counts::forget_before(&self.db, &self.calendar, cutoff).await?;
        Ok(deleted)
    }

    /// Announces events recorded in a transaction that has committed.
    pub(crate) fn announce(&self, events: impl IntoIterator<Item = Event>) {
        self.events.announce(events);
    }

    /// Records `event` in `tx`, to be announced once it commits.
    pub(crate) async fn record_event(&self, tx: &Tx, event: &Event) -> anyhow::Result<()> {
        self.events.record(tx, event).await?;
        Ok(())
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

/// What voiding a log came to.
#[derive(Debug)]
pub enum Voided {
    Now(AttendanceRecord),
    /// It had been voided before (by whom and why are on the record).
    Already(AttendanceRecord),
    NoSuchLog,
}

impl AttendanceDesk {
    /// Voids log `id`: it stays listed, with who voided it and why, and counts nowhere.
    /// The change and its `attendance_voided` event are one transaction.
    pub async fn void(&self, id: i64, voided_by: &str, reason: &str) -> anyhow::Result<Voided> {
        let tx = self.db.begin().await?;
        let (voided, event) = self.void_in(&tx, id, voided_by, reason).await?;
        if let Some(event) = event {
            tx.commit().await?;
            self.events.announce([event]);
        }
        Ok(voided)
    }

    /// [`Self::void`] within `tx`: a void comes with its event, recorded in `tx` and to be
    /// announced once `tx` commits.
    pub(crate) async fn void_in(
        &self,
        tx: &Tx,
        id: i64,
        voided_by: &str,
        reason: &str,
    ) -> anyhow::Result<(Voided, Option<Event>)> {
        let Some(record) = attendance_store::void(tx, id, voided_by, reason, Utc::now()).await? else {
            let voided = match attendance_store::find(tx, id).await? {
                Some(record) => Voided::Already(record),
                None => Voided::NoSuchLog,
            };
            return Ok((voided, None));
        };
        // The person's row lock orders this with a change of their department or role,
        // which moves their counts ([`crate::domain::attendance_counts::move_person`]).
        let user = user_store::lock(tx, record.user_id).await?;
        if let Some(user) = &user {
            self.count(tx, user, &record, -1).await?;
        }
        let employee_id = user.map(|user| user.employee_id);
        let event = Event {
            kind: EventKind::AttendanceVoided,
            key: format!("attendance_voided:{}", record.id),
            timestamp: record.voided_at.unwrap_or_else(Utc::now),
            data: json!({
                "attendance_id": record.id,
                "employee_id": employee_id,
                "timestamp": record.timestamp,
                "voided_by": voided_by,
                "reason": reason,
            }),
        };
        self.events.record(tx, &event).await?;
        Ok((Voided::Now(record), Some(event)))
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

/// Whose logs a caller may read: admins (people and API keys) every log, faculty the
/// logs of their own department, students their own logs. API keys without the admin
/// role belong to no person and read none (`None`).
pub async fn readable_by(db: &Db, caller: &Principal) -> StoreResult<Option<Readable>> {
    if caller.is_admin() {
        return Ok(Some(Readable::Everything));
    }
    let Some(user_id) = caller.user_id() else {
        return Ok(None);
    };
    Ok(match caller.role() {
        Role::Admin => Some(Readable::Everything),
        Role::Student => Some(Readable::Person(user_id)),
        Role::Faculty => user_store::find_by_id(db, user_id).await?.map(|user| Readable::Department(user.department)),
    })
}

/// The logs a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable {
    Everything,
    Department(String),
    Person(i64),
}

impl Readable {
    /// Narrows `filter` to these logs; the caller's own filters still apply within them.
    pub fn restrict(self, filter: &mut AttendanceFilter) {
        match self {
            Self::Everything => {}
            Self::Department(department) => filter.department_of_reader = Some(department),
            Self::Person(user_id) => filter.user_id = Some(user_id),
        }
    }
}

/// How the API names where a log came from, and the stored sources each name covers.
pub const SOURCES: &[(&str, &[&str])] = &[
    ("face", &["verify", "bulk_verify"]),
    ("mobile", &["mobile"]),
    ("manual", &["manual"]),
    ("webhook", &["webhook"]),
];

/// The API's name for a stored source (`verify` and `bulk_verify` are `face`).
pub fn source_name(stored: &str) -> &str {
    SOURCES.iter().find(|(_, stored_as)| stored_as.contains(&stored)).map_or(stored, |(name, _)| name)
}

/// The stored sources of an API source name; `None` for an unknown name.
pub fn stored_sources(name: &str) -> Option<Vec<&'static str>> {
    SOURCES.iter().find(|(known, _)| *known == name).map(|(_, stored)| stored.to_vec())
}

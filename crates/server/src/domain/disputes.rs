//! Disputes: a person says a log of theirs is not them, or that they arrived and no log
//! says so; an admin accepts (the log is voided, or a manual mark is made) or rejects.
//! A resolution, what it changes and its events are one transaction, and a dispute is
//! resolved once, whatever number of admins and processes try.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::attendance::{Arrival, AttendanceDesk, Logged, NewAttendance, Voided};
use crate::events::{Event, EventKind};
use crate::store::attendance::{self as attendance_store, AttendanceRecord};
use crate::store::disputes::{self as dispute_store, DisputeRecord, NewDispute, Resolution};
use crate::store::users::{self as user_store, UserRecord};

#[derive(Debug)]
pub enum Filed {
    Now(DisputeRecord),
    /// No such log of this person.
    NoSuchLog,
    /// The log is voided already: it counts nowhere.
    LogVoided(AttendanceRecord),
    /// The log has an open dispute.
    AlreadyOpen(DisputeRecord),
}

/// Files `user`'s "not me" dispute of their log `attendance_id`.
pub async fn dispute_log(
    desk: &AttendanceDesk,
    user: &UserRecord,
    attendance_id: i64,
    reason: &str,
) -> anyhow::Result<Filed> {
    let db = desk.db();
    let Some(log) = attendance_store::find(db, attendance_id).await?.filter(|log| log.user_id == user.id) else {
        return Ok(Filed::NoSuchLog);
    };
    if log.is_voided() {
        return Ok(Filed::LogVoided(log));
    }
    let dispute = NewDispute {
        user_id: user.id,
        kind: dispute_store::NOT_ME,
        attendance_id: Some(attendance_id),
        claimed_at: None,
        reason,
    };
    match dispute_store::insert(db, dispute).await? {
        Some(record) => Ok(Filed::Now(record)),
        None => match dispute_store::open_for_log(db, attendance_id).await? {
            Some(open) => Ok(Filed::AlreadyOpen(open)),
            None => anyhow::bail!("a dispute of log {attendance_id} was refused and none is open"),
        },
    }
}

/// Files `user`'s report of an arrival at `claimed_at` that no log records.
pub async fn report_missed_arrival(
    desk: &AttendanceDesk,
    user: &UserRecord,
    claimed_at: DateTime<Utc>,
    reason: &str,
) -> anyhow::Result<DisputeRecord> {
    let dispute = NewDispute {
        user_id: user.id,
        kind: dispute_store::MISSED_ARRIVAL,
        attendance_id: None,
        claimed_at: Some(claimed_at),
        reason,
    };
    dispute_store::insert(desk.db(), dispute)
        .await?
        .ok_or_else(|| anyhow::anyhow!("a missed-arrival report conflicted with another dispute"))
}

#[derive(Debug)]
pub enum Resolved {
    /// Resolved now; `log_id` is the log voided or marked, when accepting changed one.
    Now {
        dispute: Box<DisputeRecord>,
        log_id: Option<i64>,
    },
    AlreadyResolved(Box<DisputeRecord>),
    NoSuchDispute,
    /// Accepting the missed arrival would log the person within the cooldown of log
    /// `previous_id`: they are logged near that time already.
    Cooldown {
        previous: DateTime<Utc>,
        previous_id: i64,
    },
    /// The person was deactivated: no mark is made for them.
    Deactivated,
}

/// Accepts or rejects dispute `id` as `by`, with an optional note.
pub async fn resolve(
    desk: &AttendanceDesk,
    id: i64,
    accept: bool,
    by: &str,
    note: Option<&str>,
) -> anyhow::Result<Resolved> {
    let tx = desk.db().begin().await?;
    let status = if accept { dispute_store::ACCEPTED } else { dispute_store::REJECTED };
    let Some(mut dispute) = dispute_store::resolve(&tx, id, Resolution { status, by, note }).await? else {
        return Ok(match dispute_store::find(&tx, id).await? {
            Some(dispute) => Resolved::AlreadyResolved(Box::new(dispute)),
            None => Resolved::NoSuchDispute,
        });
    };
    let Some(user) = user_store::find_by_id(&tx, dispute.user_id).await? else {
        anyhow::bail!("dispute {id} belongs to no user");
    };
    let mut events = Vec::new();
    let mut log = None;
    if accept {
        match (dispute.kind.as_str(), dispute.attendance_id, dispute.claimed_at) {
            (dispute_store::NOT_ME, Some(attendance_id), _) => {
                let reason = format!("dispute {id} accepted: {}", dispute.reason);
                let (voided, event) = desk.void_in(&tx, attendance_id, by, &reason).await?;
                events.extend(event);
                log = match voided {
                    Voided::Now(record) | Voided::Already(record) => Some(record),
                    Voided::NoSuchLog => anyhow::bail!("dispute {id} names no log {attendance_id}"),
                };
            }
            (dispute_store::MISSED_ARRIVAL, _, Some(claimed_at)) => {
                if !user.is_active {
                    return Ok(Resolved::Deactivated);
                }
                let arrival = Arrival::without_crop(&user, missed_arrival_mark(&dispute, claimed_at, by));
                match desk.log_in(&tx, arrival).await? {
                    (Logged::New(record), event) => {
                        events.extend(event);
                        dispute = dispute_store::set_resulting_log(&tx, id, record.id)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("dispute {id} vanished while it was resolved"))?;
                        log = Some(record);
                    }
                    (Logged::Cooldown { previous, previous_id }, _) => {
                        return Ok(Resolved::Cooldown { previous, previous_id });
                    }
                    (Logged::AlreadyByThisTask(record), _) => {
                        anyhow::bail!("a mark without a task found task log {}", record.id)
                    }
                }
            }
            (kind, _, _) => anyhow::bail!("dispute {id} of kind {kind:?} lacks what it is about"),
        }
    }
    let event = resolved_event(&dispute, &user);
    desk.record_event(&tx, &event).await?;
    events.push(event);
    tx.commit().await?;
    desk.announce(events);
    Ok(Resolved::Now { dispute: Box::new(dispute), log_id: log.map(|log: AttendanceRecord| log.id) })
}

/// The manual mark an accepted missed arrival makes.
fn missed_arrival_mark(dispute: &DisputeRecord, claimed_at: DateTime<Utc>, by: &str) -> NewAttendance {
    let reason = format!("dispute {}: {}", dispute.id, dispute.reason);
    NewAttendance::manual(claimed_at, json!({"reason": reason, "marked_by": by, "dispute_id": dispute.id}))
}

fn resolved_event(dispute: &DisputeRecord, user: &UserRecord) -> Event {
    Event {
        kind: EventKind::DisputeResolved,
        key: format!("dispute_resolved:{}", dispute.id),
        timestamp: dispute.resolved_at.unwrap_or_else(Utc::now),
        data: json!({
            "dispute_id": dispute.id,
            "employee_id": user.employee_id,
            "kind": dispute.kind,
            "status": dispute.status,
            "attendance_id": dispute.attendance_id,
            "resulting_attendance_id": dispute.resulting_attendance_id,
            "resolved_by": dispute.resolved_by,
            "note": dispute.resolution_note,
        }),
    }
}

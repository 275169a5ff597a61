//! Maintenance an admin starts (`POST /system/maintenance/`), run as a durable task: old
//! logs cleaned up, the database vacuumed, the face index rebuilt, expired tokens and
//! evidence purged. Each reports what it changed.

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::face::FaceTasks;
use crate::queue::{Task, TaskFailure};
use crate::store::{audit, refresh_tokens, tasks};

/// The maintenance tasks there are, by name.
pub const TASKS: [&str; 5] =
    ["cleanup_old_logs", "vacuum_database", "rebuild_face_index", "purge_expired_tokens", "purge_evidence"];

/// The longest history `cleanup_old_logs` may be asked to keep: 100 years.
pub const MAX_DAYS_TO_KEEP: u32 = 36_500;

/// One maintenance task with its parameters, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", content = "parameters", rename_all = "snake_case")]
pub enum Maintenance {
    /// Deletes attendance logs (with their disputes and face crops), audit entries and
    /// ended tasks older than `days_to_keep` days.
    CleanupOldLogs {
        days_to_keep: u32,
    },
    VacuumDatabase,
    RebuildFaceIndex,
    PurgeExpiredTokens,
    PurgeEvidence,
}

impl Maintenance {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CleanupOldLogs { .. } => "cleanup_old_logs",
            Self::VacuumDatabase => "vacuum_database",
            Self::RebuildFaceIndex => "rebuild_face_index",
            Self::PurgeExpiredTokens => "purge_expired_tokens",
            Self::PurgeEvidence => "purge_evidence",
        }
    }

    /// The task `name` with `parameters`, or why not (the message names what is valid).
    pub fn parse(name: &str, parameters: &serde_json::Map<String, Value>) -> Result<Self, (&'static str, String)> {
        let no_parameters = |task: Self| {
            if parameters.is_empty() { Ok(task) } else { Err(("parameters", format!("{name} takes no parameters"))) }
        };
        match name {
            "cleanup_old_logs" => {
                let unknown: Vec<&str> =
                    parameters.keys().map(String::as_str).filter(|key| *key != "days_to_keep").collect();
                if !unknown.is_empty() {
                    return Err((
                        "parameters",
                        format!("cleanup_old_logs takes days_to_keep only, not {}", unknown.join(", ")),
                    ));
                }
                let days = parameters
                    .get("days_to_keep")
                    .and_then(Value::as_u64)
                    .filter(|days| (1..=u64::from(MAX_DAYS_TO_KEEP)).contains(days))
                    .ok_or_else(|| {
                        (
                            "parameters.days_to_keep",
                            format!("is required: a whole number of days from 1 to {MAX_DAYS_TO_KEEP}"),
                        )
                    })?;
                Ok(Self::CleanupOldLogs { days_to_keep: days as u32 })
            }
            "vacuum_database" => no_parameters(Self::VacuumDatabase),
            "rebuild_face_index" => no_parameters(Self::RebuildFaceIndex),
            "purge_expired_tokens" => no_parameters(Self::PurgeExpiredTokens),
            "purge_evidence" => no_parameters(Self::PurgeEvidence),
            _ => Err(("task", format!("must be one of {}", TASKS.join(", ")))),
        }
    }
}

pub(crate) async fn run(tasks: &FaceTasks, task: &Task) -> Result<Value, TaskFailure> {
    let maintenance: Maintenance = serde_json::from_slice(&task.payload)
        .map_err(|e| TaskFailure::permanent(format!("not a maintenance task: {e}")))?;
    let retryable = |e: crate::store::StoreError| TaskFailure::retryable(e.to_string());
    let now = Utc::now();
    let done = match &maintenance {
        Maintenance::CleanupOldLogs { days_to_keep } => {
            let cutoff = now - Duration::days(i64::from(*days_to_keep));
            json!({
                "cutoff": cutoff,
                "deleted": {
                    "attendance_logs": tasks.attendance.delete_before(cutoff).await.map_err(retryable)?,
                    "audit_logs": audit::delete_before(&tasks.db, cutoff).await.map_err(retryable)?,
                    "tasks": tasks::delete_ended_before(&tasks.db, cutoff).await.map_err(retryable)?,
                },
            })
        }
        Maintenance::VacuumDatabase => {
            tasks.db.vacuum().await.map_err(retryable)?;
            json!({"database": tasks.db.backend_name()})
        }
        Maintenance::RebuildFaceIndex => {
            let enrolled = tasks
                .face
                .rebuild_index(&tasks.db, &tasks.sealer)
                .await
                .map_err(|e| TaskFailure::retryable(e.to_string()))?;
            json!({"enrolled": enrolled})
        }
        Maintenance::PurgeExpiredTokens => {
            json!({"deleted": {"refresh_tokens": refresh_tokens::delete_expired(&tasks.db, now).await.map_err(retryable)?}})
        }
        Maintenance::PurgeEvidence => {
            let purged = tasks.evidence_retention.purge_expired(&tasks.db, now).await.map_err(retryable)?;
            let visitors = tasks.visitors.purge_expired(&tasks.db, now).await.map_err(retryable)?;
            json!({
                "deleted": {"face_crops": purged, "unknown_visitors": visitors},
                "retention_days": tasks.evidence_retention.days,
                "unknown_visitor_retention_days": tasks.visitors.retention_days,
            })
        }
    };
    Ok(json!({"task": maintenance.name(), "result": done}))
}

//! The audit trail: every login, logout and administrative change, with who did it,
//! from where, and whether it worked. Writing it never fails the action it records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{self, Db, Exec};

/// Where a request came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }

    pub const NAMES: [&'static str; 3] = ["info", "warning", "error"];
}

/// One audited action. `actor` is the employee id (or `api_key:<name>`) of who acted,
/// or who tried to.
pub struct AuditEvent {
    pub action: &'static str,
    pub actor: Option<String>,
    pub success: bool,
    pub severity: Severity,
    pub details: Value,
}

impl AuditEvent {
    pub fn success(action: &'static str, actor: Option<String>, details: Value) -> Self {
        Self { action, actor, success: true, severity: Severity::Info, details }
    }

    pub fn failure(action: &'static str, actor: Option<String>, details: Value) -> Self {
        Self { action, actor, success: false, severity: Severity::Warning, details }
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// Writes `event`. A failure to write is logged as an error, not returned: the action
/// itself has already happened.
pub async fn record(db: &Db, client: &ClientInfo, event: AuditEvent) {
    let action = event.action;
    if let Err(error) = store::audit::insert(db, new_record(client, event, None)).await {
        tracing::error!(audit.action = action, error = %error, "could not write an audit log entry");
    }
}

/// Who asked for a task, carried in its input so that the task's outcome can be audited.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Requester {
    /// How the audit log names the caller (see `Principal::audit_name`).
    pub name: Option<String>,
    pub client: ClientInfo,
}

/// Writes the entry for what task `task_id` did, as part of the transaction `db` of its
/// other writes: one entry per task and action, however often the task runs.
pub async fn record_for_task(
    db: &impl Exec,
    task_id: &str,
    requester: &Requester,
    mut event: AuditEvent,
) -> store::StoreResult<()> {
    event.actor = event.actor.or_else(|| requester.name.clone());
    store::audit::insert(db, new_record(&requester.client, event, Some(task_id.to_owned()))).await
}

fn new_record(client: &ClientInfo, event: AuditEvent, task_id: Option<String>) -> store::audit::NewAuditRecord {
    store::audit::NewAuditRecord {
        task_id,
        action: event.action.to_owned(),
        user_id: event.actor,
        ip_address: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        success: event.success,
        severity: event.severity.as_str().to_owned(),
        details: event.details.to_string(),
    }
}

//! `GET /security/audit-logs/` (admin only).

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Json, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::audit::Severity;
use crate::store::audit::{self as audit_store, AuditFilter, AuditRecord};

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    /// e.g. `login`, `logout`, `user_create`, `user_update`, `user_deactivate`, `api_key_create`.
    pub action: String,
    /// Employee id (or `api_key:<name>`) of who acted.
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub success: bool,
    pub severity: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        Self {
            id: record.id,
            timestamp: record.timestamp,
            action: record.action,
            user_id: record.user_id,
            ip_address: record.ip_address,
            user_agent: record.user_agent,
            success: record.success,
            severity: record.severity,
            details: serde_json::from_str(&record.details).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this action, e.g. `login`.
    pub action: Option<String>,
    /// Only entries by this employee id.
    pub user_id: Option<String>,
    /// From this date (YYYY-MM-DD, UTC), inclusive.
    pub date_from: Option<NaiveDate>,
    /// Up to this date (YYYY-MM-DD, UTC), inclusive.
    pub date_to: Option<NaiveDate>,
    /// `info`, `warning` or `error`.
    pub severity: Option<String>,
    pub success: Option<bool>,
}

/// Security audit log, newest first.
#[utoipa::path(get, path = "/security/audit-logs/", tag = "security", params(AuditQuery, PageParams),
    responses((status = 200, body = Paginated<AuditEntry>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_audit_logs(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    url: RequestUrl,
    Query(query): Query<AuditQuery>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<AuditEntry>>> {
    let page = page.page()?;
    if let Some(severity) = &query.severity
        && !Severity::NAMES.contains(&severity.as_str())
    {
        return Err(ApiError::validation("severity", "must be one of info, warning, error"));
    }
    if let (Some(from), Some(to)) = (query.date_from, query.date_to)
        && from > to
    {
        return Err(ApiError::validation("date_from", "must not be after date_to"));
    }
    let filter = AuditFilter {
        action: query.action,
        user_id: query.user_id,
        severity: query.severity,
        from: query.date_from.map(start_of_day),
        to: query.date_to.and_then(|d| d.succ_opt()).map(start_of_day),
        success: query.success,
    };
    let (records, count) = audit_store::list(&state.db, &filter, page.limit(), page.offset()).await?;
    Ok(Json(Paginated::new(records.into_iter().map(AuditEntry::from).collect(), count, page, &url)))
}

fn start_of_day(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

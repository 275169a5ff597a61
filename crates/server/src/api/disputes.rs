//! `/attendance/disputes/`: a person disputes a log of theirs ("not me") or reports an
//! arrival no log records; admins list them and accept or reject each once.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::attendance::{LogEmployee, MAX_REASON_CHARS, required_reason};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::disputes::{self, Filed, Resolved};
use crate::domain::users::parse_text;
use crate::store::disputes::{self as dispute_store, DisputeFilter, DisputeListing, DisputeRecord};
use crate::store::users::{self as user_store, UserRecord};

#[derive(Serialize, ToSchema)]
pub struct Dispute {
    pub id: i64,
    /// Who filed it.
    pub employee: LogEmployee,
    /// `not_me` (a log that is not this person) or `missed_arrival`.
    pub kind: String,
    /// `not_me`: the log disputed.
    pub attendance_id: Option<i64>,
    /// `missed_arrival`: when the person says they arrived.
    pub timestamp: Option<DateTime<Utc>>,
    pub reason: String,
    /// `open`, `accepted` or `rejected`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    /// An accepted missed arrival: the manual mark it made.
    pub resulting_attendance_id: Option<i64>,
}

impl From<DisputeListing> for Dispute {
    fn from(listing: DisputeListing) -> Self {
        let record = listing.record;
        Self {
            id: record.id,
            employee: LogEmployee {
                id: record.user_id,
                employee_id: listing.employee_id,
                name: format!("{} {}", listing.first_name, listing.last_name),
                department: listing.department,
            },
            kind: record.kind,
            attendance_id: record.attendance_id,
            timestamp: record.claimed_at,
            reason: record.reason,
            status: record.status,
            created_at: record.created_at,
            resolved_at: record.resolved_at,
            resolved_by: record.resolved_by,
            resolution_note: record.resolution_note,
            resulting_attendance_id: record.resulting_attendance_id,
        }
    }
}

fn dispute_of(record: DisputeRecord, user: &UserRecord) -> Dispute {
    Dispute::from(DisputeListing {
        record,
        employee_id: user.employee_id.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        department: user.department.clone(),
    })
}

/// A dispute: `{"kind": "not_me", "attendance_id": 12, "reason": …}` or `{"kind":
/// "missed_arrival", "timestamp": …, "reason": …}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDisputeRequest {
    pub kind: String,
    pub attendance_id: Option<i64>,
    /// When the person arrived (RFC 3339); not in the future.
    pub timestamp: Option<DateTime<Utc>>,
    /// Required, at most 500 characters.
    pub reason: String,
}

/// Dispute one of your own logs (`not_me`) or report an arrival no log records
/// (`missed_arrival`). Filed by a person (not an API key), audited (`dispute_filed`); an
/// admin accepts or rejects it. One open dispute per log.
#[utoipa::path(post, path = "/attendance/disputes/", tag = "attendance", request_body = NewDisputeRequest,
    responses((status = 201, body = Dispute), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "An API key, which is no person"),
        (status = 404, body = ErrorBody, description = "No such log of yours"),
        (status = 409, body = ErrorBody, description = "The log is voided, or has an open dispute")))]
pub async fn file_dispute(
    State(state): State<AppState>,
    Auth(caller): Auth,
    client: ClientInfo,
    Json(request): Json<NewDisputeRequest>,
) -> ApiResult<(StatusCode, Json<Dispute>)> {
    let reason = required_reason(&request.reason)?;
    let user_id =
        caller.user_id().ok_or_else(|| ApiError::Forbidden("disputes are filed by a person, not an API key".into()))?;
    let user = user_store::find_by_id(&state.db, user_id).await?.ok_or_else(ApiError::forbidden)?;
    let record = match (request.kind.as_str(), request.attendance_id, request.timestamp) {
        (dispute_store::NOT_ME, Some(attendance_id), None) => {
            match disputes::dispute_log(&state.attendance, &user, attendance_id, &reason)
                .await
                .map_err(ApiError::internal)?
            {
                Filed::Now(record) => record,
                Filed::NoSuchLog => {
                    return Err(ApiError::NotFound(format!("no attendance log {attendance_id} of yours")));
                }
                Filed::LogVoided(_) => {
                    return Err(ApiError::Conflict(format!(
                        "attendance log {attendance_id} is voided: it counts nowhere"
                    )));
                }
                Filed::AlreadyOpen(open) => {
                    return Err(ApiError::Conflict(format!(
                        "attendance log {attendance_id} has open dispute {} already",
                        open.id
                    )));
                }
            }
        }
        (dispute_store::NOT_ME, _, _) => {
            return Err(ApiError::validation("attendance_id", "a not_me dispute names the log, and no timestamp"));
        }
        (dispute_store::MISSED_ARRIVAL, None, Some(timestamp)) => {
            if timestamp > Utc::now() {
                return Err(ApiError::validation("timestamp", "must not be in the future"));
            }
            disputes::report_missed_arrival(&state.attendance, &user, timestamp, &reason)
                .await
                .map_err(ApiError::internal)?
        }
        (dispute_store::MISSED_ARRIVAL, _, _) => {
            return Err(ApiError::validation(
                "timestamp",
                "a missed_arrival gives the timestamp, and no attendance_id",
            ));
        }
        _ => return Err(ApiError::validation("kind", "must be not_me or missed_arrival")),
    };
    let details = json!({"dispute_id": record.id, "kind": record.kind, "attendance_id": record.attendance_id,
        "timestamp": record.claimed_at, "reason": record.reason});
    audit::record(&state.db, &client, AuditEvent::success("dispute_filed", Some(caller.audit_name()), details)).await;
    Ok((StatusCode::CREATED, Json(dispute_of(record, &user))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DisputesQuery {
    /// `open`, `accepted` or `rejected`.
    pub status: Option<String>,
    /// `not_me` or `missed_arrival`.
    pub kind: Option<String>,
}

/// Disputes, newest first. Admins see every dispute, others their own.
#[utoipa::path(get, path = "/attendance/disputes/", tag = "attendance", params(DisputesQuery, PageParams),
    responses((status = 200, body = Paginated<Dispute>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_disputes(
    State(state): State<AppState>,
    Auth(caller): Auth,
    url: RequestUrl,
    Query(query): Query<DisputesQuery>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<Dispute>>> {
    let page = page.page()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(dispute_store::OPEN) => Some(dispute_store::OPEN),
        Some(dispute_store::ACCEPTED) => Some(dispute_store::ACCEPTED),
        Some(dispute_store::REJECTED) => Some(dispute_store::REJECTED),
        Some(_) => return Err(ApiError::validation("status", "must be open, accepted or rejected")),
    };
    let kind = match query.kind.as_deref() {
        None => None,
        Some(dispute_store::NOT_ME) => Some(dispute_store::NOT_ME),
        Some(dispute_store::MISSED_ARRIVAL) => Some(dispute_store::MISSED_ARRIVAL),
        Some(_) => return Err(ApiError::validation("kind", "must be not_me or missed_arrival")),
    };
    let user_id = if caller.is_admin() { None } else { Some(caller.user_id().ok_or_else(ApiError::forbidden)?) };
    let filter = DisputeFilter { user_id, status, kind };
    let (disputes, count) = dispute_store::list(&state.db, &filter, page.limit(), page.offset()).await?;
    Ok(Json(Paginated::new(disputes.into_iter().map(Dispute::from).collect(), count, page, &url)))
}

/// How an admin resolves a dispute.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// Why: optional when accepting, required when rejecting; at most 500 characters.
    pub note: Option<String>,
}

/// Accept a dispute: a `not_me` log is voided (`attendance_voided`), a `missed_arrival` is
/// marked (`attendance_logged`; 409 when the person has a log within the cooldown of
/// it). Audited (`dispute_accept`) and sent as `dispute_resolved`.
#[utoipa::path(post, path = "/attendance/disputes/{id}/accept/", tag = "attendance",
    params(("id" = i64, Path, description = "Dispute id")), request_body = Resolution,
    responses((status = 200, body = Dispute), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Resolved already, or the arrival is within a log's cooldown")))]
pub async fn accept_dispute(
    state: State<AppState>,
    admin: Admin,
    client: ClientInfo,
    id: Path<i64>,
    Json(request): Json<Resolution>,
) -> ApiResult<Json<Dispute>> {
    resolve(state, admin, client, id, request, true).await
}

/// Reject a dispute, with a note saying why (required). Nothing else changes. Audited
/// (`dispute_reject`) and sent as `dispute_resolved`.
#[utoipa::path(post, path = "/attendance/disputes/{id}/reject/", tag = "attendance",
    params(("id" = i64, Path, description = "Dispute id")), request_body = Resolution,
    responses((status = 200, body = Dispute), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Resolved already")))]
pub async fn reject_dispute(
    state: State<AppState>,
    admin: Admin,
    client: ClientInfo,
    id: Path<i64>,
    Json(request): Json<Resolution>,
) -> ApiResult<Json<Dispute>> {
    resolve(state, admin, client, id, request, false).await
}

async fn resolve(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
    request: Resolution,
    accept: bool,
) -> ApiResult<Json<Dispute>> {
    let note =
        request.note.map(|note| parse_text("note", &note, MAX_REASON_CHARS)).transpose()?.filter(|n| !n.is_empty());
    if !accept && note.is_none() {
        return Err(ApiError::validation("note", "is required to reject a dispute"));
    }
    let by = admin.audit_name();
    let resolved =
        disputes::resolve(&state.attendance, id, accept, &by, note.as_deref()).await.map_err(ApiError::internal)?;
    let (dispute, log_id) = match resolved {
        Resolved::Now { dispute, log_id } => (*dispute, log_id),
        Resolved::AlreadyResolved(dispute) => {
            let by = dispute.resolved_by.as_deref().unwrap_or("someone");
            return Err(ApiError::Conflict(format!("dispute {id} was {} already, by {by}", dispute.status)));
        }
        Resolved::NoSuchDispute => return Err(ApiError::NotFound(format!("no dispute {id}"))),
        Resolved::Cooldown { previous, previous_id } => {
            return Err(ApiError::Conflict(format!(
                "the person has attendance log {previous_id} at {} within the cooldown of {} s: reject the dispute if that log is the arrival",
                previous.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                state.attendance.cooldown().as_secs()
            )));
        }
        Resolved::Deactivated => {
            return Err(ApiError::Conflict(format!("the person who filed dispute {id} is deactivated")));
        }
    };
    let user = user_store::find_by_id(&state.db, dispute.user_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("dispute {id} belongs to no user")))?;
    let action = if accept { "dispute_accept" } else { "dispute_reject" };
    let details = json!({"dispute_id": id, "employee_id": user.employee_id, "kind": dispute.kind,
        "attendance_id": log_id, "note": note});
    audit::record(&state.db, &client, AuditEvent::success(action, Some(by), details)).await;
    Ok(Json(dispute_of(dispute, &user)))
}

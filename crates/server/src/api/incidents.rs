//! `/security/report-incident/` and `/security/incidents/`: security incidents reported
//! by people and devices or opened by failed liveness checks, and their follow-up by
//! admins (open → acknowledged → resolved).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::attendance::{MAX_REASON_CHARS, required_reason};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::incidents::{self, Followed, KINDS, ReportImage, SEVERITIES, Step};
use crate::domain::users::parse_text;
use crate::store::incidents::{self as incident_store, IncidentFilter, IncidentRecord, NewIncident};

/// The longest description and camera id a report may give.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_CAMERA_ID_CHARS: usize = 200;
/// How far ahead of the server's clock a reported timestamp may be (devices' clocks drift).
const MAX_CLOCK_AHEAD_SECS: i64 = 300;

#[derive(Serialize, ToSchema)]
pub struct Incident {
    pub id: i64,
    /// `spoofing_attempt`, `unknown_person`, `tailgating`, `camera_tampering`,
    /// `unauthorized_access` or `other`.
    pub r#type: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub camera_id: Option<String>,
    pub description: String,
    /// When it happened: the reporter's timestamp, or the first detection.
    pub occurred_at: DateTime<Utc>,
    /// The latest detection counted on it.
    pub last_seen_at: DateTime<Utc>,
    /// Detections counted on it (repeated failed liveness checks at one camera within
    /// `incident_window_secs` count on one incident).
    pub occurrences: i64,
    /// The verification task whose detection opened it.
    pub task_id: Option<String>,
    /// Who reported it (`null` for detections).
    pub reported_by: Option<String>,
    /// What the detection measured (e.g. `anti_spoof_score`, `location`).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub acknowledged: Option<FollowUpNote>,
    pub resolved: Option<FollowUpNote>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct FollowUpNote {
    pub at: Option<DateTime<Utc>>,
    /// The admin's employee id, or `api_key:<name>`.
    pub by: Option<String>,
    pub note: Option<String>,
}

impl From<IncidentRecord> for Incident {
    fn from(record: IncidentRecord) -> Self {
        let acknowledged = record.acknowledged_at.map(|at| FollowUpNote {
            at: Some(at),
            by: record.acknowledged_by.clone(),
            note: record.acknowledgement_note.clone(),
        });
        let resolved = record.resolved_at.map(|at| FollowUpNote {
            at: Some(at),
            by: record.resolved_by.clone(),
            note: record.resolution_note.clone(),
        });
        Self {
            id: record.id,
            r#type: record.r#type,
            severity: record.severity,
            status: record.status,
            camera_id: record.camera_id,
            description: record.description,
            occurred_at: record.occurred_at,
            last_seen_at: record.last_seen_at,
            occurrences: record.occurrences,
            task_id: record.task_id,
            reported_by: record.reported_by,
            details: serde_json::from_str(&record.details).unwrap_or(serde_json::Value::Null),
            acknowledged,
            resolved,
            created_at: record.created_at,
        }
    }
}

/// The spec's incident report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentReport {
    pub r#type: String,
    pub camera_id: Option<String>,
    /// When it happened (RFC 3339); the time of the report when absent.
    pub timestamp: Option<DateTime<Utc>>,
    /// Required, at most 2,000 characters.
    pub description: String,
    /// `low`, `medium` (default), `high` or `critical`.
    pub severity: Option<String>,
    /// A photo (JPEG, PNG or WebP; a `data:` URI or bare base64), kept encrypted.
    pub image: Option<String>,
}

fn one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::validation(field, format!("must be one of {}", allowed.join(", "))))
    }
}

/// Report a security incident, optionally with a photo (validated as an image, kept
/// encrypted, shown to admins only). Any authenticated caller may report — kiosks and
/// cameras use API keys of any role. Audited (`incident_reported`).
#[utoipa::path(post, path = "/security/report-incident/", tag = "security", request_body = IncidentReport,
    responses((status = 201, body = Incident), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn report_incident(
    State(state): State<AppState>,
    Auth(caller): Auth,
    client: ClientInfo,
    Json(request): Json<IncidentReport>,
) -> ApiResult<(StatusCode, Json<Incident>)> {
    let kind = one_of("type", request.r#type.trim(), &KINDS)?;
    let severity = one_of("severity", request.severity.as_deref().unwrap_or("medium").trim(), &SEVERITIES)?;
    let description = parse_text("description", &request.description, MAX_DESCRIPTION_CHARS)?;
    if description.is_empty() {
        return Err(ApiError::validation("description", "is required"));
    }
    let camera_id = request
        .camera_id
        .map(|id| parse_text("camera_id", &id, MAX_CAMERA_ID_CHARS))
        .transpose()?
        .filter(|id| !id.is_empty());
    let now = Utc::now();
    let occurred_at = request.timestamp.unwrap_or(now);
    if occurred_at > now + chrono::Duration::seconds(MAX_CLOCK_AHEAD_SECS) {
        return Err(ApiError::validation("timestamp", "must not be in the future"));
    }
    let image = match request.image {
        Some(text) => Some(validated_image(text).await?),
        None => None,
    };
    let reporter = caller.audit_name();
    let incident = NewIncident {
        kind,
        camera_id,
        severity,
        description,
        details: "{}".into(),
        occurred_at,
        reported_by: Some(reporter.clone()),
    };
    let with_image = image.is_some();
    let record = incidents::report(&state.db, &state.sealer, incident, image).await.map_err(ApiError::internal)?;
    let details = json!({"incident_id": record.id, "type": record.r#type, "severity": record.severity,
        "camera_id": record.camera_id, "with_image": with_image});
    audit::record(&state.db, &client, AuditEvent::success("incident_reported", Some(reporter), details)).await;
    Ok((StatusCode::CREATED, Json(Incident::from(record))))
}

/// The photo's bytes, once they decode as an image within the pixel limit.
async fn validated_image(text: String) -> Result<ReportImage, ApiError> {
    tokio::task::spawn_blocking(move || {
        let bytes =
            rollcall_face::decode::base64_payload(&text).map_err(|e| ApiError::validation("image", e.to_string()))?;
        let decoded = rollcall_face::decode::decode(&bytes, &rollcall_face::DecodeOptions::default())
            .map_err(|e| ApiError::validation("image", e.to_string()))?;
        Ok(ReportImage { bytes, mime: decoded.format().to_mime_type() })
    })
    .await
    .map_err(|e| ApiError::internal(anyhow::anyhow!("image check failed: {e}")))?
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentsQuery {
    /// One of the incident types.
    pub r#type: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    pub camera_id: Option<String>,
    /// From this date (YYYY-MM-DD, the institution's time zone), inclusive.
    pub date_from: Option<NaiveDate>,
    /// Up to this date (YYYY-MM-DD, the institution's time zone), inclusive.
    pub date_to: Option<NaiveDate>,
}

/// Security incidents, the latest first. For admins.
#[utoipa::path(get, path = "/security/incidents/", tag = "security", params(IncidentsQuery, PageParams),
    responses((status = 200, body = Paginated<Incident>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_incidents(
    State(state): State<AppState>,
    _admin: Admin,
    url: RequestUrl,
    Query(query): Query<IncidentsQuery>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<Incident>>> {
    let page = page.page()?;
    if let (Some(from), Some(to)) = (query.date_from, query.date_to)
        && from > to
    {
        return Err(ApiError::validation("date_from", "must not be after date_to"));
    }
    let statuses = [incident_store::OPEN, incident_store::ACKNOWLEDGED, incident_store::RESOLVED];
    let filter = IncidentFilter {
        kind: query.r#type.map(|kind| one_of("type", &kind, &KINDS)).transpose()?,
        severity: query.severity.map(|severity| one_of("severity", &severity, &SEVERITIES)).transpose()?,
        status: query.status.map(|status| one_of("status", &status, &statuses)).transpose()?,
        camera_id: query.camera_id.map(|id| parse_text("camera_id", &id, MAX_CAMERA_ID_CHARS)).transpose()?,
        from: query.date_from.map(|date| state.calendar.start_of(date)),
        to: query.date_to.and_then(|date| date.succ_opt()).map(|date| state.calendar.start_of(date)),
    };
    let (records, count) = incident_store::list(&state.db, &filter, page.limit(), page.offset()).await?;
    Ok(Json(Paginated::new(records.into_iter().map(Incident::from).collect(), count, page, &url)))
}

#[derive(Serialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    /// Where to fetch the photo sent with the report, if one was (admins).
    pub image_url: Option<String>,
}

/// One incident. For admins.
#[utoipa::path(get, path = "/security/incidents/{id}/", tag = "security",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, body = IncidentDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_incident(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<IncidentDetail>> {
    let record = incident_store::find(&state.db, id).await?.ok_or_else(|| no_incident(id))?;
    let image_url =
        incident_store::has_image(&state.db, id).await?.then(|| format!("/api/v1/security/incidents/{id}/image/"));
    Ok(Json(IncidentDetail { incident: Incident::from(record), image_url }))
}

fn no_incident(id: i64) -> ApiError {
    ApiError::NotFound(format!("no incident {id}"))
}

/// The photo sent with an incident report, as it was sent. For admins; each view is
/// audited (`incident_image_viewed`).
#[utoipa::path(get, path = "/security/incidents/{id}/image/", tag = "security",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, content_type = "image/*", description = "The photo"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such incident, or no photo with it")))]
pub async fn get_incident_image(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let (image, mime) = incidents::image(&state.db, &state.sealer, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no photo is kept with incident {id}")))?;
    let details = json!({"incident_id": id});
    audit::record(&state.db, &client, AuditEvent::success("incident_image_viewed", Some(admin.audit_name()), details))
        .await;
    Ok(super::private_image(&mime, image))
}

/// An admin's note on a step of the follow-up.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// Optional when acknowledging, required when resolving; at most 500 characters.
    pub note: Option<String>,
}

/// Acknowledge an open incident: someone is on it. Audited (`incident_acknowledged`).
#[utoipa::path(post, path = "/security/incidents/{id}/acknowledge/", tag = "security",
    params(("id" = i64, Path, description = "Incident id")), request_body = FollowUp,
    responses((status = 200, body = Incident), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Acknowledged or resolved already")))]
pub async fn acknowledge_incident(
    state: State<AppState>,
    admin: Admin,
    client: ClientInfo,
    id: Path<i64>,
    Json(request): Json<FollowUp>,
) -> ApiResult<Json<Incident>> {
    follow_up(state, admin, client, id, request, Step::Acknowledge).await
}

/// Resolve an open or acknowledged incident, with a note saying how (required). Later
/// detections at its camera open a new incident. Audited (`incident_resolved`).
#[utoipa::path(post, path = "/security/incidents/{id}/resolve/", tag = "security",
    params(("id" = i64, Path, description = "Incident id")), request_body = FollowUp,
    responses((status = 200, body = Incident), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Resolved already")))]
pub async fn resolve_incident(
    state: State<AppState>,
    admin: Admin,
    client: ClientInfo,
    id: Path<i64>,
    Json(request): Json<FollowUp>,
) -> ApiResult<Json<Incident>> {
    follow_up(state, admin, client, id, request, Step::Resolve).await
}

async fn follow_up(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
    request: FollowUp,
    step: Step,
) -> ApiResult<Json<Incident>> {
    let note = match (step, request.note) {
        (Step::Resolve, note) => Some(required_reason(note.as_deref().unwrap_or("")).map_err(|_| {
            ApiError::validation("note", format!("is required to resolve, at most {MAX_REASON_CHARS} characters"))
        })?),
        (Step::Acknowledge, note) => {
            note.map(|note| parse_text("note", &note, MAX_REASON_CHARS)).transpose()?.filter(|n| !n.is_empty())
        }
    };
    let by = admin.audit_name();
    let record =
        match incidents::follow_up(&state.db, id, step, &by, note.as_deref()).await.map_err(ApiError::internal)? {
            Followed::Now(record) => record,
            Followed::NotAllowed(record) => {
                return Err(ApiError::Conflict(format!("incident {id} is {} already", record.status)));
            }
            Followed::NoSuchIncident => return Err(no_incident(id)),
        };
    let action = match step {
        Step::Acknowledge => "incident_acknowledged",
        Step::Resolve => "incident_resolved",
    };
    let details = json!({"incident_id": id, "note": note});
    audit::record(&state.db, &client, AuditEvent::success(action, Some(by), details)).await;
    Ok(Json(Incident::from(record)))
}

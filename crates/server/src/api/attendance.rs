//! `GET /attendance/logs/`: who arrived when, for admins, faculty (their department) and
//! students (their own logs); `POST /attendance/mark/`: an arrival entered by an admin;
//! `POST /attendance/logs/{id}/void/`: a log that should not count; `GET
//! /attendance/summary/`: counts per department and hour.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::attendance::{self, Arrival, AttendanceFilter, Logged, NewAttendance, SOURCES, Voided};
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::calendar::{Calendar, DateRange};
use crate::domain::evidence;
use crate::domain::summary::{Period, summarise};
use crate::domain::users::{EmployeeId, parse_text};
use crate::store::attendance::{self as attendance_store, AttendanceListing, PageStart};
use crate::store::evidence as evidence_store;
use crate::store::users as user_store;

/// The longest camera id and department name a filter may name.
const MAX_FILTER_CHARS: usize = 200;

#[derive(Serialize, ToSchema)]
pub struct AttendanceLog {
    pub id: i64,
    pub employee: LogEmployee,
    /// When the person arrived (RFC 3339, UTC).
    pub timestamp: DateTime<Utc>,
    /// The camera that saw the arrival; `null` when none did (manual and reported logs
    /// without one).
    pub camera: Option<LogCamera>,
    /// How sure the recogniser (or the reporting integration) was, in [0, 1].
    pub confidence: Option<f64>,
    /// Seconds the verification took.
    pub verification_time: Option<f64>,
    /// `face`, `mobile`, `manual` or `webhook`.
    pub source: String,
    /// Face logs: the similarity of the face to the person's template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_score: Option<f64>,
    /// Face logs: the liveness score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anti_spoof_score: Option<f64>,
    /// `valid`, or `voided`: listed, but counted nowhere.
    pub status: String,
    /// Voided logs: when, by whom and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voided: Option<VoidNote>,
}

#[derive(Serialize, ToSchema)]
pub struct VoidNote {
    pub at: Option<DateTime<Utc>>,
    /// The admin's employee id, or `api_key:<name>`.
    pub by: Option<String>,
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LogEmployee {
    pub id: i64,
    pub employee_id: String,
    pub name: String,
    pub department: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogCamera {
    pub id: String,
    pub location: Option<String>,
}

impl From<AttendanceListing> for AttendanceLog {
    fn from(listing: AttendanceListing) -> Self {
        let name = format!("{} {}", listing.first_name, listing.last_name).trim().to_owned();
        let log = listing.record;
        let source = attendance::source_name(&log.source).to_owned();
        let is_face = source == "face";
        let employee =
            LogEmployee { id: log.user_id, employee_id: listing.employee_id, name, department: listing.department };
        let voided = log.is_voided().then(|| VoidNote {
            at: log.voided_at,
            by: log.voided_by.clone(),
            reason: log.void_reason.clone(),
        });
        Self {
            id: log.id,
            employee,
            timestamp: log.timestamp,
            camera: log.camera_id.map(|id| LogCamera { id, location: log.location }),
            confidence: log.confidence,
            verification_time: log.verification_time,
            source,
            similarity_score: log.similarity.filter(|_| is_face),
            anti_spoof_score: log.anti_spoof_score.filter(|_| is_face),
            status: log.status,
            voided,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this person's logs (their employee id, e.g. `FAC001`).
    pub employee_id: Option<String>,
    /// From this date (YYYY-MM-DD), inclusive: a day of the institution's time zone
    /// (`timezone`, UTC by default).
    pub date_from: Option<NaiveDate>,
    /// Up to this date (YYYY-MM-DD, the institution's time zone), inclusive.
    pub date_to: Option<NaiveDate>,
    /// Only logs from this camera.
    pub camera_id: Option<String>,
    /// Only logs of people in this department.
    pub department: Option<String>,
    /// `face`, `mobile`, `manual` or `webhook`.
    pub source: Option<String>,
    /// `valid` or `voided`; both when absent.
    pub status: Option<String>,
    /// Keyset paging: the logs listed after log `before` (the last id of the page before).
    /// It costs the same at any depth, where `page` costs more the deeper it goes; `next`
    /// links continue with it. Not with `page`.
    pub before: Option<i64>,
}

impl LogsQuery {
    fn into_filter(self, calendar: &Calendar) -> Result<AttendanceFilter, ApiError> {
        if let (Some(from), Some(to)) = (self.date_from, self.date_to)
            && from > to
        {
            return Err(ApiError::validation("date_from", "must not be after date_to"));
        }
        let sources = self
            .source
            .map(|name| {
                attendance::stored_sources(&name).ok_or_else(|| {
                    let names: Vec<&str> = SOURCES.iter().map(|(name, _)| *name).collect();
                    ApiError::validation("source", format!("must be one of {}", names.join(", ")))
                })
            })
            .transpose()?;
        let status = match self.status.as_deref() {
            None => None,
            Some("valid") => Some(attendance_store::VALID),
            Some("voided") => Some(attendance_store::VOIDED),
            Some(_) => return Err(ApiError::validation("status", "must be valid or voided")),
        };
        Ok(AttendanceFilter {
            employee_id: self
                .employee_id
                .map(|id| EmployeeId::parse(&id))
                .transpose()?
                .map(|id| id.as_str().to_owned()),
            department: department_filter(self.department)?,
            camera_id: self.camera_id.map(|id| parse_text("camera_id", &id, MAX_FILTER_CHARS)).transpose()?,
            sources,
            from: self.date_from.map(|date| calendar.start_of(date)),
            to: self.date_to.and_then(|date| date.succ_opt()).map(|date| calendar.start_of(date)),
            status,
            ..AttendanceFilter::default()
        })
    }
}

/// Attendance logs, newest first (ties: the later log first). Admins see every log,
/// faculty the logs of their own department, students their own logs; the filters
/// narrow what the caller may see.
#[utoipa::path(get, path = "/attendance/logs/", tag = "attendance", params(LogsQuery, PageParams),
    responses((status = 200, body = Paginated<AttendanceLog>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_logs(
    State(state): State<AppState>,
    Auth(caller): Auth,
    url: RequestUrl,
    Query(query): Query<LogsQuery>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<AttendanceLog>>> {
    let before = query.before;
    if before.is_some() && page.page.is_some() {
        return Err(ApiError::validation("before", "pages go by page or by before, not both"));
    }
    let page = page.page()?;
    let mut filter = query.into_filter(&state.calendar)?;
    let readable = attendance::readable_by(&state.db, &caller).await?.ok_or_else(ApiError::forbidden)?;
    readable.restrict(&mut filter);
    let Some(before) = before else {
        let start = PageStart::Offset(page.offset());
        let (logs, count) = attendance_store::list(&state.db, &filter, page.limit(), start).await?;
        return Ok(Json(Paginated::new(logs.into_iter().map(AttendanceLog::from).collect(), count, page, &url)));
    };
    let after = attendance_store::find(&state.db, before)
        .await?
        .ok_or_else(|| ApiError::validation("before", format!("no attendance log {before}")))?;
    let start = PageStart::After { timestamp: after.timestamp, id: after.id };
    // One more than the page tells whether another page follows.
    let (mut logs, count) = attendance_store::list(&state.db, &filter, page.limit() + 1, start).await?;
    let more = logs.len() as u64 > page.limit();
    logs.truncate(page.limit() as usize);
    let last_id = logs.last().map(|listing| listing.record.id).filter(|_| more);
    Ok(Json(Paginated::after(logs.into_iter().map(AttendanceLog::from).collect(), count, last_id, &url)))
}

/// One log with what it was decided on.
#[derive(Serialize, ToSchema)]
pub struct AttendanceLogDetail {
    #[serde(flatten)]
    pub log: AttendanceLog,
    pub location: Option<String>,
    /// The task that recognised the person (face logs).
    pub task_id: Option<String>,
    /// Face logs: the decision and its scores (`similarity_score`, `margin` to the
    /// second-best identity, `confidence`, `is_live`, `anti_spoof_score`, `quality_score`,
    /// `face_box`). Manual logs: `reason` and `marked_by`. Reported logs: what the
    /// integration sent.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// Face logs, while their crop is kept (`keep_arrival_evidence`): where to fetch it.
    pub face_crop: Option<FaceCropLink>,
}

#[derive(Serialize, ToSchema)]
pub struct FaceCropLink {
    /// The crop as `image/jpeg`, for admins (`GET /api/v1/attendance/logs/{id}/face/`).
    pub url: String,
    /// When it is purged (`evidence_retention_days` after the arrival was logged).
    pub kept_until: DateTime<Utc>,
}

/// One attendance log with its evidence: why the system logged it. For admins.
#[utoipa::path(get, path = "/attendance/logs/{id}/", tag = "attendance",
    params(("id" = i64, Path, description = "Attendance log id")),
    responses((status = 200, body = AttendanceLogDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_log(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<AttendanceLogDetail>> {
    let listing = attendance_store::find_listing(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no attendance log {id}")))?;
    let evidence = serde_json::from_str(&listing.record.details).unwrap_or(serde_json::Value::Null);
    let (location, task_id) = (listing.record.location.clone(), listing.record.task_id.clone());
    let retention = state.config.evidence_retention();
    let face_crop = evidence_store::kept_at(&state.db, id).await?.map(|kept_at| FaceCropLink {
        url: format!("/api/v1/attendance/logs/{id}/face/"),
        kept_until: retention.kept_until(kept_at),
    });
    Ok(Json(AttendanceLogDetail { log: AttendanceLog::from(listing), location, task_id, evidence, face_crop }))
}

/// The face crop a face log was decided on (`image/jpeg`, at most 224 px on a side), for
/// admins checking a disputed log. Kept encrypted for `evidence_retention_days`; 404 once
/// purged, when evidence is not kept, and for logs of other sources. Every view is audited
/// (`arrival_evidence_viewed`).
#[utoipa::path(get, path = "/attendance/logs/{id}/face/", tag = "attendance",
    params(("id" = i64, Path, description = "Attendance log id")),
    responses((status = 200, content_type = "image/jpeg", description = "The face crop"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such log, or no crop kept for it")))]
pub async fn get_face_crop(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let crop = evidence::face_crop(&state.db, &state.sealer, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no face crop is kept for attendance log {id}")))?;
    let details = json!({"attendance_id": id});
    audit::record(
        &state.db,
        &client,
        AuditEvent::success("arrival_evidence_viewed", Some(admin.audit_name()), details),
    )
    .await;
    Ok(super::private_image("image/jpeg", crop))
}

/// The longest reason a manual mark may give.
pub(super) const MAX_REASON_CHARS: usize = 500;

/// The spec's manual mark.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualMark {
    pub employee_id: String,
    /// When the person arrived (RFC 3339); not in the future.
    pub timestamp: DateTime<Utc>,
    /// Why the arrival is entered by hand (required, at most 500 characters).
    pub reason: String,
    /// Ignored: the mark is recorded as made by the authenticated admin.
    pub marked_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MarkedLog {
    #[serde(flatten)]
    pub log: AttendanceLog,
    pub reason: String,
    /// Who made the mark: the admin's employee id, or `api_key:<name>`.
    pub marked_by: String,
}

/// Enter an arrival by hand (source `manual`), with the reason. The attendance cooldown
/// applies on both sides of the timestamp; the mark is audited (`attendance_mark`) and
/// published as `attendance_logged`, like a face arrival.
#[utoipa::path(post, path = "/attendance/mark/", tag = "attendance", request_body = ManualMark,
    responses((status = 201, body = MarkedLog), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "No such employee"),
        (status = 409, body = ErrorBody, description = "The employee is deactivated, or was logged within the cooldown")))]
pub async fn mark(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Json(request): Json<ManualMark>,
) -> ApiResult<(StatusCode, Json<MarkedLog>)> {
    let employee_id = EmployeeId::parse(&request.employee_id)?;
    let reason = required_reason(&request.reason)?;
    if request.timestamp > Utc::now() {
        return Err(ApiError::validation("timestamp", "must not be in the future"));
    }
    let user = match user_store::find_by_employee_id(&state.db, employee_id.as_str()).await? {
        Some(user) if user.is_active => user,
        Some(_) => return Err(ApiError::Conflict(format!("employee {} is deactivated", employee_id.as_str()))),
        None => return Err(ApiError::NotFound(format!("no employee with employee_id {}", employee_id.as_str()))),
    };
    let marked_by = admin.audit_name();
    let log = NewAttendance::manual(request.timestamp, json!({"reason": reason, "marked_by": marked_by}));
    let record =
        match state.attendance.log(None, Arrival::without_crop(&user, log)).await.map_err(ApiError::internal)? {
            Logged::New(record) => record,
            Logged::Cooldown { previous, previous_id } => {
                return Err(ApiError::Conflict(format!(
                    "employee {} has attendance log {previous_id} at {} within the cooldown of {} s",
                    employee_id.as_str(),
                    previous.to_rfc3339_opts(SecondsFormat::Secs, true),
                    state.attendance.cooldown().as_secs(),
                )));
            }
            Logged::AlreadyByThisTask(record) => {
                return Err(ApiError::internal(anyhow::anyhow!("a manual mark found task log {}", record.id)));
            }
        };
    let details = json!({"employee_id": user.employee_id, "attendance_id": record.id, "timestamp": record.timestamp, "reason": reason});
    audit::record(&state.db, &client, AuditEvent::success("attendance_mark", Some(marked_by.clone()), details)).await;
    let log = AttendanceLog::from(AttendanceListing::of(record, &user));
    Ok((StatusCode::CREATED, Json(MarkedLog { log, reason, marked_by })))
}

/// Why a log is voided.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// Required, at most 500 characters.
    pub reason: String,
}

/// Void a log that should not count (a wrong recognition, a mistaken mark). It stays in
/// the listing with `status: voided`, who voided it and why, and counts in no summary or
/// report; the cooldown no longer holds next to it. Audited (`attendance_void`) and
/// published as `attendance_voided`.
#[utoipa::path(post, path = "/attendance/logs/{id}/void/", tag = "attendance",
    params(("id" = i64, Path, description = "Attendance log id")), request_body = VoidRequest,
    responses((status = 200, body = AttendanceLog), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "No such log"),
        (status = 409, body = ErrorBody, description = "The log was voided already")))]
pub async fn void_log(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(request): Json<VoidRequest>,
) -> ApiResult<Json<AttendanceLog>> {
    let reason = required_reason(&request.reason)?;
    let voided_by = admin.audit_name();
    let record = match state.attendance.void(id, &voided_by, &reason).await.map_err(ApiError::internal)? {
        Voided::Now(record) => record,
        Voided::Already(record) => {
            let by = record.voided_by.as_deref().unwrap_or("someone");
            return Err(ApiError::Conflict(format!("attendance log {id} was voided already, by {by}")));
        }
        Voided::NoSuchLog => return Err(ApiError::NotFound(format!("no attendance log {id}"))),
    };
    let user = user_store::find_by_id(&state.db, record.user_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("log {id} belongs to no user")))?;
    let details =
        json!({"attendance_id": id, "employee_id": user.employee_id, "timestamp": record.timestamp, "reason": reason});
    audit::record(&state.db, &client, AuditEvent::success("attendance_void", Some(voided_by), details)).await;
    Ok(Json(AttendanceLog::from(AttendanceListing::of(record, &user))))
}

/// A reason (for a mark or a void): required, trimmed, at most [`MAX_REASON_CHARS`].
pub(super) fn required_reason(text: &str) -> Result<String, ApiError> {
    let reason = parse_text("reason", text, MAX_REASON_CHARS)?;
    if reason.is_empty() {
        return Err(ApiError::validation("reason", "is required"));
    }
    Ok(reason)
}

/// The longest range a summary or a report covers.
const MAX_RANGE_DAYS: i64 = 3660;

/// The period and dates a summary or report request names (see [`Period::range`]).
pub(super) fn requested_range(
    period: Option<&str>,
    default: Period,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    calendar: &Calendar,
) -> Result<(Period, DateRange), ApiError> {
    let period = match period {
        None => default,
        Some(name) => Period::parse(name)
            .ok_or_else(|| ApiError::validation("period", format!("must be one of {}", Period::NAMES)))?,
    };
    let range = period
        .range(from, to, calendar.today())
        .ok_or_else(|| ApiError::validation("date_from", "must not be after date_to"))?;
    if range.days() > MAX_RANGE_DAYS {
        return Err(ApiError::validation("date_to", format!("a range covers at most {MAX_RANGE_DAYS} days")));
    }
    Ok((period, range))
}

/// A department named by a filter.
pub(super) fn department_filter(name: Option<String>) -> Result<Option<String>, ApiError> {
    Ok(name.map(|name| parse_text("department", &name, MAX_FILTER_CHARS)).transpose()?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// `daily` (default), `weekly` (Monday to Sunday), `monthly` or `yearly`: without
    /// dates, the period containing today; with only one date, the period from or up to it.
    pub period: Option<String>,
    /// First date (YYYY-MM-DD, the institution's time zone), inclusive.
    pub date_from: Option<NaiveDate>,
    /// Last date (YYYY-MM-DD, the institution's time zone), inclusive.
    pub date_to: Option<NaiveDate>,
    /// Only people of this department.
    pub department: Option<String>,
}

/// The spec's summary, with the range it covers.
#[derive(Serialize, ToSchema)]
pub struct SummaryResponse {
    pub period: String,
    /// The first date of the range (the spec's `date`).
    pub date: NaiveDate,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    /// The time zone the dates and hours are in (`timezone`).
    pub timezone: String,
    /// Valid logs in the range (voided logs count nowhere).
    pub total_attendances: i64,
    /// Distinct people with a valid log in the range.
    pub unique_persons: i64,
    /// Valid logs per department.
    pub departments: BTreeMap<String, i64>,
    /// Valid logs per local hour: "08:00" counts 08:00:00–08:59:59. Hours without logs are
    /// left out.
    pub hourly_distribution: BTreeMap<String, i64>,
}

/// How many arrivals and people in a range of days, per department and per hour, in the
/// institution's time zone (daylight-saving changes included). Admins summarise every
/// log, faculty their department's, students their own.
#[utoipa::path(get, path = "/attendance/summary/", tag = "attendance", params(SummaryQuery),
    responses((status = 200, body = SummaryResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<SummaryQuery>,
) -> ApiResult<Json<SummaryResponse>> {
    let (period, range) =
        requested_range(query.period.as_deref(), Period::Daily, query.date_from, query.date_to, &state.calendar)?;
    let mut filter =
        AttendanceFilter { department: department_filter(query.department)?, ..AttendanceFilter::default() };
    let readable = attendance::readable_by(&state.db, &caller).await?.ok_or_else(ApiError::forbidden)?;
    readable.restrict(&mut filter);
    let summary = summarise(&state.db, &state.calendar, range, filter).await?;
    Ok(Json(SummaryResponse {
        period: period.as_str().to_owned(),
        date: range.from,
        date_from: range.from,
        date_to: range.to,
        timezone: state.calendar.zone().name().to_owned(),
        total_attendances: summary.total_attendances,
        unique_persons: summary.unique_persons,
        departments: summary.departments,
        hourly_distribution: summary.hourly_distribution,
    }))
}

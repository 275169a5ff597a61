//! `GET /attendance/logs/`: who arrived when, for admins, faculty (their department) and
//! students (their own logs).

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::attendance::{self, AttendanceFilter, SOURCES};
use crate::domain::users::{EmployeeId, parse_text};
use crate::store::attendance::{self as attendance_store, AttendanceListing};

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
    /// `face`, `manual` or `webhook`.
    pub source: String,
    /// Face logs: the similarity of the face to the person's template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_score: Option<f64>,
    /// Face logs: the liveness score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anti_spoof_score: Option<f64>,
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
    fn from(log: AttendanceListing) -> Self {
        let name = format!("{} {}", log.first_name, log.last_name).trim().to_owned();
        let source = attendance::source_name(&log.source).to_owned();
        let is_face = source == "face";
        Self {
            id: log.id,
            employee: LogEmployee { id: log.user_id, employee_id: log.employee_id, name, department: log.department },
            timestamp: log.timestamp,
            camera: log.camera_id.map(|id| LogCamera { id, location: log.location }),
            confidence: log.confidence,
            verification_time: log.verification_time,
            source,
            similarity_score: log.similarity.filter(|_| is_face),
            anti_spoof_score: log.anti_spoof_score.filter(|_| is_face),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this person's logs (their employee id, e.g. `FAC001`).
    pub employee_id: Option<String>,
    /// From this date (YYYY-MM-DD), inclusive. Dates are UTC days: the service has no
    /// time-zone setting yet.
    pub date_from: Option<NaiveDate>,
    /// Up to this date (YYYY-MM-DD, UTC), inclusive.
    pub date_to: Option<NaiveDate>,
    /// Only logs from this camera.
    pub camera_id: Option<String>,
    /// Only logs of people in this department.
    pub department: Option<String>,
    /// `face`, `manual` or `webhook`.
    pub source: Option<String>,
}

impl LogsQuery {
    fn into_filter(self) -> Result<AttendanceFilter, ApiError> {
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
        Ok(AttendanceFilter {
            employee_id: self
                .employee_id
                .map(|id| EmployeeId::parse(&id))
                .transpose()?
                .map(|id| id.as_str().to_owned()),
            department: self.department.map(|name| parse_text("department", &name, MAX_FILTER_CHARS)).transpose()?,
            camera_id: self.camera_id.map(|id| parse_text("camera_id", &id, MAX_FILTER_CHARS)).transpose()?,
            sources,
            from: self.date_from.map(start_of_day),
            to: self.date_to.and_then(|date| date.succ_opt()).map(start_of_day),
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
    let page = page.page()?;
    let mut filter = query.into_filter()?;
    let readable = attendance::readable_by(&state.db, &caller).await?.ok_or_else(ApiError::forbidden)?;
    readable.restrict(&mut filter);
    let (logs, count) = attendance_store::list(&state.db, &filter, page.limit(), page.offset()).await?;
    Ok(Json(Paginated::new(logs.into_iter().map(AttendanceLog::from).collect(), count, page, &url)))
}

fn start_of_day(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

//! `GET /reports/attendance/`: the attendance report of a range of dates as JSON, a PDF
//! document or an Excel workbook; `GET /reports/patterns/`: weekday and seasonal
//! patterns and next week's forecast.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::attendance::{department_filter, requested_range};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Query};
use crate::app::AppState;
use crate::domain::attendance::{self, AttendanceFilter};
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::cameras::supervisor::StatusCounts;
use crate::domain::patterns;
use crate::domain::report::{self, AttendanceReport};
use crate::domain::summary::Period;
use crate::domain::users::EmployeeId;
use crate::render::{ReportHeading, excel, pdf};
use crate::store::attendance::{self as attendance_store, AttendanceListing};

/// The most people `employee_ids` may name.
const MAX_EMPLOYEE_IDS: usize = 500;
/// The most people an Excel report lists one by one.
const MAX_PEOPLE_ROWS: u64 = 50_000;
/// The most logs an Excel report's log sheet lists; a range with more is refused.
const MAX_LOG_ROWS: usize = 100_000;
/// Logs read per query while a workbook's log sheet is filled.
const LOG_PAGE: u64 = 5_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `json` (default), `pdf` or `excel` (`.xlsx`).
    pub format: Option<String>,
    /// `daily`, `weekly`, `monthly` (default) or `yearly`: without dates, the period
    /// containing today; with one date, the period from or up to it.
    pub period: Option<String>,
    /// First date (YYYY-MM-DD, the institution's time zone), inclusive.
    pub date_from: Option<NaiveDate>,
    /// Last date, inclusive.
    pub date_to: Option<NaiveDate>,
    /// Only people of this department.
    pub department: Option<String>,
    /// Only these people: comma-separated employee ids, at most 500.
    pub employee_ids: Option<String>,
}

/// The spec's report, with the counts its rates come from.
#[derive(Serialize, ToSchema)]
pub struct ReportResponse {
    /// `RPT_<date>_<random>`.
    pub report_id: String,
    pub generated_at: String,
    pub period: String,
    /// "2024-02-01 to 2024-02-29".
    pub date_range: String,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub timezone: String,
    /// Working days in the range (`working_days` of the configuration).
    pub working_days: i64,
    /// People expected to attend: active faculty and students in the report's scope.
    pub total_employees: i64,
    /// Present person-days over expected person-days (people × working days), in [0, 1].
    pub attendance_rate: f64,
    /// Distinct (person, working day) pairs with a valid log.
    pub present_person_days: i64,
    pub expected_person_days: i64,
    /// Valid logs in the range, working days or not.
    pub total_attendances: i64,
    pub department_stats: BTreeMap<String, DepartmentStatsResponse>,
    /// Every date of the range with the people present that day.
    pub daily_attendance: Vec<DayResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct DepartmentStatsResponse {
    pub total_employees: i64,
    pub attendance_rate: f64,
    /// Present person-days per working day.
    pub avg_daily_attendance: f64,
    pub present_person_days: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DayResponse {
    pub date: NaiveDate,
    pub working_day: bool,
    pub present: i64,
}

enum Format {
    Json,
    Pdf,
    Excel,
}

impl Format {
    fn parse(name: Option<&str>) -> Result<Self, ApiError> {
        match name {
            None | Some("json") => Ok(Self::Json),
            Some("pdf") => Ok(Self::Pdf),
            Some("excel" | "xlsx") => Ok(Self::Excel),
            Some(_) => Err(ApiError::validation("format", "must be one of json, pdf, excel")),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pdf => "pdf",
            Self::Excel => "excel",
        }
    }
}

/// The attendance report of a range: people expected (active faculty and students),
/// working days, present person-days and the attendance rate, per department and per
/// day. Admins report on everyone, faculty on their own department. `format=pdf` gives
/// a printable document with a chart, `format=excel` a workbook with a summary, daily,
/// per-person and log sheet (at most 100 000 logs; narrow a larger range). Audited
/// (`report_generated`).
#[utoipa::path(get, path = "/reports/attendance/", tag = "reports", params(ReportQuery),
    responses((status = 200, body = ReportResponse, description = "JSON, or the PDF (`application/pdf`) or workbook \
        (`application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`) as an attachment"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn attendance_report(
    State(state): State<AppState>,
    Auth(caller): Auth,
    client: ClientInfo,
    Query(query): Query<ReportQuery>,
) -> ApiResult<Response> {
    let format = Format::parse(query.format.as_deref())?;
    let (period, range) =
        requested_range(query.period.as_deref(), Period::Monthly, query.date_from, query.date_to, &state.calendar)?;
    let employee_ids = query.employee_ids.as_deref().map(employee_ids).transpose()?;
    let mut filter = AttendanceFilter {
        department: department_filter(query.department)?,
        employee_ids: employee_ids.clone(),
        ..AttendanceFilter::default()
    };
    let readable = attendance::readable_by(&state.db, &caller).await?.ok_or_else(ApiError::forbidden)?;
    readable.restrict(&mut filter);
    let report = report::attendance_report(&state.db, &state.calendar, range, &filter).await?;

    let now = Utc::now();
    let heading = ReportHeading {
        report_id: report_id(now),
        generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        period: period.as_str().to_owned(),
        timezone: state.calendar.zone().name().to_owned(),
        scope: scope(&filter),
    };
    let details = json!({"report_id": heading.report_id, "format": format.name(), "date_from": range.from,
        "date_to": range.to, "department": filter.department, "employee_ids": employee_ids});
    audit::record(&state.db, &client, AuditEvent::success("report_generated", Some(caller.audit_name()), details))
        .await;
    let file_name = format!("attendance_{}_{}", range.from, range.to);
    match format {
        Format::Json => Ok(Json(response(&heading, &report)).into_response()),
        Format::Pdf => {
            let bytes = blocking(move || pdf::attendance_pdf(&heading, &report).map_err(anyhow::Error::from)).await?;
            Ok(attachment(bytes, "application/pdf", &format!("{file_name}.pdf")))
        }
        Format::Excel => {
            let people =
                report::people_attendance(&state.db, &state.calendar, range, &filter, MAX_PEOPLE_ROWS + 1).await?;
            if people.len() as u64 > MAX_PEOPLE_ROWS {
                return Err(too_large(format!("more than {MAX_PEOPLE_ROWS} people")));
            }
            let logs = logs_of(&state, &report::in_range(&state.calendar, range, &filter)).await?;
            let zone = state.calendar.zone();
            let bytes = blocking(move || {
                excel::attendance_workbook(&heading, zone, &report, &people, &logs).map_err(anyhow::Error::from)
            })
            .await?;
            let content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
            Ok(attachment(bytes, content_type, &format!("{file_name}.xlsx")))
        }
    }
}

/// `RPT_<UTC date>_<6 random hex digits>`: names the report in the audit log.
fn report_id(now: chrono::DateTime<Utc>) -> String {
    use rand::RngCore;
    let mut suffix = [0u8; 3];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    format!("RPT_{}_{}", now.format("%Y%m%d"), hex::encode_upper(suffix))
}

/// `employee_ids`: comma-separated, each a valid employee id.
fn employee_ids(text: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<&str> = text.split(',').map(str::trim).filter(|id| !id.is_empty()).collect();
    if ids.is_empty() {
        return Err(ApiError::validation("employee_ids", "names no employee id"));
    }
    if ids.len() > MAX_EMPLOYEE_IDS {
        return Err(ApiError::validation("employee_ids", format!("names at most {MAX_EMPLOYEE_IDS} people")));
    }
    ids.into_iter()
        .map(|id| {
            EmployeeId::parse(id)
                .map(|id| id.as_str().to_owned())
                .map_err(|_| ApiError::validation("employee_ids", format!("{:?} is not an employee id", truncate(id))))
        })
        .collect()
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Who a report covers, when not everyone.
fn scope(filter: &AttendanceFilter) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(department) = filter.department.as_ref().or(filter.department_of_reader.as_ref()) {
        parts.push(format!("department {department}"));
    }
    if let Some(ids) = &filter.employee_ids {
        let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
        let more =
            if ids.len() > shown.len() { format!(" and {} more", ids.len() - shown.len()) } else { String::new() };
        parts.push(format!("people {}{more}", shown.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Every log of `filter` (valid and voided), in time order, read a page at a time.
async fn logs_of(state: &AppState, filter: &AttendanceFilter) -> ApiResult<Vec<AttendanceListing>> {
    let mut logs: Vec<AttendanceListing> = Vec::new();
    loop {
        let after = logs.last().map(|listing| (listing.record.timestamp, listing.record.id));
        let page = attendance_store::chronological(&state.db, filter, after, LOG_PAGE).await?;
        let last_page = (page.len() as u64) < LOG_PAGE;
        logs.extend(page);
        if logs.len() > MAX_LOG_ROWS {
            return Err(too_large(format!("more than {MAX_LOG_ROWS} logs")));
        }
        if last_page {
            return Ok(logs);
        }
    }
}

fn too_large(what: String) -> ApiError {
    ApiError::validation(
        "date_to",
        format!(
            "an Excel report lists at most {MAX_LOG_ROWS} logs and {MAX_PEOPLE_ROWS} people, and this one holds {what}: narrow the range or filter by department"
        ),
    )
}

/// Runs CPU-bound rendering off the async workers.
async fn blocking(render: impl FnOnce() -> anyhow::Result<Vec<u8>> + Send + 'static) -> ApiResult<Vec<u8>> {
    tokio::task::spawn_blocking(render).await.map_err(ApiError::internal)?.map_err(ApiError::internal)
}

fn attachment(bytes: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{file_name}\"");
    ([(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response()
}

fn response(heading: &ReportHeading, report: &AttendanceReport) -> ReportResponse {
    ReportResponse {
        report_id: heading.report_id.clone(),
        generated_at: heading.generated_at.clone(),
        period: heading.period.clone(),
        date_range: report.range.to_string(),
        date_from: report.range.from,
        date_to: report.range.to,
        timezone: heading.timezone.clone(),
        working_days: report.working_days,
        total_employees: report.total_employees,
        attendance_rate: rounded(report.attendance_rate, 4),
        present_person_days: report.present_person_days,
        expected_person_days: report.expected_person_days,
        total_attendances: report.total_attendances,
        department_stats: report
            .departments
            .iter()
            .map(|(name, stats)| {
                let stats = DepartmentStatsResponse {
                    total_employees: stats.total_employees,
                    attendance_rate: rounded(stats.attendance_rate, 4),
                    avg_daily_attendance: rounded(stats.avg_daily_attendance, 2),
                    present_person_days: stats.present_person_days,
                };
                (name.clone(), stats)
            })
            .collect(),
        daily_attendance: report
            .daily
            .iter()
            .map(|day| DayResponse { date: day.date, working_day: day.working_day, present: day.present })
            .collect(),
    }
}

/// `value` to `decimals` places: rates are reported to a hundredth of a percent.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatternsQuery {
    /// First date of the range the weekday and season patterns cover (default: 364 days
    /// before `date_to`, 52 whole weeks).
    pub date_from: Option<NaiveDate>,
    /// Last date (default: yesterday, the last complete day).
    pub date_to: Option<NaiveDate>,
    /// Only people of this department.
    pub department: Option<String>,
}

/// The spec's patterns, with the range they cover and how the forecast was made.
#[derive(Serialize, ToSchema)]
pub struct PatternsResponse {
    /// The first day of the range with attendance: days before records began are not
    /// counted as days nobody came.
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub timezone: String,
    /// Per weekday, `monday` to `sunday`.
    pub daily_patterns: BTreeMap<String, WeekdayPatternResponse>,
    /// Attendance rate per meteorological season (`hemisphere` of the configuration) over
    /// the range's working days; `null` for a season the range has no working day of.
    pub seasonal_trends: BTreeMap<String, Option<f64>>,
    pub predictions: PredictionsResponse,
}

#[derive(Serialize, ToSchema)]
pub struct WeekdayPatternResponse {
    /// Mean people present on this weekday's dates in the range.
    pub avg_attendance: f64,
    /// The hour ("09:00") with the most arrivals on this weekday; `null` without any.
    pub peak_hour: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PredictionsResponse {
    /// Predicted person-days present next Monday to Sunday (the sum of `daily`); `null`
    /// when the history is too short (`reason`).
    pub next_week_attendance: Option<i64>,
    /// `1 −` the mean absolute percentage error of the same forecast over recent weeks
    /// (`backtest_weeks`), in [0, 1].
    pub confidence: Option<f64>,
    pub week_from: Option<NaiveDate>,
    pub week_to: Option<NaiveDate>,
    /// Predicted people present per day of next week.
    pub daily: Vec<PredictedDay>,
    pub method: &'static str,
    pub backtest_weeks: u64,
    pub mean_absolute_percentage_error: Option<f64>,
    /// Why there is no forecast.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PredictedDay {
    pub date: NaiveDate,
    pub attendance: f64,
}

/// Patterns of attendance: each weekday's average people present and busiest hour, the
/// attendance rate per season, and a forecast of next week (seasonal mean of the same
/// weekday over the last 4 weeks) with its confidence from back-testing the last 4
/// weeks. Admins see everyone, faculty their department.
#[utoipa::path(get, path = "/reports/patterns/", tag = "reports", params(PatternsQuery),
    responses((status = 200, body = PatternsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn patterns(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<PatternsQuery>,
) -> ApiResult<Json<PatternsResponse>> {
    let today = state.calendar.today();
    let to = query.date_to.unwrap_or(today - chrono::Days::new(1));
    let from = query.date_from.unwrap_or(to - chrono::Days::new(363));
    let (_, range) = requested_range(None, Period::Daily, Some(from), Some(to), &state.calendar)?;
    let mut filter =
        AttendanceFilter { department: department_filter(query.department)?, ..AttendanceFilter::default() };
    let readable = attendance::readable_by(&state.db, &caller).await?.ok_or_else(ApiError::forbidden)?;
    readable.restrict(&mut filter);
    let found = patterns::patterns(&state.db, &state.calendar, state.config.hemisphere, range, today, &filter).await?;
    let daily_patterns = found
        .weekdays
        .iter()
        .map(|day| {
            let pattern = WeekdayPatternResponse {
                avg_attendance: rounded(day.avg_attendance, 2),
                peak_hour: day.peak_hour.map(|hour| format!("{hour:02}:00")),
            };
            (weekday_name(day.weekday), pattern)
        })
        .collect();
    let seasonal_trends =
        found.seasons.iter().map(|(season, rate)| (season.name().to_owned(), rate.map(|r| rounded(r, 4)))).collect();
    Ok(Json(PatternsResponse {
        date_from: found.range.from,
        date_to: found.range.to,
        timezone: state.calendar.zone().name().to_owned(),
        daily_patterns,
        seasonal_trends,
        predictions: predictions(found.forecast),
    }))
}

fn predictions(forecast: Result<patterns::Forecast, String>) -> PredictionsResponse {
    let method = "seasonal mean: each day is the mean of the same weekday over the last 4 weeks";
    match forecast {
        Ok(forecast) => PredictionsResponse {
            next_week_attendance: Some(forecast.total.round() as i64),
            confidence: Some(rounded(forecast.confidence, 4)),
            week_from: Some(forecast.week.from),
            week_to: Some(forecast.week.to),
            daily: forecast
                .days
                .iter()
                .map(|(date, attendance)| PredictedDay { date: *date, attendance: rounded(*attendance, 2) })
                .collect(),
            method,
            backtest_weeks: forecast.backtest_weeks,
            mean_absolute_percentage_error: Some(rounded(forecast.mean_absolute_percentage_error, 4)),
            reason: None,
        },
        Err(reason) => PredictionsResponse {
            next_week_attendance: None,
            confidence: None,
            week_from: None,
            week_to: None,
            daily: Vec::new(),
            method,
            backtest_weeks: 0,
            mean_absolute_percentage_error: None,
            reason: Some(reason),
        },
    }
}

fn weekday_name(day: chrono::Weekday) -> String {
    let names = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    names[day.num_days_from_monday() as usize].to_owned()
}

/// The spec's live dashboard numbers, with the day and zone they are counted in.
#[derive(Serialize, ToSchema)]
pub struct RealTimeResponse {
    /// Today, in `timezone`.
    pub date: NaiveDate,
    pub timezone: String,
    /// People whose latest valid event today is an entry. Until exit cameras exist every
    /// log is an entry, so this is everyone present today.
    pub current_occupancy: i64,
    /// People with a valid log today.
    pub today_attendance: i64,
    /// Valid logs today.
    pub today_arrivals: i64,
    /// The hour ("09:00") with the most arrivals today; `null` before the first.
    pub peak_hour: Option<String>,
    /// Mean seconds a face verification took, over the last 100 completed; `null` before
    /// the first.
    pub avg_processing_time: Option<f64>,
    pub system_health: RealTimeHealth,
    /// Active cameras by state, as this server watches them.
    pub camera_status: StatusCounts,
}

#[derive(Serialize, ToSchema)]
pub struct RealTimeHealth {
    /// Mean seconds per API request over the last 5 minutes (0 without requests).
    pub api_response_time: f64,
    pub requests_last_5_minutes: u64,
    /// Share of those answered with a 5xx status.
    pub error_rate: f64,
    /// `healthy`; `backlogged` when a task has waited longer than `max_queue_wait_secs`.
    pub ai_worker_status: String,
    pub task_workers: usize,
    /// Database connections in use, and idle in the pool.
    pub database_connections: u32,
    pub database_idle_connections: u32,
    /// Face tasks waiting for a worker.
    pub queue_size: i64,
    /// Seconds the longest-waiting task has waited.
    pub oldest_task_wait: Option<f64>,
}

/// Mean processing time over this many recent verifications.
const PROCESSING_SAMPLE: u64 = 100;

/// Live numbers for a dashboard: who is here today, the busiest hour, how fast faces are
/// processed and how the service is doing (request latency and errors of the last 5
/// minutes, workers, database connections, queue).
#[utoipa::path(get, path = "/reports/analytics/real-time/", tag = "reports",
    responses((status = 200, body = RealTimeResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn real_time(State(state): State<AppState>) -> ApiResult<Json<RealTimeResponse>> {
    let today = state.calendar.today();
    let range = crate::domain::calendar::DateRange { from: today, to: today };
    let summary =
        crate::domain::summary::summarise(&state.db, &state.calendar, range, AttendanceFilter::default()).await?;
    let peak_hour =
        summary.hourly_distribution.iter().max_by_key(|&(hour, &count)| (count, std::cmp::Reverse(hour.clone())));
    let processing = crate::store::tasks::recent_processing_ms(&state.db, "verify", PROCESSING_SAMPLE).await?;
    let avg_processing_time = (!processing.is_empty())
        .then(|| rounded(processing.iter().sum::<i64>() as f64 / processing.len() as f64 / 1000.0, 3));
    let queue_size = crate::store::tasks::count_queued(&state.db).await?;
    let oldest_task_wait = crate::store::tasks::oldest_queued_at(&state.db)
        .await?
        .map(|queued| (Utc::now() - queued).num_milliseconds().max(0) as f64 / 1000.0);
    let backlogged = oldest_task_wait.is_some_and(|wait| wait > state.config.max_queue_wait_secs as f64);
    let recent = state.requests.recent();
    let (in_use, idle) = state.db.connections();
    Ok(Json(RealTimeResponse {
        date: today,
        timezone: state.calendar.zone().name().to_owned(),
        current_occupancy: summary.unique_persons,
        today_attendance: summary.unique_persons,
        today_arrivals: summary.total_attendances,
        peak_hour: peak_hour.map(|(hour, _)| hour.clone()),
        avg_processing_time,
        system_health: RealTimeHealth {
            api_response_time: rounded(recent.mean_secs, 4),
            requests_last_5_minutes: recent.requests,
            error_rate: if recent.requests == 0 {
                0.0
            } else {
                rounded(recent.errors as f64 / recent.requests as f64, 4)
            },
            ai_worker_status: if backlogged { "backlogged" } else { "healthy" }.to_owned(),
            task_workers: state.config.task_workers(),
            database_connections: in_use,
            database_idle_connections: idle,
            queue_size,
            oldest_task_wait: oldest_task_wait.map(|wait| rounded(wait, 3)),
        },
        camera_status: state.cameras.counts(),
    }))
}

//! `/mobile/profile/` and `/mobile/check-in/` for signed-in people on their phones, and
//! `/sites/`, the places they may check in at.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::admission::{Admitted, CheckInTask};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path};
use super::face::{LivenessAnswerBody, check_image, redeem_answer, submit};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo, Requester};
use crate::domain::auth::Principal;
use crate::domain::calendar::DateRange;
use crate::domain::face::CheckInRequest;
use crate::domain::report::people_attendance;
use crate::domain::sites::{self, Position};
use crate::store::attendance::AttendanceFilter;
use crate::store::sites::{self as site_store, SiteRecord};
use crate::store::users::{self as user_store, UserRecord};
use crate::store::{StoreError, templates};

/// The signed-in person behind `caller`: API keys belong to no one.
async fn own_record(state: &AppState, caller: &Principal) -> ApiResult<UserRecord> {
    let user_id = caller
        .user_id()
        .ok_or_else(|| ApiError::Forbidden("the mobile API is for signed-in people, not API keys".into()))?;
    user_store::find_by_id(&state.db, user_id).await?.filter(|user| user.is_active).ok_or_else(ApiError::forbidden)
}

#[derive(Serialize, ToSchema)]
pub struct MobileProfile {
    pub employee_id: String,
    pub name: String,
    pub department: String,
    pub face_enrolled: bool,
    /// The first arrival today (local time, `HH:MM`); `null` before it.
    pub today_attendance: Option<String>,
    /// Working days of this week (Monday to today) with an arrival.
    pub this_week_days: i64,
    /// Working days present over working days so far this month, as reports count it;
    /// `null` for admins, who are not expected to attend.
    pub attendance_rate: Option<f64>,
}

/// Your profile with today's arrival, this week's days and this month's attendance rate.
#[utoipa::path(get, path = "/mobile/profile/", tag = "mobile",
    responses((status = 200, body = MobileProfile), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "An API key, which is no person")))]
pub async fn profile(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<MobileProfile>> {
    let user = own_record(&state, &caller).await?;
    let calendar = &state.calendar;
    let today = calendar.today();
    let mine = AttendanceFilter { user_id: Some(user.id), ..AttendanceFilter::default() };
    let over = |from: NaiveDate| DateRange::new(from, today).expect("from is not after today");
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first_of_month = today.with_day(1).expect("every month has a first");
    let today_stats = people_attendance(&state.db, calendar, over(today), &mine, 1).await?;
    let week = people_attendance(&state.db, calendar, over(monday), &mine, 1).await?;
    let month = people_attendance(&state.db, calendar, over(first_of_month), &mine, 1).await?;
    let today_attendance = today_stats
        .first()
        .and_then(|person| person.first_arrival)
        .map(|at| at.with_timezone(&calendar.zone()).format("%H:%M").to_string());
    Ok(Json(MobileProfile {
        employee_id: user.employee_id.clone(),
        name: user.full_name(),
        department: user.department.clone(),
        face_enrolled: templates::find(&state.db, user.id).await?.is_some(),
        today_attendance,
        this_week_days: week.first().map_or(0, |person| person.days_present),
        attendance_rate: month.first().map(|person| (person.attendance_rate * 10_000.0).round() / 10_000.0),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneLocation {
    pub latitude: f64,
    pub longitude: f64,
    /// The phone's estimate of its position's error, in metres; when sent, it must be
    /// smaller than the site's radius.
    pub accuracy_m: Option<f64>,
}

/// The spec's check-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    /// The selfie: a `data:` URI or bare base64 (JPEG, PNG or WebP).
    pub image: String,
    pub location: PhoneLocation,
    /// When the selfie was taken (RFC 3339); at most `mobile_max_clock_skew_secs` from the
    /// server's clock.
    pub timestamp: DateTime<Utc>,
    /// The answer to an active liveness challenge (`POST /face/liveness/challenges/`);
    /// required when the server's `mobile_liveness_mode` is `active`.
    pub liveness: Option<LivenessAnswerBody>,
}

/// Check in from your phone: a selfie, where you are, and when. It logs your attendance
/// (source `mobile`, at the site) when you are inside a site (`/sites/`), your phone's
/// clock agrees with the server's, and the selfie is live, of usable quality and matches
/// **your own** enrolled face (compared with your template only, at the operating point of
/// a gallery of one; no one else's). The answer comes in one round trip:
/// `attendance_logged`, `timestamp` and `site`, or `attendance_logged: false` with a
/// `reason` — `outside_geofence`, `clock_skew`, `not_enrolled`, `face_mismatch`, `spoof`,
/// `liveness_failed` (with `liveness.failure`), `low_quality`, `no_face`, `multiple_faces`
/// or `cooldown` — and a `message`. Every
/// attempt is audited (`mobile_check_in`). If the queue is slow, a 202 gives the
/// `task_id` to follow at `/mobile/check-in/status/{task_id}/`.
#[utoipa::path(post, path = "/mobile/check-in/", tag = "mobile", request_body = CheckInBody,
    responses((status = 200, body = Object, description = "The outcome"),
        (status = 202, body = Object, description = "Queued; follow the task"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "An API key, which is no person"),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn check_in(
    State(state): State<AppState>,
    Auth(caller): Auth,
    client: ClientInfo,
    Admitted { ticket, body }: Admitted<CheckInTask, CheckInBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let user = own_record(&state, &caller).await?;
    check_image("image", &body.image)?;
    let position = Position::new(body.location.latitude, body.location.longitude)
        .map_err(|invalid| ApiError::validation(&format!("location.{}", invalid.field), invalid.message))?;
    if let Some(accuracy) = body.location.accuracy_m
        && !(accuracy.is_finite() && accuracy >= 0.0)
    {
        return Err(ApiError::validation("location.accuracy_m", "must be a distance in metres, 0 or more"));
    }
    let refuse = |reason: &'static str, message: String| (reason, message);
    let skew = (body.timestamp - Utc::now()).num_seconds().abs();
    let site_list = site_store::all(&state.db).await?;
    let site = sites::site_at(&site_list, position);
    let refusal = match site {
        _ if skew > state.config.mobile_max_clock_skew_secs as i64 => Some(refuse(
            "clock_skew",
            format!("the phone's clock is {skew} s off the server's: set it to the network time and try again"),
        )),
        None if site_list.is_empty() => Some(refuse("outside_geofence", "no check-in sites are configured".into())),
        None => Some(refuse("outside_geofence", "you are not at a check-in site".into())),
        Some((site, _)) if body.location.accuracy_m.is_some_and(|accuracy| accuracy >= site.radius_m) => Some(refuse(
            "outside_geofence",
            format!("the phone's position is too coarse for {} (wait for a better GPS fix)", site.name),
        )),
        Some(_) => None,
    };
    if let Some((reason, message)) = refusal {
        let details = json!({"employee_id": user.employee_id, "reason": reason, "latitude": position.latitude,
            "longitude": position.longitude, "accuracy_m": body.location.accuracy_m, "timestamp": body.timestamp});
        audit::record(&state.db, &client, AuditEvent::failure("mobile_check_in", Some(caller.audit_name()), details))
            .await;
        return Ok((
            StatusCode::OK,
            axum::Json(json!({"attendance_logged": false, "employee_id": user.employee_id, "reason": reason,
                "message": message})),
        ));
    }
    let (site, distance_m) = site.expect("refused above when outside every site");
    let liveness_mode = state.config.mobile_liveness_mode;
    let challenge = redeem_answer(&state, &caller, liveness_mode, body.liveness).await?;
    let request = CheckInRequest {
        user_id: user.id,
        image: body.image,
        site_id: site.id,
        site: site.name.clone(),
        distance_m,
        accuracy_m: body.location.accuracy_m,
        captured_at: body.timestamp,
        requested_by: Requester { name: Some(caller.audit_name()), client },
        liveness_mode,
        challenge,
    };
    let (status, task) = submit(&state, &caller, ticket, Some(user.id), request, true).await?;
    Ok((status, axum::Json(outcome(task.0))))
}

/// A finished check-in's result with its task id; an unfinished one's task as it is.
fn outcome(task: Value) -> Value {
    match task["status"].as_str() {
        Some("completed") => {
            let mut result = task["result"].clone();
            result["task_id"] = task["task_id"].clone();
            result
        }
        _ => task,
    }
}

/// A check-in that was still queued when its request returned (202). Your own only.
#[utoipa::path(get, path = "/mobile/check-in/status/{task_id}/", tag = "mobile", params(("task_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn check_in_status(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(task_id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let not_found = || ApiError::NotFound(format!("no check-in {task_id}"));
    let status = state.queue.status(&task_id).await.map_err(super::face::queue_error)?.ok_or_else(not_found)?;
    if status.kind != crate::queue::TaskKind::CheckIn || status.owner != caller.key() {
        return Err(not_found());
    }
    Ok(axum::Json(outcome(json!(super::face::TaskStatusBody::from(status)))))
}

/// A site: a circle around a point where people may check in from a phone.
#[derive(Serialize, ToSchema)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
    pub created_at: DateTime<Utc>,
}

impl From<SiteRecord> for Site {
    fn from(record: SiteRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            latitude: record.latitude,
            longitude: record.longitude,
            radius_m: record.radius_m,
            created_at: record.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// Unique, at most 100 characters.
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// 10 to 10,000 metres.
    pub radius_m: f64,
}

fn site_fields(body: &SiteBody) -> ApiResult<site_store::SiteFields> {
    sites::site_fields(&body.name, body.latitude, body.longitude, body.radius_m)
        .map_err(|invalid| ApiError::validation(invalid.field, invalid.message))
}

fn taken(error: StoreError, name: &str) -> ApiError {
    match error {
        StoreError::Conflict(_) => ApiError::Conflict(format!("a site named {name} exists already")),
        other => other.into(),
    }
}

/// The check-in sites, by name. Anyone signed in (the phone shows where to go).
#[utoipa::path(get, path = "/sites/", tag = "mobile",
    responses((status = 200, body = Vec<Site>), (status = 401, body = ErrorBody)))]
pub async fn list_sites(State(state): State<AppState>, _caller: Auth) -> ApiResult<Json<Vec<Site>>> {
    Ok(Json(site_store::all(&state.db).await?.into_iter().map(Site::from).collect()))
}

/// Add a check-in site (admin). Audited (`site_create`).
#[utoipa::path(post, path = "/sites/", tag = "mobile", request_body = SiteBody,
    responses((status = 201, body = Site), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "The name is taken")))]
pub async fn create_site(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Json(body): Json<SiteBody>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    let fields = site_fields(&body)?;
    let record = site_store::insert(&state.db, &fields).await.map_err(|e| taken(e, &fields.name))?;
    audit_site(&state, &client, &admin, "site_create", &record).await;
    Ok((StatusCode::CREATED, Json(Site::from(record))))
}

async fn audit_site(state: &AppState, client: &ClientInfo, admin: &Principal, action: &'static str, site: &SiteRecord) {
    let details = json!({"site_id": site.id, "name": site.name, "latitude": site.latitude,
        "longitude": site.longitude, "radius_m": site.radius_m});
    audit::record(&state.db, client, AuditEvent::success(action, Some(admin.audit_name()), details)).await;
}

/// One check-in site.
#[utoipa::path(get, path = "/sites/{id}/", tag = "mobile", params(("id" = i64, Path)),
    responses((status = 200, body = Site), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_site(State(state): State<AppState>, _caller: Auth, Path(id): Path<i64>) -> ApiResult<Json<Site>> {
    let record = site_store::find(&state.db, id).await?.ok_or_else(|| no_site(id))?;
    Ok(Json(Site::from(record)))
}

fn no_site(id: i64) -> ApiError {
    ApiError::NotFound(format!("no site {id}"))
}

/// Change a check-in site (admin; every field). Audited (`site_update`).
#[utoipa::path(put, path = "/sites/{id}/", tag = "mobile", params(("id" = i64, Path)), request_body = SiteBody,
    responses((status = 200, body = Site), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_site(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(body): Json<SiteBody>,
) -> ApiResult<Json<Site>> {
    let fields = site_fields(&body)?;
    let record = site_store::update(&state.db, id, &fields)
        .await
        .map_err(|e| taken(e, &fields.name))?
        .ok_or_else(|| no_site(id))?;
    audit_site(&state, &client, &admin, "site_update", &record).await;
    Ok(Json(Site::from(record)))
}

/// Remove a check-in site (admin). Logs made at it keep its name. Audited (`site_delete`).
#[utoipa::path(delete, path = "/sites/{id}/", tag = "mobile", params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_site(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let record = site_store::find(&state.db, id).await?.ok_or_else(|| no_site(id))?;
    if !site_store::delete(&state.db, id).await? {
        return Err(no_site(id));
    }
    audit_site(&state, &client, &admin, "site_delete", &record).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_check_in_answers_with_its_result_and_task() {
        let finished = json!({"task_id": "checkin_1", "status": "completed", "result": {"attendance_logged": true}});
        assert_eq!(outcome(finished), json!({"attendance_logged": true, "task_id": "checkin_1"}));
        let queued = json!({"task_id": "checkin_2", "status": "queued"});
        assert_eq!(outcome(queued.clone()), queued);
    }
}

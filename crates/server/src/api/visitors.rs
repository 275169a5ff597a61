//! `/visitors/`: unknown visitors, the strangers cameras keep seeing (admins only). A
//! visitor can be enrolled as a person from their sightings, or deleted.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Json, Path, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::visitors::{self, EnrollError, Enrollment, label, parse_label};
use crate::store::users;
use crate::store::visitors::{self as visitor_store, CameraSightings, VisitorRecord};

/// Sightings of a visitor at one camera.
#[derive(Serialize, ToSchema)]
pub struct CameraSeen {
    pub camera_id: String,
    /// Within the retention period.
    pub sightings: i64,
    pub last_seen: DateTime<Utc>,
}

/// A stranger seen at cameras: live, of good quality, recognised as nobody.
#[derive(Serialize, ToSchema)]
pub struct Visitor {
    /// `V-0001`, …: the same id each time the same face is seen.
    pub visitor_id: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Every sighting since the visitor was first seen.
    pub sightings: i64,
    pub cameras: Vec<CameraSeen>,
    /// The best face seen (`image/jpeg`, admins; each view audited).
    pub crop_url: String,
    /// When the visitor is deleted unless seen again (`unknown_visitor_retention_days`).
    pub expires_at: DateTime<Utc>,
}

fn view(state: &AppState, record: VisitorRecord, seen: &[CameraSightings]) -> Visitor {
    let id = label(record.number);
    let days = chrono::Duration::days(i64::from(state.config.unknown_visitor_retention_days));
    Visitor {
        cameras: seen
            .iter()
            .filter(|at| at.visitor_number == record.number)
            .map(|at| CameraSeen { camera_id: at.camera_id.clone(), sightings: at.sightings, last_seen: at.last_seen })
            .collect(),
        crop_url: format!("/api/v1/visitors/{id}/crop/"),
        expires_at: record.last_seen + days,
        visitor_id: id,
        first_seen: record.first_seen,
        last_seen: record.last_seen,
        sightings: record.sightings,
    }
}

/// The visitor a path names; 404 for an id that is no visitor's.
fn path_number(id: &str) -> ApiResult<i64> {
    parse_label(id).ok_or_else(|| no_visitor(id))
}

fn no_visitor(id: &str) -> ApiError {
    let shown: String = id.chars().take(40).collect();
    ApiError::NotFound(format!("there is no visitor {shown} (visitor ids look like V-0001)"))
}

async fn find(state: &AppState, id: &str) -> ApiResult<VisitorRecord> {
    visitor_store::find(&state.db, path_number(id)?).await?.ok_or_else(|| no_visitor(id))
}

/// Unknown visitors, the most recently seen first (admin). Faces that cameras see live
/// and clearly and that match nobody are grouped by likeness into visitors; each is
/// deleted `unknown_visitor_retention_days` after last seen. None are kept when
/// `track_unknown_visitors` is off.
#[utoipa::path(get, path = "/visitors/", tag = "visitors", params(PageParams),
    responses((status = 200, body = Paginated<Visitor>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_visitors(
    State(state): State<AppState>,
    _admin: Admin,
    url: RequestUrl,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Paginated<Visitor>>> {
    let page = params.page()?;
    let (records, count) = visitor_store::page(&state.db, page.limit(), page.offset()).await?;
    let numbers: Vec<i64> = records.iter().map(|record| record.number).collect();
    let seen = visitor_store::per_camera(&state.db, &numbers).await?;
    let results = records.into_iter().map(|record| view(&state, record, &seen)).collect();
    Ok(Json(Paginated::new(results, count, page, &url)))
}

/// One unknown visitor (admin).
#[utoipa::path(get, path = "/visitors/{visitor_id}/", tag = "visitors", params(("visitor_id" = String, Path)),
    responses((status = 200, body = Visitor), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_visitor(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Visitor>> {
    let record = find(&state, &id).await?;
    let seen = visitor_store::per_camera(&state.db, &[record.number]).await?;
    Ok(Json(view(&state, record, &seen)))
}

/// The best face a visitor was seen with (`image/jpeg`, admin). Every view is audited
/// (`visitor_crop_viewed`).
#[utoipa::path(get, path = "/visitors/{visitor_id}/crop/", tag = "visitors", params(("visitor_id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", description = "The face crop"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_visitor_crop(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let number = path_number(&id)?;
    let crop = visitors::crop(&state.db, &state.sealer, number)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| no_visitor(&id))?;
    let details = json!({"visitor_id": label(number)});
    audit::record(&state.db, &client, AuditEvent::success("visitor_crop_viewed", Some(admin.audit_name()), details))
        .await;
    Ok(super::private_image("image/jpeg", crop))
}

/// Whom to enroll the visitor as.
#[derive(Deserialize, ToSchema)]
pub struct EnrollVisitor {
    /// A person without a face template yet (create them first with `POST /users/`).
    pub employee_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct VisitorEnrolled {
    pub visitor_id: String,
    pub employee_id: String,
    pub template_created: bool,
    /// The sightings the template was made of (the best ones, at most 10).
    pub sightings_used: usize,
}

/// Enroll a visitor as a person (admin): a face template is made of the visitor's best
/// sightings for `employee_id`, who must have none yet; the visitor is deleted and the
/// person is recognised from then on. 409 when the person has a template already or the
/// sightings match someone enrolled. Audited (`visitor_enroll`).
#[utoipa::path(post, path = "/visitors/{visitor_id}/enroll/", tag = "visitors", params(("visitor_id" = String, Path)),
    request_body = EnrollVisitor,
    responses((status = 201, body = VisitorEnrolled), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enroll_visitor(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    Json(body): Json<EnrollVisitor>,
) -> ApiResult<(StatusCode, Json<VisitorEnrolled>)> {
    let record = find(&state, &id).await?;
    let employee_id = body.employee_id.trim();
    if employee_id.is_empty() || employee_id.chars().count() > 64 {
        return Err(ApiError::validation(
            "employee_id",
            "is required: the person's employee id (at most 64 characters)",
        ));
    }
    let user = users::find_by_employee_id(&state.db, employee_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with employee_id {employee_id}")))?;
    let enrollment = Enrollment { db: &state.db, sealer: &state.sealer, face: &state.face, events: &state.events };
    let visitor_id = label(record.number);
    let used = match visitors::enroll(enrollment, record.number, &user).await {
        Ok(used) => used,
        Err(EnrollError::NoVisitor(_)) => return Err(no_visitor(&visitor_id)),
        Err(error @ (EnrollError::Inactive(_) | EnrollError::AlreadyEnrolled(_))) => {
            return Err(ApiError::Conflict(error.to_string()));
        }
        Err(EnrollError::Duplicate { other, .. }) => {
            let other = users::find_by_id(&state.db, other).await?.map(|other| other.employee_id);
            return Err(ApiError::Conflict(format!(
                "{visitor_id} looks like {}, who is enrolled already: one person, one identity",
                other.as_deref().unwrap_or("another person")
            )));
        }
        Err(EnrollError::Internal(error)) => return Err(ApiError::Internal(error)),
    };
    let details = json!({"visitor_id": visitor_id, "employee_id": user.employee_id, "sightings_used": used});
    audit::record(&state.db, &client, AuditEvent::success("visitor_enroll", Some(admin.audit_name()), details)).await;
    let enrolled =
        VisitorEnrolled { visitor_id, employee_id: user.employee_id, template_created: true, sightings_used: used };
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// Delete a visitor with their sightings, embedding and crop (admin). Seen again, the
/// face becomes a new visitor. Audited (`visitor_delete`).
#[utoipa::path(delete, path = "/visitors/{visitor_id}/", tag = "visitors", params(("visitor_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_visitor(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let number = path_number(&id)?;
    let tx = state.db.begin().await?;
    let deleted = visitor_store::delete(&tx, number).await?;
    tx.commit().await?;
    if !deleted {
        return Err(no_visitor(&id));
    }
    let details = json!({"visitor_id": label(number)});
    audit::record(&state.db, &client, AuditEvent::success("visitor_delete", Some(admin.audit_name()), details)).await;
    Ok(StatusCode::NO_CONTENT)
}

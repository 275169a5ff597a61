//! `/users/`: list, create, read, update, deactivate.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::auth::{MAX_PASSWORD_BYTES, PasswordPool, Principal, within_limit};
use crate::domain::users::{self, Email, EmployeeId, Invalid, NewPassword, Role, parse_text};
use crate::store::users::{self as user_store, NewUser, UserChanges, UserFilter, UserRecord};

const NAME_MAX: usize = 100;
const DEPARTMENT_MAX: usize = 100;

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    pub id: i64,
    pub employee_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub department: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub face_enrolled: bool,
}

impl From<UserRecord> for UserResponse {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            employee_id: user.employee_id,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            role: user.role,
            department: user.department,
            is_active: user.is_active,
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login: user.last_login,
            face_enrolled: user.face_enrolled,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only users with this role.
    pub role: Option<Role>,
    /// Only users of this department (case-insensitive).
    pub department: Option<String>,
    /// Case-insensitive match on name, e-mail or employee id.
    pub search: Option<String>,
}

/// List users (admin only).
#[utoipa::path(get, path = "/users/", tag = "users", params(UserQuery, PageParams),
    responses((status = 200, body = Paginated<UserResponse>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    url: RequestUrl,
    Query(query): Query<UserQuery>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<UserResponse>>> {
    let page = page.page()?;
    let filter = UserFilter {
        role: query.role,
        department: query.department.filter(|d| !d.trim().is_empty()).map(|d| d.trim().to_owned()),
        search: query.search,
    };
    let (users, count) = user_store::list(&state.db, &filter, page.limit(), page.offset()).await?;
    let results = users.into_iter().map(UserResponse::from).collect();
    Ok(Json(Paginated::new(results, count, page, &url)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(example = "STU1234")]
    pub employee_id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    pub role: Role,
    #[serde(default)]
    pub department: String,
    pub password: String,
}

/// Create a user (admin only).
#[utoipa::path(post, path = "/users/", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Json(request): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    let new_user = parse_new_user(state.auth.passwords(), request).await?;
    let employee_id = new_user.employee_id.clone();
    let result = user_store::insert(&state.db, new_user).await;
    let event = match &result {
        Ok(user) => AuditEvent::success(
            "user_create",
            Some(admin.audit_name()),
            json!({"employee_id": employee_id, "id": user.id, "role": user.role}),
        ),
        Err(error) => AuditEvent::failure(
            "user_create",
            Some(admin.audit_name()),
            json!({"employee_id": employee_id, "reason": error.to_string()}),
        ),
    };
    audit::record(&state.db, &client, event).await;
    Ok((StatusCode::CREATED, Json(result?.into())))
}

async fn parse_new_user(passwords: &PasswordPool, request: CreateUserRequest) -> Result<NewUser, ApiError> {
    let mut invalid = Vec::new();
    let mut check = |result: Result<String, Invalid>| result.map_err(|e| invalid.push(e)).unwrap_or_default();
    let employee_id = check(EmployeeId::parse(&request.employee_id).map(|id| id.as_str().to_owned()));
    let email = check(Email::parse(&request.email).map(|e| e.as_str().to_owned()));
    let first_name = check(parse_text("first_name", &request.first_name, NAME_MAX));
    let last_name = check(parse_text("last_name", &request.last_name, NAME_MAX));
    let department = check(parse_text("department", &request.department, DEPARTMENT_MAX));
    let password = check(NewPassword::parse(&request.password).map(|p| p.expose().to_owned()));
    if !invalid.is_empty() {
        return Err(invalid.into());
    }
    Ok(NewUser {
        employee_id,
        email,
        first_name,
        last_name,
        role: request.role,
        department,
        password_hash: passwords.hash(&password).await.map_err(ApiError::internal)?,
    })
}

/// Read a user: admins read anyone, others only themselves.
#[utoipa::path(get, path = "/users/{id}/", tag = "users", params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = UserResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserResponse>> {
    ensure_self_or_admin(&principal, id)?;
    Ok(Json(find(&state, id).await?.into()))
}

fn ensure_self_or_admin(principal: &Principal, id: i64) -> Result<(), ApiError> {
    if principal.is_admin() || principal.user_id() == Some(id) { Ok(()) } else { Err(ApiError::forbidden()) }
}

async fn find(state: &AppState, id: i64) -> ApiResult<UserRecord> {
    user_store::find_by_id(&state.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))
}

/// Changes to a user; absent fields stay as they are. Admins may change every field;
/// people may change their own names and password (with `current_password`).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub employee_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: Option<Role>,
    pub department: Option<String>,
    pub password: Option<String>,
    /// Required when people change their own password.
    pub current_password: Option<String>,
    pub is_active: Option<bool>,
}

/// Update a user (`PUT` and `PATCH` both accept partial updates).
#[utoipa::path(put, path = "/users/{id}/", tag = "users", params(("id" = i64, Path, description = "User id")),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(request): Json<UpdateUserRequest>,
) -> ApiResult<Json<UserResponse>> {
    ensure_self_or_admin(&principal, id)?;
    let existing = find(&state, id).await?;
    if !principal.is_admin() {
        ensure_self_service(state.auth.passwords(), &request, &existing).await?;
    }
    let changed_fields = changed_field_names(&request);
    if existing.role == Role::Admin
        && (request.role.is_some_and(|r| r != Role::Admin) || request.is_active == Some(false))
    {
        ensure_not_last_admin(&state).await?;
    }
    let changes = parse_changes(state.auth.passwords(), request).await?;
    let result = users::apply_changes(&state.db, &state.calendar, id, changes).await;
    let event = match &result {
        Ok(_) => AuditEvent::success(
            "user_update",
            Some(principal.audit_name()),
            json!({"id": id, "employee_id": existing.employee_id, "fields": changed_fields}),
        ),
        Err(error) => AuditEvent::failure(
            "user_update",
            Some(principal.audit_name()),
            json!({"id": id, "fields": changed_fields, "reason": error.to_string()}),
        ),
    };
    audit::record(&state.db, &client, event).await;
    let user = result?.ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    if existing.is_active != user.is_active {
        state.face.refresh(&state.db, &state.sealer, user.id).await.map_err(ApiError::Internal)?;
    }
    Ok(Json(user.into()))
}

async fn ensure_self_service(
    passwords: &PasswordPool,
    request: &UpdateUserRequest,
    existing: &UserRecord,
) -> Result<(), ApiError> {
    let admin_only = request.employee_id.is_some()
        || request.email.is_some()
        || request.role.is_some()
        || request.department.is_some()
        || request.is_active.is_some();
    if admin_only {
        return Err(ApiError::Forbidden(
            "only an admin may change employee_id, email, role, department or is_active".into(),
        ));
    }
    if request.password.is_some() {
        let current = within_limit(
            "current_password",
            request.current_password.as_deref().unwrap_or_default(),
            MAX_PASSWORD_BYTES,
        )?;
        if !passwords.verify(&existing.password_hash, current).await.map_err(ApiError::internal)? {
            return Err(ApiError::validation("current_password", "must be your current password"));
        }
    }
    Ok(())
}

fn changed_field_names(request: &UpdateUserRequest) -> Vec<&'static str> {
    [
        ("employee_id", request.employee_id.is_some()),
        ("email", request.email.is_some()),
        ("first_name", request.first_name.is_some()),
        ("last_name", request.last_name.is_some()),
        ("role", request.role.is_some()),
        ("department", request.department.is_some()),
        ("password", request.password.is_some()),
        ("is_active", request.is_active.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

async fn parse_changes(passwords: &PasswordPool, request: UpdateUserRequest) -> Result<UserChanges, ApiError> {
    let mut invalid = Vec::new();
    let mut check = |result: Option<Result<String, Invalid>>| match result {
        Some(Ok(value)) => Some(value),
        Some(Err(error)) => {
            invalid.push(error);
            None
        }
        None => None,
    };
    let employee_id = check(request.employee_id.map(|v| EmployeeId::parse(&v).map(|id| id.as_str().to_owned())));
    let email = check(request.email.map(|v| Email::parse(&v).map(|e| e.as_str().to_owned())));
    let first_name = check(request.first_name.map(|v| parse_text("first_name", &v, NAME_MAX)));
    let last_name = check(request.last_name.map(|v| parse_text("last_name", &v, NAME_MAX)));
    let department = check(request.department.map(|v| parse_text("department", &v, DEPARTMENT_MAX)));
    let password = check(request.password.map(|v| NewPassword::parse(&v).map(|p| p.expose().to_owned())));
    if !invalid.is_empty() {
        return Err(invalid.into());
    }
    let password_hash = match password {
        Some(password) => Some(passwords.hash(&password).await.map_err(ApiError::internal)?),
        None => None,
    };
    Ok(UserChanges {
        employee_id,
        email,
        first_name,
        last_name,
        role: request.role,
        department,
        password_hash,
        is_active: request.is_active,
    })
}

async fn ensure_not_last_admin(state: &AppState) -> ApiResult<()> {
    if user_store::count_active_admins(&state.db).await? <= 1 {
        return Err(ApiError::Conflict("this is the last active admin; create another admin first".into()));
    }
    Ok(())
}

/// Deactivate a user (admin only): they can no longer log in and their tokens stop
/// working. The record and its history are kept.
#[utoipa::path(delete, path = "/users/{id}/", tag = "users", params(("id" = i64, Path, description = "User id")),
    responses((status = 204, description = "Deactivated"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deactivate_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let existing = find(&state, id).await?;
    if existing.role == Role::Admin && existing.is_active {
        ensure_not_last_admin(&state).await?;
    }
    let changes = UserChanges { is_active: Some(false), ..Default::default() };
    users::apply_changes(&state.db, &state.calendar, id, changes).await?;
    // Deactivated people are never recognised.
    state.face.refresh(&state.db, &state.sealer, id).await.map_err(ApiError::Internal)?;
    let event = AuditEvent::success(
        "user_deactivate",
        Some(admin.audit_name()),
        json!({"id": id, "employee_id": existing.employee_id}),
    );
    audit::record(&state.db, &client, event).await;
    Ok(StatusCode::NO_CONTENT)
}

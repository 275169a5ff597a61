//! `POST /auth/login/`, `/auth/refresh/`, `/auth/logout/`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Json;
use super::middleware::set_rate_limit_headers;
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo, Severity};
use crate::domain::auth::{AuthError, Session};
use crate::domain::users::Role;
use crate::limiter::Category;
use crate::store;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "user@example.com")]
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Short-lived access token (JWT, HS256): `Authorization: Bearer <access>`.
    pub access: String,
    /// Single-use refresh token for `/auth/refresh/`.
    pub refresh: String,
    pub user: LoginUser,
}

#[derive(Serialize, ToSchema)]
pub struct LoginUser {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

impl From<Session> for LoginResponse {
    fn from(session: Session) -> Self {
        let user = session.user;
        Self {
            access: session.access,
            refresh: session.refresh,
            user: LoginUser {
                id: user.id,
                email: user.email,
                role: user.role,
                first_name: user.first_name,
                last_name: user.last_name,
            },
        }
    }
}

/// Log in with e-mail and password.
#[utoipa::path(post, path = "/auth/login/", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(State(state): State<AppState>, client: ClientInfo, Json(request): Json<LoginRequest>) -> Response {
    let email = request.email.trim().to_lowercase();
    let decision = if state.config.rate_limit_enabled {
        let key = format!("{}|{}", client.ip.as_deref().unwrap_or_default(), email);
        Some(state.limiter.check(Category::Auth, &key))
    } else {
        None
    };
    let mut response = match decision {
        Some(decision) if !decision.allowed => ApiError::RateLimited(decision.retry_after).into_response(),
        _ => login_checked(&state, &client, &email, &request.password).await.into_response(),
    };
    if let Some(decision) = decision {
        set_rate_limit_headers(response.headers_mut(), &decision);
    }
    response
}

async fn login_checked(
    state: &AppState,
    client: &ClientInfo,
    email: &str,
    password: &str,
) -> ApiResult<Json<LoginResponse>> {
    match state.auth.login(&state.db, email, password).await {
        Ok(session) => {
            let event = AuditEvent::success("login", Some(session.user.employee_id.clone()), json!({"email": email}));
            audit::record(&state.db, client, event).await;
            Ok(Json(session.into()))
        }
        Err(error @ (AuthError::BadCredentials | AuthError::Deactivated)) => {
            let actor = store::users::find_by_email(&state.db, email).await?.map(|u| u.employee_id);
            let details = json!({"email": email, "reason": error.to_string()});
            audit::record(&state.db, client, AuditEvent::failure("login", actor, details)).await;
            // One answer for unknown e-mail, wrong password and deactivated account.
            Err(ApiError::Unauthorized(AuthError::BadCredentials.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

/// Exchange a refresh token for a new access and refresh token. The old refresh token
/// stops working; presenting it again revokes every session of that login.
#[utoipa::path(post, path = "/auth/refresh/", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    match state.auth.refresh(&state.db, request.refresh.trim()).await {
        Ok(session) => Ok(Json(TokenPair { access: session.access, refresh: session.refresh })),
        Err(AuthError::RefreshReused) => {
            let event = AuditEvent::failure(
                "token_reuse",
                None,
                json!({"reason": "a rotated refresh token was presented again; its family is revoked"}),
            )
            .with_severity(Severity::Error);
            audit::record(&state.db, &client, event).await;
            Err(AuthError::RefreshReused.into())
        }
        Err(other) => Err(other.into()),
    }
}

/// Log out: revoke the refresh token and every token rotated from the same login.
#[utoipa::path(post, path = "/auth/logout/", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let Some(user_id) = state.auth.logout(&state.db, request.refresh.trim()).await? else {
        return Err(ApiError::Unauthorized("the refresh token is invalid".into()));
    };
    let actor = store::users::find_by_id(&state.db, user_id).await?.map(|u| u.employee_id);
    audit::record(&state.db, &client, AuditEvent::success("logout", actor, json!({}))).await;
    Ok(StatusCode::NO_CONTENT)
}

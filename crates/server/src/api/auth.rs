//! `POST /auth/login/`, `/auth/refresh/`, `/auth/logout/`.
//!
//! Each checks the length of what it was sent first, then its rate limits (keyed by the
//! client IP, and for login also by the e-mail), and only then does the work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ClientIp, Json};
use super::middleware::within_limits;
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo, Severity};
use crate::domain::auth::{AuthError, LoginAttempt, MAX_TOKEN_BYTES, Session, within_limit};
use crate::domain::users::Role;
use crate::limiter::{Category, ip_key};
use crate::store;

/// Largest body these routes read: credentials are small, so a large body is refused
/// (413) before it is read, whatever `max_body_bytes` allows elsewhere.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// At most 254 bytes.
    #[schema(example = "user@example.com")]
    pub email: String,
    /// At most 1 KiB.
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
    /// A refresh token from login or refresh (at most 128 bytes).
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

/// Log in with e-mail and password. Limited per client IP and e-mail, and per client IP
/// whatever the e-mail.
#[utoipa::path(post, path = "/auth/login/", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: ClientInfo,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Response> {
    let attempt = LoginAttempt::parse(&request.email, &request.password)?;
    let ip = ip_key(ip);
    let account = format!("{ip}|{}", attempt.email());
    // Per IP first: an address over its quota adds no key per e-mail it tries.
    let checks = [(Category::AuthIp, ip.as_str()), (Category::Auth, account.as_str())];
    Ok(within_limits(&state, &checks, async { login_checked(&state, &client, &attempt).await.into_response() }).await)
}

async fn login_checked(
    state: &AppState,
    client: &ClientInfo,
    attempt: &LoginAttempt,
) -> ApiResult<Json<LoginResponse>> {
    let email = attempt.email();
    match state.auth.login(&state.db, attempt).await {
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

/// The refresh token of a request, within its length limit.
fn refresh_token(request: &RefreshRequest) -> ApiResult<&str> {
    Ok(within_limit("refresh", request.refresh.trim(), MAX_TOKEN_BYTES)?)
}

/// Exchange a refresh token for a new access and refresh token. The old refresh token
/// stops working; presenting it again revokes every session of that login. Limited per
/// client IP, together with logout.
#[utoipa::path(post, path = "/auth/refresh/", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: ClientInfo,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let token = refresh_token(&request)?;
    let ip = ip_key(ip);
    Ok(within_limits(&state, &[(Category::Session, ip.as_str())], async {
        refresh_checked(&state, &client, token).await.into_response()
    })
    .await)
}

async fn refresh_checked(state: &AppState, client: &ClientInfo, token: &str) -> ApiResult<Json<TokenPair>> {
    match state.auth.refresh(&state.db, token).await {
        Ok(session) => Ok(Json(TokenPair { access: session.access, refresh: session.refresh })),
        Err(AuthError::RefreshReused) => {
            let event = AuditEvent::failure(
                "token_reuse",
                None,
                json!({"reason": "a rotated refresh token was presented again; its family is revoked"}),
            )
            .with_severity(Severity::Error);
            audit::record(&state.db, client, event).await;
            Err(AuthError::RefreshReused.into())
        }
        Err(other) => Err(other.into()),
    }
}

/// Log out: revoke the refresh token and every token rotated from the same login.
/// Limited per client IP, together with refresh.
#[utoipa::path(post, path = "/auth/logout/", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: ClientInfo,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let token = refresh_token(&request)?;
    let ip = ip_key(ip);
    Ok(within_limits(&state, &[(Category::Session, ip.as_str())], async {
        logout_checked(&state, &client, token).await.into_response()
    })
    .await)
}

async fn logout_checked(state: &AppState, client: &ClientInfo, token: &str) -> ApiResult<StatusCode> {
    let Some(user_id) = state.auth.logout(&state.db, token).await? else {
        return Err(ApiError::Unauthorized("the refresh token is invalid".into()));
    };
    let actor = store::users::find_by_id(&state.db, user_id).await?.map(|u| u.employee_id);
    audit::record(&state.db, client, AuditEvent::success("logout", actor, json!({}))).await;
    Ok(StatusCode::NO_CONTENT)
}

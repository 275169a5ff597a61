//! `/auth/api-keys/`: keys for cameras, kiosks and integrations (admin only). A key is
//! shown once, when it is created; only its hash is stored.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Json, Path};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::auth::generate_api_key;
use crate::domain::liveness::LivenessMode;
use crate::domain::users::{Role, parse_text};
use crate::store::api_keys::{self as key_store, ApiKeyRecord};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// What the key is for, e.g. "Main entrance kiosk".
    pub name: String,
    /// What the key may do; devices that only verify faces need `student` or `faculty`.
    pub role: Role,
    /// How its verifications check liveness (default `passive`); `active`: every one must
    /// answer a challenge (`POST /face/liveness/challenges/`), for kiosks.
    #[serde(default)]
    pub liveness_mode: LivenessMode,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: i64,
    pub name: String,
    /// First characters of the key, to tell keys apart.
    pub prefix: String,
    pub role: Role,
    pub liveness_mode: LivenessMode,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKeyResponse,
    /// The key itself. It is shown only now: store it safely.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub results: Vec<ApiKeyResponse>,
}

impl From<ApiKeyRecord> for ApiKeyResponse {
    fn from(record: ApiKeyRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            prefix: record.prefix,
            role: record.role,
            liveness_mode: record.liveness_mode,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// Create an API key. Send it as `Authorization: Api-Key <key>` or `X-API-Key: <key>`.
#[utoipa::path(post, path = "/auth/api-keys/", tag = "auth", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Json(request): Json<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let name = parse_text("name", &request.name, 100)?;
    if name.is_empty() {
        return Err(ApiError::validation("name", "must not be empty"));
    }
    let new_key = generate_api_key();
    let (role, liveness_mode) = (request.role, request.liveness_mode);
    let record =
        key_store::insert(&state.db, &name, &new_key.prefix, &new_key.hash, role, liveness_mode, admin.user_id())
            .await?;
    let details = json!({"api_key_id": record.id, "name": name, "role": role, "liveness_mode": liveness_mode});
    audit::record(&state.db, &client, AuditEvent::success("api_key_create", Some(admin.audit_name()), details)).await;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { info: record.into(), key: new_key.key })))
}

/// List API keys (never the keys themselves).
#[utoipa::path(get, path = "/auth/api-keys/", tag = "auth",
    responses((status = 200, body = ApiKeyList), (status = 403, body = ErrorBody)))]
pub async fn list_api_keys(State(state): State<AppState>, Admin(_admin): Admin) -> ApiResult<Json<ApiKeyList>> {
    let results = key_store::list(&state.db).await?.into_iter().map(ApiKeyResponse::from).collect();
    Ok(Json(ApiKeyList { results }))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/auth/api-keys/{id}/", tag = "auth", params(("id" = i64, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let record = key_store::find_by_id(&state.db, id).await?;
    let revoked = key_store::revoke(&state.db, id).await?;
    if !revoked {
        return Err(ApiError::NotFound(format!("no live API key with id {id}")));
    }
    let details = json!({"api_key_id": id, "name": record.map(|r| r.name)});
    audit::record(&state.db, &client, AuditEvent::success("api_key_revoke", Some(admin.audit_name()), details)).await;
    Ok(StatusCode::NO_CONTENT)
}

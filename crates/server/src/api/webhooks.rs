//! `/webhooks/`: outgoing webhook registrations and their delivery log (admin only), and
//! `/webhooks/attendance/`, the incoming form of `attendance_logged` for integrations
//! that push attendance. Signing secrets are stored encrypted and shown only once.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Json, Path, Query};
use super::pagination::{PageParams, Paginated, RequestUrl};
use crate::app::AppState;
use crate::domain::attendance::{Arrival, Logged, NewAttendance};
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::auth::Principal;
use crate::domain::users::{EmployeeId, Invalid, parse_text};
use crate::events::EventKind;
use crate::store::sealed::webhook_secret_binding;
use crate::store::users as user_store;
use crate::store::webhooks::{self as webhook_store, DeliveryRecord, WebhookFields, WebhookRecord};
use crate::webhooks::{check_destination, generate_secret, parse_events, parse_secret, parse_url};

/// How far in the future an incoming attendance timestamp may be (clock skew).
const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The routes of this module, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(incoming_attendance))
        .routes(routes!(get_webhook, replace_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
}

/// A registration, for `POST` and `PUT`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to POST events: an http(s) URL.
    pub url: String,
    /// Events to send: `attendance_logged`, `spoofing_detected`, `enrollment_completed`,
    /// `attendance_voided`.
    pub events: Vec<String>,
    /// Signing secret (16–256 characters). On create, omit it to have one generated; on
    /// update, omit it to keep the current one.
    pub secret: Option<String>,
    /// Default true.
    pub is_active: Option<bool>,
}

/// A partial update: only the fields present change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// A new signing secret.
    pub secret: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub is_active: bool,
    /// Who registered it.
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub info: WebhookResponse,
    /// The generated signing secret, shown only now (absent when you chose the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub results: Vec<WebhookResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: i64,
    pub event: String,
    /// `pending`, `delivering`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (for `pending` deliveries).
    pub next_attempt_at: DateTime<Utc>,
}

impl From<WebhookRecord> for WebhookResponse {
    fn from(record: WebhookRecord) -> Self {
        Self {
            id: record.id,
            events: record.event_names().map(str::to_owned).collect(),
            url: record.url,
            is_active: record.is_active,
            created_by: record.created_by,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

impl From<DeliveryRecord> for DeliveryResponse {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            id: record.id,
            event: record.event,
            status: record.status,
            attempts: record.attempts,
            last_status_code: record.last_status_code,
            last_error: record.last_error,
            created_at: record.created_at,
            delivered_at: record.delivered_at,
            next_attempt_at: record.next_attempt_at,
        }
    }
}

/// Checked url (its form, then its destination unless it is the `current` one, so a
/// webhook stored when private networks were allowed can still be changed or turned off),
/// events and secret (if any): every problem reported at once.
async fn validate(
    state: &AppState,
    url: &str,
    current: Option<&str>,
    events: &[String],
    secret: Option<&str>,
) -> Result<(String, String, Option<String>), ApiError> {
    let url = match parse_url(url) {
        Ok(url) if current == Some(url.as_str()) => Ok(url),
        Ok(url) => check_destination(&url, state.config.webhook_allow_private_networks).await.map(|()| url),
        invalid => invalid,
    };
    let events = parse_events(events);
    let secret = secret.map(parse_secret).transpose();
    match (url, events, secret) {
        (Ok(url), Ok(events), Ok(secret)) => Ok((url, events, secret)),
        (url, events, secret) => {
            let problems: Vec<Invalid> = [url.err(), events.err(), secret.err()].into_iter().flatten().collect();
            Err(problems.into())
        }
    }
}

async fn find_webhook(state: &AppState, id: i64) -> ApiResult<WebhookRecord> {
    webhook_store::find(&state.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("no webhook with id {id}")))
}

/// What the audit log keeps of a registration: never the secret, and only the URL's
/// host (URLs of webhooks often carry tokens).
fn audit_details(record: &WebhookRecord, secret_changed: bool) -> serde_json::Value {
    let host = url::Url::parse(&record.url).ok().and_then(|url| url.host_str().map(str::to_owned));
    json!({
        "webhook_id": record.id,
        "host": host,
        "events": record.event_names().collect::<Vec<_>>(),
        "is_active": record.is_active,
        "secret_changed": secret_changed,
    })
}

/// Register a webhook (admin only). Without a `secret`, one is generated and returned
/// once, in this response.
#[utoipa::path(post, path = "/webhooks/", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Json(request): Json<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let (url, events, secret) =
        validate(&state, &request.url, None, &request.events, request.secret.as_deref()).await?;
    let generated = secret.is_none().then(generate_secret);
    let plain_secret = secret.or_else(|| generated.clone()).unwrap_or_default();
    // The secret is sealed for the row's id, which only the insert tells: the row is
    // inserted without it and completed in the same transaction.
    let tx = state.db.begin().await?;
    let pending = WebhookFields { url, events, secret: Vec::new(), is_active: false };
    let inserted = webhook_store::insert(&tx, pending, Some(admin.audit_name())).await?;
    let fields = WebhookFields {
        url: inserted.url,
        events: inserted.events,
        secret: state.sealer.seal(plain_secret.as_bytes(), &webhook_secret_binding(inserted.id)),
        is_active: request.is_active.unwrap_or(true),
    };
    let record = webhook_store::update(&tx, inserted.id, fields)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {} was deleted meanwhile", inserted.id)))?;
    tx.commit().await?;
    let details = audit_details(&record, true);
    audit::record(&state.db, &client, AuditEvent::success("webhook_create", Some(admin.audit_name()), details)).await;
    Ok((StatusCode::CREATED, Json(CreatedWebhook { info: record.into(), secret: generated })))
}

/// List webhooks (admin only; secrets are never shown).
#[utoipa::path(get, path = "/webhooks/", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_webhooks(State(state): State<AppState>, Admin(_admin): Admin) -> ApiResult<Json<WebhookList>> {
    let results = webhook_store::list(&state.db).await?.into_iter().map(WebhookResponse::from).collect();
    Ok(Json(WebhookList { results }))
}

/// Get a webhook (admin only).
#[utoipa::path(get, path = "/webhooks/{id}/", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<WebhookResponse>> {
    Ok(Json(find_webhook(&state, id).await?.into()))
}

/// Replace a webhook's url, events and state (admin only). Without a `secret`, the
/// current one is kept.
#[utoipa::path(put, path = "/webhooks/{id}/", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")),
    request_body = WebhookRequest,
    responses((status = 200, body = WebhookResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replace_webhook(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(request): Json<WebhookRequest>,
) -> ApiResult<Json<WebhookResponse>> {
    let patch = WebhookPatch {
        url: Some(request.url),
        events: Some(request.events),
        secret: request.secret,
        is_active: Some(request.is_active.unwrap_or(true)),
    };
    apply_update(&state, &admin, &client, id, patch).await.map(Json)
}

/// Change some of a webhook's fields (admin only).
#[utoipa::path(patch, path = "/webhooks/{id}/", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_webhook(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<Json<WebhookResponse>> {
    apply_update(&state, &admin, &client, id, patch).await.map(Json)
}

async fn apply_update(
    state: &AppState,
    admin: &Principal,
    client: &ClientInfo,
    id: i64,
    patch: WebhookPatch,
) -> ApiResult<WebhookResponse> {
    let current = find_webhook(state, id).await?;
    let url = patch.url.unwrap_or_else(|| current.url.clone());
    let events = patch.events.unwrap_or_else(|| current.event_names().map(str::to_owned).collect());
    let (url, events, secret) = validate(state, &url, Some(&current.url), &events, patch.secret.as_deref()).await?;
    let secret_changed = secret.is_some();
    let fields = WebhookFields {
        url,
        events,
        secret: secret
            .map_or(current.secret, |secret| state.sealer.seal(secret.as_bytes(), &webhook_secret_binding(id))),
        is_active: patch.is_active.unwrap_or(current.is_active),
    };
    let record = webhook_store::update(&state.db, id, fields)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook with id {id}")))?;
    let details = audit_details(&record, secret_changed);
    audit::record(&state.db, client, AuditEvent::success("webhook_update", Some(admin.audit_name()), details)).await;
    Ok(record.into())
}

/// Delete a webhook and its delivery log (admin only).
#[utoipa::path(delete, path = "/webhooks/{id}/", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let record = find_webhook(&state, id).await?;
    if !webhook_store::delete(&state.db, id).await? {
        return Err(ApiError::NotFound(format!("no webhook with id {id}")));
    }
    let details = audit_details(&record, false);
    audit::record(&state.db, &client, AuditEvent::success("webhook_delete", Some(admin.audit_name()), details)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first (admin only).
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/", tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id"), PageParams),
    responses((status = 200, body = Paginated<DeliveryResponse>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    url: RequestUrl,
    Path(id): Path<i64>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<DeliveryResponse>>> {
    let page = page.page()?;
    find_webhook(&state, id).await?;
    let (rows, count) = webhook_store::deliveries(&state.db, id, page.limit(), page.offset()).await?;
    let results = rows.into_iter().map(DeliveryResponse::from).collect();
    Ok(Json(Paginated::new(results, count, page, &url)))
}

/// The spec's webhook body, pushed by an integration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingAttendance {
    /// Must be `attendance_logged`.
    pub event: String,
    /// When the person arrived (RFC 3339); default now. At most 5 minutes in the future.
    pub timestamp: Option<DateTime<Utc>>,
    pub data: IncomingAttendanceData,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingAttendanceData {
    pub employee_id: String,
    /// Informational; the person is identified by `employee_id`.
    pub name: Option<String>,
    pub camera_id: Option<String>,
    pub location: Option<String>,
    /// In [0, 1].
    pub confidence: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct IncomingAttendanceResponse {
    pub attendance_logged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendance_id: Option<i64>,
    /// Why nothing was logged: `cooldown` when the person was logged too recently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The earlier log that the cooldown counts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_timestamp: Option<DateTime<Utc>>,
}

/// Log an arrival reported by an integration (admin role, e.g. an admin API key). The
/// attendance cooldown applies, and an `attendance_logged` event is published.
#[utoipa::path(post, path = "/webhooks/attendance/", tag = "webhooks", request_body = IncomingAttendance,
    responses((status = 201, body = IncomingAttendanceResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The employee is deactivated")))]
pub async fn incoming_attendance(
    State(state): State<AppState>,
    Admin(principal): Admin,
    client: ClientInfo,
    Json(request): Json<IncomingAttendance>,
) -> ApiResult<(StatusCode, Json<IncomingAttendanceResponse>)> {
    if EventKind::parse(&request.event) != Some(EventKind::AttendanceLogged) {
        return Err(ApiError::validation("event", "must be \"attendance_logged\""));
    }
    let now = Utc::now();
    let timestamp = request.timestamp.unwrap_or(now);
    if timestamp > now + chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        return Err(ApiError::validation("timestamp", "must not be in the future"));
    }
    let data = request.data;
    let employee_id = EmployeeId::parse(&data.employee_id)?;
    let camera_id = data.camera_id.map(|camera| parse_text("camera_id", &camera, 64)).transpose()?;
    let location = data.location.map(|location| parse_text("location", &location, 200)).transpose()?;
    if data.confidence.is_some_and(|confidence| !(0.0..=1.0).contains(&confidence)) {
        return Err(ApiError::validation("confidence", "must be between 0 and 1"));
    }
    let actor = Some(principal.audit_name());
    let user = match user_store::find_by_employee_id(&state.db, employee_id.as_str()).await? {
        Some(user) if user.is_active => user,
        found => {
            let details = json!({"employee_id": employee_id.as_str(), "reason": if found.is_some() { "inactive" } else { "unknown" }});
            audit::record(&state.db, &client, AuditEvent::failure("attendance_webhook", actor, details)).await;
            return Err(match found {
                Some(_) => ApiError::Conflict(format!("employee {} is deactivated", employee_id.as_str())),
                None => ApiError::NotFound(format!("no employee with employee_id {}", employee_id.as_str())),
            });
        }
    };
    let arrival = Arrival::without_crop(
        &user,
        NewAttendance {
            timestamp,
            camera_id,
            location,
            confidence: data.confidence,
            similarity: None,
            anti_spoof_score: None,
            verification_time: None,
            source: "webhook",
            task_id: None,
            details: json!({"reported_by": principal.audit_name()}),
        },
    );
    let logged = state.attendance.log(None, arrival).await.map_err(ApiError::internal)?;
    let response = match logged {
        Logged::New(record) => IncomingAttendanceResponse {
            attendance_logged: true,
            attendance_id: Some(record.id),
            reason: None,
            previous_timestamp: None,
        },
        Logged::Cooldown { previous, .. } => IncomingAttendanceResponse {
            attendance_logged: false,
            attendance_id: None,
            reason: Some("cooldown".into()),
            previous_timestamp: Some(previous),
        },
        Logged::AlreadyByThisTask(record) => IncomingAttendanceResponse {
            attendance_logged: false,
            attendance_id: Some(record.id),
            reason: Some("duplicate".into()),
            previous_timestamp: Some(record.timestamp),
        },
    };
    let details = json!({
        "employee_id": employee_id.as_str(),
        "attendance_logged": response.attendance_logged,
        "attendance_id": response.attendance_id,
        "reason": response.reason,
    });
    audit::record(&state.db, &client, AuditEvent::success("attendance_webhook", actor, details)).await;
    Ok((StatusCode::CREATED, Json(response)))
}

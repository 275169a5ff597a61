//! `/cameras/`: the streams the server watches, their connection test and live health.
//! Admins manage cameras; faculty may read the list and health (no credentials are in
//! either); students and non-admin API keys get 403.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path, Query};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo};
use crate::domain::auth::Principal;
use crate::domain::cameras::source::{Source, http_client};
use crate::domain::cameras::stats::{Snapshot, Status};
use crate::domain::cameras::supervisor::WatchedBy;
use crate::domain::cameras::{self, CameraInput, CameraSpec, masked_url, stored_camera};
use crate::domain::users::Invalid;
use crate::store::StoreError;
use crate::store::cameras::{self as camera_store, CameraRecord};

/// The longest a connection test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A camera, with its live figures as this server measures them. `rtsp_url` has its
/// password and secret query values replaced by `***`.
#[derive(Serialize, ToSchema)]
pub struct Camera {
    pub id: String,
    pub name: String,
    pub location: String,
    pub ip_address: Option<String>,
    /// The stream URL, credentials masked.
    pub rtsp_url: String,
    /// `online`, `offline`, `error`, `connecting` or `inactive`.
    pub status: &'static str,
    /// Why the camera is offline or in error, in plain words.
    pub last_error: Option<String>,
    /// When the last frame arrived.
    pub last_seen: Option<DateTime<Utc>>,
    /// Of the last sampled frame, e.g. `1920x1080`.
    pub resolution: Option<String>,
    /// Frames received per second over the last seconds (measured, not configured).
    pub fps: Option<f64>,
    pub is_active: bool,
    /// `entry`, `exit` or `both`. Exit events are not recorded yet: an `exit` camera logs
    /// no arrivals.
    pub direction: &'static str,
    /// Frames looked at per second.
    pub sample_fps: f64,
    /// `passive` (the anti-spoof score refuses faces) or `off` (it is only reported).
    pub liveness_mode: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Camera {
    fn new(record: CameraRecord, live: Option<Snapshot>) -> Self {
        let status = live_status(&record, live.as_ref());
        let live = live.as_ref();
        Self {
            direction: cameras::Direction::parse(&record.direction).map_or("entry", cameras::Direction::as_str),
            id: record.id,
            name: record.name,
            location: record.location,
            ip_address: record.ip_address,
            rtsp_url: record.masked_url,
            status: status.as_str(),
            last_error: live.and_then(|s| s.last_error.clone()),
            last_seen: live.and_then(|s| s.last_frame),
            resolution: live.and_then(resolution),
            fps: live.and_then(|s| s.fps).map(round2),
            is_active: record.is_active,
            sample_fps: record.sample_fps,
            liveness_mode: record.liveness_mode,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// What the worker says, or, before it has said anything, what the camera's settings imply.
fn live_status(record: &CameraRecord, live: Option<&Snapshot>) -> Status {
    live.map_or(if record.is_active { Status::Connecting } else { Status::Inactive }, |s| s.status)
}

/// The last sampled frame's size, e.g. `1920x1080`.
fn resolution(live: &Snapshot) -> Option<String> {
    live.resolution.map(|(w, h)| format!("{w}x{h}"))
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[derive(Serialize, ToSchema)]
pub struct CameraList {
    pub results: Vec<Camera>,
}

/// A new camera. Credentials may be in `rtsp_url` or in `username` / `password`; either
/// way they are stored encrypted and never shown again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCameraBody {
    /// 1 to 32 letters, digits, `-` or `_` (e.g. `CAM001`).
    pub id: String,
    pub name: String,
    pub location: Option<String>,
    /// Taken from the URL's host when that is an address.
    pub ip_address: Option<String>,
    /// `rtsp://` or `rtsps://` (H.264), or `http(s)://` for a JPEG snapshot URL or an MJPEG
    /// stream.
    pub rtsp_url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `entry` (default), `exit` or `both`.
    pub direction: Option<String>,
    /// Frames looked at per second, 0.2 to 10 (default 2).
    pub sample_fps: Option<f64>,
    /// Default true.
    pub is_active: Option<bool>,
    /// `passive` (default: the passive anti-spoof score refuses faces) or `off` (it is
    /// only reported). A camera cannot run an active challenge.
    pub liveness_mode: Option<String>,
}

/// A change: what is left out stays. A new `rtsp_url` without credentials keeps the
/// current ones; `"username": ""` removes them.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CameraChangeBody {
    pub name: Option<String>,
    pub location: Option<String>,
    /// `""` takes it from the URL again.
    pub ip_address: Option<String>,
    pub rtsp_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub direction: Option<String>,
    pub sample_fps: Option<f64>,
    pub is_active: Option<bool>,
    pub liveness_mode: Option<String>,
}

fn invalid(invalid: Invalid) -> ApiError {
    ApiError::validation(invalid.field, invalid.message)
}

fn no_camera(id: &str) -> ApiError {
    ApiError::NotFound(format!("no camera {id}"))
}

/// A camera id from the path: one that cannot exist is simply not found.
fn path_id(raw: &str) -> ApiResult<String> {
    cameras::camera_id(raw).map_err(|_| no_camera("with that id"))
}

async fn find(state: &AppState, id: &str) -> ApiResult<CameraRecord> {
    camera_store::find(&state.db, id).await?.ok_or_else(|| no_camera(id))
}

fn opened(state: &AppState, record: &CameraRecord) -> ApiResult<CameraSpec> {
    stored_camera(record, &state.sealer).map_err(ApiError::Internal)
}

fn view(state: &AppState, record: CameraRecord) -> Camera {
    let live = state.cameras.stats(&record.id);
    Camera::new(record, live)
}

async fn audit_camera(
    state: &AppState,
    client: &ClientInfo,
    admin: &Principal,
    action: &'static str,
    camera: &CameraRecord,
) {
    let details = json!({"camera_id": camera.id, "name": camera.name, "rtsp_url": camera.masked_url,
        "direction": camera.direction, "sample_fps": camera.sample_fps, "is_active": camera.is_active});
    audit::record(&state.db, client, AuditEvent::success(action, Some(admin.audit_name()), details)).await;
}

/// Every camera, by id, with its live status.
#[utoipa::path(get, path = "/cameras/", tag = "cameras",
    responses((status = 200, body = CameraList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_cameras(State(state): State<AppState>, _caller: Auth) -> ApiResult<Json<CameraList>> {
    let records = camera_store::all(&state.db).await?;
    Ok(Json(CameraList { results: records.into_iter().map(|record| view(&state, record)).collect() }))
}

/// Add a camera (admin). An active camera is watched at once. Audited (`camera_create`).
#[utoipa::path(post, path = "/cameras/", tag = "cameras", request_body = NewCameraBody,
    responses((status = 201, body = Camera), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "The id is taken")))]
pub async fn create_camera(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Json(body): Json<NewCameraBody>,
) -> ApiResult<(StatusCode, Json<Camera>)> {
    let id = cameras::camera_id(&body.id).map_err(invalid)?;
    let spec = cameras::new_camera(CameraInput {
        name: Some(body.name),
        location: body.location,
        ip_address: body.ip_address,
        url: Some(body.rtsp_url),
        username: body.username,
        password: body.password,
        direction: body.direction,
        liveness_mode: body.liveness_mode,
        sample_fps: body.sample_fps,
        is_active: body.is_active,
    })
    .map_err(invalid)?;
    let record =
        camera_store::insert(&state.db, &id, spec.seal(&id, &state.sealer)).await.map_err(|error| match error {
            StoreError::Conflict(_) => ApiError::Conflict(format!("a camera {id} exists already")),
            other => other.into(),
        })?;
    audit_camera(&state, &client, &admin, "camera_create", &record).await;
    state.cameras.cameras_changed();
    Ok((StatusCode::CREATED, Json(view(&state, record))))
}

/// One camera, with its live status.
#[utoipa::path(get, path = "/cameras/{camera_id}/", tag = "cameras", params(("camera_id" = String, Path)),
    responses((status = 200, body = Camera), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_camera(
    State(state): State<AppState>,
    _caller: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Camera>> {
    let record = find(&state, &path_id(&id)?).await?;
    Ok(Json(view(&state, record)))
}

/// Change a camera (admin; what is left out stays). Its worker reconnects with the new
/// settings at once. Audited (`camera_update`).
#[utoipa::path(put, path = "/cameras/{camera_id}/", tag = "cameras", params(("camera_id" = String, Path)),
    request_body = CameraChangeBody,
    responses((status = 200, body = Camera), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_camera(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    Json(body): Json<CameraChangeBody>,
) -> ApiResult<Json<Camera>> {
    let current = find(&state, &path_id(&id)?).await?;
    let spec = cameras::changed_camera(
        opened(&state, &current)?,
        CameraInput {
            name: body.name,
            location: body.location,
            ip_address: body.ip_address,
            url: body.rtsp_url,
            username: body.username,
            password: body.password,
            direction: body.direction,
            liveness_mode: body.liveness_mode,
            sample_fps: body.sample_fps,
            is_active: body.is_active,
        },
    )
    .map_err(invalid)?;
    let record = camera_store::update(&state.db, &current.id, spec.seal(&current.id, &state.sealer))
        .await?
        .ok_or_else(|| no_camera(&current.id))?;
    audit_camera(&state, &client, &admin, "camera_update", &record).await;
    state.cameras.cameras_changed();
    Ok(Json(view(&state, record)))
}

/// Remove a camera (admin): its worker stops. Logs made at it keep its id. Audited
/// (`camera_delete`).
#[utoipa::path(delete, path = "/cameras/{camera_id}/", tag = "cameras", params(("camera_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_camera(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let record = find(&state, &path_id(&id)?).await?;
    if !camera_store::delete(&state.db, &record.id).await? {
        return Err(no_camera(&record.id));
    }
    audit_camera(&state, &client, &admin, "camera_delete", &record).await;
    state.cameras.cameras_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// Where a camera's stream is, credentials masked, and where a browser can watch it.
#[derive(Serialize, ToSchema)]
pub struct CameraStream {
    pub camera_id: String,
    /// The stream URL with its password and secret query values replaced by `***`.
    pub rtsp_url: String,
    /// `rtsp` or `http`.
    pub protocol: String,
    /// The server's live preview of the camera (`multipart/x-mixed-replace` JPEG, at most
    /// 2 frames a second, faces boxed, recognised people named), openable without other
    /// credentials until `preview_expires_at` — e.g. as an `<img src>`. The camera's own
    /// URL and password never reach the browser.
    pub preview_url: String,
    pub preview_expires_at: DateTime<Utc>,
}

/// A camera's stream URL, credentials masked, and a short-lived preview URL (admin).
/// Issuing a preview URL is audited (`camera_preview_issued`).
#[utoipa::path(get, path = "/cameras/{camera_id}/stream/", tag = "cameras", params(("camera_id" = String, Path)),
    responses((status = 200, body = CameraStream), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn camera_stream(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<CameraStream>> {
    let record = find(&state, &path_id(&id)?).await?;
    let spec = opened(&state, &record)?;
    let protocol = if spec.url.scheme().starts_with("rtsp") { "rtsp" } else { "http" };
    let (token, preview_expires_at) =
        state.auth.preview_token(&record.id).map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    let details = json!({"camera_id": record.id, "expires_at": preview_expires_at});
    audit::record(&state.db, &client, AuditEvent::success("camera_preview_issued", Some(admin.audit_name()), details))
        .await;
    Ok(Json(CameraStream {
        preview_url: format!("/api/v1/cameras/{}/preview.mjpeg?token={token}", record.id),
        preview_expires_at,
        camera_id: record.id,
        rtsp_url: masked_url(&spec.url),
        protocol: protocol.into(),
    }))
}

/// The longest one preview connection lasts: a page watching longer asks for a new URL.
const PREVIEW_MAX_DURATION: Duration = Duration::from_secs(30 * 60);
const PREVIEW_BOUNDARY: &str = "rollcallpreview";

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PreviewQuery {
    /// From `GET /cameras/{camera_id}/stream/`.
    pub token: Option<String>,
}

/// A camera's live preview (`multipart/x-mixed-replace` JPEG frames, at most 2 a second,
/// up to 30 minutes a connection), opened with the `token` of a `preview_url`: the token
/// is the credential, valid for that camera for 5 minutes after it was issued. Frames are
/// the camera's sampled frames scaled to at most 960 px wide, with each face boxed (green:
/// recognised, named; amber: anyone else) — names are the open-set decision on that frame
/// only, for watching; what is logged is decided by verification.
#[utoipa::path(get, path = "/cameras/{camera_id}/preview.mjpeg", tag = "cameras",
    params(("camera_id" = String, Path), PreviewQuery),
    responses((status = 200, content_type = "multipart/x-mixed-replace", description = "JPEG frames"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "This instance does not watch the camera (inactive, or watched by another instance)")))]
pub async fn camera_preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PreviewQuery>,
) -> ApiResult<axum::response::Response> {
    let id = path_id(&id)?;
    let token = query.token.ok_or_else(|| {
        ApiError::validation("token", "is required: use the preview_url of GET /cameras/{camera_id}/stream/")
    })?;
    let token = crate::domain::auth::within_limit("token", token.trim(), crate::domain::auth::MAX_ACCESS_TOKEN_BYTES)
        .map_err(invalid)?;
    if state.auth.check_preview_token(token, &id).is_err() {
        return Err(ApiError::Unauthorized("the preview token is not valid for this camera, or has expired: ask GET /cameras/{camera_id}/stream/ for a new preview_url".into()));
    }
    let record = find(&state, &id).await?;
    let feed = state.cameras.preview(&record.id).ok_or_else(|| not_previewed_here(&state, &record))?;
    let frames = feed.watch();
    let deadline = tokio::time::Instant::now() + PREVIEW_MAX_DURATION;
    let parts = futures::stream::unfold(frames, move |mut frames| async move {
        loop {
            match tokio::time::timeout_at(deadline, frames.changed()).await {
                Ok(Ok(())) => {}
                // The camera's worker stopped, or the connection is old enough.
                _ => return None,
            }
            let Some(jpeg) = frames.borrow_and_update().clone() else { continue };
            let mut part =
                format!("--{PREVIEW_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len())
                    .into_bytes();
            part.extend_from_slice(&jpeg);
            part.extend_from_slice(b"\r\n");
            return Some((Ok::<_, std::convert::Infallible>(part), frames));
        }
    });
    let headers = [
        (axum::http::header::CONTENT_TYPE, format!("multipart/x-mixed-replace; boundary={PREVIEW_BOUNDARY}")),
        (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    Ok((headers, axum::body::Body::from_stream(parts)).into_response())
}

/// What a connection test found.
#[derive(Serialize, ToSchema)]
pub struct CameraTest {
    pub camera_id: String,
    /// Whether a frame arrived.
    pub success: bool,
    /// `jpeg` (snapshot URL) or `mjpeg`.
    pub codec: Option<&'static str>,
    /// Of the frame, e.g. `1920x1080`.
    pub resolution: Option<String>,
    /// From the request to the first frame.
    pub latency_ms: u64,
    /// What went wrong, in plain words.
    pub error: Option<String>,
}

/// Connect to a camera now and grab one frame (admin), within 15 seconds. Audited
/// (`camera_test`).
#[utoipa::path(post, path = "/cameras/{camera_id}/test/", tag = "cameras", params(("camera_id" = String, Path)),
    responses((status = 200, body = CameraTest), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn test_camera(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<CameraTest>> {
    let record = find(&state, &path_id(&id)?).await?;
    let spec = opened(&state, &record)?;
    let started = Instant::now();
    let outcome = tokio::time::timeout(TEST_TIMEOUT, grab_one_frame(&spec.url))
        .await
        .unwrap_or_else(|_| Err(format!("no frame within {} seconds", TEST_TIMEOUT.as_secs())));
    let latency_ms = started.elapsed().as_millis() as u64;
    let test = match outcome {
        Ok((codec, resolution)) => CameraTest {
            camera_id: record.id.clone(),
            success: true,
            codec: Some(codec),
            resolution,
            latency_ms,
            error: None,
        },
        Err(error) => CameraTest {
            camera_id: record.id.clone(),
            success: false,
            codec: None,
            resolution: None,
            latency_ms,
            error: Some(error),
        },
    };
    let details = json!({"camera_id": record.id, "success": test.success, "error": test.error});
    audit::record(&state.db, &client, AuditEvent::success("camera_test", Some(admin.audit_name()), details)).await;
    Ok(Json(test))
}

async fn grab_one_frame(url: &url::Url) -> Result<(&'static str, Option<String>), String> {
    let mut source = Source::open(&http_client(), url).await.map_err(|e| e.message)?;
    // The first H.264 frames may precede the first keyframe: wait for a picture.
    loop {
        let frame = source.next_frame(true).await.map_err(|e| e.message)?;
        if let Some(picture) = frame.picture {
            let (width, height) = picture.dimensions().ok_or("the camera's frame is not a readable image")?;
            return Ok((source.codec(), Some(format!("{width}x{height}"))));
        }
    }
}

/// The spec's health figures, and the same as numbers.
#[derive(Serialize, ToSchema)]
pub struct CameraHealth {
    pub camera_id: String,
    /// `online`, `offline`, `error`, `connecting` or `inactive`.
    pub status: &'static str,
    /// How long frames have arrived without a break, in words (`48 hours`).
    pub uptime: Option<String>,
    pub uptime_secs: Option<i64>,
    pub last_frame: Option<DateTime<Utc>>,
    /// Sharpness and exposure of the sampled frames, 0 to 1 (a running mean).
    pub quality_score: Option<f32>,
    /// Received, over the last seconds (`2.3 Mbps`).
    pub bandwidth_usage: Option<String>,
    pub bandwidth_bps: Option<f64>,
    /// Failures since the worker started (connection lost, refused, bad frames).
    pub error_count: u64,
    pub last_error: Option<String>,
    pub fps: Option<f64>,
    pub resolution: Option<String>,
    pub codec: Option<String>,
    /// The API instance that watches the camera and measured these figures; `null` while
    /// none does. Figures of a camera another instance watches are up to 5 s old.
    pub watched_by: Option<WatchedBy>,
    pub frames_received: u64,
    pub frames_sampled: u64,
    /// Faces followed across frames: each is one walk-past.
    pub faces_tracked: u64,
    /// Best faces of tracks queued for verification.
    pub verifications: u64,
}

/// A camera's live health as this server measures it.
#[utoipa::path(get, path = "/cameras/{camera_id}/health/", tag = "cameras", params(("camera_id" = String, Path)),
    responses((status = 200, body = CameraHealth), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn camera_health(
    State(state): State<AppState>,
    _caller: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CameraHealth>> {
    let record = find(&state, &path_id(&id)?).await?;
    let live = state.cameras.stats(&record.id);
    let watched_by = state.cameras.watched_by(&record.id);
    let status = live_status(&record, live.as_ref());
    let uptime_secs = live.as_ref().and_then(|s| s.uptime_secs(Utc::now()));
    let live = live.as_ref();
    Ok(Json(CameraHealth {
        camera_id: record.id,
        status: status.as_str(),
        uptime: uptime_secs.map(uptime_in_words),
        uptime_secs,
        last_frame: live.and_then(|s| s.last_frame),
        quality_score: live.and_then(|s| s.quality_score).map(|q| (q * 100.0).round() / 100.0),
        bandwidth_usage: live.and_then(|s| s.bandwidth_bps).map(bandwidth_in_words),
        bandwidth_bps: live.and_then(|s| s.bandwidth_bps).map(f64::round),
        error_count: live.map_or(0, |s| s.error_count),
        last_error: live.and_then(|s| s.last_error.clone()),
        fps: live.and_then(|s| s.fps).map(round2),
        resolution: live.and_then(resolution),
        codec: live.and_then(|s| s.codec.clone()),
        watched_by,
        frames_received: live.map_or(0, |s| s.frames_received),
        frames_sampled: live.map_or(0, |s| s.frames_sampled),
        faces_tracked: live.map_or(0, |s| s.faces_tracked),
        verifications: live.map_or(0, |s| s.verifications),
    }))
}

/// Why this instance has no preview of `record`, in plain words.
fn not_previewed_here(state: &AppState, record: &CameraRecord) -> ApiError {
    let reason = match state.cameras.watched_by(&record.id) {
        Some(watcher) => format!(
            "camera {} is watched by another API instance ({} pid {}); its preview is served there",
            record.id, watcher.hostname, watcher.pid
        ),
        None if !record.is_active => format!("camera {} is not being watched (is_active is false)", record.id),
        None => format!("camera {} is not being watched yet; try again in a few seconds", record.id),
    };
    ApiError::Conflict(reason)
}

fn uptime_in_words(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0..60 => plural(secs, "second"),
        60..3_600 => plural(secs / 60, "minute"),
        3_600..172_800 => plural(secs / 3_600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

fn bandwidth_in_words(bps: f64) -> String {
    if bps >= 1e6 { format!("{:.1} Mbps", bps / 1e6) } else { format!("{:.0} kbps", bps / 1e3) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_and_bandwidth_read_as_the_spec_writes_them() {
        assert_eq!(uptime_in_words(172_799), "47 hours");
        assert_eq!(uptime_in_words(172_800), "2 days");
        assert_eq!(uptime_in_words(61), "1 minute");
        assert_eq!(bandwidth_in_words(2_310_000.0), "2.3 Mbps");
        assert_eq!(bandwidth_in_words(480_000.0), "480 kbps");
    }
}

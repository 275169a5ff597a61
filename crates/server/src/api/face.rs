//! `/face/`: enrollment, verification and bulk verification as background tasks, their
//! status, and erasure of a person's biometric data.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::admission::{Admitted, BulkVerifyTask, EnrollTask, SubmitsTask, Ticket, VerifyTask};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, Auth, Json, Path, Query};
use crate::app::AppState;
use crate::domain::audit::{self, AuditEvent, ClientInfo, Requester};
use crate::domain::auth::Principal;
use crate::domain::face::{
    self, BulkOptions, BulkRequest, ChallengeAnswer, EngineState, EnrollRequest, FrameRequest, VerifyRequest,
};
use crate::domain::liveness::{self, LivenessMode};
use crate::queue::{QueueError, TaskKind, TaskStatus};
use crate::store::users;

const MAX_ENROLL_IMAGES: usize = 10;
const MAX_BULK_FRAMES: usize = 50;
const MAX_TEXT: usize = 200;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Wait (up to `task_wait_timeout_secs`, 10 s by default) for the result and answer
    /// with the task's status; still a task underneath.
    pub wait: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub employee_id: String,
    /// 1–10 photos (3 recommended) as `data:image/...;base64,` URIs or raw base64.
    pub images: Vec<String>,
    /// Refuse blurred, dark, small or turned-away faces (default true).
    #[serde(default = "default_true")]
    pub quality_check: bool,
    /// Enroll even when the photos match another enrolled person, whom the result names
    /// (`duplicate_of`); otherwise such an enrollment fails with `duplicate_identity`.
    /// Audited. Default false.
    #[serde(default)]
    pub allow_duplicate: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The photo, as a `data:` URI or raw base64.
    pub image: String,
    pub camera_id: Option<String>,
    pub location: Option<String>,
    /// The answer to an active liveness challenge (required from API keys whose
    /// `liveness_mode` is `active`). With it, the challenge decides `is_live`; the result's
    /// `liveness` says which check failed, if one did.
    pub liveness: Option<LivenessAnswerBody>,
}

/// Frames answering a challenge from `POST /face/liveness/challenges/`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LivenessAnswerBody {
    pub challenge_id: String,
    /// 4–12 frames in the order taken, as `data:` URIs or raw base64: the first looking at
    /// the camera, then the head turning as the steps say, as the camera captures them
    /// (not mirrored). The photo (`image`) is usually the first of them.
    pub frames: Vec<String>,
}

/// A challenge to answer within `expires_in` seconds, once.
#[derive(Serialize, ToSchema)]
pub struct ChallengeIssued {
    pub challenge_id: String,
    /// The steps in the order to perform them: `turn_left`, `turn_right`, `look_up`,
    /// `look_down` (the person's own left and right).
    pub steps: Vec<&'static str>,
    /// The same steps, as instructions to show.
    pub instructions: Vec<&'static str>,
    pub expires_at: String,
    pub expires_in: u64,
    /// Frames the answer must carry.
    pub min_frames: usize,
    pub max_frames: usize,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFrame {
    pub id: String,
    pub image: String,
    pub camera_id: Option<String>,
    pub location: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// 1–50 frames.
    pub images: Vec<BulkFrame>,
    #[serde(default)]
    pub options: BulkOptions,
}

/// The answer to a submission (202), or the finished task with `?wait=true` (200).
#[derive(Serialize, ToSchema)]
pub struct Submitted {
    pub task_id: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub message: String,
    /// Seconds until the result is expected, from recent tasks and the queue depth.
    pub estimated_time: f64,
}

#[derive(Serialize, ToSchema)]
pub struct TaskStatusBody {
    pub task_id: String,
    pub status: String,
    /// When `completed`. A verification: `recognized`, `employee_id`, `name`,
    /// `similarity_score` (cosine to the closest person), `margin` (over the second
    /// closest), `similarity_threshold` (the operating point for the current number of
    /// enrolled people), `confidence` (estimated probability that the closest person is
    /// the one in the photo; see docs/ACCURACY.md), `is_live` and `anti_spoof_score` (a weak
    /// passive anti-spoof signal, not a defence against photos, screens or replays held up
    /// to the camera: docs/ACCURACY.md), `quality_score`, `face_box`, `attendance_logged`, `attendance_id`, `timestamp`, and
    /// when not recognised or not logged a `reason`: `no_face`, `multiple_faces`,
    /// `low_quality` (with `reason_detail.issues`: `too_small`, `blurry`, `too_dark`,
    /// `overexposed`, `turned_away`, `cut_off`), `spoof`, `nobody_enrolled`,
    /// `not_recognised`, `ambiguous_match`, `cooldown`. A bulk verification: `frames` with
    /// those fields per face. An enrollment: `success`, `template_created`, and `images`
    /// with each photo's `accepted` and `reason`.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds the task took to run, once it has.
    pub processing_time: Option<f64>,
    pub attempts: u32,
    pub created_at: String,
}

impl From<TaskStatus> for TaskStatusBody {
    fn from(status: TaskStatus) -> Self {
        Self {
            task_id: status.id,
            status: status.state.as_str().to_owned(),
            result: status.result,
            error: status.error,
            processing_time: status.processing_time.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            attempts: status.attempts,
            created_at: status.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// Enroll a person's face from 1–10 photos (admin). The template replaces any earlier one.
#[utoipa::path(post, path = "/face/enroll/", tag = "face", request_body = EnrollBody, params(WaitParams),
    responses((status = 202, body = Submitted), (status = 200, body = TaskStatusBody), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Query(wait): Query<WaitParams>,
    Admitted { ticket, body }: Admitted<EnrollTask, EnrollBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    if body.images.is_empty() || body.images.len() > MAX_ENROLL_IMAGES {
        return Err(ApiError::validation("images", format!("send 1 to {MAX_ENROLL_IMAGES} photos (3 recommended)")));
    }
    for (n, image) in body.images.iter().enumerate() {
        check_image(&format!("images[{n}]"), image)?;
    }
    let user = users::find_by_employee_id(&state.db, body.employee_id.trim())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with employee_id {}", body.employee_id.trim())))?;
    if !user.is_active {
        return Err(ApiError::Conflict(format!("user {} is deactivated", user.employee_id)));
    }
    let request = EnrollRequest {
        employee_id: user.employee_id.clone(),
        images: body.images,
        quality_check: body.quality_check,
        allow_duplicate: body.allow_duplicate,
        requested_by: requester(&admin, client),
    };
    // The task audits the enrollment's outcome.
    submit(&state, &admin, ticket, Some(user.id), request, wait.wait.unwrap_or(false)).await
}

fn requester(principal: &Principal, client: ClientInfo) -> Requester {
    Requester { name: Some(principal.audit_name()), client }
}

/// Verify a face for attendance (any authenticated caller; cameras and kiosks use API keys).
#[utoipa::path(post, path = "/face/verify/", tag = "face", request_body = VerifyBody, params(WaitParams),
    responses((status = 202, body = Submitted), (status = 200, body = TaskStatusBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    Auth(principal): Auth,
    client: ClientInfo,
    Query(wait): Query<WaitParams>,
    Admitted { ticket, body }: Admitted<VerifyTask, VerifyBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    check_image("image", &body.image)?;
    let liveness_mode = principal.liveness_mode();
    let challenge = redeem_answer(&state, &principal, liveness_mode, body.liveness).await?;
    let request = VerifyRequest {
        image: body.image,
        camera_id: optional_text("camera_id", body.camera_id)?,
        location: optional_text("location", body.location)?,
        captured_at: Utc::now(),
        requested_by: requester(&principal, client),
        from_camera_worker: false,
        liveness_mode,
        challenge,
    };
    submit(&state, &principal, ticket, None, request, wait.wait.unwrap_or(false)).await
}

/// Verify every face in many frames; each recognised live person is logged at most once.
#[utoipa::path(post, path = "/face/bulk-verify/", tag = "face", request_body = BulkBody, params(WaitParams),
    responses((status = 202, body = Submitted), (status = 200, body = TaskStatusBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn bulk_verify(
    State(state): State<AppState>,
    Auth(principal): Auth,
    client: ClientInfo,
    Query(wait): Query<WaitParams>,
    Admitted { ticket, body }: Admitted<BulkVerifyTask, BulkBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    if body.images.is_empty() || body.images.len() > MAX_BULK_FRAMES {
        return Err(ApiError::validation("images", format!("send 1 to {MAX_BULK_FRAMES} frames")));
    }
    check_bulk_options(&body.options)?;
    let liveness_mode = principal.liveness_mode();
    if liveness_mode == LivenessMode::Active {
        return Err(ApiError::Forbidden(
            "this API key verifies with an active liveness challenge, which a bulk verification cannot answer: \
             use POST /face/verify/ with `liveness`"
                .into(),
        ));
    }
    check_threshold_policy(&state, &principal, &client, &body.options).await?;
    let mut frames = Vec::with_capacity(body.images.len());
    for (n, frame) in body.images.into_iter().enumerate() {
        check_image(&format!("images[{n}].image"), &frame.image)?;
        frames.push(FrameRequest {
            id: required_text(&format!("images[{n}].id"), frame.id)?,
            image: frame.image,
            camera_id: optional_text("camera_id", frame.camera_id)?,
            location: optional_text("location", frame.location)?,
        });
    }
    let request = BulkRequest {
        images: frames,
        options: body.options,
        captured_at: Utc::now(),
        requested_by: requester(&principal, client),
        may_loosen_threshold: principal.is_admin(),
        liveness_mode,
    };
    submit(&state, &principal, ticket, None, request, wait.wait.unwrap_or(false)).await
}

/// Issue an active liveness challenge to the caller (any authenticated caller): a random
/// order of head turns to perform within `expires_in` seconds (15 by default) while the
/// client takes 4–12 frames, sent once with `POST /face/verify/` (`liveness`) or
/// `POST /mobile/check-in/`. The server judges the answer: the same face in every frame,
/// the recognised one (`identity_changed`); motion in 3-D, not a flat picture's
/// (`planar_motion`); the steps followed in order (`motion_not_followed`); and the challenge
/// unexpired, unused and the caller's (`challenge_expired`, `challenge_used`,
/// `challenge_unknown`). What it cannot detect (a replayed video that follows the steps,
/// an injected camera stream, a 3-D mask) and its measured error rates: docs/ACCURACY.md.
#[utoipa::path(post, path = "/face/liveness/challenges/", tag = "face",
    responses((status = 201, body = ChallengeIssued), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_challenge(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<(StatusCode, axum::Json<ChallengeIssued>)> {
    let settings = state.config.liveness_challenges();
    let challenge = liveness::issue(&state.db, &settings, &principal.key()).await?;
    let issued = ChallengeIssued {
        challenge_id: challenge.id,
        steps: challenge.steps.iter().map(|s| s.code()).collect(),
        instructions: challenge.steps.iter().map(|s| s.instruction()).collect(),
        expires_at: challenge.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        expires_in: settings.ttl.as_secs(),
        min_frames: liveness::MIN_FRAMES,
        max_frames: liveness::MAX_FRAMES,
    };
    Ok((StatusCode::CREATED, axum::Json(issued)))
}

/// Checks a challenge answer's shape and uses the challenge up (whatever the frames turn
/// out to show, it cannot be answered again). In `active` mode one must be answered.
pub(super) async fn redeem_answer(
    state: &AppState,
    principal: &Principal,
    mode: LivenessMode,
    answer: Option<LivenessAnswerBody>,
) -> ApiResult<Option<ChallengeAnswer>> {
    let Some(answer) = answer else {
        if mode == LivenessMode::Active {
            return Err(ApiError::validation(
                "liveness",
                "this caller verifies with an active liveness challenge: POST /api/v1/face/liveness/challenges/, \
                 then send its challenge_id and 4 to 12 frames here",
            ));
        }
        return Ok(None);
    };
    let (min, max) = (liveness::MIN_FRAMES, liveness::MAX_FRAMES);
    if !(min..=max).contains(&answer.frames.len()) {
        return Err(ApiError::validation("liveness.frames", format!("send {min} to {max} frames")));
    }
    for (n, frame) in answer.frames.iter().enumerate() {
        check_image(&format!("liveness.frames[{n}]"), frame)?;
    }
    let challenge_id = required_text("liveness.challenge_id", answer.challenge_id)?;
    let redeemed = liveness::redeem(&state.db, &challenge_id, &principal.key()).await?;
    Ok(Some(ChallengeAnswer { challenge_id, frames: answer.frames, redeemed }))
}

fn check_bulk_options(options: &BulkOptions) -> ApiResult<()> {
    if options.max_faces.is_some_and(|n| n == 0 || n > crate::domain::face::MAX_FACES_LIMIT) {
        return Err(ApiError::validation(
            "options.max_faces",
            format!("must be between 1 and {}", crate::domain::face::MAX_FACES_LIMIT),
        ));
    }
    if options.quality_threshold.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
        return Err(ApiError::validation("options.quality_threshold", "must be between 0 and 1"));
    }
    if options.similarity_threshold.is_some_and(|s| !(-1.0..=1.0).contains(&s) || s.is_nan()) {
        return Err(ApiError::validation(
            "options.similarity_threshold",
            "must be a cosine similarity between -1 and 1",
        ));
    }
    Ok(())
}

/// Recognition thresholds are server policy: a request may make the decision stricter,
/// never looser. A similarity threshold below the current operating point is refused for
/// anyone but an admin, whose override is audited. (`quality_threshold` only adds to the
/// server's quality gate, so any value is stricter or equal.)
async fn check_threshold_policy(
    state: &AppState,
    principal: &Principal,
    client: &ClientInfo,
    options: &BulkOptions,
) -> ApiResult<()> {
    let Some(requested) = options.similarity_threshold else {
        return Ok(());
    };
    let operating_point = state.face.rule().threshold.get();
    if requested >= operating_point {
        return Ok(());
    }
    if !principal.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "options.similarity_threshold may not be below the server's operating point ({operating_point:.4}): \
             a request can make recognition stricter, never looser"
        )));
    }
    let details = json!({"requested": requested, "operating_point": operating_point, "endpoint": "bulk-verify"});
    let event = AuditEvent::success("threshold_override", Some(principal.audit_name()), details)
        .with_severity(audit::Severity::Warning);
    audit::record(&state.db, client, event).await;
    Ok(())
}

/// Cheap checks before a photo is queued: present, base64, not absurdly small. Decoding
/// happens in the task.
pub(super) fn check_image(field: &str, image: &str) -> ApiResult<()> {
    match rollcall_face::decode::base64_payload(image) {
        Ok(bytes) if bytes.len() >= 16 => Ok(()),
        Ok(_) => Err(ApiError::validation(field, "the image is empty or too small to be a photo")),
        Err(_) => {
            Err(ApiError::validation(field, "must be a data:image/...;base64, URI or base64-encoded JPEG, PNG or WebP"))
        }
    }
}

fn optional_text(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    value.map(|v| required_text(field, v)).transpose()
}

fn required_text(field: &str, value: String) -> ApiResult<String> {
    let value = value.trim().to_owned();
    if value.is_empty() || value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ApiError::validation(field, format!("must be 1 to {MAX_TEXT} printable characters")));
    }
    Ok(value)
}

/// Queues the task, then lets go of the request and its body's share of the budget
/// before any waiting: a kiosk waiting for its result holds no copy of its photo.
pub(super) async fn submit<K: SubmitsTask>(
    state: &AppState,
    principal: &Principal,
    ticket: Ticket<K>,
    subject: Option<i64>,
    request: impl Serialize,
    wait: bool,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let kind = K::KIND;
    if let EngineState::Failed(message) = state.face.state() {
        return Err(ApiError::Unavailable(message, None));
    }
    let payload = serde_json::to_vec(&request).map_err(ApiError::internal)?;
    drop(request);
    let mut finished = state.queue.finished();
    let task_id = state.queue.submit(kind, &principal.key(), subject, &payload).await.map_err(queue_error)?;
    let mut estimate = ticket.estimate;
    drop((payload, ticket));
    if wait {
        let timeout = Duration::from_secs(state.config.task_wait_timeout_secs);
        if let Some(status) = wait_for(state, &task_id, &mut finished, timeout).await? {
            return Ok((StatusCode::OK, axum::Json(json!(TaskStatusBody::from(status)))));
        }
        estimate = state.admission.estimate(&*state.queue, kind).await.map_err(queue_error)?;
    }
    let body = Submitted {
        message: format!("{} task queued successfully", kind_label(kind)),
        status: "queued".into(),
        estimated_time: (estimate.finish.as_secs_f64() * 100.0).round() / 100.0,
        task_id,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(json!(body))))
}

fn kind_label(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Enroll => "Face enrollment",
        TaskKind::Verify => "Face verification",
        TaskKind::BulkVerify => "Bulk verification",
        TaskKind::Maintenance => "Maintenance",
        TaskKind::CheckIn => "Check-in",
    }
}

async fn wait_for(
    state: &AppState,
    task_id: &str,
    finished: &mut tokio::sync::broadcast::Receiver<String>,
    timeout: Duration,
) -> ApiResult<Option<TaskStatus>> {
    // Workers of this process announce the tasks they finish; a task that another
    // process on the same database ran is only seen by looking.
    const LOOK_EVERY: Duration = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next_look = (tokio::time::Instant::now() + LOOK_EVERY).min(deadline);
        match tokio::time::timeout_at(next_look, finished.recv()).await {
            Ok(Ok(id)) if id != task_id => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return Ok(None),
            // Our task, a lag in the announcements, or time to look.
            _ => {
                // Bounded too: a slow database must not stretch a kiosk's wait.
                let Ok(status) = tokio::time::timeout_at(deadline, state.queue.status(task_id)).await else {
                    return Ok(None);
                };
                if let Some(status) = status.map_err(queue_error)?.filter(|s| s.state.is_finished()) {
                    return Ok(Some(status));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
            }
        }
    }
}

pub(super) fn queue_error(error: QueueError) -> ApiError {
    match error {
        QueueError::Full { .. } | QueueError::Unavailable(_) => {
            ApiError::Unavailable(error.to_string(), Some(Duration::from_secs(5)))
        }
        QueueError::Store(store) => store.into(),
        QueueError::Corrupt(_) => ApiError::internal(error),
    }
}

/// Status of an enrollment task.
#[utoipa::path(get, path = "/face/enroll/status/{task_id}/", tag = "face", params(("task_id" = String, Path)),
    responses((status = 200, body = TaskStatusBody), (status = 404, body = ErrorBody)))]
pub async fn enroll_status(state: State<AppState>, auth: Auth, path: Path<String>) -> ApiResult<Json<TaskStatusBody>> {
    task_status(state, auth, path, TaskKind::Enroll).await
}

/// Status of a verification task.
#[utoipa::path(get, path = "/face/verify/status/{task_id}/", tag = "face", params(("task_id" = String, Path)),
    responses((status = 200, body = TaskStatusBody), (status = 404, body = ErrorBody)))]
pub async fn verify_status(state: State<AppState>, auth: Auth, path: Path<String>) -> ApiResult<Json<TaskStatusBody>> {
    task_status(state, auth, path, TaskKind::Verify).await
}

/// Status of a bulk verification task.
#[utoipa::path(get, path = "/face/bulk-verify/status/{task_id}/", tag = "face", params(("task_id" = String, Path)),
    responses((status = 200, body = TaskStatusBody), (status = 404, body = ErrorBody)))]
pub async fn bulk_status(state: State<AppState>, auth: Auth, path: Path<String>) -> ApiResult<Json<TaskStatusBody>> {
    task_status(state, auth, path, TaskKind::BulkVerify).await
}

/// A task of this kind, visible to the caller who submitted it and to admins; everyone
/// else gets 404, so task ids reveal nothing.
async fn task_status(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(task_id): Path<String>,
    kind: TaskKind,
) -> ApiResult<Json<TaskStatusBody>> {
    let not_found = || ApiError::NotFound(format!("no {} task {task_id}", kind.as_str()));
    let status = state.queue.status(&task_id).await.map_err(queue_error)?.ok_or_else(not_found)?;
    if status.kind != kind || !(principal.is_admin() || status.owner == principal.key()) {
        return Err(not_found());
    }
    Ok(Json(status.into()))
}

/// Erase a person's biometric data: template and any kept enrollment photos (admin).
#[utoipa::path(delete, path = "/face/templates/{employee_id}/", tag = "face", params(("employee_id" = String, Path)),
    responses((status = 204, description = "Erased"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn erase_template(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(employee_id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = users::find_by_employee_id(&state.db, &employee_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with employee_id {employee_id}")))?;
    let erased = face::erase(&state.db, &state.face, user.id).await.map_err(ApiError::Internal)?;
    let details = json!({"employee_id": user.employee_id, "had_template": erased});
    audit::record(&state.db, &client, AuditEvent::success("template_erase", Some(admin.audit_name()), details)).await;
    if !erased {
        return Err(ApiError::NotFound(format!("{employee_id} has no face template")));
    }
    Ok(StatusCode::NO_CONTENT)
}

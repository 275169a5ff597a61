//! Verification: find who is in a photo (or in many frames), check they are live, and
//! log their attendance. A spoof never logs attendance and opens an incident.

use std::collections::HashSet;

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use rollcall_face::challenge::ChallengePolicy;
use rollcall_face::{
    Decision, DecisionRule, DecodedImage, FaceAnalysis, FaceEngine, FaceIndex, FaceRejection, Identification,
    QualityIssue, SpoofGate, ThresholdRule,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::active::{self, ActiveLiveness, ChallengeAnswer};
use super::{FaceBox, FaceTasks, blocking, decode_payload, round4};
use crate::domain::attendance::{Arrival, Logged, NewAttendance};
use crate::domain::audit::{self, AuditEvent, Requester};
use crate::domain::liveness::LivenessMode;
use crate::domain::visitors::{self, SightingContext, Stranger};
use crate::events::{Event, EventKind};
use crate::queue::{Task, TaskFailure, begin_for_task};
use crate::store::incidents::{self, Counted, NewIncident, Sighting};
use crate::store::tasks::TaskClaim;
use crate::store::users::{self, UserRecord};

/// The queued input of a verification.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyRequest {
    pub image: String,
    pub camera_id: Option<String>,
    pub location: Option<String>,
    /// When the photo was taken; the time of submission otherwise.
    pub captured_at: DateTime<Utc>,
    #[serde(default)]
    pub requested_by: Requester,
    /// Sent by a camera's own worker: a face that matches nobody is a sighting of an
    /// unknown visitor (when `track_unknown_visitors` is on).
    #[serde(default)]
    pub from_camera_worker: bool,
    /// How the source checks liveness; with a challenge answer, the answer decides.
    #[serde(default)]
    pub liveness_mode: LivenessMode,
    #[serde(default)]
    pub challenge: Option<ChallengeAnswer>,
}

/// How one photo's liveness is checked: the passive gate, and the challenge answer if any.
pub(super) struct LivenessCheck {
    pub(super) gate: SpoofGate,
    pub(super) challenge: Option<ChallengeAnswer>,
    pub(super) policy: ChallengePolicy,
}

impl LivenessCheck {
    /// The passive verdict refuses a face only in passive mode and when no challenge was
    /// answered; an answer is judged by the server's policy, `min_continuity` the 1:1
    /// operating point.
    pub(super) fn new(tasks: &FaceTasks, mode: LivenessMode, challenge: Option<ChallengeAnswer>) -> Self {
        let gate = match (mode, &challenge) {
            (LivenessMode::Passive, None) => SpoofGate::Refuse,
            _ => SpoofGate::Report,
        };
        let policy = tasks.challenges.policy(tasks.face.one_to_one_rule().threshold.get());
        Self { gate, challenge, policy }
    }
}

/// Identifies the largest face of `image` and, when a challenge was answered, judges the
/// answer against that face. Runs on the blocking pool.
pub(super) fn identify_live(
    engine: &FaceEngine,
    image: &DecodedImage,
    index: &dyn FaceIndex,
    rule: &dyn DecisionRule,
    liveness: &LivenessCheck,
) -> Result<FaceDecision, TaskFailure> {
    let identification =
        engine.identify_with(image, index, rule, liveness.gate).map_err(|e| TaskFailure::retryable(e.to_string()))?;
    let decided = from_identification(identification);
    let active = match &liveness.challenge {
        Some(answer) => Some(active::judge_answer(engine, decided.face.as_ref(), answer, &liveness.policy)?),
        None => None,
    };
    Ok(decided.with_active(active))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FrameRequest {
    pub id: String,
    pub image: String,
    pub camera_id: Option<String>,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkOptions {
    /// Faces analysed per frame, largest first (default 10, at most 50).
    pub max_faces: Option<usize>,
    /// Faces whose quality score is below this are not identified. It adds to the server's
    /// quality gate (blur, exposure, size, pose), which every face must pass whatever this says.
    pub quality_threshold: Option<f32>,
    /// Cosine similarity needed to recognise someone. Only an admin may set it below the
    /// server's operating point (`similarity_threshold` in the result); for anyone else a
    /// lower value is refused (403), and a higher one makes the decision stricter.
    pub similarity_threshold: Option<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BulkRequest {
    pub images: Vec<FrameRequest>,
    pub options: BulkOptions,
    pub captured_at: DateTime<Utc>,
    #[serde(default)]
    pub requested_by: Requester,
    /// Submitted by an admin, who may set the similarity threshold below the operating
    /// point. Otherwise the operating point at the time the task runs is a floor (the
    /// gallery may have grown since the submission).
    #[serde(default)]
    pub may_loosen_threshold: bool,
    /// The submitter's liveness mode: `off` reports the passive score without refusing.
    /// (A key in `active` mode cannot submit bulk verifications.)
    #[serde(default)]
    pub liveness_mode: LivenessMode,
}

/// The decision for one face, before attendance.
pub(super) struct FaceDecision {
    pub(super) face: Option<FaceAnalysis>,
    /// Why nobody was recognised (`no_face`, `spoof`, `low_quality`, `below_threshold`, …).
    pub(super) reason: Option<&'static str>,
    pub(super) reason_detail: Option<Value>,
    pub(super) user_id: Option<i64>,
    pub(super) decision: Option<Decision>,
    /// The face cut from the photo (JPEG), for a recognised face when arrival evidence is kept.
    pub(super) face_crop: Option<Vec<u8>>,
    /// The active liveness check, when a challenge was answered.
    pub(super) active: Option<ActiveLiveness>,
}

impl FaceDecision {
    fn is_spoof(&self) -> bool {
        self.reason == Some("spoof") || self.active.as_ref().is_some_and(ActiveLiveness::suggests_attack)
    }

    /// Whether the face is live: by the active check when there was one, else by the
    /// passive verdict (`None` when neither ran).
    pub(super) fn is_live(&self) -> Option<bool> {
        match &self.active {
            Some(active) => Some(active.is_live()),
            None => self.face.as_ref().and_then(|f| f.liveness).map(|l| l.is_live),
        }
    }

    /// Records the active check; a failed one refuses the face, whoever it resembles.
    fn with_active(mut self, active: Option<ActiveLiveness>) -> Self {
        if let Some(failure) = active.as_ref().and_then(|a| a.failure) {
            self.user_id = None;
            self.reason = Some("liveness_failed");
            self.reason_detail = Some(json!({"liveness": failure}));
        }
        self.active = active;
        self
    }

    /// Cuts the face out of `image` when it was recognised and `keep` is on: the arrival
    /// it logs keeps it as evidence.
    pub(super) fn with_crop(mut self, image: &DecodedImage, keep: bool) -> Self {
        if keep && self.user_id.is_some() {
            self.face_crop =
                self.face.as_ref().and_then(|face| rollcall_face::evidence_crop(image, &face.detection.bbox));
        }
        self
    }
}

/// A face that nobody matched, seen live (or not checked) and passing the quality gate:
/// what an unknown visitor's sighting is made of. Faces that resemble two people
/// (`ambiguous_match`) or failed a check are not strangers, only undecided.
fn stranger(decided: &FaceDecision, image: &DecodedImage) -> Option<Stranger> {
    let unmatched = matches!(decided.reason, Some("not_recognised" | "nobody_enrolled")) && decided.user_id.is_none();
    let face = decided.face.as_ref().filter(|_| unmatched)?;
    let live = face.liveness.is_none_or(|liveness| liveness.is_live);
    if !live || !face.quality.is_acceptable() {
        return None;
    }
    Some(Stranger {
        embedding: face.embedding.clone()?,
        crop: rollcall_face::evidence_crop(image, &face.detection.bbox)?,
        quality_score: face.quality.score,
    })
}

fn from_identification(identification: Identification) -> FaceDecision {
    match identification {
        Identification::Rejected { reason, face } => FaceDecision {
            face,
            reason: Some(reason.code()),
            reason_detail: serde_json::to_value(&reason).ok(),
            user_id: None,
            decision: None,
            face_crop: None,
            active: None,
        },
        Identification::Searched { face, decision, .. } => decide(face, decision),
    }
}

fn decide(face: FaceAnalysis, decision: Decision) -> FaceDecision {
    let (reason, user_id) = match &decision {
        Decision::Recognised { identity, .. } => (None, identity.parse().ok()),
        Decision::NotRecognised { reason, .. } => (Some(reject_code(*reason)), None),
    };
    FaceDecision {
        face: Some(face),
        reason,
        reason_detail: None,
        user_id,
        decision: Some(decision),
        face_crop: None,
        active: None,
    }
}

fn reject_code(reason: rollcall_face::RejectReason) -> &'static str {
    match reason {
        rollcall_face::RejectReason::EmptyGallery => "nobody_enrolled",
        rollcall_face::RejectReason::BelowThreshold => "not_recognised",
        rollcall_face::RejectReason::AmbiguousMatch => "ambiguous_match",
    }
}

pub(super) async fn run_verify(tasks: &FaceTasks, task: &Task) -> Result<Value, TaskFailure> {
    let started = Instant::now();
    let mut request: VerifyRequest = decode_payload(task)?;
    let engine = tasks.face.engine()?;
    let index = tasks.face.index();
    let rule = *tasks.face.rule();
    let image = std::mem::take(&mut request.image);
    let keep_crop = tasks.keep_arrival_evidence;
    let track_visitor = tasks.visitors.track && request.from_camera_worker && request.camera_id.is_some();
    let liveness = LivenessCheck::new(tasks, request.liveness_mode, request.challenge.take());
    let decided = blocking(move || {
        let decoded =
            engine.decode_base64(&image).map_err(|e| TaskFailure::permanent(format!("invalid image: {e}")))?;
        let index = index.read().expect("index lock");
        let decided = identify_live(&engine, &decoded, &*index, &rule, &liveness)?.with_crop(&decoded, keep_crop);
        let stranger = if track_visitor { stranger(&decided, &decoded) } else { None };
        Ok::<_, TaskFailure>((decided, stranger))
    })
    .await??;
    let (decided, stranger) = decided;
    let context = Context {
        task_id: &task.id,
        owner: &task.owner,
        claim: task.claim(),
        camera_id: request.camera_id.as_deref(),
        location: request.location.as_deref(),
        captured_at: request.captured_at,
        source: "verify",
    };
    if decided.is_spoof() {
        report_spoof(tasks, &context, &decided).await?;
    }
    let mut result = face_result(tasks, &context, &decided, &mut HashSet::new()).await?;
    // The operating point this decision was taken at (it follows the gallery's size).
    result["similarity_threshold"] = json!(round4(rule.threshold.get()));
    if let (Some(stranger), Some(camera_id)) = (&stranger, context.camera_id) {
        let sighting =
            SightingContext { task_id: &task.id, claim: &context.claim, camera_id, seen_at: context.captured_at };
        let placed =
            visitors::place(&tasks.db, &tasks.sealer, tasks.visitors, sighting, stranger, rule.threshold.get()).await?;
        result["visitor_id"] = json!(visitors::label(placed.number));
    }
    let details = json!({
        "camera_id": request.camera_id,
        "visitor_id": result.get("visitor_id"),
        "recognized": result["recognized"],
        "employee_id": result["employee_id"],
        "reason": result["reason"],
        "attendance_logged": result["attendance_logged"],
        "similarity_score": result["similarity_score"],
        "processing_ms": started.elapsed().as_millis() as u64,
    });
    audit_verification(tasks, task, &request.requested_by, AuditEvent::success("face_verification", None, details))
        .await?;
    Ok(result)
}

/// Audits what a verification task decided (never the photo): one entry per task.
pub(super) async fn audit_verification(
    tasks: &FaceTasks,
    task: &Task,
    requester: &Requester,
    event: AuditEvent,
) -> Result<(), TaskFailure> {
    audit::record_for_task(&tasks.db, &task.id, requester, event)
        .await
        .map_err(|e| TaskFailure::retryable(e.to_string()))
}

pub(super) struct Context<'a> {
    pub(super) task_id: &'a str,
    /// Who submitted the task (`user:<id>`, `api_key:<id>`).
    pub(super) owner: &'a str,
    /// Every write of the task is conditioned on it.
    pub(super) claim: TaskClaim,
    pub(super) camera_id: Option<&'a str>,
    pub(super) location: Option<&'a str>,
    pub(super) captured_at: DateTime<Utc>,
    pub(super) source: &'static str,
}

/// The spec's verification result for one face, logging attendance when a live, active,
/// enrolled person was recognised. `logged` holds the people this task has logged, so a
/// person seen in several frames of one task is logged once.
async fn face_result(
    tasks: &FaceTasks,
    context: &Context<'_>,
    decided: &FaceDecision,
    logged: &mut HashSet<i64>,
) -> Result<Value, TaskFailure> {
    let outcome = if decided.user_id.is_some() { "recognised" } else { decided.reason.unwrap_or("not_recognised") };
    tasks.metrics.record_recognition(outcome);
    let face = decided.face.as_ref();
    let liveness = face.and_then(|f| f.liveness);
    let (similarity, margin, confidence) = match &decided.decision {
        Some(Decision::Recognised { similarity, margin, confidence, .. }) => {
            (Some(*similarity), Some(*margin), *confidence)
        }
        Some(Decision::NotRecognised { similarity, margin, confidence, .. }) => (*similarity, *margin, *confidence),
        None => (None, None, 0.0),
    };
    let mut result = json!({
        "recognized": false,
        "employee_id": null,
        "name": null,
        "confidence": round4(confidence),
        "similarity_score": similarity.map(round4),
        "margin": margin.filter(|m| m.is_finite()).map(round4),
        "is_live": decided.is_live(),
        "anti_spoof_score": liveness.map(|l| round4(l.anti_spoof_score)),
        "quality_score": face.map(|f| round4(f.quality.score)),
        "face_box": face.map(|f| FaceBox::from(f.detection.bbox)),
        "attendance_logged": false,
        "reason": decided.reason,
        "timestamp": context.captured_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    if let Some(detail) = &decided.reason_detail {
        result["reason_detail"] = detail.clone();
    }
    if let Some(active) = &decided.active {
        result["liveness"] = active.to_json();
    }
    let Some(user_id) = decided.user_id else {
        return Ok(result);
    };
    let user = match users::find_by_id(&tasks.db, user_id).await.map_err(|e| TaskFailure::retryable(e.to_string()))? {
        Some(user) if user.is_active => user,
        // Removed from the index on deactivation; a race with it lands here.
        _ => {
            result["reason"] = json!("not_recognised");
            return Ok(result);
        }
    };
    result["recognized"] = json!(true);
    result["employee_id"] = json!(user.employee_id);
    result["name"] = json!(user.full_name());
    if !logged.insert(user.id) {
        result["reason"] = json!("already_logged_by_this_task");
        return Ok(result);
    }
    // Why the system decided what it did, kept with the log for whoever later asks.
    let evidence = json!({
        "decision": "recognised",
        "similarity_score": result["similarity_score"],
        "margin": result["margin"],
        "confidence": result["confidence"],
        "is_live": result["is_live"],
        "liveness": result.get("liveness"),
        "anti_spoof_score": result["anti_spoof_score"],
        "quality_score": result["quality_score"],
        "face_box": result["face_box"],
    });
    let scores = Scores { confidence, similarity, anti_spoof_score: liveness.map(|l| l.anti_spoof_score) };
    let outcome = log_arrival(tasks, context, &user, scores, evidence, decided.face_crop.clone()).await?;
    match outcome {
        Logged::New(record) | Logged::AlreadyByThisTask(record) => {
            result["attendance_logged"] = json!(true);
            result["attendance_id"] = json!(record.id);
        }
        Logged::Cooldown { previous, .. } => {
            result["reason"] = json!("cooldown");
            result["last_logged_at"] = json!(previous.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
    }
    Ok(result)
}

/// The scores an arrival is logged with.
pub(super) struct Scores {
    pub(super) confidence: f32,
    pub(super) similarity: Option<f32>,
    pub(super) anti_spoof_score: Option<f32>,
}

pub(super) async fn log_arrival(
    tasks: &FaceTasks,
    context: &Context<'_>,
    user: &UserRecord,
    scores: Scores,
    evidence: Value,
    face_crop: Option<Vec<u8>>,
) -> Result<Logged, TaskFailure> {
    let log = NewAttendance {
        timestamp: context.captured_at,
        camera_id: context.camera_id.map(str::to_owned),
        location: context.location.map(str::to_owned),
        confidence: Some(round4(scores.confidence)),
        similarity: scores.similarity.map(round4),
        anti_spoof_score: scores.anti_spoof_score.map(round4),
        verification_time: Some((Utc::now() - context.captured_at).num_milliseconds().max(0) as f64 / 1000.0),
        source: context.source,
        task_id: Some(context.task_id.to_owned()),
        details: evidence,
    };
    let arrival = Arrival { user, log, face_crop };
    Ok(tasks.attendance.log(Some(&context.claim), arrival).await?)
}

/// Counts a failed liveness check on the open spoofing incident of its camera (of its
/// submitter, without a camera) seen within the incident window, or opens one once the
/// camera has failed `spoof_incident_min_failures` checks within the window; and
/// records `spoofing_detected`. Once per task: a task run again finds its sighting and
/// records nothing more. The event's key comes from the task.
async fn report_spoof(tasks: &FaceTasks, context: &Context<'_>, decided: &FaceDecision) -> Result<(), TaskFailure> {
    let score = decided.face.as_ref().and_then(|f| f.liveness).map(|l| round4(l.anti_spoof_score));
    let details = json!({"anti_spoof_score": score, "task_id": context.task_id, "location": context.location});
    let group_key = match context.camera_id {
        Some(camera) => format!("spoofing_attempt|camera:{camera}"),
        None => format!("spoofing_attempt|{}", context.owner),
    };
    let sighting = Sighting {
        task_id: context.task_id.to_owned(),
        group_key,
        incident: NewIncident {
            kind: "spoofing_attempt".into(),
            camera_id: context.camera_id.map(str::to_owned),
            severity: "medium".into(),
            description: "a face failed the liveness check".into(),
            details: details.to_string(),
            occurred_at: context.captured_at,
            reported_by: None,
        },
    };
    let tx = begin_for_task(&tasks.db, Some(&context.claim)).await?;
    let window = chrono::Duration::from_std(tasks.incident_window).unwrap_or(chrono::Duration::MAX);
    let counted = incidents::count_sighting(&tx, sighting, window, tasks.spoof_incident_min_failures)
        .await
        .map_err(|e| TaskFailure::retryable(e.to_string()))?;
    let record = match counted {
        Counted::Now(record) => record,
        Counted::Pending => {
            tx.commit().await.map_err(|e| TaskFailure::retryable(e.to_string()))?;
            return Ok(());
        }
        Counted::Already => return Ok(()),
    };
    let event = Event {
        kind: EventKind::SpoofingDetected,
        key: format!("spoofing:{}", context.task_id),
        timestamp: Utc::now(),
        data: json!({
            "incident_id": record.id,
            "occurrences": record.occurrences,
            "camera_id": context.camera_id,
            "location": context.location,
            "anti_spoof_score": score,
        }),
    };
    tasks.events.record(&tx, &event).await?;
    tx.commit().await.map_err(|e| TaskFailure::retryable(e.to_string()))?;
    tasks.events.announce([event]);
    Ok(())
}

/// Default and largest number of faces analysed per bulk frame.
const DEFAULT_MAX_FACES: usize = 10;
pub const MAX_FACES_LIMIT: usize = 50;

pub(super) async fn run_bulk(tasks: &FaceTasks, task: &Task) -> Result<Value, TaskFailure> {
    let started = Instant::now();
    let request: BulkRequest = decode_payload(task)?;
    let threshold = request.options.similarity_threshold;
    let rule = if request.may_loosen_threshold {
        tasks.face.rule_with_threshold(threshold)
    } else {
        tasks.face.stricter_rule(threshold)
    }
    .map_err(TaskFailure::permanent)?;
    let max_faces = request.options.max_faces.unwrap_or(DEFAULT_MAX_FACES).clamp(1, MAX_FACES_LIMIT);
    let mut logged = HashSet::new();
    let mut frames = Vec::with_capacity(request.images.len());
    let mut faces_total = 0;
    let mut recognised_total = 0;
    // Each frame's photo is freed once analysed.
    let gate = if request.liveness_mode == LivenessMode::Passive { SpoofGate::Refuse } else { SpoofGate::Report };
    let limits = FaceLimits { max_faces, quality_threshold: request.options.quality_threshold, gate };
    for frame in request.images {
        let decided = analyse_frame(tasks, frame.image, limits, rule).await?;
        let context = Context {
            task_id: &task.id,
            owner: &task.owner,
            claim: task.claim(),
            camera_id: frame.camera_id.as_deref(),
            location: frame.location.as_deref(),
            captured_at: request.captured_at,
            source: "bulk_verify",
        };
        let frame_result = match decided {
            Err(error) => json!({"id": frame.id, "error": error, "faces": []}),
            Ok(faces) => {
                let mut results = Vec::with_capacity(faces.len());
                for face in &faces {
                    if face.is_spoof() {
                        report_spoof(tasks, &context, face).await?;
                    }
                    let result = face_result(tasks, &context, face, &mut logged).await?;
                    recognised_total += usize::from(result["recognized"] == json!(true));
                    results.push(result);
                }
                faces_total += results.len();
                json!({"id": frame.id, "camera_id": frame.camera_id, "faces": results})
            }
        };
        frames.push(frame_result);
    }
    let details = json!({
        "frames": frames.len(),
        "faces_detected": faces_total,
        "recognized": recognised_total,
        "attendance_logged": logged.len(),
        "employee_ids": recognised_ids(&frames),
        "similarity_threshold": round4(rule.threshold.get()),
        "processing_ms": started.elapsed().as_millis() as u64,
    });
    audit_verification(tasks, task, &request.requested_by, AuditEvent::success("face_verification", None, details))
        .await?;
    Ok(json!({
        "frames": frames,
        "faces_detected": faces_total,
        "recognized": recognised_total,
        "attendance_logged": logged.len(),
        "similarity_threshold": round4(rule.threshold.get()),
    }))
}

/// The employee ids recognised in a bulk result's frames, each once.
fn recognised_ids(frames: &[Value]) -> std::collections::BTreeSet<&str> {
    frames
        .iter()
        .filter_map(|frame| frame["faces"].as_array())
        .flatten()
        .filter(|face| face["recognized"] == json!(true))
        .filter_map(|face| face["employee_id"].as_str())
        .collect()
}

/// What a bulk verification decides each face of a frame by.
#[derive(Clone, Copy)]
struct FaceLimits {
    /// Faces analysed, largest first.
    max_faces: usize,
    /// The request's minimum quality score, on top of the server's gate.
    quality_threshold: Option<f32>,
    gate: SpoofGate,
}

/// Every face of one frame (largest first, at most `max_faces`), decided.
async fn analyse_frame(
    tasks: &FaceTasks,
    image: String,
    limits: FaceLimits,
    rule: ThresholdRule,
) -> Result<Result<Vec<FaceDecision>, String>, TaskFailure> {
    let engine = tasks.face.engine()?;
    let index = tasks.face.index();
    let keep_crop = tasks.keep_arrival_evidence;
    blocking(move || {
        let decoded = match engine.decode_base64(&image) {
            Ok(decoded) => decoded,
            Err(error) => return Ok(Err(format!("invalid image: {error}"))),
        };
        let detections = engine.detect(&decoded).map_err(|e| TaskFailure::retryable(e.to_string()))?;
        let index = index.read().expect("index lock");
        let mut decided = Vec::new();
        for detection in detections.into_iter().take(limits.max_faces) {
            let face = engine.analyze_face(&decoded, detection).map_err(|e| TaskFailure::retryable(e.to_string()))?;
            decided.push(decide_face(face, &*index, &rule, limits).with_crop(&decoded, keep_crop));
        }
        Ok(Ok(decided))
    })
    .await?
}

fn decide_face(face: FaceAnalysis, index: &dyn FaceIndex, rule: &ThresholdRule, limits: FaceLimits) -> FaceDecision {
    // The request's minimum adds to the server's quality gate; it never replaces it.
    let below_minimum = limits.quality_threshold.is_some_and(|minimum| face.quality.score < minimum);
    let rejection = match () {
        () if below_minimum || !face.quality.is_acceptable() => {
            Some(FaceRejection::LowQuality { issues: face.quality.issues.clone() })
        }
        () => match face.liveness {
            Some(liveness) if !liveness.is_live && limits.gate == SpoofGate::Refuse => {
                Some(FaceRejection::Spoof { anti_spoof_score: liveness.anti_spoof_score })
            }
            _ if face.embedding.is_none() => Some(FaceRejection::LowQuality { issues: vec![QualityIssue::TurnedAway] }),
            _ => None,
        },
    };
    if let Some(reason) = rejection {
        return FaceDecision {
            reason: Some(reason.code()),
            reason_detail: serde_json::to_value(&reason).ok(),
            face: Some(face),
            user_id: None,
            decision: None,
            face_crop: None,
            active: None,
        };
    }
    let search = index.search(face.embedding.as_ref().expect("checked above"));
    let decision = rule.decide(&search);
    decide(face, decision)
}

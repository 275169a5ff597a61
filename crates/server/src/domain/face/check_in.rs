//! A phone check-in: the selfie is compared with the signed-in person's own template only
//! (1:1, a gallery of one at the gallery-of-one operating point — never a search of
//! everyone, so a phone cannot find out who a face is), must pass the quality gate and
//! the liveness check, and then logs attendance at the site like any arrival.

use chrono::{DateTime, SecondsFormat, Utc};
use rollcall_face::{Decision, ExactIndex, FaceIndex as _, Fusion};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::active::ChallengeAnswer;
use super::verify::{Context, LivenessCheck, Scores, audit_verification, identify_live, log_arrival};
use super::{FaceTasks, blocking, decode_payload, open_template, round4};
use crate::domain::attendance::Logged;
use crate::domain::audit::{AuditEvent, Requester};
use crate::domain::liveness::LivenessMode;
use crate::queue::{Task, TaskFailure};
use crate::store::{templates, users};

/// The queued input of a check-in, its position already checked against the sites.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckInRequest {
    /// The signed-in person checking in: the only template the selfie is compared with.
    pub user_id: i64,
    pub image: String,
    pub site_id: i64,
    pub site: String,
    /// Metres from the site's centre.
    pub distance_m: f64,
    pub accuracy_m: Option<f64>,
    /// When the phone says the selfie was taken (checked against the server's clock).
    pub captured_at: DateTime<Utc>,
    #[serde(default)]
    pub requested_by: Requester,
    /// `mobile_liveness_mode` when the check-in was sent; with a challenge answer, the
    /// answer decides.
    #[serde(default)]
    pub liveness_mode: LivenessMode,
    #[serde(default)]
    pub challenge: Option<ChallengeAnswer>,
}

fn refused(reason: &str, message: impl Into<String>) -> Value {
    json!({"attendance_logged": false, "reason": reason, "message": message.into()})
}

pub(super) async fn run(tasks: &FaceTasks, task: &Task) -> Result<Value, TaskFailure> {
    let mut request: CheckInRequest = decode_payload(task)?;
    let user_id = request.user_id;
    let result = check_in(tasks, task, user_id, &mut request).await?;
    let details = json!({
        "employee_id": result["employee_id"],
        "site": request.site,
        "distance_m": round4(request.distance_m as f32),
        "attendance_logged": result["attendance_logged"],
        "reason": result["reason"],
        "similarity_score": result["similarity_score"],
    });
    // A check-in succeeds when it logs attendance; every refusal is a failed attempt.
    let event = if result["attendance_logged"] == json!(true) {
        AuditEvent::success("mobile_check_in", None, details)
    } else {
        AuditEvent::failure("mobile_check_in", None, details)
    };
    audit_verification(tasks, task, &request.requested_by, event).await?;
    Ok(result)
}

async fn check_in(
    tasks: &FaceTasks,
    task: &Task,
    user_id: i64,
    request: &mut CheckInRequest,
) -> Result<Value, TaskFailure> {
    let retryable = |e: crate::store::StoreError| TaskFailure::retryable(e.to_string());
    let Some(user) = users::find_by_id(&tasks.db, user_id).await.map_err(retryable)?.filter(|user| user.is_active)
    else {
        return Ok(refused("inactive", "the account is deactivated"));
    };
    let Some(sealed) = templates::find(&tasks.db, user_id).await.map_err(retryable)? else {
        return Ok(refused("not_enrolled", "no face is enrolled for this account: ask an administrator to enroll you"));
    };
    let template = open_template(&tasks.sealer, &sealed).map_err(|e| TaskFailure::retryable(e.to_string()))?;
    let mut own = ExactIndex::new(Fusion::Mean);
    own.upsert(&user_id.to_string(), &template);
    let rule = tasks.face.one_to_one_rule();
    let engine = tasks.face.engine()?;
    let image = std::mem::take(&mut request.image);
    let keep_crop = tasks.keep_arrival_evidence;
    let liveness = LivenessCheck::new(tasks, request.liveness_mode, request.challenge.take());
    let decided = blocking(move || {
        let decoded =
            engine.decode_base64(&image).map_err(|e| TaskFailure::permanent(format!("invalid image: {e}")))?;
        Ok::<_, TaskFailure>(identify_live(&engine, &decoded, &own, &rule, &liveness)?.with_crop(&decoded, keep_crop))
    })
    .await??;
    let liveness = decided.face.as_ref().and_then(|face| face.liveness);
    let similarity = match &decided.decision {
        Some(Decision::Recognised { similarity, .. }) => Some(*similarity),
        Some(Decision::NotRecognised { similarity, .. }) => *similarity,
        None => None,
    };
    let mut result = json!({
        "employee_id": user.employee_id,
        "attendance_logged": false,
        "similarity_score": similarity.map(round4),
        "similarity_threshold": round4(rule.threshold.get()),
        "is_live": decided.is_live(),
        "anti_spoof_score": liveness.map(|l| round4(l.anti_spoof_score)),
        "site": {"id": request.site_id, "name": request.site, "distance_m": (request.distance_m * 10.0).round() / 10.0},
    });
    if let Some(active) = &decided.active {
        result["liveness"] = active.to_json();
    }
    if decided.user_id != Some(user_id) {
        let (reason, message) = match decided.reason {
            Some("spoof") => {
                ("spoof", "the selfie did not pass the liveness check: take it again, live, in good light")
            }
            Some("liveness_failed") => (
                "liveness_failed",
                "the liveness challenge was not passed: ask for a new one and follow its steps (reason_detail says which check failed)",
            ),
            Some("low_quality") => {
                ("low_quality", "the face is too small, blurred, dark or turned away: take it again")
            }
            Some("no_face") => ("no_face", "no face was found in the selfie"),
            Some("multiple_faces") => ("multiple_faces", "more than one face is in the selfie: take it alone"),
            _ => ("face_mismatch", "the selfie does not match the face enrolled for this account"),
        };
        result["reason"] = json!(reason);
        result["message"] = json!(message);
        if let Some(detail) = &decided.reason_detail {
            result["reason_detail"] = detail.clone();
        }
        return Ok(result);
    }
    let context = Context {
        task_id: &task.id,
        owner: &task.owner,
        claim: task.claim(),
        camera_id: None,
        location: Some(&request.site),
        captured_at: Utc::now(),
        source: "mobile",
    };
    let confidence = match &decided.decision {
        Some(Decision::Recognised { confidence, .. }) => *confidence,
        _ => 0.0,
    };
    let evidence = json!({
        "decision": "matched_own_template",
        "similarity_score": result["similarity_score"],
        "similarity_threshold": result["similarity_threshold"],
        "is_live": result["is_live"],
        "anti_spoof_score": result["anti_spoof_score"],
        "site_id": request.site_id,
        "site": request.site,
        "distance_m": result["site"]["distance_m"],
        "accuracy_m": request.accuracy_m,
        "phone_timestamp": request.captured_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    let scores = Scores { confidence, similarity, anti_spoof_score: liveness.map(|l| l.anti_spoof_score) };
    match log_arrival(tasks, &context, &user, scores, evidence, decided.face_crop).await? {
        Logged::New(record) | Logged::AlreadyByThisTask(record) => {
            result["attendance_logged"] = json!(true);
            result["attendance_id"] = json!(record.id);
            result["timestamp"] = json!(record.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        Logged::Cooldown { previous, .. } => {
            result["reason"] = json!("cooldown");
            result["message"] = json!("you are checked in already");
            result["last_logged_at"] = json!(previous.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
    }
    Ok(result)
}

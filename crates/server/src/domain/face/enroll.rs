//! Enrollment: turn 1–10 photos of a person into an encrypted template.

use rollcall_face::{EnrollOutcome, FaceRejection, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{FaceTasks, blocking, decode_payload, round4};
use crate::crypto::Sealer;
use crate::domain::audit::{self, AuditEvent, Requester};
use crate::events::{Event, EventKind};
use crate::queue::{Task, TaskFailure, begin_for_task};
use crate::store::{Exec, face_index_changes, templates, users};

/// The queued input of an enrollment.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub employee_id: String,
    /// `data:` URIs or raw base64.
    pub images: Vec<String>,
    pub quality_check: bool,
    /// Store the template even when the face matches another enrolled person (an admin's
    /// audited decision, e.g. for identical twins).
    #[serde(default)]
    pub allow_duplicate: bool,
    #[serde(default)]
    pub requested_by: Requester,
}

/// What happened to one photo.
#[derive(Debug, Serialize)]
struct ImageReport {
    index: usize,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
    faces: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anti_spoof_score: Option<f64>,
}

pub(super) async fn run(tasks: &FaceTasks, task: &Task) -> Result<Value, TaskFailure> {
    let mut request: EnrollRequest = decode_payload(task)?;
    let user = users::find_by_employee_id(&tasks.db, &request.employee_id)
        .await
        .map_err(|e| TaskFailure::retryable(e.to_string()))?
        .ok_or_else(|| TaskFailure::permanent(format!("no user with employee_id {}", request.employee_id)))?;
    if !user.is_active {
        return Err(TaskFailure::permanent(format!("user {} is deactivated", request.employee_id)));
    }
    let engine = tasks.face.engine()?;
    let images = std::mem::take(&mut request.images);
    let quality_check = request.quality_check;
    let (analysed, images) = blocking(move || (analyse(&engine, &images, quality_check), images)).await?;
    let (reports, template, detected) = analysed?;

    let quality_scores: Vec<f64> = reports.iter().filter_map(|r| r.quality_score).collect();
    let accepted = reports.iter().filter(|r| r.accepted).count();
    let Some(template) = template else {
        let result = json!({
            "success": false,
            "faces_detected": detected,
            "quality_scores": quality_scores,
            "template_created": false,
            "message": "no photo could be used; see images for the reasons",
            "images": reports,
        });
        audit_enrollment(&tasks.db, task, &request, &result).await?;
        return Ok(result);
    };
    let mut duplicate_of = None;
    if let Some(other) = tasks.face.duplicate_of(user.id, &template) {
        let other = users::find_by_id(&tasks.db, other).await.map_err(retryable)?;
        let other_id = other.map(|o| o.employee_id);
        if !request.allow_duplicate {
            let result = json!({
                "success": false,
                "faces_detected": detected,
                "quality_scores": quality_scores,
                "template_created": false,
                "reason": "duplicate_identity",
                "duplicate_of": other_id,
                "message": format!(
                    "these photos match {}, who is enrolled already: one person, one identity (an admin may enroll them anyway with allow_duplicate)",
                    other_id.as_deref().unwrap_or("another person"),
                ),
                "images": reports,
            });
            audit_enrollment(&tasks.db, task, &request, &result).await?;
            return Ok(result);
        }
        tracing::warn!(task.id = %task.id, "enrolling a face that matches another enrolled person (allow_duplicate)");
        duplicate_of = Some(other_id);
    }
    let used: Vec<&String> = reports.iter().filter(|r| r.accepted).filter_map(|r| images.get(r.index)).collect();
    let kept = if tasks.keep_enrollment_images { seal_photos(&tasks.sealer, user.id, &used) } else { Vec::new() };
    let event = Event {
        kind: EventKind::EnrollmentCompleted,
        key: format!("enrollment:{}", task.id),
        timestamp: chrono::Utc::now(),
        data: json!({"employee_id": user.employee_id, "name": user.full_name(), "photos_used": accepted}),
    };
    let sealed = tasks.sealer.seal(&template.to_bytes(), &crate::store::sealed::template_binding(user.id));
    let mut result = json!({
        "success": true,
        "faces_detected": detected,
        "quality_scores": quality_scores,
        "template_created": true,
        "message": format!("Face template created successfully from {accepted} of {} photos", reports.len()),
        "images": reports,
    });
    if let Some(other_id) = duplicate_of {
        result["duplicate_of"] = json!(other_id);
    }
    let stored = StoredTemplate { sealed, embeddings: template.embeddings().len() as i64, kept, event: &event };
    let Some(version) = store_template(tasks, task, user.id, stored, (&request, &result)).await? else {
        return Err(TaskFailure::permanent(format!("user {} was deactivated during the enrollment", user.employee_id)));
    };
    tasks.face.remember(user.id, &template, version);
    tasks.events.announce([event]);
    Ok(result)
}

/// Audits an enrollment's real outcome, in `db` (the template's transaction when one was
/// stored). A duplicate stored on an admin's `allow_duplicate` is flagged.
async fn audit_enrollment(
    db: &impl Exec,
    task: &Task,
    request: &EnrollRequest,
    result: &Value,
) -> Result<(), TaskFailure> {
    let details = json!({
        "employee_id": request.employee_id,
        "photos": result["images"].as_array().map_or(0, Vec::len),
        "template_created": result["template_created"],
        "reason": result.get("reason"),
        "duplicate_of": result.get("duplicate_of"),
        "allow_duplicate": request.allow_duplicate,
    });
    let event = if result["success"] == json!(true) {
        AuditEvent::success("enrollment", None, details)
    } else {
        AuditEvent::failure("enrollment", None, details)
    };
    audit::record_for_task(db, &task.id, &request.requested_by, event).await.map_err(retryable)
}

type Analysed = (Vec<ImageReport>, Option<Template>, usize);

/// Decodes and analyses every photo; with `quality_check` off, faces refused only for
/// quality are used anyway (they must still be single, live and embeddable).
fn analyse(
    engine: &rollcall_face::FaceEngine,
    images: &[String],
    quality_check: bool,
) -> Result<Analysed, TaskFailure> {
    let mut reports = Vec::with_capacity(images.len());
    let mut decoded = Vec::new();
    let mut positions = Vec::new();
    for (index, image) in images.iter().enumerate() {
        match engine.decode_base64(image) {
            Ok(image) => {
                decoded.push(image);
                positions.push(index);
            }
            Err(error) => reports.push(ImageReport {
                index,
                accepted: false,
                reason: Some("invalid_image".into()),
                detail: Some(json!(error.to_string())),
                faces: 0,
                quality_score: None,
                anti_spoof_score: None,
            }),
        }
    }
    let enrollment = engine.enroll(&decoded).map_err(|e| TaskFailure::retryable(e.to_string()))?;
    let mut embeddings = Vec::new();
    let mut detected = 0;
    for (outcome, index) in enrollment.outcomes.into_iter().zip(positions) {
        let (face, rejection) = match outcome {
            EnrollOutcome::Accepted { face } => (Some(face), None),
            EnrollOutcome::Rejected { reason: FaceRejection::LowQuality { .. }, face: Some(face) }
                if !quality_check =>
            {
                (Some(face), None)
            }
            EnrollOutcome::Rejected { reason, face } => (face, Some(reason)),
        };
        let faces = match (&rejection, &face) {
            (Some(FaceRejection::MultipleFaces { count }), _) => *count,
            (_, Some(_)) => 1,
            _ => 0,
        };
        detected += usize::from(faces > 0);
        let accepted = rejection.is_none() && face.as_ref().is_some_and(|f| f.embedding.is_some());
        if accepted && let Some(embedding) = face.as_ref().and_then(|f| f.embedding.clone()) {
            embeddings.push(embedding);
        }
        reports.push(ImageReport {
            index,
            accepted,
            reason: rejection.as_ref().map(|r| r.code().to_owned()),
            detail: rejection.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            faces,
            quality_score: face.as_ref().map(|f| round4(f.quality.score)),
            anti_spoof_score: face.as_ref().and_then(|f| f.liveness.map(|l| round4(l.anti_spoof_score))),
        });
    }
    reports.sort_by_key(|r| r.index);
    let template = if embeddings.is_empty() {
        None
    } else {
        Some(Template::new(embeddings).map_err(|e| TaskFailure::permanent(e.to_string()))?)
    };
    Ok((reports, template, detected))
}

/// What an enrollment stores, all or nothing.
struct StoredTemplate<'a> {
    sealed: Vec<u8>,
    embeddings: i64,
    /// Sealed photos to keep (none unless the deployment keeps them).
    kept: Vec<Vec<u8>>,
    event: &'a Event,
}

/// Stores the template, replaces the kept photos and records `enrollment_completed`, in
/// one transaction that commits only while the task's claim holds and the person is
/// active (an erasure or deactivation meanwhile ends the task instead). The change's `seq`
/// in the index feed; `None` when the person was deactivated.
async fn store_template(
    tasks: &FaceTasks,
    task: &Task,
    user_id: i64,
    stored: StoredTemplate<'_>,
    (request, result): (&EnrollRequest, &Value),
) -> Result<Option<i64>, TaskFailure> {
    let tx = begin_for_task(&tasks.db, Some(&task.claim())).await?;
    let person = users::lock(&tx, user_id).await.map_err(retryable)?;
    if !person.is_some_and(|p| p.is_active) {
        return Ok(None);
    }
    templates::upsert(&tx, user_id, stored.sealed, stored.embeddings).await.map_err(retryable)?;
    // The photos kept are always those of the current template.
    templates::replace_images(&tx, user_id, stored.kept).await.map_err(retryable)?;
    tasks.events.record(&tx, stored.event).await?;
    audit_enrollment(&tx, task, request, result).await?;
    let version = face_index_changes::record(&tx, user_id).await.map_err(retryable)?;
    tx.commit().await.map_err(retryable)?;
    Ok(Some(version))
}

/// Seals the photos the new template was made from (each was decoded from this payload already).
fn seal_photos(sealer: &Sealer, user_id: i64, used: &[&String]) -> Vec<Vec<u8>> {
    used.iter()
        .filter_map(|image| rollcall_face::decode::base64_payload(image).ok())
        .map(|bytes| sealer.seal(&bytes, &crate::store::sealed::enrollment_image_binding(user_id)))
        .collect()
}

fn retryable(error: impl std::fmt::Display) -> TaskFailure {
    TaskFailure::retryable(error.to_string())
}

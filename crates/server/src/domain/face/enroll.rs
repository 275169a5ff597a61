//! Enrollment: turn 1–10 photos of a person into an encrypted template.

use rollcall_face::{EnrollOutcome, FaceRejection, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{blocking, decode_payload, round4};
use crate::app::AppState;
use crate::events::{Event, EventKind};
use crate::queue::{Task, TaskFailure};
use crate::store::{templates, users};

/// The queued input of an enrollment.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub employee_id: String,
    /// `data:` URIs or raw base64.
    pub images: Vec<String>,
    pub quality_check: bool,
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

pub(super) async fn run(state: &AppState, task: &Task) -> Result<Value, TaskFailure> {
    let request: EnrollRequest = decode_payload(task)?;
    let user = users::find_by_employee_id(&state.db, &request.employee_id)
        .await
        .map_err(|e| TaskFailure::retryable(e.to_string()))?
        .ok_or_else(|| TaskFailure::permanent(format!("no user with employee_id {}", request.employee_id)))?;
    if !user.is_active {
        return Err(TaskFailure::permanent(format!("user {} is deactivated", request.employee_id)));
    }
    let engine = state.face.engine()?;
    let images = request.images;
    let quality_check = request.quality_check;
    let (analysed, images) = blocking(move || (analyse(&engine, &images, quality_check), images)).await?;
    let (reports, template, detected) = analysed?;

    let quality_scores: Vec<f64> = reports.iter().filter_map(|r| r.quality_score).collect();
    let accepted = reports.iter().filter(|r| r.accepted).count();
    let Some(template) = template else {
        return Ok(json!({
            "success": false,
            "faces_detected": detected,
            "quality_scores": quality_scores,
            "template_created": false,
            "message": "no photo could be used; see images for the reasons",
            "images": reports,
        }));
    };
    store_template(state, user.id, &template).await?;
    let used = reports.iter().filter(|r| r.accepted).filter_map(|r| images.get(r.index));
    keep_photos_used(state, user.id, used).await?;
    state.face.remember(user.id, &template);
    let event = Event {
        kind: EventKind::EnrollmentCompleted,
        key: format!("enrollment:{}", task.id),
        timestamp: chrono::Utc::now(),
        data: json!({"employee_id": user.employee_id, "name": user.full_name(), "photos_used": accepted}),
    };
    state.events.publish(event).await?;
    Ok(json!({
        "success": true,
        "faces_detected": detected,
        "quality_scores": quality_scores,
        "template_created": true,
        "message": format!("Face template created successfully from {accepted} of {} photos", reports.len()),
        "images": reports,
    }))
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

async fn store_template(state: &AppState, user_id: i64, template: &Template) -> Result<(), TaskFailure> {
    let sealed = state.sealer.seal(&template.to_bytes());
    let count = template.embeddings().len() as i64;
    templates::upsert(&state.db, user_id, sealed, count).await.map_err(|e| TaskFailure::retryable(e.to_string()))
}

/// Keeps the photos the new template was made from (sealed), when the deployment keeps
/// enrollment photos; either way the photos of an earlier template go with it.
async fn keep_photos_used<'a>(
    state: &AppState,
    user_id: i64,
    used: impl Iterator<Item = &'a String>,
) -> Result<(), TaskFailure> {
    let sealed = if state.config.keep_enrollment_images {
        // Every used photo was decoded from this payload already.
        used.filter_map(|image| rollcall_face::decode::base64_payload(image).ok())
            .map(|bytes| state.sealer.seal(&bytes))
            .collect()
    } else {
        Vec::new()
    };
    templates::replace_images(&state.db, user_id, sealed).await.map_err(|e| TaskFailure::retryable(e.to_string()))
}

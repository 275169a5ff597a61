//! An active liveness answer judged inside a verification task: the frames' faces found
//! and compared with the recognised face, then `rollcall_face::challenge::judge`.

use rollcall_face::challenge::{self, ChallengeFrame, ChallengePolicy, ChallengeVerdict};
use rollcall_face::{FaceAnalysis, FaceEngine};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::round4;
use crate::domain::liveness::Redeemed;
use crate::queue::TaskFailure;

/// The queued part of a verification that answers a challenge: redeemed at submission, so
/// the task holds the steps it is judged by (or why it cannot be).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    pub challenge_id: String,
    pub frames: Vec<String>,
    pub redeemed: Redeemed,
}

/// The outcome of the active check, as the result reports it.
#[derive(Debug, Clone)]
pub struct ActiveLiveness {
    pub challenge_id: String,
    /// The first check that failed (`challenge_expired`, `face_missing`, `planar_motion`, …).
    pub failure: Option<&'static str>,
    /// Index of the frame without a face, for `face_missing`.
    pub frame: Option<usize>,
    pub verdict: Option<ChallengeVerdict>,
}

impl ActiveLiveness {
    pub fn is_live(&self) -> bool {
        self.failure.is_none()
    }

    /// A failure that points at a presentation attack (a flat picture, or another face
    /// slipped in) rather than at a person who did not manage the steps in time.
    pub fn suggests_attack(&self) -> bool {
        matches!(self.failure, Some("planar_motion" | "identity_changed"))
    }

    pub fn to_json(&self) -> Value {
        let verdict = self.verdict.as_ref();
        json!({
            "mode": "active",
            "challenge_id": self.challenge_id,
            "passed": self.is_live(),
            "failure": self.failure,
            "frame": self.frame,
            "planar_residual": verdict.map(|v| round4(v.planar_residual)),
            "parallax": verdict.map(|v| round4(v.parallax)),
            "min_continuity": verdict.map(|v| round4(v.min_continuity)),
            "steps_followed": verdict.map(|v| v.steps_followed),
            "step_degrees": verdict.map(|v| v.step_degrees.iter().map(|d| round4(*d)).collect::<Vec<_>>()),
        })
    }
}

/// Judges `answer` against the face recognised in the photo (`recognised`; `None` when
/// the photo had no usable face). Runs on the blocking pool.
pub fn judge_answer(
    engine: &FaceEngine,
    recognised: Option<&FaceAnalysis>,
    answer: &ChallengeAnswer,
    policy: &ChallengePolicy,
) -> Result<ActiveLiveness, TaskFailure> {
    let mut outcome =
        ActiveLiveness { challenge_id: answer.challenge_id.clone(), failure: None, frame: None, verdict: None };
    let steps = match &answer.redeemed {
        Redeemed::Fresh { steps } => steps,
        Redeemed::Refused { failure } => {
            outcome.failure = Some(failure.code());
            return Ok(outcome);
        }
    };
    let Some(reference) = recognised.and_then(|face| face.embedding.as_ref()) else {
        outcome.failure = Some("face_missing");
        return Ok(outcome);
    };
    let mut frames = Vec::with_capacity(answer.frames.len());
    for (n, frame) in answer.frames.iter().enumerate() {
        match frame_face(engine, n, frame)? {
            Some(face) => frames.push(face),
            None => {
                outcome.failure = Some("face_missing");
                outcome.frame = Some(n);
                return Ok(outcome);
            }
        }
    }
    let verdict = challenge::judge(reference, &frames, steps, policy);
    outcome.failure = verdict.failure.map(|f| f.code());
    outcome.verdict = Some(verdict);
    Ok(outcome)
}

/// The largest face of frame `n`, with its pose, patch and embedding.
fn frame_face(engine: &FaceEngine, n: usize, frame: &str) -> Result<Option<ChallengeFrame>, TaskFailure> {
    let image =
        engine.decode_base64(frame).map_err(|e| TaskFailure::permanent(format!("invalid liveness frame {n}: {e}")))?;
    engine.challenge_frame(&image).map_err(|e| TaskFailure::retryable(e.to_string()))
}

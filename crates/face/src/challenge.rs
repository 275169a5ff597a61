//! Active liveness: a person asked to turn their head in a random order of directions, and
//! a sequence of frames judged from their faces.
//!
//! Three tests, in the order they are judged:
//! 1. **Continuity**: the face in every frame is the face that was recognised.
//! 2. **3-D motion**: a printed photo or a screen is a plane, and however it is tilted or
//!    turned, the picture of a plane moves by one homography (plane-to-plane projective
//!    map). A real head does not: its nose crosses its cheeks as it turns. Each frame's
//!    face is fitted onto the first frame's by the homography that best explains the
//!    pixels ([`crate::photometric`]); what it leaves unexplained must reach a minimum in
//!    some frame.
//! 3. **The steps**: head pose (yaw and pitch from the landmarks) moves, from the first
//!    frame, beyond a minimum angle in each requested direction, in the requested order.
//!
//! The nose parallax of YuNet's five landmarks (where the homography of the eyes and mouth
//! corners puts the nose) is reported too, but not judged by: on small faces the landmarks
//! stray on a warped picture by as much as a real 10–15° turn moves them (docs/ACCURACY.md).
//!
//! What this cannot tell apart from a live person: a video replay that happens to follow
//! the random steps (or a person who was filmed doing them on request), an injected camera
//! stream, a 3-D mask. See docs/ACCURACY.md for the measured error rates.

use serde::{Deserialize, Serialize};

use crate::embed::Embedding;
use crate::geometry::{Landmarks, Point};
use crate::photometric::{FacePatch, planar_residual};
use crate::quality::Pose;

/// One instruction of a challenge. Directions are the person's own, in frames as the
/// camera captures them (not mirrored like a selfie preview).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeStep {
    /// Turn the head to the person's left (the nose moves to the image's right).
    TurnLeft,
    /// Turn the head to the person's right.
    TurnRight,
    /// Tilt the head back.
    LookUp,
    /// Tilt the head down.
    LookDown,
}

impl ChallengeStep {
    /// Every step, in a fixed order.
    pub const ALL: [Self; 4] = [Self::TurnLeft, Self::TurnRight, Self::LookUp, Self::LookDown];

    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::TurnLeft => "turn_left",
            Self::TurnRight => "turn_right",
            Self::LookUp => "look_up",
            Self::LookDown => "look_down",
        }
    }

    /// The instruction shown to the person.
    pub fn instruction(self) -> &'static str {
        match self {
            Self::TurnLeft => "turn your head to your left",
            Self::TurnRight => "turn your head to your right",
            Self::LookUp => "look up",
            Self::LookDown => "look down",
        }
    }

    /// Parses a code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Degrees the head has moved in this step's direction from `start` to `pose` (yaw > 0
    /// is the person's left in an unmirrored frame, pitch > 0 is down).
    pub fn progress(self, start: &Pose, pose: &Pose) -> f32 {
        match self {
            Self::TurnLeft => pose.yaw_deg - start.yaw_deg,
            Self::TurnRight => start.yaw_deg - pose.yaw_deg,
            Self::LookUp => start.pitch_deg - pose.pitch_deg,
            Self::LookDown => pose.pitch_deg - start.pitch_deg,
        }
    }
}

/// The limits a challenge answer is judged by: server policy, never set by a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChallengePolicy {
    /// Degrees the head must move from the first frame for a step to count.
    pub min_turn_deg: f32,
    /// Largest share of a frame's face (`1 − ρ`) that the best homography from the first
    /// frame leaves unexplained, below which the motion is taken for a plane's.
    pub min_planar_residual: f32,
    /// Cosine similarity every frame's face must have with the recognised face.
    pub min_continuity: f32,
}

/// The face found in one frame of an answer.
#[derive(Debug, Clone)]
pub struct ChallengeFrame {
    /// Landmarks in the frame's pixels.
    pub landmarks: Landmarks,
    /// Head pose estimated from them.
    pub pose: Pose,
    /// The aligned face, for the photometric 3-D test.
    pub patch: FacePatch,
    /// The face's embedding.
    pub embedding: Embedding,
}

/// Why an answer was not judged live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeFailure {
    /// A frame shows another face than the one recognised.
    IdentityChanged,
    /// The face moved as a flat picture does (a print or a screen).
    PlanarMotion,
    /// The head did not turn as asked, in the order asked.
    MotionNotFollowed,
}

impl ChallengeFailure {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::IdentityChanged => "identity_changed",
            Self::PlanarMotion => "planar_motion",
            Self::MotionNotFollowed => "motion_not_followed",
        }
    }
}

/// The judgement of an answer, with the measurements it was made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChallengeVerdict {
    /// The first test that failed; `None` when the answer is live.
    pub failure: Option<ChallengeFailure>,
    /// Lowest cosine similarity of a frame's face to the recognised face.
    pub min_continuity: f32,
    /// Largest share of a frame's face one homography from the first frame leaves
    /// unexplained (`1 − ρ`).
    pub planar_residual: f32,
    /// Largest nose parallax of the landmarks between two frames, in inter-eye distances
    /// (reported, not judged by).
    pub parallax: f32,
    /// How many of the steps were followed, in order.
    pub steps_followed: usize,
    /// Largest movement (degrees) in each step's direction, in the order of the steps.
    pub step_degrees: Vec<f32>,
}

impl ChallengeVerdict {
    /// Whether every test passed.
    pub fn is_live(&self) -> bool {
        self.failure.is_none()
    }
}

/// Judges a sequence of frames (the first looking at the camera) against the steps asked
/// for, the face in each compared with `recognised`.
pub fn judge(
    recognised: &Embedding,
    frames: &[ChallengeFrame],
    steps: &[ChallengeStep],
    policy: &ChallengePolicy,
) -> ChallengeVerdict {
    let min_continuity = frames.iter().map(|f| recognised.cosine(&f.embedding)).reduce(f32::min).unwrap_or(0.0);
    let parallax = sequence_parallax(frames);
    let planar_residual = sequence_planar_residual(frames);
    let (steps_followed, step_degrees) = follow_steps(frames, steps, policy.min_turn_deg);
    let failure = if frames.is_empty() || min_continuity < policy.min_continuity {
        Some(ChallengeFailure::IdentityChanged)
    } else if planar_residual < policy.min_planar_residual {
        Some(ChallengeFailure::PlanarMotion)
    } else if steps_followed < steps.len() {
        Some(ChallengeFailure::MotionNotFollowed)
    } else {
        None
    };
    ChallengeVerdict { failure, min_continuity, planar_residual, parallax, steps_followed, step_degrees }
}

/// The largest [`planar_residual`] of a frame's face fitted onto the first frame's: the
/// first frame is where the steps start from, so every turn asked for is measured against
/// it. Frames whose fit fails count as no depth.
pub fn sequence_planar_residual(frames: &[ChallengeFrame]) -> f32 {
    let Some((first, rest)) = frames.split_first() else { return 0.0 };
    rest.iter().filter_map(|frame| planar_residual(&first.patch, &frame.patch)).fold(0.0, f32::max)
}

/// The largest [`parallax`] between two frames of the sequence: a head turned left in one
/// and right in another shows the parallax of both turns.
pub fn sequence_parallax(frames: &[ChallengeFrame]) -> f32 {
    let landmarks: Vec<Landmarks> = frames.iter().map(|f| f.landmarks).collect();
    largest_parallax(&landmarks)
}

/// The largest [`parallax`] between any two of `landmarks`, earlier to later.
pub fn largest_parallax(landmarks: &[Landmarks]) -> f32 {
    let mut largest = 0.0f32;
    for (i, a) in landmarks.iter().enumerate() {
        for b in &landmarks[i + 1..] {
            largest = largest.max(parallax(a, b));
        }
    }
    largest
}

/// Steps followed in order (each in a later frame than the one before) and the largest
/// movement seen in each step's direction.
fn follow_steps(frames: &[ChallengeFrame], steps: &[ChallengeStep], min_turn_deg: f32) -> (usize, Vec<f32>) {
    let Some(start) = frames.first().map(|f| f.pose) else { return (0, vec![0.0; steps.len()]) };
    let degrees =
        steps.iter().map(|step| frames.iter().map(|f| step.progress(&start, &f.pose)).fold(0.0, f32::max)).collect();
    let mut next = 1;
    let mut followed = 0;
    for step in steps {
        let Some(at) = (next..frames.len()).find(|&i| step.progress(&start, &frames[i].pose) >= min_turn_deg) else {
            break;
        };
        followed += 1;
        next = at + 1;
    }
    (followed, degrees)
}

/// How far the nose tip of `b` is from where the homography taking `a`'s eyes and mouth
/// corners onto `b`'s puts `a`'s nose tip, in `b`'s inter-eye distances: near 0 for any
/// two views of a flat picture, growing with the head's rotation between two views of a
/// real face. 0 when the four points do not fix a homography (a degenerate detection is
/// never evidence of depth).
pub fn parallax(a: &Landmarks, b: &Landmarks) -> f32 {
    let corners = |l: &Landmarks| [l.right_eye, l.left_eye, l.left_mouth, l.right_mouth];
    let scale = b.inter_eye_distance();
    if scale <= f32::EPSILON {
        return 0.0;
    }
    match homography(corners(a), corners(b)) {
        Some(h) => {
            let predicted = h.apply(a.nose);
            ((predicted.0 - f64::from(b.nose.x)).hypot(predicted.1 - f64::from(b.nose.y)) / f64::from(scale)) as f32
        }
        None => 0.0,
    }
}

/// A 3×3 projective map, row-major, `h[8] = 1`.
struct Homography([f64; 9]);

impl Homography {
    fn apply(&self, p: Point) -> (f64, f64) {
        let h = &self.0;
        let (x, y) = (f64::from(p.x), f64::from(p.y));
        let w = h[6] * x + h[7] * y + h[8];
        ((h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w)
    }
}

/// The homography taking four points onto four others (direct linear transform, solved
/// exactly by Gaussian elimination with partial pivoting), or `None` when three of them
/// are collinear.
fn homography(from: [Point; 4], to: [Point; 4]) -> Option<Homography> {
    let mut m = [[0.0f64; 9]; 8];
    for (k, (p, q)) in from.iter().zip(&to).enumerate() {
        let (x, y, u, v) = (f64::from(p.x), f64::from(p.y), f64::from(q.x), f64::from(q.y));
        m[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        m[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Relative to the data's own scale, so that pixels and unit coordinates behave alike.
    let magnitude = m.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs())).max(f64::MIN_POSITIVE);
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-9 * magnitude {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let factor = row[col] / pivot_row[col];
                for (value, pivot_value) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *value -= factor * pivot_value;
                }
            }
        }
    }
    let mut h = [1.0; 9];
    for (i, row) in m.iter().enumerate() {
        h[i] = row[8] / row[i];
    }
    Some(Homography(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photometric::synthetic;

    /// A generic head: eyes at ±1, mouth corners at ±0.8 one unit lower (z = −0.1), the
    /// nose tip 0.55 below the eyes and 0.8 in front (the proportions estimate_pose assumes).
    const HEAD: [[f32; 3]; 5] =
        [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.55, 0.8], [-0.8, 1.2, -0.1], [0.8, 1.2, -0.1]];

    /// Image-space landmarks of `HEAD` turned by `yaw` and `pitch` degrees (positive yaw
    /// is the person's left: the nose moves to the image's right), seen by a pinhole
    /// camera 12 units away with a focal length of 600 px.
    fn head(yaw: f32, pitch: f32) -> Landmarks {
        let (ys, yc) = yaw.to_radians().sin_cos();
        let (ps, pc) = pitch.to_radians().sin_cos();
        let points = HEAD.map(|[x, y, z]| {
            // Yaw about the vertical axis (toward the camera is −z in camera space).
            let (x, z) = (x * yc + z * ys, -x * ys + z * yc);
            // Pitch about the horizontal axis: looking down (pitch > 0) moves the nose down.
            let (y, z) = (y * pc + z * ps, -y * ps + z * pc);
            let depth = 12.0 - z;
            Point { x: 320.0 + 600.0 * x / depth, y: 240.0 + 600.0 * y / depth }
        });
        Landmarks::from_points(points)
    }

    /// `l` as seen through a homography (a print held at an angle).
    fn through(l: &Landmarks, h: [f64; 9]) -> Landmarks {
        let h = Homography(h);
        Landmarks::from_points(l.points().map(|p| {
            let (x, y) = h.apply(p);
            Point { x: x as f32, y: y as f32 }
        }))
    }

    fn frame(landmarks: Landmarks, patch: FacePatch, embedding: &Embedding) -> ChallengeFrame {
        let detection = crate::Detection {
            bbox: crate::BoundingBox { x: 0.0, y: 0.0, width: 1.0, height: 1.0 },
            landmarks,
            score: 1.0,
        };
        let pose = crate::quality::estimate_pose(&detection);
        ChallengeFrame { landmarks, pose, patch, embedding: embedding.clone() }
    }

    /// A frame of a real head turned by `yaw` and `pitch` degrees.
    fn live(yaw: f32, pitch: f32, embedding: &Embedding) -> ChallengeFrame {
        frame(head(yaw, pitch), synthetic::head(f64::from(yaw), f64::from(pitch)), embedding)
    }

    fn face(seed: u32) -> Embedding {
        let v: Vec<f32> = (0..crate::EMBEDDING_DIM).map(|i| ((i as u32 * 7 + seed * 13) % 17) as f32 - 8.0).collect();
        Embedding::new(&v).unwrap()
    }

    /// The synthetic heads' smooth texture leaves a small residual (≈ 0.006 at 15°), so
    /// the threshold here is below the server's.
    const POLICY: ChallengePolicy =
        ChallengePolicy { min_turn_deg: 15.0, min_planar_residual: 0.003, min_continuity: 0.5 };

    #[test]
    fn the_homography_of_four_points_maps_them_exactly() {
        let a = head(0.0, 0.0);
        let h = [1.1, 0.2, -30.0, -0.1, 0.9, 12.0, 0.0004, -0.0002, 1.0];
        let b = through(&a, h);
        let corners = |l: &Landmarks| [l.right_eye, l.left_eye, l.left_mouth, l.right_mouth];
        let fitted = homography(corners(&a), corners(&b)).unwrap();
        for (p, q) in a.points().iter().zip(b.points()) {
            let (x, y) = fitted.apply(*p);
            assert!((x - f64::from(q.x)).abs() < 1e-3 && (y - f64::from(q.y)).abs() < 1e-3, "{p:?} → {x},{y} vs {q:?}");
        }
        let line =
            [Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 1.0 }, Point { x: 2.0, y: 2.0 }, Point { x: 0.0, y: 5.0 }];
        assert!(homography(line, line).is_none(), "three collinear points fix no homography");
    }

    #[test]
    fn a_picture_moved_by_any_homography_shows_no_parallax() {
        let a = head(10.0, 5.0);
        for h in [
            [0.8, 0.3, 40.0, -0.25, 1.1, -20.0, 0.0008, 0.0003, 1.0],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, -0.0012, 0.0, 1.0],
            [0.5, -0.1, 100.0, 0.1, 0.6, 80.0, 0.0, 0.0009, 1.0],
        ] {
            assert!(parallax(&a, &through(&a, h)) < 1e-3);
        }
    }

    #[test]
    fn a_turning_head_shows_parallax_growing_with_the_angle() {
        let front = head(0.0, 0.0);
        let at = |yaw: f32, pitch: f32| parallax(&front, &head(yaw, pitch));
        assert!(at(5.0, 0.0) < at(15.0, 0.0) && at(15.0, 0.0) < at(30.0, 0.0));
        // About depth · sin(angle) / inter-eye distance: 0.85 · 0.26 / 2 for 15°.
        assert!(at(15.0, 0.0) > 0.09, "{}", at(15.0, 0.0));
        assert!(at(0.0, -15.0) > 0.09, "looking up: {}", at(0.0, -15.0));
        assert!(parallax(&head(15.0, 0.0), &head(-15.0, 0.0)) > 0.18, "left to right doubles it");
    }

    #[test]
    fn a_live_answer_follows_the_steps_in_order() {
        let me = face(1);
        let frames: Vec<_> = [(0.0, 0.0), (12.0, 0.0), (25.0, 0.0), (0.0, 0.0), (-25.0, 0.0), (0.0, 0.0)]
            .into_iter()
            .map(|(yaw, pitch)| live(yaw, pitch, &me))
            .collect();
        let verdict = judge(&me, &frames, &[ChallengeStep::TurnLeft, ChallengeStep::TurnRight], &POLICY);
        assert_eq!(verdict.failure, None, "{verdict:?}");
        assert_eq!(verdict.steps_followed, 2);
        let reversed = judge(&me, &frames, &[ChallengeStep::TurnRight, ChallengeStep::TurnLeft], &POLICY);
        assert_eq!(reversed.failure, Some(ChallengeFailure::MotionNotFollowed));
        assert_eq!(reversed.steps_followed, 1);
        let up = judge(&me, &frames, &[ChallengeStep::LookUp], &POLICY);
        assert_eq!(up.failure, Some(ChallengeFailure::MotionNotFollowed));
        let nod: Vec<_> = [0.0, -25.0, 0.0, 25.0].into_iter().map(|pitch| live(0.0, pitch, &me)).collect();
        assert!(judge(&me, &nod, &[ChallengeStep::LookUp, ChallengeStep::LookDown], &POLICY).is_live());
    }

    #[test]
    fn a_tilted_print_of_a_turned_head_is_planar() {
        let me = face(1);
        // A print of someone turned left, then the same print tilted and turned: the pose
        // read from it hardly moves, and its face moves by one homography. (The aligned
        // crops differ by what the landmarks' similarity leaves of the print's tilt.)
        let print = head(20.0, 0.0);
        let frames: Vec<_> = [
            ([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
            ([0.7, 0.0, 90.0, 0.0, 1.0, 0.0, -0.0009, 0.0, 1.0], [1.05, 0.0, -3.0, 0.0, 1.0, 0.0, 0.0009, 0.0, 1.0]),
            ([1.3, 0.0, -100.0, 0.0, 1.0, 0.0, 0.0009, 0.0, 1.0], [0.95, 0.0, 3.0, 0.0, 1.0, 0.0, -0.0009, 0.0, 1.0]),
        ]
        .into_iter()
        .map(|(image, crop)| frame(through(&print, image), synthetic::print(20.0, crop), &me))
        .collect();
        let verdict = judge(&me, &frames, &[ChallengeStep::TurnLeft, ChallengeStep::TurnRight], &POLICY);
        assert_eq!(verdict.failure, Some(ChallengeFailure::PlanarMotion), "{verdict:?}");
    }

    #[test]
    fn another_face_in_any_frame_is_an_identity_change() {
        let (me, other) = (face(1), face(2));
        assert!(me.cosine(&other) < POLICY.min_continuity);
        let mut frames: Vec<_> = [0.0, 25.0, -25.0].into_iter().map(|yaw| live(yaw, 0.0, &me)).collect();
        frames[2].embedding = other;
        let verdict = judge(&me, &frames, &[ChallengeStep::TurnLeft, ChallengeStep::TurnRight], &POLICY);
        assert_eq!(verdict.failure, Some(ChallengeFailure::IdentityChanged));
        assert_eq!(
            judge(&me, &[], &[ChallengeStep::TurnLeft], &POLICY).failure,
            Some(ChallengeFailure::IdentityChanged)
        );
    }

    #[test]
    fn steps_have_stable_codes() {
        for step in ChallengeStep::ALL {
            assert_eq!(ChallengeStep::from_code(step.code()), Some(step));
            assert_eq!(serde_json::to_value(step).unwrap(), step.code());
        }
        assert_eq!(ChallengeStep::from_code("spin"), None);
    }
}

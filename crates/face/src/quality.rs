//! Face quality: is this face good enough to identify someone reliably?
//!
//! Four components, each scored in [0, 1]:
//! - **size**: inter-eye distance in the original photo (below ~20 px SFace sees an
//!   upscaled blur);
//! - **sharpness**: variance of the 4-neighbour Laplacian of the aligned 112×112 grey crop;
//! - **exposure**: mean brightness and share of clipped pixels in the face's centre;
//! - **pose**: yaw, pitch and roll estimated from the five landmarks.
//!
//! The overall score is the geometric mean of the four. Independently, each component has
//! a hard limit in [`QualityConfig`]; a face past any limit gets a [`QualityIssue`], and a
//! face with issues should not be used to identify or enroll anyone.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::align::ALIGNED_SIZE;
use crate::detect::Detection;

/// Limits below which a face is refused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Minimum distance between the eye centres, in original-image pixels.
    pub min_inter_eye_px: f32,
    /// Minimum Laplacian variance of the aligned crop.
    pub min_sharpness: f32,
    /// Minimum mean brightness (0–255) of the face centre.
    pub min_brightness: f32,
    /// Maximum mean brightness (0–255) of the face centre.
    pub max_brightness: f32,
    /// Maximum share of the face centre that is clipped to black or white.
    pub max_clipped_fraction: f32,
    /// Maximum estimated |yaw| in degrees.
    pub max_yaw_deg: f32,
    /// Maximum estimated |pitch| in degrees.
    pub max_pitch_deg: f32,
    /// Maximum |roll| in degrees (alignment corrects roll, but a strong tilt often comes
    /// with other distortions).
    pub max_roll_deg: f32,
    /// Minimum share of the face box inside the photo.
    pub min_visible_fraction: f32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            min_inter_eye_px: 16.0,
            min_sharpness: 15.0,
            min_brightness: 40.0,
            max_brightness: 220.0,
            max_clipped_fraction: 0.3,
            max_yaw_deg: 60.0,
            max_pitch_deg: 40.0,
            max_roll_deg: 45.0,
            min_visible_fraction: 0.8,
        }
    }
}

/// Why a face's quality is too low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityIssue {
    /// The face is too small (eyes too close together in pixels).
    TooSmall,
    /// The face is out of focus or motion-blurred.
    Blurry,
    /// The face is too dark.
    TooDark,
    /// The face is too bright or washed out.
    Overexposed,
    /// The head is turned or tilted too far (yaw, pitch or roll).
    TurnedAway,
    /// Part of the face is outside the photo.
    CutOff,
}

impl QualityIssue {
    /// Stable snake_case code (`too_small`, `blurry`, ...).
    pub fn code(self) -> &'static str {
        match self {
            QualityIssue::TooSmall => "too_small",
            QualityIssue::Blurry => "blurry",
            QualityIssue::TooDark => "too_dark",
            QualityIssue::Overexposed => "overexposed",
            QualityIssue::TurnedAway => "turned_away",
            QualityIssue::CutOff => "cut_off",
        }
    }
}

/// Estimated head pose in degrees (0 = facing the camera). Signs: yaw > 0 when the nose
/// points toward the image's right, pitch > 0 when the head tilts down, roll > 0 when
/// the eye line rises to the image's left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Left-right rotation.
    pub yaw_deg: f32,
    /// Up-down rotation.
    pub pitch_deg: f32,
    /// In-plane tilt.
    pub roll_deg: f32,
}

/// Quality measurements and scores of one face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Overall score in [0, 1]: geometric mean of the four component scores.
    pub score: f32,
    /// Size score in [0, 1].
    pub size_score: f32,
    /// Sharpness score in [0, 1].
    pub sharpness_score: f32,
    /// Exposure score in [0, 1].
    pub exposure_score: f32,
    /// Pose score in [0, 1].
    pub pose_score: f32,
    /// Distance between the eyes in original-image pixels.
    pub inter_eye_px: f32,
    /// Laplacian variance of the aligned grey crop.
    pub sharpness: f32,
    /// Mean brightness (0–255) of the face centre.
    pub brightness: f32,
    /// Share of the face centre clipped to ≤ 5 or ≥ 250.
    pub clipped_fraction: f32,
    /// Share of the face box inside the photo.
    pub visible_fraction: f32,
    /// Estimated head pose.
    pub pose: Pose,
    /// Limits this face breaks; empty when it is good enough.
    pub issues: Vec<QualityIssue>,
}

impl Quality {
    /// Whether the face passed every limit.
    pub fn is_acceptable(&self) -> bool {
        self.issues.is_empty()
    }
}

fn ramp(v: f32, zero: f32, one: f32) -> f32 {
    ((v - zero) / (one - zero)).clamp(0.0, 1.0)
}

/// How far the nose tip stands in front of the eyes, in half inter-eye distances. Generic
/// 3D face models used by head-pose solvers put it near 0.8 (tip ≈ 25 mm in front of the
/// pupils, which sit ≈ 31 mm either side of the nose).
pub const NOSE_DEPTH_RATIO: f32 = 0.8;

/// Estimates the head pose from the five landmarks.
///
/// The face is first de-rotated by the roll (angle of the eye line). Yaw comes from where
/// the nose tip sits between the eyes: with the eyes at ±w and the tip [`NOSE_DEPTH_RATIO`]·w
/// in front of them, turning the head by θ moves the tip to `(2·r − 1) = ratio · tan θ` of
/// the half eye span (r = 0.5 when frontal), so `θ = atan((2·r − 1) / ratio)`. Pitch comes
/// from where the tip sits between the eye line and the mouth line, relative to the ArcFace
/// template's 0.49 (`asin(2.5·(q − 0.49))`). Rough, but monotone and cheap.
pub fn estimate_pose(detection: &Detection) -> Pose {
    let l = &detection.landmarks;
    let (ex, ey) = (l.left_eye.x - l.right_eye.x, l.left_eye.y - l.right_eye.y);
    let roll = ey.atan2(ex);
    let (c, s) = (roll.cos(), roll.sin());
    let rot = |p: crate::Point| (c * p.x + s * p.y, -s * p.x + c * p.y);
    let (rex, rey) = rot(l.right_eye);
    let (lex, ley) = rot(l.left_eye);
    let (nx, ny) = rot(l.nose);
    let (_, rmy) = rot(l.right_mouth);
    let (_, lmy) = rot(l.left_mouth);
    let eye_width = (lex - rex).abs().max(1e-3);
    let r = (nx - rex.min(lex)) / eye_width;
    let yaw = ((2.0 * r - 1.0) / NOSE_DEPTH_RATIO).atan();
    let eye_y = (rey + ley) / 2.0;
    let mouth_y = (rmy + lmy) / 2.0;
    let q = (ny - eye_y) / (mouth_y - eye_y).abs().max(1e-3);
    let pitch = (2.5 * (q - 0.49)).clamp(-1.0, 1.0).asin();
    Pose { yaw_deg: yaw.to_degrees(), pitch_deg: pitch.to_degrees(), roll_deg: -roll.to_degrees() }
}

/// Laplacian variance and exposure of the aligned crop's grey centre.
fn crop_stats(aligned: &RgbImage) -> (f32, f32, f32) {
    let n = ALIGNED_SIZE as usize;
    let grey: Vec<f32> = aligned
        .pixels()
        .map(|p| 0.299 * f32::from(p.0[0]) + 0.587 * f32::from(p.0[1]) + 0.114 * f32::from(p.0[2]))
        .collect();
    if grey.len() != n * n {
        return (0.0, 0.0, 1.0);
    }
    // The face centre: eyes to mouth, cheek to cheek (template x 24..88, y 32..104).
    let (x0, x1, y0, y1) = (24, 88, 32, 104);
    let (mut sum, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0usize);
    let (mut bright, mut clipped, mut px) = (0.0f64, 0usize, 0usize);
    for y in y0..y1 {
        for x in x0..x1 {
            let i = y * n + x;
            let lap = grey[i - 1] + grey[i + 1] + grey[i - n] + grey[i + n] - 4.0 * grey[i];
            sum += f64::from(lap);
            sum_sq += f64::from(lap) * f64::from(lap);
            count += 1;
            let g = grey[i];
            bright += f64::from(g);
            if g <= 5.0 || g >= 250.0 {
                clipped += 1;
            }
            px += 1;
        }
    }
    let mean = sum / count as f64;
    let variance = (sum_sq / count as f64 - mean * mean).max(0.0);
    (variance as f32, (bright / px as f64) as f32, clipped as f32 / px as f32)
}

/// Share of `bbox` inside a `width × height` image.
fn visible_fraction(detection: &Detection, width: u32, height: u32) -> f32 {
    let b = detection.bbox;
    let x0 = b.x.max(0.0);
    let y0 = b.y.max(0.0);
    let x1 = (b.x + b.width).min(width as f32);
    let y1 = (b.y + b.height).min(height as f32);
    let inside = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    if b.area() <= 0.0 { 0.0 } else { (inside / b.area()).clamp(0.0, 1.0) }
}

/// Assesses one face from its detection (original-image coordinates), the photo's size and
/// its aligned 112×112 crop.
pub fn assess(detection: &Detection, image_size: (u32, u32), aligned: &RgbImage, config: &QualityConfig) -> Quality {
    let inter_eye_px = detection.landmarks.inter_eye_distance();
    let (sharpness, brightness, clipped_fraction) = crop_stats(aligned);
    let pose = estimate_pose(detection);
    let visible = visible_fraction(detection, image_size.0, image_size.1);

    let size_score = ramp(inter_eye_px, config.min_inter_eye_px * 0.5, config.min_inter_eye_px * 2.5);
    let sharpness_score = sharpness / (sharpness + 4.0 * config.min_sharpness.max(1e-3));
    let mid = (config.min_brightness + config.max_brightness) / 2.0;
    let half = ((config.max_brightness - config.min_brightness) / 2.0).max(1.0);
    let exposure_score = (1.0 - ((brightness - mid).abs() / half).powi(4)).clamp(0.0, 1.0)
        * (1.0 - clipped_fraction / config.max_clipped_fraction.max(1e-3)).clamp(0.0, 1.0).sqrt();
    let pose_score = (1.0 - (pose.yaw_deg / 90.0).powi(2)).clamp(0.0, 1.0)
        * (1.0 - (pose.pitch_deg / 90.0).powi(2)).clamp(0.0, 1.0)
        * (1.0 - (pose.roll_deg / 180.0).powi(2)).clamp(0.0, 1.0)
        * visible;
    let score = (size_score * sharpness_score * exposure_score * pose_score).max(0.0).powf(0.25);

    let mut issues = Vec::new();
    if inter_eye_px < config.min_inter_eye_px {
        issues.push(QualityIssue::TooSmall);
    }
    if sharpness < config.min_sharpness {
        issues.push(QualityIssue::Blurry);
    }
    if brightness < config.min_brightness {
        issues.push(QualityIssue::TooDark);
    }
    if brightness > config.max_brightness {
        issues.push(QualityIssue::Overexposed);
    }
    if clipped_fraction > config.max_clipped_fraction
        && brightness >= config.min_brightness
        && brightness <= config.max_brightness
    {
        issues.push(if brightness < mid { QualityIssue::TooDark } else { QualityIssue::Overexposed });
    }
    if pose.yaw_deg.abs() > config.max_yaw_deg
        || pose.pitch_deg.abs() > config.max_pitch_deg
        || pose.roll_deg.abs() > config.max_roll_deg
    {
        issues.push(QualityIssue::TurnedAway);
    }
    if visible < config.min_visible_fraction {
        issues.push(QualityIssue::CutOff);
    }
    Quality {
        score: if score.is_finite() { score } else { 0.0 },
        size_score,
        sharpness_score,
        exposure_score,
        pose_score,
        inter_eye_px,
        sharpness,
        brightness,
        clipped_fraction,
        visible_fraction: visible,
        pose,
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::{ARCFACE_TEMPLATE, align_face};
    use crate::{BoundingBox, Landmarks, Point};
    use image::Rgb;

    fn frontal(scale: f32) -> Detection {
        Detection {
            bbox: BoundingBox { x: 0.0, y: 0.0, width: 112.0 * scale, height: 112.0 * scale },
            landmarks: Landmarks::from_points(ARCFACE_TEMPLATE.map(|p| Point { x: p.x * scale, y: p.y * scale })),
            score: 0.95,
        }
    }

    fn textured(level: u8, amplitude: i32) -> RgbImage {
        RgbImage::from_fn(448, 448, |x, y| {
            let v =
                (i32::from(level) + if (x / 3 + y / 3) % 2 == 0 { amplitude } else { -amplitude }).clamp(0, 255) as u8;
            Rgb([v, v, v])
        })
    }

    #[test]
    fn a_frontal_sharp_face_passes() {
        let d = frontal(4.0);
        let img = textured(128, 40);
        let aligned = align_face(&img, &d.landmarks).unwrap();
        let q = assess(&d, (448, 448), &aligned, &QualityConfig::default());
        assert!(q.is_acceptable(), "{q:?}");
        assert!(q.pose.yaw_deg.abs() < 2.0 && q.pose.pitch_deg.abs() < 2.0 && q.pose.roll_deg.abs() < 1.0, "{q:?}");
        assert!(q.score > 0.7, "{q:?}");
    }

    /// Eyes, nose tip and mouth of a generic head (mm, y down, z toward the camera), turned
    /// by `yaw_deg` and projected orthographically.
    fn turned_head(yaw_deg: f32) -> Detection {
        let (s, c) = yaw_deg.to_radians().sin_cos();
        let eye_half_span = 31.0;
        let project = |x: f32, y: f32, z: f32| Point { x: 200.0 + 3.0 * (x * c + z * s), y: 150.0 + 3.0 * y };
        let points = [
            project(-eye_half_span, 0.0, 0.0),
            project(eye_half_span, 0.0, 0.0),
            project(0.0, 35.0, NOSE_DEPTH_RATIO * eye_half_span),
            project(-25.0, 70.0, 5.0),
            project(25.0, 70.0, 5.0),
        ];
        Detection {
            bbox: BoundingBox { x: 80.0, y: 50.0, width: 240.0, height: 300.0 },
            landmarks: Landmarks::from_points(points),
            score: 0.95,
        }
    }

    #[test]
    fn yaw_follows_the_head_turn() {
        for yaw in [-50.0f32, -30.0, -10.0, 0.0, 20.0, 45.0, 59.0] {
            let estimated = estimate_pose(&turned_head(yaw)).yaw_deg;
            assert!((estimated - yaw).abs() < 0.5, "turned {yaw}°, estimated {estimated}°");
        }
    }

    #[test]
    fn flat_dark_small_turned_faces_have_reasons() {
        let mut d = frontal(0.3);
        let img = textured(10, 0);
        let aligned = align_face(&img, &d.landmarks).unwrap();
        let q = assess(&d, (448, 448), &aligned, &QualityConfig::default());
        for issue in [QualityIssue::TooSmall, QualityIssue::Blurry, QualityIssue::TooDark] {
            assert!(q.issues.contains(&issue), "{issue:?} missing in {q:?}");
        }
        assert!(q.score < 0.3);
        // Nose tip half an eye span beyond the left eye: near profile.
        d = frontal(4.0);
        let eye_span = d.landmarks.left_eye.x - d.landmarks.right_eye.x;
        d.landmarks.nose.x = d.landmarks.left_eye.x + eye_span / 2.0;
        let q =
            assess(&d, (448, 448), &align_face(&textured(128, 40), &d.landmarks).unwrap(), &QualityConfig::default());
        assert!(q.issues.contains(&QualityIssue::TurnedAway), "{q:?}");
        assert!(q.pose.yaw_deg > 60.0, "{q:?}");
        // Box half outside the photo.
        d = frontal(4.0);
        d.bbox.x = -300.0;
        let q =
            assess(&d, (448, 448), &align_face(&textured(128, 40), &d.landmarks).unwrap(), &QualityConfig::default());
        assert!(q.issues.contains(&QualityIssue::CutOff));
        assert_eq!(QualityIssue::TurnedAway.code(), "turned_away");
    }
}

//! Face detection with YuNet (`face_detection_yunet_2023mar.onnx`).
//!
//! The photo is scaled down so its longest side is at most
//! [`DetectorConfig::max_input_side`] (never up), padded with black to a multiple of 32
//! at the right and bottom, and fed to YuNet as BGR values in 0–255, as OpenCV's
//! `FaceDetectorYN` does. YuNet's anchor-free heads (strides 8, 16, 32) are decoded as in
//! OpenCV's `face_detect.cpp`: score = √(cls·obj), centre = (cell + offset)·stride,
//! size = exp(log-size)·stride, landmarks = (cell + offset)·stride. Non-maximum
//! suppression follows, and faces are returned largest first, in original image
//! coordinates. Boxes are not clipped to the image: a box reaching past the edge tells the
//! quality stage that the face is cut off.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, InferenceModel, NdTensor};
use crate::{BoundingBox, Error, Landmarks, Point, Result};

/// File name of the detector model in the models directory.
pub const YUNET_FILE: &str = "face_detection_yunet_2023mar.onnx";

const STRIDES: [usize; 3] = [8, 16, 32];
/// Plans kept for distinct input sizes before the cache is reset.
const MAX_CACHED_PLANS: usize = 24;

/// Detector settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Minimum face score in [0, 1] (OpenCV Zoo's default: 0.9).
    pub score_threshold: f32,
    /// IoU above which the weaker of two overlapping boxes is dropped (0.3).
    pub nms_threshold: f32,
    /// Longest side of the detector input in pixels; larger photos are scaled down (640).
    pub max_input_side: u32,
    /// Most faces kept after NMS.
    pub top_k: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self { score_threshold: 0.9, nms_threshold: 0.3, max_input_side: 640, top_k: 5000 }
    }
}

/// One detected face in original image coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Face box (may extend past the image edges).
    pub bbox: BoundingBox,
    /// YuNet's five landmarks.
    pub landmarks: Landmarks,
    /// Detector confidence in [0, 1].
    pub score: f32,
}

/// YuNet, with one prepared plan per input size.
#[derive(Debug)]
pub struct Detector {
    backend: Arc<dyn Backend>,
    path: PathBuf,
    config: DetectorConfig,
    plans: Mutex<HashMap<(usize, usize), Arc<dyn InferenceModel>>>,
}

/// How a photo maps onto the detector input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputGeometry {
    /// Scaled (unpadded) width and height.
    pub scaled: (u32, u32),
    /// Padded width and height (multiples of 32).
    pub padded: (usize, usize),
}

impl InputGeometry {
    /// Chooses the detector input for a `width × height` photo.
    pub fn for_image(width: u32, height: u32, max_side: u32) -> Self {
        let longest = width.max(height).max(1);
        let scale = (f64::from(max_side) / f64::from(longest)).min(1.0);
        let sw = ((f64::from(width) * scale).round() as u32).max(1);
        let sh = ((f64::from(height) * scale).round() as u32).max(1);
        let pad = |v: u32| (v as usize).div_ceil(32).max(1) * 32;
        Self { scaled: (sw, sh), padded: (pad(sw), pad(sh)) }
    }
}

impl Detector {
    /// Loads YuNet from `path` and prepares it for the default 640×640 input.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] or [`Error::Model`].
    pub fn load(backend: Arc<dyn Backend>, path: &Path, config: DetectorConfig) -> Result<Self> {
        if !(0.0..=1.0).contains(&config.score_threshold) || !(0.0..=1.0).contains(&config.nms_threshold) {
            return Err(Error::InvalidArgument("detector thresholds must be in [0, 1]".into()));
        }
        if config.max_input_side < 32 {
            return Err(Error::InvalidArgument("detector max_input_side must be at least 32".into()));
        }
        let detector = Self { backend, path: path.to_path_buf(), config, plans: Mutex::default() };
        let side = config.max_input_side.div_ceil(32) as usize * 32;
        detector.plan((side, side))?;
        Ok(detector)
    }

    /// The settings in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    fn plan(&self, (w, h): (usize, usize)) -> Result<Arc<dyn InferenceModel>> {
        if let Some(plan) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(&(w, h)) {
            return Ok(plan.clone());
        }
        // Prepared outside the lock: two threads may both prepare a new size once.
        let plan = self.backend.load_onnx(&self.path, &[vec![1, 3, h, w]])?;
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= MAX_CACHED_PLANS {
            plans.clear();
        }
        plans.insert((w, h), plan.clone());
        Ok(plan)
    }

    /// Finds all faces, largest first.
    ///
    /// # Errors
    /// [`Error::Model`] when inference fails.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let geometry = InputGeometry::for_image(image.width(), image.height(), self.config.max_input_side);
        let input = preprocess(image, &geometry);
        let plan = self.plan(geometry.padded)?;
        let outputs = plan.run(&[input])?;
        let sx = image.width() as f32 / geometry.scaled.0 as f32;
        let sy = image.height() as f32 / geometry.scaled.1 as f32;
        let mut faces = decode_outputs(&outputs, geometry.padded, self.config.score_threshold)?;
        faces = nms(faces, self.config.nms_threshold, self.config.top_k);
        for f in &mut faces {
            f.bbox = BoundingBox {
                x: f.bbox.x * sx,
                y: f.bbox.y * sy,
                width: f.bbox.width * sx,
                height: f.bbox.height * sy,
            };
            f.landmarks = Landmarks::from_points(f.landmarks.points().map(|p| Point { x: p.x * sx, y: p.y * sy }));
        }
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(faces)
    }
}

/// Scales, pads and converts to the NCHW BGR tensor YuNet expects.
fn preprocess(image: &RgbImage, geometry: &InputGeometry) -> NdTensor {
    let (sw, sh) = geometry.scaled;
    let resized;
    let src = if (sw, sh) == image.dimensions() {
        image
    } else {
        resized = area_resize(image, sw, sh);
        &resized
    };
    let (pw, ph) = geometry.padded;
    let plane = pw * ph;
    let mut data = vec![0.0f32; 3 * plane];
    for (x, y, p) in src.enumerate_pixels() {
        let i = y as usize * pw + x as usize;
        data[i] = f32::from(p.0[2]);
        data[plane + i] = f32::from(p.0[1]);
        data[2 * plane + i] = f32::from(p.0[0]);
    }
    NdTensor { shape: vec![1, 3, ph, pw], data }
}

/// Axis weights for area resampling: for each output index, the source indices it covers
/// and the share of each (summing to 1).
fn area_weights(src: u32, dst: u32) -> Vec<Vec<(usize, f32)>> {
    let scale = f64::from(src) / f64::from(dst);
    (0..dst)
        .map(|o| {
            let (start, end) = (f64::from(o) * scale, (f64::from(o) + 1.0) * scale);
            let mut taps = Vec::new();
            let mut i = start.floor() as usize;
            while (i as f64) < end && i < src as usize {
                let cover = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                if cover > 1e-9 {
                    taps.push((i, (cover / scale) as f32));
                }
                i += 1;
            }
            taps
        })
        .collect()
}

/// Downscales by averaging each output pixel's exact footprint (OpenCV's `INTER_AREA`):
/// no aliasing, and the detector sees what OpenCV's reference pipeline sees.
///
/// Rows first: each output row is the weighted sum of a few whole source rows, a loop
/// over contiguous bytes that the compiler vectorises, and only the `height` rows that
/// result are then resampled across, pixel by pixel. Done the other way round, the slow
/// per-pixel pass would run over every source row of a multi-megapixel photo.
pub fn area_resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = image.dimensions();
    let (wx, wy) = (area_weights(sw, width), area_weights(sh, height));
    let raw = image.as_raw();
    let source_stride = sw as usize * 3;
    let mut row = vec![0.0f32; source_stride];
    let mut out = Vec::with_capacity(height as usize * width as usize * 3);
    for taps in &wy {
        row.fill(0.0);
        for &(j, w) in taps {
            for (acc, &v) in row.iter_mut().zip(&raw[j * source_stride..(j + 1) * source_stride]) {
                *acc += w * f32::from(v);
            }
        }
        for taps in &wx {
            let mut acc = [0.0f32; 3];
            for &(i, w) in taps {
                for k in 0..3 {
                    acc[k] += w * row[i * 3 + k];
                }
            }
            // Non-negative, so adding a half and truncating rounds to nearest (and is not
            // a call into libm, as `round` is on baseline x86-64).
            out.extend(acc.map(|a| (a.clamp(0.0, 255.0) + 0.5) as u8));
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer has width × height × 3 bytes")
}

/// Decodes YuNet's 12 outputs (cls, obj, bbox, kps for each stride) in input coordinates.
fn decode_outputs(outputs: &[NdTensor], (pw, ph): (usize, usize), threshold: f32) -> Result<Vec<Detection>> {
    if outputs.len() != 12 {
        return Err(Error::Model(format!("YuNet returned {} outputs, expected 12", outputs.len())));
    }
    let mut faces = Vec::new();
    for (i, &stride) in STRIDES.iter().enumerate() {
        let (cols, rows) = (pw / stride, ph / stride);
        let n = cols * rows;
        let (cls, obj, bbox, kps) =
            (&outputs[i].data, &outputs[i + 3].data, &outputs[i + 6].data, &outputs[i + 9].data);
        if cls.len() != n || obj.len() != n || bbox.len() != 4 * n || kps.len() != 10 * n {
            return Err(Error::Model(format!("YuNet output sizes do not match a {pw}x{ph} input at stride {stride}")));
        }
        let s = stride as f32;
        for idx in 0..n {
            let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
            if score < threshold {
                continue;
            }
            let (r, c) = ((idx / cols) as f32, (idx % cols) as f32);
            let b = &bbox[4 * idx..4 * idx + 4];
            let cx = (c + b[0]) * s;
            let cy = (r + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let k = &kps[10 * idx..10 * idx + 10];
            let points = std::array::from_fn(|j| Point { x: (k[2 * j] + c) * s, y: (k[2 * j + 1] + r) * s });
            faces.push(Detection {
                bbox: BoundingBox { x: cx - w / 2.0, y: cy - h / 2.0, width: w, height: h },
                landmarks: Landmarks::from_points(points),
                score,
            });
        }
    }
    Ok(faces)
}

/// Greedy non-maximum suppression by score, keeping at most `top_k` boxes.
pub fn nms(mut faces: Vec<Detection>, iou_threshold: f32, top_k: usize) -> Vec<Detection> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for f in faces {
        if kept.len() >= top_k {
            break;
        }
        if kept.iter().all(|k| k.bbox.iou(&f.bbox) <= iou_threshold) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        let p = Point { x: 0.0, y: 0.0 };
        Detection {
            bbox: BoundingBox { x, y: 0.0, width: 10.0, height: 10.0 },
            landmarks: Landmarks::from_points([p; 5]),
            score,
        }
    }

    #[test]
    fn input_geometry_scales_down_and_pads_to_32() {
        let g = InputGeometry::for_image(910, 1137, 640);
        assert_eq!(g.scaled, (512, 640));
        assert_eq!(g.padded, (512, 640));
        let g = InputGeometry::for_image(640, 480, 640);
        assert_eq!(g, InputGeometry { scaled: (640, 480), padded: (640, 480) });
        let g = InputGeometry::for_image(300, 200, 640);
        assert_eq!(g, InputGeometry { scaled: (300, 200), padded: (320, 224) });
        let g = InputGeometry::for_image(5, 5, 640);
        assert_eq!(g.padded, (32, 32));
    }

    #[test]
    fn area_resize_averages_footprints() {
        let img = RgbImage::from_fn(4, 2, |x, _| image::Rgb([if x % 2 == 0 { 0 } else { 200 }, 10, 255]));
        let out = area_resize(&img, 2, 1);
        assert_eq!(out.dimensions(), (2, 1));
        assert_eq!(out.get_pixel(0, 0).0, [100, 10, 255]);
        let out = area_resize(&img, 3, 2);
        // Output pixel 0 covers source 0 fully and a third of source 1.
        assert_eq!(out.get_pixel(0, 0).0[0], 50);
    }

    /// Against the definition, in f64: each output pixel is the mean of the source area
    /// under it, to within rounding, at a ratio that is not a whole number either way.
    #[test]
    fn area_resize_is_the_mean_over_each_footprint() {
        let (sw, sh, w, h) = (301u32, 173u32, 64u32, 50u32);
        let img = RgbImage::from_fn(sw, sh, |x, y| {
            let v = (x * 7919 + y * 104_729) ^ (x * y);
            image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
        });
        let out = area_resize(&img, w, h);
        let (fx, fy) = (f64::from(sw) / f64::from(w), f64::from(sh) / f64::from(h));
        let overlap = |o: u32, f: f64, i: u32| {
            let (start, end) = (f64::from(o) * f, f64::from(o + 1) * f);
            (end.min(f64::from(i) + 1.0) - start.max(f64::from(i))).max(0.0)
        };
        for (ox, oy, pixel) in out.enumerate_pixels() {
            for c in 0..3 {
                let mut sum = 0.0;
                let xs = (f64::from(ox) * fx) as u32..((f64::from(ox + 1) * fx).ceil() as u32).min(sw);
                for y in (f64::from(oy) * fy) as u32..((f64::from(oy + 1) * fy).ceil() as u32).min(sh) {
                    for x in xs.clone() {
                        sum += overlap(ox, fx, x) * overlap(oy, fy, y) * f64::from(img.get_pixel(x, y).0[c]);
                    }
                }
                let mean = sum / (fx * fy);
                assert!(
                    (f64::from(pixel.0[c]) - mean).abs() <= 0.51,
                    "({ox}, {oy}) channel {c}: {} vs {mean}",
                    pixel.0[c]
                );
            }
        }
    }

    #[test]
    fn nms_drops_overlapping_weaker_boxes() {
        let kept = nms(vec![det(0.0, 0.91), det(1.0, 0.95), det(50.0, 0.92)], 0.3, 10);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.95);
        assert_eq!(kept[1].score, 0.92);
        assert_eq!(nms(vec![det(0.0, 0.9), det(50.0, 0.95)], 0.3, 1).len(), 1);
    }

    #[test]
    fn decode_maps_cells_to_pixels() {
        // 32x32 input: 16 cells at stride 8, 4 at 16, 1 at 32. One confident cell at stride 8, row 1 col 2.
        let (pw, ph) = (32, 32);
        let mut outputs = Vec::new();
        for kind in 0..4 {
            for &s in &STRIDES {
                let n = (pw / s) * (ph / s);
                let width = [1, 1, 4, 10][kind];
                outputs.push(NdTensor { shape: vec![1, n, width], data: vec![0.0; n * width] });
            }
        }
        let idx = 4 + 2;
        outputs[0].data[idx] = 1.0;
        outputs[3].data[idx] = 0.81;
        outputs[6].data[4 * idx..4 * idx + 4].copy_from_slice(&[0.5, 0.5, 0.0, 1.0f32.ln()]);
        outputs[9].data[10 * idx] = 0.25;
        let faces = decode_outputs(&outputs, (pw, ph), 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        assert_eq!(f.bbox, BoundingBox { x: 16.0, y: 8.0, width: 8.0, height: 8.0 });
        assert_eq!(f.landmarks.right_eye, Point { x: 18.0, y: 8.0 });
    }
}

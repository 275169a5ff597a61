//! Alignment: a least-squares similarity transform (rotation, uniform scale, translation;
//! Umeyama's solution without reflection) maps the five landmarks onto the standard
//! 112×112 ArcFace template, and the face is resampled with a bilinear warp, as OpenCV's
//! `FaceRecognizerSF::alignCrop` does. Pixels falling outside the photo are black.
//! Pure `f32`/`f64` arithmetic in a fixed order: the same input gives the same bytes.

use image::{Rgb, RgbImage};

use crate::{Landmarks, Point};

/// Side of the aligned crop in pixels.
pub const ALIGNED_SIZE: u32 = 112;

/// The ArcFace 5-point template for a 112×112 crop, in YuNet's landmark order (right eye,
/// left eye, nose, right mouth corner, left mouth corner; "right" is the subject's).
pub const ARCFACE_TEMPLATE: [Point; 5] = [
    Point { x: 38.2946, y: 51.6963 },
    Point { x: 73.5318, y: 51.5014 },
    Point { x: 56.0252, y: 71.7366 },
    Point { x: 41.5493, y: 92.3655 },
    Point { x: 70.7299, y: 92.2041 },
];

/// A 2×3 affine matrix `[a, b, tx; c, d, ty]` mapping `(x, y)` to
/// `(a·x + b·y + tx, c·x + d·y + ty)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [[f64; 3]; 2]);

impl Affine {
    /// Applies the transform to a point.
    pub fn apply(&self, p: Point) -> Point {
        let m = &self.0;
        let (x, y) = (f64::from(p.x), f64::from(p.y));
        Point { x: (m[0][0] * x + m[0][1] * y + m[0][2]) as f32, y: (m[1][0] * x + m[1][1] * y + m[1][2]) as f32 }
    }

    /// The inverse transform, or `None` when the matrix is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [[a, b, tx], [c, d, ty]] = self.0;
        let det = a * d - b * c;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
        Some(Affine([[ia, ib, -(ia * tx + ib * ty)], [ic, id, -(ic * tx + id * ty)]]))
    }

    /// The uniform scale of a similarity transform.
    pub fn scale(&self) -> f64 {
        let [[a, _, _], [c, _, _]] = self.0;
        a.hypot(c)
    }
}

/// The least-squares similarity transform mapping `src` onto `dst` (no reflection).
///
/// Writing points as complex numbers, the best `z ↦ a·z + b` has
/// `a = Σ (dᵢ − d̄)·conj(sᵢ − s̄) / Σ |sᵢ − s̄|²` and `b = d̄ − a·s̄`, which is Umeyama's
/// solution restricted to rotations. Returns `None` when all `src` points coincide.
pub fn similarity_transform(src: &[Point], dst: &[Point]) -> Option<Affine> {
    assert_eq!(src.len(), dst.len(), "similarity_transform needs matching point lists");
    let n = src.len() as f64;
    let mean = |pts: &[Point]| {
        let (sx, sy) = pts.iter().fold((0.0, 0.0), |(x, y), p| (x + f64::from(p.x), y + f64::from(p.y)));
        (sx / n, sy / n)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    let (mut num_re, mut num_im, mut den) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (f64::from(s.x) - msx, f64::from(s.y) - msy);
        let (dx, dy) = (f64::from(d.x) - mdx, f64::from(d.y) - mdy);
        // (dx + i·dy)·(sx − i·sy)
        num_re += dx * sx + dy * sy;
        num_im += dy * sx - dx * sy;
        den += sx * sx + sy * sy;
    }
    if den < 1e-12 {
        return None;
    }
    let (a, c) = (num_re / den, num_im / den);
    let tx = mdx - (a * msx - c * msy);
    let ty = mdy - (c * msx + a * msy);
    Some(Affine([[a, -c, tx], [c, a, ty]]))
}

/// The transform from image coordinates to the aligned crop for these landmarks.
pub fn alignment_transform(landmarks: &Landmarks) -> Option<Affine> {
    similarity_transform(&landmarks.points(), &ARCFACE_TEMPLATE)
}

/// Warps `image` with `transform` (image → output coordinates) into a `size × size` crop,
/// sampling bilinearly; source pixels outside the image count as black.
pub fn warp_affine(image: &RgbImage, transform: &Affine, size: u32) -> Option<RgbImage> {
    let inv = transform.inverse()?;
    let [[a, b, tx], [c, d, ty]] = inv.0;
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let raw = image.as_raw();
    let pixel = |x: i64, y: i64| -> [f64; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let i = ((y * w + x) * 3) as usize;
        [f64::from(raw[i]), f64::from(raw[i + 1]), f64::from(raw[i + 2])]
    };
    let mut out = RgbImage::new(size, size);
    for v in 0..size {
        for u in 0..size {
            let (uf, vf) = (f64::from(u), f64::from(v));
            let sx = a * uf + b * vf + tx;
            let sy = c * uf + d * vf + ty;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p10, p01, p11) = (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
            let mut rgb = [0u8; 3];
            for k in 0..3 {
                let top = p00[k] + (p10[k] - p00[k]) * fx;
                let bottom = p01[k] + (p11[k] - p01[k]) * fx;
                rgb[k] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(u, v, Rgb(rgb));
        }
    }
    Some(out)
}

/// Aligns one face to the 112×112 ArcFace template. `None` for degenerate landmarks
/// (all five at the same place).
pub fn align_face(image: &RgbImage, landmarks: &Landmarks) -> Option<RgbImage> {
    warp_affine(image, &alignment_transform(landmarks)?, ALIGNED_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        // dst = 2·R(30°)·src + (5, −3)
        let (s, t) = (30f64.to_radians().sin(), 30f64.to_radians().cos());
        let truth = Affine([[2.0 * t, -2.0 * s, 5.0], [2.0 * s, 2.0 * t, -3.0]]);
        let src = [
            Point { x: 1.0, y: 2.0 },
            Point { x: 10.0, y: 2.5 },
            Point { x: 5.0, y: 8.0 },
            Point { x: 2.0, y: 12.0 },
            Point { x: 9.0, y: 12.0 },
        ];
        let dst = src.map(|p| truth.apply(p));
        let m = similarity_transform(&src, &dst).unwrap();
        for r in 0..2 {
            for c in 0..3 {
                assert!((m.0[r][c] - truth.0[r][c]).abs() < 1e-4, "{m:?} vs {truth:?}");
            }
        }
        assert!((m.scale() - 2.0).abs() < 1e-6);
        let back = m.inverse().unwrap().apply(dst[2]);
        assert!((back.x - 5.0).abs() < 1e-3 && (back.y - 8.0).abs() < 1e-3);
    }

    #[test]
    fn template_maps_to_itself_and_identity_warp_copies() {
        let lm = Landmarks::from_points(ARCFACE_TEMPLATE);
        let m = alignment_transform(&lm).unwrap();
        assert!((m.scale() - 1.0).abs() < 1e-9);
        let img = RgbImage::from_fn(112, 112, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]));
        let out = align_face(&img, &lm).unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn degenerate_landmarks_give_none() {
        let p = Point { x: 3.0, y: 3.0 };
        assert!(align_face(&RgbImage::new(10, 10), &Landmarks::from_points([p; 5])).is_none());
    }
}

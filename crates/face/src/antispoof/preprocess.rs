//! The face crops the two models expect, made the way the Human library (3.3.6) makes them
//! with its default configuration, so the models see what they were used with:
//!
//! 1. `blazeface.ts` → `facemeshutil.enlargeBox(box, 1.4)` then `squarifyBox`: the detector
//!    box is scaled by 1.4 about its centre, made square on its longer side, and its corners
//!    are rounded to whole pixels (`Math.round`).
//! 2. `facemeshutil.cutAndResize`: `tf.image.cropAndResize` of that square to 192×192
//!    (the face-mesh input size; bilinear, TensorFlow's corner-aligned sampling, black outside
//!    the image), divided by 255: RGB in [0, 1].
//! 3. `antispoof.ts` / `liveness.ts`: `tf.image.resizeBilinear` of the 192×192 face to
//!    128×128 and 32×32 (`alignCorners = false`, no half-pixel centres).
//!
//! Arithmetic follows TF.js's CPU kernels (coordinates in f64, box corners as f32 like the
//! boxes tensor, values stored as f32), so crops agree with TF.js to float rounding.

use crate::BoundingBox;

/// Human's default `face.detector.scale`.
pub(crate) const BOX_SCALE: f32 = 1.4;
/// Side of Human's intermediate face tensor (the face-mesh model's input).
pub(crate) const FACE_SIZE: usize = 192;

/// A float image in HWC order, RGB, values as stored by TF.js.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hwc {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// The square crop box `[x0, y0, x1, y1]` (pixels) that Human cuts around a detector box.
pub(crate) fn crop_box(face: BoundingBox) -> [f64; 4] {
    // JavaScript's Math.round: halves go up, also for negative numbers.
    let js_round = |v: f64| (v + 0.5).floor();
    let (x, y, w, h) = (face.x as f64, face.y as f64, face.width as f64, face.height as f64);
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let scale = BOX_SCALE as f64;
    let half = (scale * w).max(scale * h) / 2.0;
    [js_round(cx - half), js_round(cy - half), js_round(cx + half), js_round(cy + half)]
}

/// `tf.image.cropAndResize(image, [[y0/h, x0/w, y1/h, x1/w]], [0], [size, size])` with
/// bilinear sampling and 0 outside the image, then divided by 255.
pub(crate) fn crop_and_resize(image: &image::RgbImage, bx: [f64; 4], size: usize) -> Hwc {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    // The boxes tensor is float32.
    let norm = |v: f64, d: usize| (v / d as f64) as f32 as f64;
    let (y1, x1, y2, x2) = (norm(bx[1], ih), norm(bx[0], iw), norm(bx[3], ih), norm(bx[2], iw));
    let (hm1, wm1) = ((ih as f64) - 1.0, (iw as f64) - 1.0);
    let axis = |a: f64, b: f64, m1: f64| -> Vec<Option<(usize, usize, f64)>> {
        (0..size)
            .map(|i| {
                let pos =
                    if size > 1 { a * m1 + i as f64 * ((b - a) * m1 / (size - 1) as f64) } else { 0.5 * (a + b) * m1 };
                if pos < 0.0 || pos > m1 {
                    return None;
                }
                let lo = pos.floor();
                Some((lo as usize, pos.ceil() as usize, pos - lo))
            })
            .collect()
    };
    let rows = axis(y1, y2, hm1);
    let cols = axis(x1, x2, wm1);
    let raw = image.as_raw();
    let px = |y: usize, x: usize, c: usize| raw[(y * iw + x) * 3 + c] as f64;
    let mut data = vec![0f32; size * size * 3];
    for (r, row) in rows.iter().enumerate() {
        let Some((top, bottom, ly)) = *row else {
            continue;
        };
        for (q, col) in cols.iter().enumerate() {
            let Some((left, right, lx)) = *col else {
                continue;
            };
            for c in 0..3 {
                let t = px(top, left, c) + (px(top, right, c) - px(top, left, c)) * lx;
                let b = px(bottom, left, c) + (px(bottom, right, c) - px(bottom, left, c)) * lx;
                let v = (t + (b - t) * ly) as f32;
                data[(r * size + q) * 3 + c] = v / 255.0;
            }
        }
    }
    Hwc { height: size, width: size, data }
}

/// `tf.image.resizeBilinear(image, [size, size], false)` (legacy sampling: `src = dst * in / out`).
pub(crate) fn resize_bilinear(src: &Hwc, size: usize) -> Hwc {
    let axis = |input: usize| -> Vec<(usize, usize, f64)> {
        let scale = input as f64 / size as f64;
        (0..size)
            .map(|i| {
                let frac = scale * i as f64;
                let lo = frac.floor().max(0.0);
                ((lo as usize).min(input - 1), (frac.ceil() as usize).min(input - 1), frac - lo)
            })
            .collect()
    };
    let rows = axis(src.height);
    let cols = axis(src.width);
    let px = |y: usize, x: usize, c: usize| src.data[(y * src.width + x) * 3 + c] as f64;
    let mut data = Vec::with_capacity(size * size * 3);
    for &(top, bottom, ly) in &rows {
        for &(left, right, lx) in &cols {
            for c in 0..3 {
                let t = px(top, left, c) + (px(top, right, c) - px(top, left, c)) * lx;
                let b = px(bottom, left, c) + (px(bottom, right, c) - px(bottom, left, c)) * lx;
                data.push((t + (b - t) * ly) as f32);
            }
        }
    }
    Hwc { height: size, width: size, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_is_square_enlarged_and_centred() {
        let b = crop_box(BoundingBox { x: 100.0, y: 50.0, width: 100.0, height: 120.0 });
        // centre (150, 110), half side 1.4 * 120 / 2 = 84
        assert_eq!(b, [66.0, 26.0, 234.0, 194.0]);
    }

    #[test]
    fn crop_of_a_flat_image_is_flat_inside_and_black_outside() {
        let img = image::RgbImage::from_pixel(50, 40, image::Rgb([255, 0, 51]));
        let crop = crop_and_resize(&img, [-10.0, 0.0, 39.0, 49.0], 8);
        // first column samples x < 0: black
        assert_eq!(&crop.data[0..3], &[0.0, 0.0, 0.0]);
        // a middle pixel keeps the colour
        let m = (4 * 8 + 4) * 3;
        assert_eq!(&crop.data[m..m + 3], &[1.0, 0.0, 0.2]);
    }

    #[test]
    fn resize_samples_top_left_aligned() {
        let src = Hwc { height: 2, width: 2, data: vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0] };
        let out = resize_bilinear(&src, 4);
        let red: Vec<f32> = out.data.iter().step_by(3).copied().collect();
        // src = dst / 2: rows 0, 0.5, 1, 1 (clamped); same for columns
        assert_eq!(&red[0..4], &[0.0, 0.5, 1.0, 1.0]);
        assert_eq!(&red[4..8], &[1.0, 1.5, 2.0, 2.0]);
    }
}

//! The photometric 3-D test: how much of the change between two views of a face one
//! homography cannot explain, measured on the pixels themselves.
//!
//! Two views of a flat picture (a print, a screen) differ by one homography, up to the
//! camera's blur, noise and brightness. Two views of a real head turning do not: the nose
//! moves across the cheeks, one side of the face foreshortens while the other shows more
//! of itself, and the light falls differently. So the homography that best maps one view
//! onto the other is fitted by maximising their correlation (the enhanced correlation
//! coefficient of Evangelidis & Psarakis, 2008, as OpenCV's `findTransformECC` does), and
//! what is left, `1 − ρ`, is near 0 for a flat picture and grows with the head's turn.
//!
//! The views are the aligned 112×112 crops (a similarity on the five landmarks already
//! takes them close to each other), in grey, smoothed, compared over an ellipse inside the
//! face so that the background and the silhouette never enter. The fit runs coarse to fine
//! from the identity.

use image::RgbImage;

use crate::align::ALIGNED_SIZE;

/// The face inside the aligned crop, in crop pixels: centred between the eyes and the
/// mouth, from the brows to the chin, cheek to cheek, but never the silhouette.
const MASK_CENTRE: (f64, f64) = (56.0, 68.0);
const MASK_RADII: (f64, f64) = (30.0, 40.0);
/// Iterations of the fit at each level, coarse then fine.
const ITERATIONS: [usize; 2] = [40, 40];
/// The fit has converged when the correlation changes by less than this.
const CONVERGED: f64 = 1e-6;
/// Share of the mask that must stay inside the other view for a fit to count.
const MIN_OVERLAP: f64 = 0.8;

/// One face of a challenge frame, ready for [`planar_residual`]: its aligned crop in grey,
/// smoothed, at full and half size.
#[derive(Debug, Clone)]
pub struct FacePatch {
    levels: [Level; 2],
}

impl FacePatch {
    /// The patch of an aligned crop (`ALIGNED_SIZE` square).
    pub fn from_aligned(aligned: &RgbImage) -> Self {
        let size = ALIGNED_SIZE as usize;
        debug_assert_eq!((aligned.width(), aligned.height()), (ALIGNED_SIZE, ALIGNED_SIZE));
        let grey: Vec<f32> = aligned
            .pixels()
            .map(|p| 0.299 * f32::from(p.0[0]) + 0.587 * f32::from(p.0[1]) + 0.114 * f32::from(p.0[2]))
            .collect();
        let fine = smooth(&grey, size);
        let coarse = smooth(&halve(&fine, size), size / 2);
        Self { levels: [Level::new(coarse, size / 2), Level::new(fine, size)] }
    }
}

/// One level of the pyramid: grey values and their gradients, row-major.
#[derive(Debug, Clone)]
struct Level {
    size: usize,
    grey: Vec<f32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
}

impl Level {
    fn new(grey: Vec<f32>, size: usize) -> Self {
        let mut dx = vec![0.0; grey.len()];
        let mut dy = vec![0.0; grey.len()];
        for y in 1..size - 1 {
            for x in 1..size - 1 {
                let i = y * size + x;
                dx[i] = (grey[i + 1] - grey[i - 1]) / 2.0;
                dy[i] = (grey[i + size] - grey[i - size]) / 2.0;
            }
        }
        Self { size, grey, dx, dy }
    }

    /// Pixel `(x, y)` of the level in the coordinates the homography works in: the crop's
    /// centre at 0, its half-side 1, the same at every level.
    fn normalised(&self, x: usize, y: usize) -> (f64, f64) {
        let (centre, half) = (self.size as f64 / 2.0 - 0.5, self.size as f64 / 2.0);
        ((x as f64 - centre) / half, (y as f64 - centre) / half)
    }

    /// Grey value and gradient (per normalised unit) at a normalised point, or `None`
    /// outside the level.
    fn sample(&self, u: f64, v: f64) -> Option<[f64; 3]> {
        let (centre, half) = (self.size as f64 / 2.0 - 0.5, self.size as f64 / 2.0);
        let (x, y) = (u * half + centre, v * half + centre);
        let last = (self.size - 1) as f64;
        if !(x >= 0.0 && y >= 0.0 && x < last && y < last) {
            return None;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let i = y0 * self.size + x0;
        let at = |values: &[f32]| {
            let (a, b) = (f64::from(values[i]), f64::from(values[i + 1]));
            let (c, d) = (f64::from(values[i + self.size]), f64::from(values[i + self.size + 1]));
            (a + (b - a) * fx) * (1.0 - fy) + (c + (d - c) * fx) * fy
        };
        Some([at(&self.grey), at(&self.dx) * half, at(&self.dy) * half])
    }

    /// The normalised coordinates of the pixels inside the face ellipse.
    fn mask(&self) -> Vec<(usize, (f64, f64))> {
        let scale = self.size as f64 / f64::from(ALIGNED_SIZE);
        let (cx, cy) = (MASK_CENTRE.0 * scale, MASK_CENTRE.1 * scale);
        let (rx, ry) = (MASK_RADII.0 * scale, MASK_RADII.1 * scale);
        let mut inside = Vec::new();
        for y in 0..self.size {
            for x in 0..self.size {
                let (ex, ey) = ((x as f64 + 0.5 - cx) / rx, (y as f64 + 0.5 - cy) / ry);
                if ex * ex + ey * ey <= 1.0 {
                    inside.push((y * self.size + x, self.normalised(x, y)));
                }
            }
        }
        inside
    }
}

/// A 5-tap binomial blur (σ ≈ 1), edges clamped: what the camera's noise and the JPEG
/// blocks leave after it no longer drives the fit.
fn smooth(values: &[f32], size: usize) -> Vec<f32> {
    const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let clamp = |i: isize| i.clamp(0, size as isize - 1) as usize;
    let pass = |input: &[f32], step: (usize, usize)| {
        let mut out = vec![0.0; input.len()];
        for y in 0..size {
            for x in 0..size {
                out[y * size + x] = TAPS
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        let d = k as isize - 2;
                        let (sx, sy) =
                            (clamp(x as isize + d * step.0 as isize), clamp(y as isize + d * step.1 as isize));
                        w * input[sy * size + sx]
                    })
                    .sum();
            }
        }
        out
    };
    pass(&pass(values, (1, 0)), (0, 1))
}

/// Each 2×2 block averaged.
fn halve(values: &[f32], size: usize) -> Vec<f32> {
    let half = size / 2;
    let mut out = Vec::with_capacity(half * half);
    for y in 0..half {
        for x in 0..half {
            let i = 2 * y * size + 2 * x;
            out.push((values[i] + values[i + 1] + values[i + size] + values[i + size + 1]) / 4.0);
        }
    }
    out
}

/// `1 − ρ` for the homography that best maps `from`'s face onto `to`'s: near 0 when one
/// is a flat picture's view of the other, larger the more the face moved in depth.
/// `None` when no fit can start ([`FitFailure`]): that is never evidence of depth.
pub fn planar_residual(from: &FacePatch, to: &FacePatch) -> Option<f32> {
    fit_levels(from, to).ok()
}

/// Why a fit could not start: the views do not overlap, one has no texture, or they are
/// not correlated at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitFailure {
    Overlap,
    Singular,
    Uncorrelated,
}

/// [`planar_residual`], or why the fit failed.
pub fn fit_levels(from: &FacePatch, to: &FacePatch) -> Result<f32, FitFailure> {
    let mut h = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    let mut rho = 0.0;
    for ((template, image), iterations) in from.levels.iter().zip(&to.levels).zip(ITERATIONS) {
        rho = fit(template, image, &mut h, iterations)?;
    }
    Ok((1.0 - rho).max(0.0) as f32)
}

/// Refines `h` (the homography from `template`'s normalised coordinates to `image`'s,
/// `h[8] = 1` left out) and returns the correlation it reaches. Every step must raise the
/// correlation and keep the homography [`reasonable`] (halved until it does, up to four
/// times): the answer is the best fit near the landmarks' alignment, never one that wanders
/// off onto some other part of the picture.
fn fit(template: &Level, image: &Level, h: &mut [f64; 8], iterations: usize) -> Result<f64, FitFailure> {
    let mask = template.mask();
    let mut step = Step::at(template, image, &mask, h).ok_or(FitFailure::Overlap)?;
    if step.t_t <= f64::EPSILON || step.i_i <= f64::EPSILON {
        return Err(FitFailure::Singular);
    }
    let mut rho = step.correlation();
    for iteration in 0..iterations {
        let delta = match step.update() {
            Ok(delta) => delta,
            Err(failure) if iteration == 0 => return Err(failure),
            Err(_) => break,
        };
        let Some((trial, next, better)) = (0..4).find_map(|halvings| {
            let scale = 0.5f64.powi(halvings);
            let trial: [f64; 8] = std::array::from_fn(|k| h[k] + scale * delta[k]);
            if !reasonable(&trial) {
                return None;
            }
            let next = Step::at(template, image, &mask, &trial)?;
            let better = next.correlation();
            (better > rho).then_some((trial, next, better))
        }) else {
            break;
        };
        let gain = better - rho;
        (*h, step, rho) = (trial, next, better);
        if gain < CONVERGED {
            break;
        }
    }
    Ok(rho)
}

/// Whether the homography keeps the crop's corners within a quarter of the crop of where
/// they are: the landmarks' alignment already brought the faces that close, so a fit that
/// goes further has left the face.
fn reasonable(h: &[f64; 8]) -> bool {
    [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].iter().all(|&(x, y)| {
        let w = h[6] * x + h[7] * y + 1.0;
        w > 0.5
            && ((h[0] * x + h[1] * y + h[2]) / w - x).abs() < 0.5
            && ((h[3] * x + h[4] * y + h[5]) / w - y).abs() < 0.5
    })
}

/// The sums one iteration of the fit is made from, over the mask's pixels that land
/// inside the image: zero-mean template `t` and warped image `i`, and the image's
/// Jacobian `G` with respect to the homography's eight parameters.
struct Step {
    hessian: [[f64; 8]; 8],
    g_t: [f64; 8],
    g_i: [f64; 8],
    t_t: f64,
    i_i: f64,
    t_i: f64,
}

impl Step {
    fn at(template: &Level, image: &Level, mask: &[(usize, (f64, f64))], h: &[f64; 8]) -> Option<Self> {
        let mut rows: Vec<(f64, f64, [f64; 8])> = Vec::with_capacity(mask.len());
        for &(index, (x, y)) in mask {
            let w = h[6] * x + h[7] * y + 1.0;
            let (u, v) = ((h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w);
            let Some([value, gu, gv]) = image.sample(u, v) else { continue };
            let along = -(gu * u + gv * v);
            let j = [gu * x, gu * y, gu, gv * x, gv * y, gv, along * x, along * y].map(|g| g / w);
            rows.push((f64::from(template.grey[index]), value, j));
        }
        if (rows.len() as f64) < MIN_OVERLAP * mask.len() as f64 {
            return None;
        }
        let n = rows.len() as f64;
        let mean_t = rows.iter().map(|r| r.0).sum::<f64>() / n;
        let mean_i = rows.iter().map(|r| r.1).sum::<f64>() / n;
        let mut mean_j = [0.0; 8];
        for (_, _, j) in &rows {
            for (m, g) in mean_j.iter_mut().zip(j) {
                *m += g / n;
            }
        }
        let mut step = Self { hessian: [[0.0; 8]; 8], g_t: [0.0; 8], g_i: [0.0; 8], t_t: 0.0, i_i: 0.0, t_i: 0.0 };
        for (t, i, j) in &rows {
            let (t, i) = (t - mean_t, i - mean_i);
            let j: [f64; 8] = std::array::from_fn(|k| j[k] - mean_j[k]);
            step.t_t += t * t;
            step.i_i += i * i;
            step.t_i += t * i;
            for a in 0..8 {
                step.g_t[a] += j[a] * t;
                step.g_i[a] += j[a] * i;
                for b in a..8 {
                    step.hessian[a][b] += j[a] * j[b];
                }
            }
        }
        for a in 0..8 {
            for b in 0..a {
                step.hessian[a][b] = step.hessian[b][a];
            }
        }
        Some(step)
    }

    fn correlation(&self) -> f64 {
        let norms = (self.t_t * self.i_i).sqrt();
        if norms > 0.0 { self.t_i / norms } else { 0.0 }
    }

    /// The parameter update of ECC's forward-additive iteration: the image is pulled
    /// toward `λ·t`, with `λ` the scale that maximises the correlation after the update.
    fn update(&self) -> Result<[f64; 8], FitFailure> {
        let factor = Cholesky::of(&self.hessian).ok_or(FitFailure::Singular)?;
        let h_gi = factor.solve(&self.g_i);
        let lambda_n = self.i_i - dot(&self.g_i, &h_gi);
        let lambda_d = self.t_i - dot(&self.g_t, &h_gi);
        if lambda_d <= 0.0 {
            // The images are uncorrelated: the update would minimise the correlation.
            return Err(FitFailure::Uncorrelated);
        }
        let lambda = lambda_n / lambda_d;
        let g_e: [f64; 8] = std::array::from_fn(|k| lambda * self.g_t[k] - self.g_i[k]);
        Ok(factor.solve(&g_e))
    }
}

fn dot(a: &[f64; 8], b: &[f64; 8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The Cholesky factor `L` of a symmetric positive definite 8×8 matrix (`A = L·Lᵀ`).
struct Cholesky([[f64; 8]; 8]);

impl Cholesky {
    fn of(a: &[[f64; 8]; 8]) -> Option<Self> {
        let mut l = [[0.0; 8]; 8];
        let scale = (0..8).map(|k| a[k][k]).fold(0.0f64, f64::max);
        for i in 0..8 {
            for j in 0..=i {
                let sum: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
                if i == j {
                    if sum <= 1e-12 * scale || !sum.is_finite() {
                        return None;
                    }
                    l[i][i] = sum.sqrt();
                } else {
                    l[i][j] = sum / l[j][j];
                }
            }
        }
        Some(Self(l))
    }

    fn solve(&self, b: &[f64; 8]) -> [f64; 8] {
        let l = &self.0;
        let mut y = [0.0; 8];
        for i in 0..8 {
            y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
        }
        let mut x = [0.0; 8];
        for i in (0..8).rev() {
            x[i] = (y[i] - (i + 1..8).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
        }
        x
    }
}

/// Synthetic aligned crops for the tests: a textured surface seen flat, through a
/// homography, or turned with depth.
#[cfg(test)]
pub(crate) mod synthetic {
    use image::{Rgb, RgbImage};

    use super::{ALIGNED_SIZE, FacePatch};

    /// A smooth but detailed texture.
    fn texture(x: f64, y: f64) -> f64 {
        128.0 + 60.0 * (x / 7.0).sin() * (y / 11.0).cos() + 40.0 * ((x + 2.0 * y) / 13.0).sin()
    }

    /// The crop whose pixel `(x, y)` shows the texture at `map(x, y)`.
    pub fn crop(map: impl Fn(f64, f64) -> (f64, f64)) -> FacePatch {
        FacePatch::from_aligned(&RgbImage::from_fn(ALIGNED_SIZE, ALIGNED_SIZE, |x, y| {
            let (u, v) = map(f64::from(x), f64::from(y));
            let g = texture(u, v).round().clamp(0.0, 255.0) as u8;
            Rgb([g, g, g])
        }))
    }

    /// How far in front of the eyes the face's surface stands, in crop pixels: a head's
    /// horizontal curve (the cheeks behind the eyes) and a nose ≈ 0.5 inter-eye distances
    /// tall. Relative to the eyes, because the crops are aligned on them.
    fn depth(x: f64, y: f64) -> f64 {
        let nose = 18.0 * (-((x - 56.0).powi(2) / 120.0 + (y - 70.0).powi(2) / 400.0)).exp();
        let curve = 20.0 * (1.0 - ((x - 56.0) / 50.0).powi(2));
        nose + curve - 17.7
    }

    /// The face turned by `yaw` (positive: the nose moves to the crop's right) and `pitch`
    /// (positive: down) degrees, seen by a distant camera.
    pub fn head(yaw: f64, pitch: f64) -> FacePatch {
        let (sy, sp) = (yaw.to_radians().sin(), pitch.to_radians().sin());
        crop(|x, y| (x - depth(x, y) * sy, y - depth(x, y) * sp))
    }

    /// A print of `head(yaw, 0)` seen through the homography `h` (crop to crop,
    /// row-major, `h[8] = 1`).
    pub fn print(yaw: f64, h: [f64; 9]) -> FacePatch {
        let sy = yaw.to_radians().sin();
        crop(|x, y| {
            let w = h[6] * x + h[7] * y + h[8];
            let (u, v) = ((h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w);
            (u - depth(u, v) * sy, v)
        })
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::synthetic::{crop, head, print};
    use super::*;

    #[test]
    fn a_view_of_the_same_plane_through_a_homography_leaves_nothing() {
        let a = crop(|x, y| (x, y));
        let b = crop(|x, y| {
            let w = 1.0 + 0.0015 * (x - 56.0) - 0.001 * (y - 56.0);
            ((1.03 * x + 0.04 * y + 1.5) / w, (-0.03 * x + 0.98 * y - 1.0) / w)
        });
        let residual = planar_residual(&a, &b).expect("the fit converges");
        assert!(residual < 0.002, "residual {residual}");
        let tilted = print(20.0, [0.95, 0.05, 4.0, -0.04, 1.02, -3.0, 0.0008, -0.0005, 1.0]);
        let residual = planar_residual(&print(20.0, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]), &tilted);
        assert!(residual.expect("the fit converges") < 0.002, "a print of a turned head: {residual:?}");
    }

    #[test]
    fn a_turning_head_leaves_more_the_further_it_turns() {
        let front = head(0.0, 0.0);
        let at = |yaw: f64, pitch: f64| planar_residual(&front, &head(yaw, pitch)).expect("the fit converges");
        let (small, step, far) = (at(5.0, 0.0), at(15.0, 0.0), at(30.0, 0.0));
        assert!(small < step && step < far, "5°: {small}, 15°: {step}, 30°: {far}");
        // What is left grows about with the square of the turn; the smooth synthetic
        // texture leaves far less than a face's edges do, but still several times what a
        // flat picture's homography leaves.
        let flat = planar_residual(&front, &print(0.0, [0.97, 0.03, 2.0, -0.02, 1.01, -1.0, 0.0006, 0.0004, 1.0]));
        let flat = flat.expect("the fit converges");
        assert!(step > 5.0 * flat.max(0.0005), "15°: {step}, flat: {flat}");
        assert!(at(0.0, -15.0) > 5.0 * flat.max(0.0005), "looking up: {}", at(0.0, -15.0));
    }

    #[test]
    fn unrelated_views_are_not_taken_for_depth_when_the_fit_cannot_hold() {
        let a = crop(|x, y| (x, y));
        let flat = FacePatch::from_aligned(&RgbImage::from_pixel(ALIGNED_SIZE, ALIGNED_SIZE, Rgb([90, 90, 90])));
        assert_eq!(planar_residual(&a, &flat), None);
    }

    #[test]
    fn the_cholesky_solve_inverts_the_matrix() {
        let a: [[f64; 8]; 8] = std::array::from_fn(|i| {
            std::array::from_fn(|j| if i == j { 4.0 + i as f64 } else { 0.5 / (1 + i + j) as f64 })
        });
        let x = [1.0, -2.0, 0.5, 3.0, 0.0, 1.5, -1.0, 2.0];
        let b: [f64; 8] = std::array::from_fn(|i| dot(&a[i], &x));
        let solved = Cholesky::of(&a).unwrap().solve(&b);
        for (s, e) in solved.iter().zip(x) {
            assert!((s - e).abs() < 1e-12);
        }
    }
}

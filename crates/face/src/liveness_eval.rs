//! Presentation attacks made from real photos, for measuring the active challenge
//! (`rollcall eval --liveness`) and for the tests: a photo printed or shown on a screen,
//! held at a different angle in each frame, seen through a camera (blur, sensor noise,
//! JPEG compression).
//!
//! Every frame of such an attack is the same picture seen through a different homography,
//! which is exactly what [`crate::photometric::planar_residual`] is built to notice.

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::challenge::{ChallengeFrame, ChallengeStep};
use crate::photometric::planar_residual;

/// How the picture is presented to the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presentation {
    /// A print, tilted and turned by up to 35° (and bent by nothing: prints are planes).
    Print,
    /// A phone or monitor at an angle: as a print, plus the screen's own brightness,
    /// contrast and colour cast.
    Screen,
}

/// `frames` views of `photo` presented as `presentation`, the first nearly square to the
/// camera and the others at random angles; deterministic for a `seed`.
pub fn planar_attack(photo: &RgbImage, presentation: Presentation, frames: usize, seed: u64) -> Vec<RgbImage> {
    let mut rng = StdRng::seed_from_u64(seed);
    let screen = match presentation {
        Presentation::Print => None,
        Presentation::Screen => Some(ScreenLook::random(&mut rng)),
    };
    (0..frames)
        .map(|n| {
            let spread = if n == 0 { 0.15 } else { 1.0 };
            let view = View::random(&mut rng, spread);
            let mut frame = warp(photo, &view.homography(photo.width(), photo.height()));
            if let Some(look) = &screen {
                look.apply(&mut frame);
            }
            camera_noise(&mut frame, &mut rng)
        })
        .collect()
}

/// Where the picture is held: turned about its vertical axis (`yaw`), tilted about its
/// horizontal one (`pitch`), rotated in its plane (`roll`), all in degrees, and moved.
struct View {
    yaw: f64,
    pitch: f64,
    roll: f64,
    scale: f64,
    shift: (f64, f64),
}

impl View {
    fn random(rng: &mut StdRng, spread: f64) -> Self {
        let mut within = |limit: f64| rng.gen_range(-limit..=limit) * spread;
        Self {
            yaw: within(35.0),
            pitch: within(25.0),
            roll: within(10.0),
            scale: 1.0 + within(0.1),
            shift: (within(0.05), within(0.05)),
        }
    }

    /// The homography from photo pixels to frame pixels: the photo as a plane through the
    /// centre of the view, rotated, seen by a pinhole camera with the photo's diagonal as
    /// its focal length (a normal lens).
    fn homography(&self, width: u32, height: u32) -> [f64; 9] {
        let (w, h) = (f64::from(width), f64::from(height));
        let (cx, cy) = (w / 2.0, h / 2.0);
        let f = w.hypot(h);
        let (sy, cy_) = self.yaw.to_radians().sin_cos();
        let (sp, cp) = self.pitch.to_radians().sin_cos();
        let (sr, cr) = self.roll.to_radians().sin_cos();
        // R = Ry(yaw) · Rx(pitch) · Rz(roll); only its first two columns act on the plane.
        let rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]];
        let ry = [[cy_, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy_]];
        let r = mul(&ry, &mul(&rx, &rz));
        let s = self.scale;
        // Columns: r1·s, r2·s, the plane's centre at depth f (shifted).
        let m = [
            [r[0][0] * s, r[0][1] * s, self.shift.0 * w],
            [r[1][0] * s, r[1][1] * s, self.shift.1 * h],
            [r[2][0] * s, r[2][1] * s, f],
        ];
        let k = [[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]];
        let centre = [[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]];
        let h = mul(&k, &mul(&m, &centre));
        [h[0][0], h[0][1], h[0][2], h[1][0], h[1][1], h[1][2], h[2][0], h[2][1], h[2][2]]
    }
}

fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// The inverse of a 3×3 matrix (row-major); the homographies here are never singular.
fn invert(m: &[f64; 9]) -> [f64; 9] {
    let [a, b, c, d, e, f, g, h, i] = *m;
    let det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
    let inv = [
        e * i - f * h,
        c * h - b * i,
        b * f - c * e,
        f * g - d * i,
        a * i - c * g,
        c * d - a * f,
        d * h - e * g,
        b * g - a * h,
        a * e - b * d,
    ];
    inv.map(|v| v / det)
}

/// `photo` seen through `h` (photo → frame), in a frame of the photo's size; outside the
/// picture, a grey background.
pub fn warp(photo: &RgbImage, h: &[f64; 9]) -> RgbImage {
    let back = invert(h);
    let (w, hgt) = (photo.width(), photo.height());
    RgbImage::from_fn(w, hgt, |u, v| {
        let (u, v) = (f64::from(u) + 0.5, f64::from(v) + 0.5);
        let z = back[6] * u + back[7] * v + back[8];
        let x = (back[0] * u + back[1] * v + back[2]) / z - 0.5;
        let y = (back[3] * u + back[4] * v + back[5]) / z - 0.5;
        bilinear(photo, x, y).unwrap_or(Rgb([118, 118, 118]))
    })
}

fn bilinear(image: &RgbImage, x: f64, y: f64) -> Option<Rgb<u8>> {
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    if !(x >= 0.0 && y >= 0.0 && x <= w - 1.0 && y <= h - 1.0) {
        return None;
    }
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(image.width() - 1), (y0 + 1).min(image.height() - 1));
    let (fx, fy) = (x - x.floor(), y - y.floor());
    let px = |xx, yy| image.get_pixel(xx, yy).0.map(f64::from);
    let (a, b, c, d) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
    let mix = |k: usize| {
        let top = a[k] * (1.0 - fx) + b[k] * fx;
        let bottom = c[k] * (1.0 - fx) + d[k] * fx;
        (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
    };
    Some(Rgb([mix(0), mix(1), mix(2)]))
}

/// A screen's rendering of the picture: its own gain, offset and colour balance.
struct ScreenLook {
    gain: [f64; 3],
    offset: f64,
}

impl ScreenLook {
    fn random(rng: &mut StdRng) -> Self {
        let base = rng.gen_range(0.75..1.15);
        let tint = [rng.gen_range(0.92..1.08), rng.gen_range(0.95..1.05), rng.gen_range(0.9..1.12)];
        Self { gain: tint.map(|t| t * base), offset: rng.gen_range(0.0..25.0) }
    }

    fn apply(&self, frame: &mut RgbImage) {
        for pixel in frame.pixels_mut() {
            for (k, value) in pixel.0.iter_mut().enumerate() {
                *value = (f64::from(*value) * self.gain[k] + self.offset).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// What a camera adds: lens blur, sensor noise, and JPEG compression at quality 60–90.
fn camera_noise(frame: &mut RgbImage, rng: &mut StdRng) -> RgbImage {
    let sigma = rng.gen_range(0.0..1.5f32);
    let mut blurred = if sigma > 0.3 { image::imageops::blur(frame, sigma) } else { frame.clone() };
    let noise = rng.gen_range(0.0..6.0f64);
    for pixel in blurred.pixels_mut() {
        for value in &mut pixel.0 {
            // A sum of uniforms: close enough to Gaussian for sensor noise.
            let n: f64 = (0..3).map(|_| rng.gen_range(-1.0..1.0)).sum::<f64>() * noise;
            *value = (f64::from(*value) + n).round().clamp(0.0, 255.0) as u8;
        }
    }
    let quality = rng.gen_range(60..=90);
    let mut jpeg = Vec::new();
    let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality).encode_image(&blurred);
    match encoded.ok().and_then(|()| image::load_from_memory(&jpeg).ok()) {
        Some(decoded) => decoded.to_rgb8(),
        None => blurred,
    }
}

/// Frames in each attack sequence: what a kiosk sends in the middle of the 4–12 allowed.
pub const ATTACK_FRAMES: usize = 8;
/// Planar residual thresholds swept by the report.
const SWEEP: [f32; 10] = [0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15];
/// Head turns between two real photos, in degrees, that the report groups pairs by.
const TURN_BUCKETS: [(f32, f32); 5] = [(0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 25.0), (25.0, 90.0)];

/// What `rollcall eval --liveness` is run with.
#[derive(Debug, Clone, Copy)]
pub struct LivenessSettings {
    /// The threshold under evaluation (`liveness_min_planar_residual`).
    pub min_planar_residual: f32,
    /// Degrees a step needs (`liveness_min_turn_deg`): real pairs turned at least this
    /// much are the ones a real answer is made of.
    pub min_turn_deg: f32,
    /// Cosine similarity above which two photos' largest faces are taken for the same
    /// person (the 1:1 operating point), so that pairs where another face was the largest
    /// are left out.
    pub same_person: f32,
}

/// Quantiles of a measurement over a set of sequences or pairs.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50: f32,
    pub p90: f32,
    pub p99: f32,
    pub max: f32,
}

impl Spread {
    fn of(mut values: Vec<f32>) -> Self {
        values.sort_by(f32::total_cmp);
        let at =
            |q: f64| values.get(((values.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or(0.0);
        Self {
            count: values.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

/// Real pairs of one person's photos, by how far the head turned between them.
#[derive(Debug, Clone, Serialize)]
pub struct TurnBucket {
    pub min_deg: f32,
    pub max_deg: f32,
    pub planar_residual: Spread,
    /// The landmarks' nose parallax of the same pairs (reported, not judged by).
    pub parallax: Spread,
    /// Share of these pairs below the evaluated threshold (a real answer made of this
    /// turn alone would be refused as flat).
    pub refused: f64,
}

/// One threshold of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub min_planar_residual: f32,
    /// Attack sequences (every frame with a face) that would pass the 3-D test.
    pub attacks_accepted: f64,
    /// Real pairs turned at least `min_turn_deg` that would be refused.
    pub real_refused: f64,
}

/// The measured error rates of the 3-D test.
#[derive(Debug, Clone, Serialize)]
pub struct LivenessReport {
    pub people: usize,
    pub photos: usize,
    /// Photos whose largest face was found (each is the source of one attack sequence).
    pub photos_with_face: usize,
    pub attack_sequences: usize,
    /// Attack sequences with a face in every frame: the only ones that reach the 3-D test
    /// (the others are refused as `face_missing`).
    pub attack_sequences_judged: usize,
    /// The decisive measurement: the largest planar residual of a frame against the first.
    pub attack_planar_residual: Spread,
    /// Fits of an attack frame onto its first frame that failed (counted as no depth).
    pub attack_fits_failed: usize,
    /// The landmarks' nose parallax of the same attacks (reported, not judged by).
    pub attack_parallax: Spread,
    /// The largest head turn (degrees) each attack can show both ways: what a flat
    /// picture can fake of the steps.
    pub attack_turn: Spread,
    /// Attacks that can show a turn of `min_turn_deg` both ways (and so follow two
    /// opposite steps).
    pub attacks_following_steps: usize,
    /// Of those, the ones that also pass the 3-D test: attacks the whole challenge accepts.
    pub attacks_accepted_by_challenge: usize,
    /// Real same-person pairs (both faces found and matching).
    pub real_pairs: usize,
    /// Real pairs whose fit failed (counted as no depth, so refused).
    pub real_fits_failed: usize,
    pub real_by_turn: Vec<TurnBucket>,
    pub sweep: Vec<SweepRow>,
    pub min_planar_residual: f32,
    pub min_turn_deg: f32,
    pub attacks_accepted: f64,
    pub real_refused: f64,
    /// Mean time to find, align and embed the face of one frame, and so of an 8-frame
    /// answer's frames.
    pub ms_per_frame: f64,
    /// Mean time of the 3-D test of an 8-frame answer (7 fits onto the first frame).
    pub ms_per_planar_test: f64,
    /// Frames and 3-D test of an 8-frame answer (plus the photo's own identification, not
    /// counted here).
    pub ms_per_decision: f64,
}

/// Time spent on frames, and how many; time spent on the 3-D test.
#[derive(Debug, Clone, Copy, Default)]
struct Timed {
    ms: f64,
    frames: usize,
    planar_ms: f64,
}

/// What an attack's frames show: the 3-D test's measurement and the landmarks' parallax,
/// the fits that failed, and the largest head turn it can show both ways from its first
/// (square) frame, its frames put in whatever order suits the attacker.
#[derive(Debug, Clone, Copy)]
struct Attack {
    planar_residual: f32,
    fits_failed: usize,
    parallax: f32,
    turn: f32,
}

/// An attack made from `photo`, or `None` when a frame shows no face; and how long it took.
fn attack(engine: &crate::FaceEngine, photo: &RgbImage, seed: u64) -> crate::Result<(Option<Attack>, Timed)> {
    let presentation = if seed.is_multiple_of(2) { Presentation::Print } else { Presentation::Screen };
    let mut seen = Vec::with_capacity(ATTACK_FRAMES);
    let mut timed = Timed::default();
    for frame in planar_attack(photo, presentation, ATTACK_FRAMES, seed) {
        let started = std::time::Instant::now();
        let face = engine.challenge_frame(&crate::DecodedImage::from_rgb(frame))?;
        timed.ms += started.elapsed().as_secs_f64() * 1e3;
        timed.frames += 1;
        match face {
            Some(face) => seen.push(face),
            None => return Ok((None, timed)),
        }
    }
    let started = std::time::Instant::now();
    let fits: Vec<Option<f32>> = seen[1..].iter().map(|f| planar_residual(&seen[0].patch, &f.patch)).collect();
    timed.planar_ms = started.elapsed().as_secs_f64() * 1e3;
    let start = seen[0].pose;
    let most = |step: ChallengeStep| seen.iter().map(|f| step.progress(&start, &f.pose)).fold(0.0f32, f32::max);
    let attack = Attack {
        planar_residual: fits.iter().flatten().copied().fold(0.0, f32::max),
        fits_failed: fits.iter().filter(|f| f.is_none()).count(),
        parallax: crate::challenge::sequence_parallax(&seen),
        turn: most(ChallengeStep::TurnLeft).min(most(ChallengeStep::TurnRight)),
    };
    Ok((Some(attack), timed))
}

/// A real pair of one person's photos: the head's turn between them and both measurements.
struct RealPair {
    turn: f32,
    planar_residual: Option<f32>,
    parallax: f32,
}

/// Measures the 3-D test on `dir/<person>/<photo>`: attacks made from every photo, and
/// every pair of real photos of one person.
///
/// # Errors
/// When `dir` cannot be listed, or inference fails.
pub fn evaluate_liveness(
    engine: &crate::FaceEngine,
    dir: &std::path::Path,
    settings: &LivenessSettings,
    threads: usize,
) -> crate::Result<LivenessReport> {
    let people = crate::identify_eval::list(dir)?;
    let jobs: Vec<(usize, &std::path::Path)> = people
        .iter()
        .enumerate()
        .flat_map(|(p, (_, photos))| photos.iter().map(move |path| (p, path.as_path())))
        .collect();
    let seeded: Vec<(u64, &std::path::Path)> =
        jobs.iter().enumerate().map(|(n, &(_, path))| (n as u64, path)).collect();
    let analysed = crate::identify_eval::parallel_map(&seeded, threads, |&(seed, path)| {
        let Some(image) = std::fs::read(path).ok().and_then(|bytes| engine.decode(&bytes).ok()) else {
            return Ok((None, None, Timed::default()));
        };
        let Some(seen) = engine.challenge_frame(&image)? else { return Ok((None, None, Timed::default())) };
        let (attack, timed) = attack(engine, image.rgb(), seed)?;
        Ok((Some(seen), attack, timed))
    })?;

    let judged: Vec<Attack> = analysed.iter().filter_map(|(_, attack, _)| *attack).collect();
    let attacks: Vec<f32> = judged.iter().map(|a| a.planar_residual).collect();
    let turning = |a: &&Attack| a.turn >= settings.min_turn_deg;
    let attacks_following_steps = judged.iter().filter(turning).count();
    let attacks_accepted_by_challenge =
        judged.iter().filter(turning).filter(|a| a.planar_residual >= settings.min_planar_residual).count();
    let with_face = analysed.iter().filter(|(seen, ..)| seen.is_some()).count();
    let frames_ms: f64 = analysed.iter().map(|(.., t)| t.ms).sum();
    let frames: usize = analysed.iter().map(|(.., t)| t.frames).sum();
    let ms_per_frame = frames_ms / frames.max(1) as f64;
    let planar_ms: f64 = analysed.iter().filter(|(_, a, _)| a.is_some()).map(|(.., t)| t.planar_ms).sum();
    let ms_per_planar_test = planar_ms / judged.len().max(1) as f64;

    let pairs = real_pairs(&jobs, &analysed.iter().map(|(seen, ..)| seen.as_ref()).collect::<Vec<_>>(), settings);
    let share = |hits: usize, of: usize| if of == 0 { 0.0 } else { hits as f64 / of as f64 };
    // A failed fit is no evidence of depth: it counts as 0.
    let residual = |p: &RealPair| p.planar_residual.unwrap_or(0.0);
    let turned: Vec<f32> = pairs.iter().filter(|p| p.turn >= settings.min_turn_deg).map(residual).collect();
    let rates = |threshold: f32| {
        (
            share(attacks.iter().filter(|&&p| p >= threshold).count(), attacks.len()),
            share(turned.iter().filter(|&&p| p < threshold).count(), turned.len()),
        )
    };
    let real_by_turn = TURN_BUCKETS
        .iter()
        .map(|&(min_deg, max_deg)| {
            let bucket: Vec<&RealPair> = pairs.iter().filter(|p| (min_deg..max_deg).contains(&p.turn)).collect();
            let residuals: Vec<f32> = bucket.iter().map(|p| residual(p)).collect();
            let refused =
                share(residuals.iter().filter(|&&p| p < settings.min_planar_residual).count(), residuals.len());
            let parallax = Spread::of(bucket.iter().map(|p| p.parallax).collect());
            TurnBucket { min_deg, max_deg, planar_residual: Spread::of(residuals), parallax, refused }
        })
        .collect();
    let sweep = SWEEP
        .iter()
        .map(|&min_planar_residual| {
            let (attacks_accepted, real_refused) = rates(min_planar_residual);
            SweepRow { min_planar_residual, attacks_accepted, real_refused }
        })
        .collect();
    let (attacks_accepted, real_refused) = rates(settings.min_planar_residual);
    Ok(LivenessReport {
        people: people.len(),
        photos: jobs.len(),
        photos_with_face: with_face,
        attack_sequences: with_face,
        attack_sequences_judged: attacks.len(),
        attack_planar_residual: Spread::of(attacks),
        attack_fits_failed: judged.iter().map(|a| a.fits_failed).sum(),
        attack_parallax: Spread::of(judged.iter().map(|a| a.parallax).collect()),
        attack_turn: Spread::of(judged.iter().map(|a| a.turn).collect()),
        attacks_following_steps,
        attacks_accepted_by_challenge,
        real_pairs: pairs.len(),
        real_fits_failed: pairs.iter().filter(|p| p.planar_residual.is_none()).count(),
        real_by_turn,
        sweep,
        min_planar_residual: settings.min_planar_residual,
        min_turn_deg: settings.min_turn_deg,
        attacks_accepted,
        real_refused,
        ms_per_frame,
        ms_per_planar_test,
        ms_per_decision: ms_per_frame * ATTACK_FRAMES as f64 + ms_per_planar_test,
    })
}

/// Every pair of two photos of one person whose largest faces match, measured.
fn real_pairs(
    jobs: &[(usize, &std::path::Path)],
    faces: &[Option<&ChallengeFrame>],
    settings: &LivenessSettings,
) -> Vec<RealPair> {
    let mut pairs = Vec::new();
    for (i, &(person, _)) in jobs.iter().enumerate() {
        for (j, &(other, _)) in jobs.iter().enumerate().skip(i + 1) {
            let (Some(a), Some(b)) = (faces[i], faces[j]) else { continue };
            if other != person || a.embedding.cosine(&b.embedding) < settings.same_person {
                continue;
            }
            let turn = (a.pose.yaw_deg - b.pose.yaw_deg).abs().max((a.pose.pitch_deg - b.pose.pitch_deg).abs());
            pairs.push(RealPair {
                turn,
                planar_residual: planar_residual(&a.patch, &b.patch),
                parallax: crate::challenge::parallax(&a.landmarks, &b.landmarks),
            });
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_view_leaves_the_photo_in_place() {
        let view = View { yaw: 0.0, pitch: 0.0, roll: 0.0, scale: 1.0, shift: (0.0, 0.0) };
        let h = view.homography(200, 100);
        let apply = |x: f64, y: f64| {
            let z = h[6] * x + h[7] * y + h[8];
            ((h[0] * x + h[1] * y + h[2]) / z, (h[3] * x + h[4] * y + h[5]) / z)
        };
        for (x, y) in [(0.0, 0.0), (200.0, 100.0), (37.0, 81.0)] {
            let (u, v) = apply(x, y);
            assert!((u - x).abs() < 1e-9 && (v - y).abs() < 1e-9, "({x},{y}) → ({u},{v})");
        }
        let m = [2.0, 1.0, 0.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0];
        let back = invert(&m);
        let product = mul(
            &[[m[0], m[1], m[2]], [m[3], m[4], m[5]], [m[6], m[7], m[8]]],
            &[[back[0], back[1], back[2]], [back[3], back[4], back[5]], [back[6], back[7], back[8]]],
        );
        for (i, row) in product.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn attacks_are_deterministic_and_differ_between_frames() {
        let photo = RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 128]));
        let a = planar_attack(&photo, Presentation::Screen, 3, 7);
        let b = planar_attack(&photo, Presentation::Screen, 3, 7);
        assert_eq!(a, b);
        assert_ne!(a[1], a[2]);
        assert_eq!((a[0].width(), a[0].height()), (64, 48));
    }
}

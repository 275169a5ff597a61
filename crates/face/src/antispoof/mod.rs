//! A passive anti-spoof score: a weak signal, not a presentation-attack defence.
//!
//! Two small CNNs from the Human library (`@vladmandic/human` 3.3.6, MIT) vote:
//! - `antispoof` (128×128 RGB crop, sigmoid output; Human reports it as `real`), trained to
//!   tell expert-photoshopped faces from unedited ones (Kaggle's "Real and Fake Face
//!   Detection" set), not printed photos, screens or replays;
//! - `liveness` (32×32 RGB crop, softmax over two classes; Human reports class 0 as `live`),
//!   whose training data is not documented.
//!
//! Neither was trained or tested on presentation attacks that we know of; what is known is
//! in `docs/ACCURACY.md` ("What `is_live` means").
//!
//! Both are TensorFlow.js graph models. They are translated at load time into tract models
//! by a small TF.js graph-model loader (`tfjs.rs`, NHWC kept as is), optimised once, and run
//! in pure Rust: no Node, no Python. The face crops follow Human's own pre-processing (see `preprocess.rs`).
//!
//! The combined [`Liveness::anti_spoof_score`] is the **mean** of the two "real"
//! probabilities. Measured on the fixture portraits with OpenCV YuNet boxes (debug build,
//! same numbers as TF.js to 1e-3): `antispoof` gives live faces 0.63–0.69 but a flat grey
//! card 0.76, so on its own it barely separates anything; `liveness` gives live faces
//! 0.86–1.00 and non-faces much less (grey card 0.62, black 0.39, noise 0.17–0.57). The
//! minimum would tie the decision to `antispoof`'s narrow, uninformative range; the mean lets
//! `liveness` carry it while a face that `antispoof` finds suspicious still loses points.
//!
//! Be realistic about what this catches: both models are small, trained on other data, and
//! do not react to blur or re-sampling (a face crop taken down to 24×24 and back scores like
//! the original). Treat the score as one signal among others (quality, challenge-response),
//! and calibrate the threshold on your own cameras.

mod preprocess;
mod tfjs;

use std::path::Path;

use tract_onnx::prelude::*;

use crate::{BoundingBox, Error};

/// Side of the `antispoof` model's square input.
pub const ANTISPOOF_INPUT_SIZE: usize = 128;
/// Side of the `liveness` model's square input.
pub const LIVENESS_INPUT_SIZE: usize = 32;

/// Default decision threshold on [`Liveness::anti_spoof_score`].
///
/// Chosen from data: the highest threshold (in hundredths) at which the check refuses at
/// most 1% of real faces *with 95% confidence*, measured on the 1,421 faces of 399 people of
/// the calibration set (`rollcall eval --identify`, docs/ACCURACY.md): the Wilson bound of the
/// share refused, over the photos divided by the design effect of their clustering by person
/// (one person's photos are refused together far more often than independent photos would
/// be). 0.45 refuses 0.49% there. The bound matters: 0.51 refused 0.99% of the same faces but
/// 1.7% of one half of the people, and 0.65 refused 4.2% — a real person turned away as a
/// spoof for a check that is a weak signal at best.
pub const DEFAULT_THRESHOLD: f32 = 0.45;

/// File names inside the models directory.
const ANTISPOOF_FILE: &str = "antispoof.json";
const LIVENESS_FILE: &str = "liveness.json";

type Plan = Arc<TypedRunnableModel>;

/// The passive anti-spoof score of the Human library's `antispoof` and `liveness` models
/// (see the module docs for what they were trained on).
///
/// Loading translates and optimises both models once; [`AntiSpoof::check`] then only
/// crops and runs them, and can be called from several threads at once (`Send + Sync`).
#[derive(Debug)]
pub struct AntiSpoof {
    antispoof: Plan,
    liveness: Plan,
    threshold: f32,
}

/// Result of an anti-spoof check.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Liveness {
    /// Whether the face is judged to be a live person (`anti_spoof_score >= threshold`).
    pub is_live: bool,
    /// Combined score in [0, 1]; higher is more likely live. The mean of the two models'
    /// "real" probabilities.
    pub anti_spoof_score: f32,
    /// Probability of a real face from the `antispoof` model alone, in [0, 1].
    pub antispoof_model: f32,
    /// Probability of a live face from the `liveness` model alone, in [0, 1].
    pub liveness_model: f32,
}

/// The two model inputs for one face: RGB, values in [0, 1], row-major HWC
/// (`height × width × 3`), exactly what the models are fed.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceCrops {
    /// [`ANTISPOOF_INPUT_SIZE`]² × 3 values.
    pub antispoof: Vec<f32>,
    /// [`LIVENESS_INPUT_SIZE`]² × 3 values.
    pub liveness: Vec<f32>,
}

impl FaceCrops {
    /// Cuts both crops around a detector box the way Human 3.3.6 does: the box is enlarged
    /// 1.4× about its centre and squared on its longer side, cut to 192×192 (bilinear,
    /// black outside the image, divided by 255), then resized to 128×128 and 32×32.
    pub fn from_face(image: &image::RgbImage, face: BoundingBox) -> Result<Self, Error> {
        let finite = [face.x, face.y, face.width, face.height].iter().all(|v| v.is_finite());
        if !finite || face.width <= 0.0 || face.height <= 0.0 {
            return Err(Error::InvalidArgument(format!("face box {face:?} is empty or not finite")));
        }
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::InvalidArgument("the image is empty".into()));
        }
        let face192 = preprocess::crop_and_resize(image, preprocess::crop_box(face), preprocess::FACE_SIZE);
        Ok(Self {
            antispoof: preprocess::resize_bilinear(&face192, ANTISPOOF_INPUT_SIZE).data,
            liveness: preprocess::resize_bilinear(&face192, LIVENESS_INPUT_SIZE).data,
        })
    }
}

impl AntiSpoof {
    /// Loads `antispoof.json|.bin` and `liveness.json|.bin` from `models_dir`, with the
    /// [`DEFAULT_THRESHOLD`].
    ///
    /// # Errors
    /// [`Error::ModelMissing`] naming the first missing file; [`Error::Model`] if a file is
    /// not a graph model this loader understands.
    pub fn load(models_dir: &Path) -> Result<Self, Error> {
        Ok(Self {
            antispoof: load_plan(&models_dir.join(ANTISPOOF_FILE), ANTISPOOF_INPUT_SIZE)?,
            liveness: load_plan(&models_dir.join(LIVENESS_FILE), LIVENESS_INPUT_SIZE)?,
            threshold: DEFAULT_THRESHOLD,
        })
    }

    /// Sets the decision threshold on the combined score.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 <= threshold <= 1`.
    pub fn with_threshold(mut self, threshold: f32) -> Result<Self, Error> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::InvalidArgument(format!("anti-spoof threshold {threshold} is outside [0, 1]")));
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// The decision threshold in use.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Checks one face; `face` is the detector's box in `image` coordinates.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty box or image, [`Error::Model`] if inference fails.
    pub fn check(&self, image: &image::RgbImage, face: BoundingBox) -> Result<Liveness, Error> {
        self.check_crops(&FaceCrops::from_face(image, face)?)
    }

    /// Runs both models on ready-made crops (see [`FaceCrops`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a crop has the wrong length, [`Error::Model`] if
    /// inference fails.
    pub fn check_crops(&self, crops: &FaceCrops) -> Result<Liveness, Error> {
        let antispoof_model = run(&self.antispoof, &crops.antispoof, ANTISPOOF_INPUT_SIZE)?[0];
        let liveness_model = run(&self.liveness, &crops.liveness, LIVENESS_INPUT_SIZE)?[0];
        let anti_spoof_score = ((antispoof_model + liveness_model) / 2.0).clamp(0.0, 1.0);
        Ok(Liveness { is_live: anti_spoof_score >= self.threshold, anti_spoof_score, antispoof_model, liveness_model })
    }
}

fn load_plan(json: &Path, size: usize) -> Result<Plan, Error> {
    let (model, hwc) = tfjs::load_graph_model(json)?;
    if hwc != [size, size, 3] {
        return Err(Error::Model(format!("{}: input is {hwc:?}, expected [{size}, {size}, 3]", json.display())));
    }
    model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| Error::Model(format!("{}: {e:#}", json.display())))
}

fn run(plan: &Plan, input: &[f32], size: usize) -> Result<Vec<f32>, Error> {
    if input.len() != size * size * 3 {
        return Err(Error::InvalidArgument(format!(
            "crop has {} values, expected {size}x{size}x3 = {}",
            input.len(),
            size * size * 3
        )));
    }
    let tensor = Tensor::from_shape(&[1, size, size, 3], input).map_err(|e| Error::Model(format!("{e:#}")))?;
    let out = plan.run(tvec!(tensor.into())).map_err(|e| Error::Model(format!("anti-spoof inference: {e:#}")))?;
    let view = out[0]
        .try_as_plain_ram()
        .and_then(|plain| plain.as_slice::<f32>())
        .map_err(|e| Error::Model(format!("{e:#}")))?;
    Ok(view.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn anti_spoof_is_send_and_sync() {
        assert_send_sync::<AntiSpoof>();
    }
}

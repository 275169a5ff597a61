//! The whole pipeline behind one type: [`FaceEngine`] loads every model once and is shared
//! between threads (`Send + Sync`; every method takes `&self`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::antispoof::{AntiSpoof, Liveness};
use crate::backend::{Backend, BackendChoice};
use crate::challenge::ChallengeFrame;
use crate::decision::{Decision, DecisionRule, ThresholdRule};
use crate::decode::{DecodeOptions, DecodedImage};
use crate::detect::{Detection, Detector, DetectorConfig, YUNET_FILE};
use crate::embed::{Embedder, Embedding, SFACE_FILE, Template};
use crate::index::{FaceIndex, SearchResult};
use crate::photometric::FacePatch;
use crate::quality::{Quality, QualityConfig, QualityIssue, assess};
use crate::{Result, align};

/// Environment variable naming the models directory.
pub const MODELS_DIR_ENV: &str = "ROLLCALL_MODELS_DIR";

/// The models directory from `ROLLCALL_MODELS_DIR`, else `data/models`.
pub fn models_dir_from_env() -> PathBuf {
    std::env::var_os(MODELS_DIR_ENV).map_or_else(|| PathBuf::from("data/models"), PathBuf::from)
}

/// Everything the engine needs to load and run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Directory holding the model files (`make models` fills it).
    pub models_dir: PathBuf,
    /// Inference backend (default: ONNX Runtime when its library is in `models_dir`, else
    /// tract).
    pub backend: BackendChoice,
    /// Decoding limits.
    pub decode: DecodeOptions,
    /// Detector settings.
    pub detector: DetectorConfig,
    /// Quality limits.
    pub quality: QualityConfig,
    /// Run anti-spoofing on every analysed face.
    pub anti_spoof: bool,
    /// Anti-spoof threshold on the combined score (`None`: the module's default).
    pub anti_spoof_threshold: Option<f32>,
    /// Default open-set rule for [`FaceEngine::identify`].
    pub decision: ThresholdRule,
    /// At enrollment, a photo is refused as `multiple_faces` when its second-largest face
    /// is at least this fraction of the largest face's width (small background faces are
    /// tolerated).
    pub multiple_faces_min_width_ratio: f32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            models_dir: models_dir_from_env(),
            backend: BackendChoice::default(),
            decode: DecodeOptions::default(),
            detector: DetectorConfig::default(),
            quality: QualityConfig::default(),
            anti_spoof: true,
            anti_spoof_threshold: None,
            decision: ThresholdRule::default(),
            multiple_faces_min_width_ratio: 0.5,
        }
    }
}

impl EngineConfig {
    /// Defaults with the models in `models_dir`.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        Self { models_dir: models_dir.into(), ..Self::default() }
    }
}

/// Everything the engine knows about one face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceAnalysis {
    /// Box, landmarks and detector score, in the decoded (upright) photo's coordinates.
    pub detection: Detection,
    /// Quality measurements, scores and issues.
    pub quality: Quality,
    /// Anti-spoof result when enabled.
    pub liveness: Option<Liveness>,
    /// The face's embedding; `None` only for degenerate landmarks. Never serialised.
    #[serde(skip)]
    pub embedding: Option<Embedding>,
}

/// What the passive anti-spoof verdict does to an identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoofGate {
    /// A face judged not live is refused (`spoof`).
    Refuse,
    /// The verdict and score are kept in the analysis, and the face is identified anyway:
    /// where liveness is checked otherwise (an active challenge) or not at all.
    Report,
}

/// Why a face was not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum FaceRejection {
    /// No face was found.
    NoFace,
    /// Several comparable faces: which one is the person is ambiguous.
    MultipleFaces {
        /// Number of faces found.
        count: usize,
    },
    /// The face is too small, blurred, badly exposed, turned away or cut off.
    LowQuality {
        /// The limits it breaks.
        issues: Vec<QualityIssue>,
    },
    /// The anti-spoof check judged the face not live.
    Spoof {
        /// Combined anti-spoof score in [0, 1].
        anti_spoof_score: f32,
    },
}

impl FaceRejection {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            FaceRejection::NoFace => "no_face",
            FaceRejection::MultipleFaces { .. } => "multiple_faces",
            FaceRejection::LowQuality { .. } => "low_quality",
            FaceRejection::Spoof { .. } => "spoof",
        }
    }
}

/// The outcome for one enrollment photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnrollOutcome {
    /// The photo's face is part of the template.
    Accepted {
        /// The face used.
        face: FaceAnalysis,
    },
    /// The photo was not used.
    Rejected {
        /// Why.
        reason: FaceRejection,
        /// The largest face, when one was found.
        face: Option<FaceAnalysis>,
    },
}

/// Result of [`FaceEngine::enroll`].
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// One outcome per input photo, in order.
    pub outcomes: Vec<EnrollOutcome>,
    /// The fused template of the accepted photos; `None` if none was accepted.
    pub template: Option<Template>,
}

/// Result of [`FaceEngine::identify`] for the largest face of a photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Identification {
    /// No usable face: nothing was searched.
    Rejected {
        /// Why.
        reason: FaceRejection,
        /// The largest face, when one was found.
        face: Option<FaceAnalysis>,
    },
    /// The face was searched and decided on.
    Searched {
        /// The face.
        face: FaceAnalysis,
        /// Best and second-best identities.
        search: SearchResult,
        /// The open-set decision.
        decision: Decision,
    },
}

impl Identification {
    /// The recognised identity, if any.
    pub fn identity(&self) -> Option<&str> {
        match self {
            Identification::Searched { decision, .. } => decision.identity(),
            Identification::Rejected { .. } => None,
        }
    }
}

/// The face engine: detector, embedder and (optionally) anti-spoofing, loaded once.
#[derive(Debug)]
pub struct FaceEngine {
    config: EngineConfig,
    detector: Detector,
    embedder: Embedder,
    anti_spoof: Option<AntiSpoof>,
    backend: Arc<dyn Backend>,
}

impl FaceEngine {
    /// Loads every model with the configured backend ([`EngineConfig::backend`]).
    ///
    /// # Errors
    /// [`crate::Error::ModelMissing`] when a model file is absent (run `make models`),
    /// [`crate::Error::Model`] when one fails to load.
    pub fn load(config: &EngineConfig) -> Result<Self> {
        Self::load_with_backend(config, config.backend.resolve(&config.models_dir)?)
    }

    /// Loads every model with the given inference backend.
    ///
    /// # Errors
    /// As [`FaceEngine::load`].
    pub fn load_with_backend(config: &EngineConfig, backend: Arc<dyn Backend>) -> Result<Self> {
        let dir = &config.models_dir;
        let detector = Detector::load(backend.clone(), &dir.join(YUNET_FILE), config.detector)?;
        let embedder = Embedder::load(backend.as_ref(), &dir.join(SFACE_FILE))?;
        let anti_spoof = if config.anti_spoof {
            let mut a = AntiSpoof::load(dir)?;
            if let Some(t) = config.anti_spoof_threshold {
                a = a.with_threshold(t)?;
            }
            Some(a)
        } else {
            None
        };
        Ok(Self { config: config.clone(), detector, embedder, anti_spoof, backend })
    }

    /// The configuration the engine was loaded with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The anti-spoof stage, when enabled.
    pub fn anti_spoof(&self) -> Option<&AntiSpoof> {
        self.anti_spoof.as_ref()
    }

    /// Name of the inference backend.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Decodes bytes with the configured limits (see [`crate::decode::decode`]).
    ///
    /// # Errors
    /// The decoding errors of [`crate::decode::decode`].
    pub fn decode(&self, bytes: &[u8]) -> Result<DecodedImage> {
        crate::decode::decode(bytes, &self.config.decode)
    }

    /// Decodes a `data:` URI or base64 string with the configured limits.
    ///
    /// # Errors
    /// As [`crate::decode::decode_base64`].
    pub fn decode_base64(&self, text: &str) -> Result<DecodedImage> {
        crate::decode::decode_base64(text, &self.config.decode)
    }

    /// Detects all faces, largest first.
    ///
    /// # Errors
    /// [`crate::Error::Model`].
    pub fn detect(&self, image: &DecodedImage) -> Result<Vec<Detection>> {
        self.detector.detect(image.rgb())
    }

    /// The aligned 112×112 crop of a detected face (`None` for degenerate landmarks).
    pub fn align(&self, image: &DecodedImage, detection: &Detection) -> Option<RgbImage> {
        align::align_face(image.rgb(), &detection.landmarks)
    }

    /// Embeds an aligned crop.
    ///
    /// # Errors
    /// [`crate::Error::Model`], or [`crate::Error::InvalidArgument`] for a wrong size.
    pub fn embed_aligned(&self, aligned: &RgbImage) -> Result<Embedding> {
        self.embedder.embed(aligned)
    }

    /// The largest face of one frame of a liveness challenge's answer: landmarks, pose,
    /// aligned patch and embedding (`None` when the frame shows no usable face).
    ///
    /// # Errors
    /// [`crate::Error::Model`].
    pub fn challenge_frame(&self, image: &DecodedImage) -> Result<Option<ChallengeFrame>> {
        let Some(detection) = self.detect(image)?.first().copied() else { return Ok(None) };
        let Some(aligned) = self.align(image, &detection) else { return Ok(None) };
        let embedding = self.embed_aligned(&aligned)?;
        let pose = crate::quality::estimate_pose(&detection);
        let patch = FacePatch::from_aligned(&aligned);
        Ok(Some(ChallengeFrame { landmarks: detection.landmarks, pose, patch, embedding }))
    }

    /// Quality, liveness and embedding of one detected face.
    ///
    /// # Errors
    /// [`crate::Error::Model`].
    pub fn analyze_face(&self, image: &DecodedImage, detection: Detection) -> Result<FaceAnalysis> {
        let rgb = image.rgb();
        let aligned = align::align_face(rgb, &detection.landmarks);
        let blank;
        let crop = match &aligned {
            Some(c) => c,
            None => {
                blank = RgbImage::new(align::ALIGNED_SIZE, align::ALIGNED_SIZE);
                &blank
            }
        };
        let quality = assess(&detection, rgb.dimensions(), crop, &self.config.quality);
        let liveness = match &self.anti_spoof {
            Some(a) => Some(a.check(rgb, detection.bbox)?),
            None => None,
        };
        let embedding = match &aligned {
            Some(c) => Some(self.embedder.embed(c)?),
            None => None,
        };
        Ok(FaceAnalysis { detection, quality, liveness, embedding })
    }

    /// Detects and analyses every face, largest first.
    ///
    /// # Errors
    /// [`crate::Error::Model`].
    pub fn analyze(&self, image: &DecodedImage) -> Result<Vec<FaceAnalysis>> {
        self.detect(image)?.into_iter().map(|d| self.analyze_face(image, d)).collect()
    }

    /// Why the analysed face cannot be used, if it cannot.
    fn usable(&self, face: &FaceAnalysis) -> Option<FaceRejection> {
        if !face.quality.is_acceptable() {
            return Some(FaceRejection::LowQuality { issues: face.quality.issues.clone() });
        }
        if let Some(l) = &face.liveness
            && !l.is_live
        {
            return Some(FaceRejection::Spoof { anti_spoof_score: l.anti_spoof_score });
        }
        if face.embedding.is_none() {
            return Some(FaceRejection::LowQuality { issues: vec![QualityIssue::TurnedAway] });
        }
        None
    }

    /// Builds a template from enrollment photos: each photo must hold one clear face
    /// (see [`EngineConfig::multiple_faces_min_width_ratio`]) of acceptable quality that
    /// passes anti-spoofing.
    ///
    /// # Errors
    /// [`crate::Error::Model`] only; bad photos are reported per photo in the outcomes.
    pub fn enroll(&self, images: &[DecodedImage]) -> Result<Enrollment> {
        let mut outcomes = Vec::with_capacity(images.len());
        let mut accepted = Vec::new();
        for image in images {
            let detections = self.detect(image)?;
            let Some(&largest) = detections.first() else {
                outcomes.push(EnrollOutcome::Rejected { reason: FaceRejection::NoFace, face: None });
                continue;
            };
            let min_width = largest.bbox.width * self.config.multiple_faces_min_width_ratio;
            let comparable = detections.iter().filter(|d| d.bbox.width >= min_width).count();
            let face = self.analyze_face(image, largest)?;
            let rejection = if comparable > 1 {
                Some(FaceRejection::MultipleFaces { count: detections.len() })
            } else {
                self.usable(&face)
            };
            match (rejection, &face.embedding) {
                (None, Some(e)) => {
                    accepted.push(e.clone());
                    outcomes.push(EnrollOutcome::Accepted { face });
                }
                (reason, _) => outcomes.push(EnrollOutcome::Rejected {
                    reason: reason.unwrap_or(FaceRejection::NoFace),
                    face: Some(face),
                }),
            }
        }
        let template = if accepted.is_empty() { None } else { Some(Template::new(accepted)?) };
        Ok(Enrollment { outcomes, template })
    }

    /// Identifies the largest face of a photo against `index` with the configured rule.
    ///
    /// # Errors
    /// [`crate::Error::Model`].
    pub fn identify(&self, image: &DecodedImage, index: &dyn FaceIndex) -> Result<Identification> {
        self.identify_with(image, index, &self.config.decision, SpoofGate::Refuse)
    }

    /// Identifies the largest face of a photo against `index` with `rule`; `gate` says
    /// whether the passive anti-spoof verdict refuses the face or is only reported.
    ///
    /// # Errors
    /// [`crate::Error::Model`].
    pub fn identify_with(
        &self,
        image: &DecodedImage,
        index: &dyn FaceIndex,
        rule: &dyn DecisionRule,
        gate: SpoofGate,
    ) -> Result<Identification> {
        let Some(&largest) = self.detect(image)?.first() else {
            return Ok(Identification::Rejected { reason: FaceRejection::NoFace, face: None });
        };
        let face = self.analyze_face(image, largest)?;
        let refusal = match self.usable(&face) {
            Some(FaceRejection::Spoof { .. }) if gate == SpoofGate::Report => None,
            refusal => refusal,
        };
        if let Some(reason) = refusal {
            return Ok(Identification::Rejected { reason, face: Some(face) });
        }
        let Some(embedding) = &face.embedding else {
            return Ok(Identification::Rejected { reason: FaceRejection::NoFace, face: Some(face) });
        };
        let search = index.search(embedding);
        let decision = rule.decide(&search);
        Ok(Identification::Searched { face, search, decision })
    }
}

/// Compile-time proof that the engine can be shared between worker threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<FaceEngine>();
};

/// Path of a model file inside a models directory (for tools that check set-up).
pub fn model_paths(models_dir: &Path) -> [PathBuf; 2] {
    [models_dir.join(YUNET_FILE), models_dir.join(SFACE_FILE)]
}

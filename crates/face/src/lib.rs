//! Rollcall's face engine: decoding, detection, alignment, quality, anti-spoofing,
//! embeddings and 1:N matching on the CPU.
//!
//! This crate must not depend on HTTP, SQL or an async runtime: the server calls it
//! from blocking worker threads, and deployers can use it on its own.

pub mod align;
pub mod antispoof;
pub mod backend;
pub mod challenge;
pub mod decision;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod engine;
mod error;
pub mod eval;
mod evidence;
mod geometry;
pub mod identify_eval;
pub mod index;
pub mod liveness_eval;
pub mod photometric;
pub mod quality;

pub use backend::BackendChoice;
pub use decision::{
    CalibrationCurve, ConfidenceCurve, Decision, DecisionRule, OpenSetPolicy, RejectReason, Threshold, ThresholdRule,
};
pub use decode::{DecodeOptions, DecodedImage};
pub use detect::{Detection, DetectorConfig};
pub use embed::{EMBEDDING_DIM, Embedding, Template};
pub use engine::{
    EngineConfig, EnrollOutcome, Enrollment, FaceAnalysis, FaceEngine, FaceRejection, Identification, SpoofGate,
};
pub use error::{Error, Result};
pub use evidence::{EVIDENCE_MAX_SIDE, evidence_crop};
pub use geometry::{BoundingBox, Landmarks, Point};
pub use index::{ExactIndex, FaceIndex, Fusion, SPLIT_SCAN_MIN_ROWS, SearchHit, SearchResult};
pub use quality::{Quality, QualityConfig, QualityIssue};

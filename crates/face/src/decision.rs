//! Open-set decisions: given the best and second-best identities of a 1:N search, is the
//! face someone enrolled, and how sure are we?
//!
//! Kept apart from the index so a calibrated, gallery-aware rule can replace
//! [`ThresholdRule`] without touching search.

use serde::{Deserialize, Serialize};

use crate::index::SearchResult;
use crate::{Error, Result};

/// OpenCV's published SFace operating point for comparing two photos (cosine).
pub const OPENCV_SFACE_THRESHOLD: f32 = 0.363;

/// A cosine-similarity threshold in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Threshold(f32);

impl Threshold {
    /// Validates a threshold.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] outside [-1, 1] or for NaN.
    pub fn new(value: f32) -> Result<Self> {
        if (-1.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(Error::InvalidArgument(format!("a similarity threshold must be in [-1, 1], got {value}")))
        }
    }

    /// The value.
    pub fn get(self) -> f32 {
        self.0
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Self(OPENCV_SFACE_THRESHOLD)
    }
}

impl TryFrom<f32> for Threshold {
    type Error = Error;
    fn try_from(v: f32) -> Result<Self> {
        Threshold::new(v)
    }
}

impl From<Threshold> for f32 {
    fn from(t: Threshold) -> f32 {
        t.0
    }
}

/// Maps a similarity to a confidence in [0, 1] with a logistic curve:
///
/// `confidence(s) = 1 / (1 + exp(−(s − midpoint) / scale))`
///
/// By default `midpoint` is the decision threshold (a face exactly at the threshold gets
/// 0.5) and `scale` is 0.04, so 0.1 above the threshold reads ≈ 0.92 and 0.1 below ≈ 0.08.
/// This is a monotone, uncalibrated stand-in: the curve's parameters are meant to be fitted
/// on labelled photos (issue 11), after which the value estimates the probability that an
/// acceptance is right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceCurve {
    /// Similarity at which the confidence is 0.5.
    pub midpoint: f32,
    /// Similarity change that moves the log-odds by 1 (must be > 0).
    pub scale: f32,
}

impl ConfidenceCurve {
    /// The curve centred on `threshold` with the default scale.
    pub fn centred_on(threshold: Threshold) -> Self {
        Self { midpoint: threshold.get(), scale: 0.04 }
    }

    /// The confidence for `similarity`.
    pub fn confidence(&self, similarity: f32) -> f32 {
        let scale = self.scale.max(1e-6);
        1.0 / (1.0 + (-(similarity - self.midpoint) / scale).exp())
    }
}

impl Default for ConfidenceCurve {
    fn default() -> Self {
        Self::centred_on(Threshold::default())
    }
}

/// Why a search did not end in a recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Nobody is enrolled.
    EmptyGallery,
    /// The best similarity is below the threshold.
    BelowThreshold,
    /// The best identity does not beat the second-best by the required margin.
    AmbiguousMatch,
}

/// The outcome of an open-set decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Decision {
    /// The face is this enrolled identity.
    Recognised {
        /// The identity.
        identity: String,
        /// Cosine similarity to it.
        similarity: f32,
        /// Similarity margin to the second-best identity (see [`SearchResult::margin`]).
        margin: f32,
        /// See [`ConfidenceCurve`].
        confidence: f32,
    },
    /// The face is not recognised.
    NotRecognised {
        /// Why.
        reason: RejectReason,
        /// Closest identity, if any (for diagnostics; never treat as a match).
        closest: Option<String>,
        /// Its similarity.
        similarity: Option<f32>,
        /// Margin to the second-best identity.
        margin: Option<f32>,
        /// Confidence that the closest identity *is* the person (low here).
        confidence: f32,
    },
}

impl Decision {
    /// The recognised identity, if any.
    pub fn identity(&self) -> Option<&str> {
        match self {
            Decision::Recognised { identity, .. } => Some(identity),
            Decision::NotRecognised { .. } => None,
        }
    }
}

/// Turns a 1:N search result into a decision.
pub trait DecisionRule: Send + Sync + std::fmt::Debug {
    /// Decides for one probe.
    fn decide(&self, result: &SearchResult) -> Decision;
}

/// Accept the best identity when its similarity reaches `threshold` and beats the
/// second-best identity by at least `min_margin`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdRule {
    /// Minimum cosine similarity (default 0.363, OpenCV's pair threshold).
    pub threshold: Threshold,
    /// Minimum `best − second` similarity (default 0: no margin rule).
    pub min_margin: f32,
    /// How similarity maps to confidence.
    pub confidence: ConfidenceCurve,
}

impl Default for ThresholdRule {
    fn default() -> Self {
        Self::new(Threshold::default())
    }
}

impl ThresholdRule {
    /// A rule with this threshold, no margin, and the confidence curve centred on it.
    pub fn new(threshold: Threshold) -> Self {
        Self { threshold, min_margin: 0.0, confidence: ConfidenceCurve::centred_on(threshold) }
    }
}

impl DecisionRule for ThresholdRule {
    fn decide(&self, result: &SearchResult) -> Decision {
        let Some(best) = &result.best else {
            return Decision::NotRecognised {
                reason: RejectReason::EmptyGallery,
                closest: None,
                similarity: None,
                margin: None,
                confidence: 0.0,
            };
        };
        let margin = result.margin().unwrap_or(f32::INFINITY);
        let confidence = self.confidence.confidence(best.similarity);
        let reason = if best.similarity < self.threshold.get() {
            Some(RejectReason::BelowThreshold)
        } else if margin < self.min_margin {
            Some(RejectReason::AmbiguousMatch)
        } else {
            None
        };
        match reason {
            None => Decision::Recognised {
                identity: best.identity.clone(),
                similarity: best.similarity,
                margin,
                confidence,
            },
            Some(reason) => Decision::NotRecognised {
                reason,
                closest: Some(best.identity.clone()),
                similarity: Some(best.similarity),
                margin: Some(margin),
                confidence,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SearchHit;

    fn result(best: f32, second: Option<f32>) -> SearchResult {
        SearchResult {
            best: Some(SearchHit { identity: "a".into(), similarity: best }),
            second: second.map(|s| SearchHit { identity: "b".into(), similarity: s }),
        }
    }

    #[test]
    fn threshold_and_margin() {
        let mut rule = ThresholdRule::default();
        assert_eq!(rule.decide(&result(0.5, Some(0.2))).identity(), Some("a"));
        assert!(matches!(
            rule.decide(&result(0.3, Some(0.2))),
            Decision::NotRecognised { reason: RejectReason::BelowThreshold, .. }
        ));
        assert!(matches!(
            rule.decide(&SearchResult::default()),
            Decision::NotRecognised { reason: RejectReason::EmptyGallery, .. }
        ));
        rule.min_margin = 0.1;
        assert!(matches!(
            rule.decide(&result(0.5, Some(0.45))),
            Decision::NotRecognised { reason: RejectReason::AmbiguousMatch, .. }
        ));
        assert_eq!(rule.decide(&result(0.5, None)).identity(), Some("a"));
    }

    #[test]
    fn confidence_is_logistic_around_the_threshold() {
        let c = ConfidenceCurve::default();
        assert!((c.confidence(0.363) - 0.5).abs() < 1e-6);
        assert!(c.confidence(0.463) > 0.9 && c.confidence(0.263) < 0.1);
        assert!(c.confidence(1.0) <= 1.0 && c.confidence(-1.0) >= 0.0);
        let mut last = 0.0;
        for i in -100..=100 {
            let v = c.confidence(i as f32 / 100.0);
            assert!(v >= last);
            last = v;
        }
    }

    #[test]
    fn thresholds_are_validated() {
        assert!(Threshold::new(1.5).is_err());
        assert!(Threshold::new(f32::NAN).is_err());
        assert_eq!(Threshold::new(0.4).unwrap().get(), 0.4);
        assert!(serde_json::from_str::<Threshold>("2.0").is_err());
    }
}

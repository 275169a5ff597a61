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

/// How a similarity maps to a confidence in [0, 1].
///
/// - [`ConfidenceCurve::Calibrated`] (the default, what the server uses): the estimated
///   probability that the best identity *is* the person, from the shipped calibration
///   curve and the gallery size (see [`CalibrationCurve::confidence`]). For a recognised
///   face this is the probability that the decision is right.
/// - [`ConfidenceCurve::Logistic`]: `1 / (1 + exp(−(s − midpoint) / scale))`, an
///   uncalibrated monotone stand-in kept for tools that want a fixed curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfidenceCurve {
    /// From a calibration curve for a gallery of this many identities.
    Calibrated {
        /// Enrolled identities the probe was compared with.
        gallery_size: u32,
        /// The curve (the shipped one unless the deployer measured their own).
        #[serde(skip, default = "CalibrationCurve::shipped")]
        curve: &'static CalibrationCurve,
    },
    /// A logistic curve.
    Logistic {
        /// Similarity at which the confidence is 0.5.
        midpoint: f32,
        /// Similarity change that moves the log-odds by 1 (must be > 0).
        scale: f32,
    },
}

impl ConfidenceCurve {
    /// The logistic curve centred on `threshold` with scale 0.04.
    pub fn centred_on(threshold: Threshold) -> Self {
        Self::Logistic { midpoint: threshold.get(), scale: 0.04 }
    }

    /// The confidence for `similarity`.
    pub fn confidence(&self, similarity: f32) -> f32 {
        match *self {
            ConfidenceCurve::Calibrated { gallery_size, curve } => {
                curve.confidence(similarity, gallery_size as usize) as f32
            }
            ConfidenceCurve::Logistic { midpoint, scale } => {
                let scale = scale.max(1e-6);
                1.0 / (1.0 + (-(similarity - midpoint) / scale).exp())
            }
        }
    }
}

impl Default for ConfidenceCurve {
    fn default() -> Self {
        Self::Calibrated { gallery_size: 1, curve: CalibrationCurve::shipped() }
    }
}

/// Score distributions of the engine's own models, measured by `rollcall eval --identify`
/// (see `docs/ACCURACY.md`) and shipped in `calibration.json`: numbers only, no photo names
/// or embeddings.
///
/// `impostor_far[i]` is the share of (probe, enrolled identity of someone else) comparisons
/// scoring at least `start + i·step` under [`CalibrationCurve::fusion`]; where too few
/// comparisons were measured it is the larger of the measurement and an exponential tail
/// fitted to the measured range (`ln f = tail[0] + tail[1]·t`), and beyond the table it is
/// that fit. `genuine_accept[i]` is the share of (probe, own identity) comparisons at least
/// that high.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationCurve {
    /// What was measured, how (no names).
    pub description: String,
    /// Fusion of each identity's embeddings the scores were taken under.
    pub fusion: crate::index::Fusion,
    /// Similarity of the first table entry.
    pub start: f32,
    /// Spacing of the table.
    pub step: f32,
    /// Per-identity impostor false-accept rate at each threshold.
    pub impostor_far: Vec<f64>,
    /// Genuine accept rate at each threshold.
    pub genuine_accept: Vec<f64>,
    /// Fitted impostor tail: `ln f(t) = tail[0] + tail[1]·t`.
    pub tail: [f64; 2],
    /// Mean genuine similarity.
    pub genuine_mean: f64,
    /// Standard deviation of the genuine similarity.
    pub genuine_sd: f64,
    /// Impostor comparisons measured.
    pub impostor_comparisons: u64,
    /// Genuine comparisons measured.
    pub genuine_comparisons: u64,
}

const SHIPPED_CURVE: &str = include_str!("calibration.json");

impl CalibrationCurve {
    /// The curve shipped with the engine.
    ///
    /// # Panics
    /// Never in a released build: a unit test parses the embedded file.
    pub fn shipped() -> &'static CalibrationCurve {
        static CURVE: std::sync::OnceLock<CalibrationCurve> = std::sync::OnceLock::new();
        CURVE.get_or_init(|| Self::from_json(SHIPPED_CURVE).expect("calibration.json is valid"))
    }

    /// Parses and checks a curve written by `rollcall eval --identify --write-curve`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the JSON is not a curve or its numbers are not one
    /// (empty or uneven tables, rates outside [0, 1] or rising with the threshold, a tail
    /// that does not fall).
    pub fn from_json(json: &str) -> Result<Self> {
        let curve: Self =
            serde_json::from_str(json).map_err(|e| Error::InvalidArgument(format!("not a calibration curve: {e}")))?;
        curve.check()?;
        Ok(curve)
    }

    /// Reads a curve file for the rest of the process (the server and the eval command load
    /// at most one, at start-up, so it is never freed).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the file cannot be read or is not a valid curve.
    pub fn load(path: &std::path::Path) -> Result<&'static Self> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidArgument(format!("calibration curve {}: {e}", path.display())))?;
        let curve = Self::from_json(&json)
            .map_err(|e| Error::InvalidArgument(format!("calibration curve {}: {e}", path.display())))?;
        Ok(Box::leak(Box::new(curve)))
    }

    fn check(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::InvalidArgument(why.to_owned()));
        let rates_ok = |rates: &[f64]| {
            rates.iter().all(|r| (0.0..=1.0).contains(r)) && rates.windows(2).all(|w| w[1] <= w[0] + 1e-12)
        };
        if self.impostor_far.len() < 2 || self.impostor_far.len() != self.genuine_accept.len() {
            return invalid("the impostor and genuine tables must have the same length, at least 2");
        }
        if !(self.step > 0.0 && self.start.is_finite() && self.start >= -1.0 && self.start < 1.0) {
            return invalid("`start` must be in [-1, 1) and `step` positive");
        }
        if !rates_ok(&self.impostor_far) || !rates_ok(&self.genuine_accept) {
            return invalid("rates must lie in [0, 1] and not rise with the threshold");
        }
        if !(self.tail[1] < 0.0 && self.tail[0].is_finite()) {
            return invalid("the impostor tail must fall with the threshold (tail[1] < 0)");
        }
        if !(self.genuine_sd > 0.0 && self.genuine_mean.is_finite()) {
            return invalid("the genuine spread must be positive");
        }
        Ok(())
    }

    fn position(&self, t: f32) -> f64 {
        (f64::from(t) - f64::from(self.start)) / f64::from(self.step.max(1e-6))
    }

    /// Per-identity impostor false-accept rate at `threshold` (log-linear interpolation).
    pub fn impostor_far(&self, threshold: f32) -> f64 {
        let n = self.impostor_far.len();
        let x = self.position(threshold);
        if n == 0 || x <= 0.0 {
            return self.impostor_far.first().copied().unwrap_or(1.0);
        }
        let tail = (self.tail[0] + self.tail[1] * f64::from(threshold)).exp().min(1.0);
        if x >= (n - 1) as f64 {
            return tail.min(self.impostor_far[n - 1]);
        }
        let i = x.floor() as usize;
        let frac = x - i as f64;
        let (a, b) = (self.impostor_far[i].max(1e-300), self.impostor_far[i + 1].max(1e-300));
        (a.ln() * (1.0 - frac) + b.ln() * frac).exp()
    }

    /// Genuine accept rate at `threshold` (linear interpolation).
    pub fn genuine_accept(&self, threshold: f32) -> f64 {
        let n = self.genuine_accept.len();
        let x = self.position(threshold);
        if n == 0 {
            return 0.0;
        }
        if x <= 0.0 {
            return self.genuine_accept[0];
        }
        if x >= (n - 1) as f64 {
            return self.genuine_accept[n - 1];
        }
        let i = x.floor() as usize;
        let frac = x - i as f64;
        self.genuine_accept[i] * (1.0 - frac) + self.genuine_accept[i + 1] * frac
    }

    /// Probability that a stranger compared with `gallery_size` identities is accepted as
    /// one of them at `threshold`: `1 − (1 − f(t))^N`.
    pub fn gallery_far(&self, threshold: f32, gallery_size: usize) -> f64 {
        let f = self.impostor_far(threshold).clamp(0.0, 1.0);
        1.0 - (1.0 - f).powf(gallery_size.max(1) as f64)
    }

    /// The smallest threshold (rounded up to 0.001) at which a stranger is accepted with
    /// probability at most `max_false_accept_rate` against `gallery_size` identities.
    pub fn threshold_for(&self, gallery_size: usize, max_false_accept_rate: f64) -> Threshold {
        let target = max_false_accept_rate.clamp(1e-12, 1.0);
        let (mut lo, mut hi) = (-1.0f32, 1.0f32);
        if self.gallery_far(lo, gallery_size) <= target {
            return Threshold(lo);
        }
        for _ in 0..40 {
            let mid = (lo + hi) / 2.0;
            if self.gallery_far(mid, gallery_size) <= target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Threshold(((hi * 1000.0).ceil() / 1000.0).clamp(-1.0, 1.0))
    }

    fn genuine_density(&self, s: f64) -> f64 {
        let sd = self.genuine_sd.max(1e-3);
        let z = (s - self.genuine_mean) / sd;
        (-0.5 * z * z).exp() / (sd * (2.0 * std::f64::consts::PI).sqrt())
    }

    /// Density of the best of `n` impostor scores at `s`.
    fn best_impostor_density(&self, s: f32, n: usize) -> f64 {
        let h = 0.005f32;
        let (above, below) = (self.impostor_far(s + h), self.impostor_far(s - h));
        let density = ((below - above) / f64::from(2.0 * h)).max(0.0);
        let f = self.impostor_far(s).clamp(0.0, 1.0);
        n as f64 * (1.0 - f).powf(n.saturating_sub(1) as f64) * density
    }

    /// Estimated probability that the best of `gallery_size` identities, scoring
    /// `similarity`, is the person, with even prior odds of an enrolled person and a
    /// stranger: `g(s) / (g(s) + h_N(s))`, where `g` is the genuine score density (normal,
    /// from the measured mean and spread) and `h_N` the density of the best score of a
    /// stranger against `N` identities. Made non-decreasing in `s` (the minimum over
    /// higher scores), so a higher similarity never reads as less sure.
    pub fn confidence(&self, similarity: f32, gallery_size: usize) -> f64 {
        let n = gallery_size.max(1);
        let ratio = |s: f32| {
            let g = self.genuine_density(f64::from(s));
            let h = self.best_impostor_density(s, n);
            if g + h <= 0.0 { 1.0 } else { g / (g + h) }
        };
        let s = similarity.clamp(-1.0, 1.0);
        let mut conf = ratio(s);
        let mut t = s + 0.01;
        while t <= 1.0 {
            conf = conf.min(ratio(t));
            t += 0.01;
        }
        conf.clamp(0.0, 1.0)
    }
}

/// The server's operating point: the threshold follows the gallery size so that a stranger
/// is accepted with probability at most `max_false_accept_rate`, whatever the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenSetPolicy {
    /// Strangers accepted as someone, per stranger probe (default 0.005).
    pub max_false_accept_rate: f64,
    /// Minimum `best − second` identity similarity (default [`DEFAULT_MIN_MARGIN`]).
    pub min_margin: f32,
    /// Score distributions the threshold and confidence come from (default: the shipped
    /// curve; a deployer can measure their own, see `docs/ACCURACY.md`).
    #[serde(skip, default = "CalibrationCurve::shipped")]
    pub curve: &'static CalibrationCurve,
}

/// Default margin between the best and second-best identities.
pub const DEFAULT_MIN_MARGIN: f32 = 0.05;

/// Default strangers accepted per stranger probe.
pub const DEFAULT_MAX_FALSE_ACCEPT_RATE: f64 = 0.005;

impl Default for OpenSetPolicy {
    fn default() -> Self {
        Self {
            max_false_accept_rate: DEFAULT_MAX_FALSE_ACCEPT_RATE,
            min_margin: DEFAULT_MIN_MARGIN,
            curve: CalibrationCurve::shipped(),
        }
    }
}

impl OpenSetPolicy {
    /// A policy with this false-accept rate and the default margin.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 < rate < 1`.
    pub fn new(max_false_accept_rate: f64) -> Result<Self> {
        if max_false_accept_rate > 0.0 && max_false_accept_rate < 1.0 {
            Ok(Self { max_false_accept_rate, ..Self::default() })
        } else {
            Err(Error::InvalidArgument(format!("max_false_accept_rate must be in (0, 1), got {max_false_accept_rate}")))
        }
    }

    /// The rule for a gallery of `gallery_size` identities: threshold from the policy's
    /// curve, this margin, calibrated confidence. Cheap (a bisection over a small table).
    pub fn rule_for_gallery(&self, gallery_size: usize) -> ThresholdRule {
        let threshold = self.curve.threshold_for(gallery_size, self.max_false_accept_rate);
        ThresholdRule {
            threshold,
            min_margin: self.min_margin,
            confidence: ConfidenceCurve::Calibrated {
                gallery_size: gallery_size.min(u32::MAX as usize) as u32,
                curve: self.curve,
            },
        }
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
    /// Minimum cosine similarity.
    pub threshold: Threshold,
    /// Minimum `best − second` similarity.
    pub min_margin: f32,
    /// How similarity maps to confidence.
    pub confidence: ConfidenceCurve,
}

impl Default for ThresholdRule {
    /// The server's rule for a single enrolled identity; prefer
    /// [`OpenSetPolicy::rule_for_gallery`], which knows the gallery size.
    fn default() -> Self {
        OpenSetPolicy::default().rule_for_gallery(1)
    }
}

impl ThresholdRule {
    /// A fixed rule: this threshold, no margin, the logistic confidence centred on it.
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
        let mut rule = ThresholdRule::new(Threshold::default());
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
        let c = ConfidenceCurve::centred_on(Threshold::default());
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

    #[test]
    fn the_shipped_curve_parses_and_is_monotone() {
        let c = CalibrationCurve::shipped();
        assert_eq!(c.impostor_far.len(), c.genuine_accept.len());
        assert!(c.impostor_far.windows(2).all(|w| w[1] <= w[0]), "impostor rate falls with the threshold");
        assert!(c.genuine_accept.windows(2).all(|w| w[1] <= w[0]), "genuine rate falls with the threshold");
        assert!(c.tail[1] < 0.0, "the fitted tail decays");
        let mut last = 1.0;
        for k in 0..=100 {
            let f = c.impostor_far(k as f32 / 100.0);
            assert!(f <= last + 1e-12 && f >= 0.0, "{k}: {f} > {last}");
            last = f;
        }
    }

    #[test]
    fn a_measured_curve_is_checked_and_then_drives_the_threshold() {
        // A deployer's photos where strangers score higher: ten times the impostor rate.
        let mut looser = CalibrationCurve::shipped().clone();
        looser.impostor_far.iter_mut().for_each(|f| *f = (*f * 10.0).min(1.0));
        looser.tail[0] += 10f64.ln();
        let curve = CalibrationCurve::from_json(&serde_json::to_string(&looser).unwrap()).unwrap();
        let curve: &'static CalibrationCurve = Box::leak(Box::new(curve));
        let shipped = OpenSetPolicy::default();
        let own = OpenSetPolicy { curve, ..shipped };
        assert!(own.rule_for_gallery(200).threshold > shipped.rule_for_gallery(200).threshold);
        assert!(curve.gallery_far(own.rule_for_gallery(200).threshold.get(), 200) <= 0.005);

        let mut rising = looser.clone();
        rising.impostor_far[60] = 0.5;
        let mut flat_tail = looser.clone();
        flat_tail.tail[1] = 0.0;
        for bad in [serde_json::to_string(&rising).unwrap(), serde_json::to_string(&flat_tail).unwrap()] {
            assert!(matches!(CalibrationCurve::from_json(&bad), Err(Error::InvalidArgument(_))));
        }
        let not_a_curve = CalibrationCurve::from_json("{\"start\": 0}");
        assert!(matches!(not_a_curve, Err(Error::InvalidArgument(m)) if m.contains("not a calibration curve")));
    }

    #[test]
    fn the_threshold_rises_with_the_gallery_and_meets_the_target() {
        let c = CalibrationCurve::shipped();
        let mut last = -1.0;
        for n in [1, 10, 100, 200, 1_000, 10_000] {
            let t = c.threshold_for(n, 0.005);
            assert!(t.get() >= last, "{n}: {} < {last}", t.get());
            assert!(c.gallery_far(t.get(), n) <= 0.005 + 1e-9, "{n}");
            // 0.002 lower would not meet it (the threshold is the smallest, to 0.001).
            assert!(c.gallery_far(t.get() - 0.002, n) > 0.005, "{n}");
            last = t.get();
        }
        // A stricter rate needs a higher threshold.
        assert!(c.threshold_for(200, 0.001).get() > c.threshold_for(200, 0.01).get());
        // 1 − (1 − f)^N: with N = 1 it is f itself.
        assert!((c.gallery_far(0.3, 1) - c.impostor_far(0.3)).abs() < 1e-12);
    }

    #[test]
    fn policy_rules_follow_the_gallery_and_confidence_is_calibrated() {
        let policy = OpenSetPolicy::default();
        assert!(OpenSetPolicy::new(0.0).is_err() && OpenSetPolicy::new(1.0).is_err());
        let small = policy.rule_for_gallery(1);
        let large = policy.rule_for_gallery(200);
        assert!(large.threshold > small.threshold);
        assert_eq!(large.min_margin, DEFAULT_MIN_MARGIN);
        assert_eq!(ThresholdRule::default(), small);
        // Confidence: non-decreasing in the similarity, high well above the threshold, low
        // well below it, and lower for a larger gallery at the same similarity.
        let mut last = 0.0;
        for k in -100..=100 {
            let v = large.confidence.confidence(k as f32 / 100.0);
            assert!((0.0..=1.0).contains(&v) && v + 1e-9 >= last, "{k}: {v} < {last}");
            last = v;
        }
        let t = large.threshold.get();
        assert!(large.confidence.confidence(t + 0.15) > 0.95);
        assert!(large.confidence.confidence(t - 0.15) < 0.2);
        assert!(small.confidence.confidence(t) >= large.confidence.confidence(t));
        // A decision carries it.
        let d = large.decide(&result(t + 0.2, Some(t - 0.2)));
        assert!(matches!(d, Decision::Recognised { confidence, .. } if confidence > 0.95), "{d:?}");
        let d = large.decide(&result(t + 0.02, Some(t)));
        assert!(matches!(d, Decision::NotRecognised { reason: RejectReason::AmbiguousMatch, .. }), "{d:?}");
    }
}

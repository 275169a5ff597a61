//! Accuracy on a deployer's own labelled photos: the computation behind `rollcall eval`.
//!
//! Input is a CSV of pairs `file_x,file_y,decision` (`Yes` = same person, `No` =
//! different people). Each photo's largest face is embedded once; pairs are scored by
//! cosine similarity and summarised at the configured threshold, at the threshold that
//! maximises accuracy on this data, and at a false-accept rate of 1% when there are
//! enough different-person pairs to measure it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::embed::Embedding;
use crate::engine::FaceEngine;
use crate::{Error, Result};

/// One labelled pair of photos.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledPair {
    /// First photo, relative to the images directory.
    pub file_x: String,
    /// Second photo.
    pub file_y: String,
    /// Whether both show the same person.
    pub same: bool,
}

/// Parses `file_x,file_y,decision` lines (header optional, `#` comments and blank lines
/// ignored; decision `Yes`/`No`, also `true`/`false`/`1`/`0`, any case).
///
/// # Errors
/// [`Error::InvalidArgument`] naming the first bad line.
pub fn parse_pairs_csv(text: &str) -> Result<Vec<LabelledPair>> {
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(|c| c.trim().trim_matches('"')).collect();
        if n == 0 && cols.first().is_some_and(|c| c.eq_ignore_ascii_case("file_x")) {
            continue;
        }
        let bad = |why: &str| Error::InvalidArgument(format!("pairs line {}: {why}: {line:?}", n + 1));
        let [x, y, decision] = cols[..] else {
            return Err(bad("expected 3 columns file_x,file_y,decision"));
        };
        let same = match decision.to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "1" | "same" => true,
            "no" | "n" | "false" | "0" | "different" => false,
            _ => return Err(bad("decision must be Yes or No")),
        };
        if x.is_empty() || y.is_empty() {
            return Err(bad("empty file name"));
        }
        pairs.push(LabelledPair { file_x: x.to_string(), file_y: y.to_string(), same });
    }
    Ok(pairs)
}

/// A scored pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredPair {
    /// Cosine similarity of the two faces.
    pub similarity: f32,
    /// Ground truth: same person.
    pub same: bool,
}

/// Counts and rates at one threshold (a pair is accepted when `similarity ≥ threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdMetrics {
    /// The threshold.
    pub threshold: f32,
    /// Share of pairs decided correctly.
    pub accuracy: f64,
    /// True-accept rate: same-person pairs accepted / same-person pairs.
    pub tar: f64,
    /// False-accept rate: different-person pairs accepted / different-person pairs.
    pub far: f64,
    /// Same-person pairs accepted.
    pub true_accepts: usize,
    /// Same-person pairs rejected.
    pub false_rejects: usize,
    /// Different-person pairs accepted.
    pub false_accepts: usize,
    /// Different-person pairs rejected.
    pub true_rejects: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Metrics at `threshold`.
pub fn metrics_at(scores: &[ScoredPair], threshold: f32) -> ThresholdMetrics {
    let (mut ta, mut fr, mut fa, mut tr) = (0, 0, 0, 0);
    for s in scores {
        match (s.same, s.similarity >= threshold) {
            (true, true) => ta += 1,
            (true, false) => fr += 1,
            (false, true) => fa += 1,
            (false, false) => tr += 1,
        }
    }
    ThresholdMetrics {
        threshold,
        accuracy: ratio(ta + tr, scores.len()),
        tar: ratio(ta, ta + fr),
        far: ratio(fa, fa + tr),
        true_accepts: ta,
        false_rejects: fr,
        false_accepts: fa,
        true_rejects: tr,
    }
}

/// The threshold with the highest accuracy (midpoints between consecutive distinct scores;
/// on ties the lowest such threshold). `None` without scores.
pub fn best_threshold(scores: &[ScoredPair]) -> Option<ThresholdMetrics> {
    let mut sorted: Vec<ScoredPair> = scores.to_vec();
    sorted.sort_by(|a, b| a.similarity.total_cmp(&b.similarity));
    let genuine = sorted.iter().filter(|s| s.same).count();
    // Threshold below everything: all accepted, correct = genuine count.
    let mut best_correct = genuine;
    let mut best_t = sorted.first()?.similarity - 1e-4;
    let mut correct = genuine;
    for i in 0..sorted.len() {
        // Moving the threshold above sorted[i] rejects it.
        correct = if sorted[i].same { correct - 1 } else { correct + 1 };
        let next = sorted.get(i + 1).map(|s| s.similarity);
        if next == Some(sorted[i].similarity) {
            continue;
        }
        if correct > best_correct {
            best_correct = correct;
            best_t = match next {
                Some(n) => (sorted[i].similarity + n) / 2.0,
                None => sorted[i].similarity + 1e-4,
            };
        }
    }
    Some(metrics_at(scores, best_t))
}

/// The lowest threshold whose false-accept rate is at most `max_far`, and the TAR there.
/// `None` when there are fewer than `1 / max_far` different-person pairs (the rate cannot
/// be measured) or no same-person pairs.
pub fn at_far(scores: &[ScoredPair], max_far: f64) -> Option<ThresholdMetrics> {
    let mut impostors: Vec<f32> = scores.iter().filter(|s| !s.same).map(|s| s.similarity).collect();
    if max_far <= 0.0 || (impostors.len() as f64) < (1.0 / max_far).ceil() || !scores.iter().any(|s| s.same) {
        return None;
    }
    impostors.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_far * impostors.len() as f64).floor() as usize;
    // Accept nothing at or below the (allowed+1)-th highest impostor score.
    let threshold = next_up(impostors[allowed]);
    Some(metrics_at(scores, threshold))
}

fn next_up(v: f32) -> f32 {
    if v.is_nan() || v == f32::INFINITY {
        return v;
    }
    let bits = v.to_bits();
    let next = if v == 0.0 {
        1
    } else if v > 0.0 {
        bits + 1
    } else {
        bits - 1
    };
    f32::from_bits(next)
}

/// A photo that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoFailure {
    /// The file, as named in the pairs list.
    pub file: String,
    /// `unreadable`, `not_an_image`, `too_large`, `corrupt`, `no_face`, ...
    pub reason: String,
    /// Details.
    pub detail: String,
}

/// The report printed by `rollcall eval --pairs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsReport {
    /// Pairs in the list.
    pub pairs: usize,
    /// Pairs scored (both photos had a face).
    pub scored_pairs: usize,
    /// Scored same-person pairs.
    pub same_person_pairs: usize,
    /// Scored different-person pairs.
    pub different_person_pairs: usize,
    /// Distinct photos.
    pub photos: usize,
    /// Photos where no usable face was found (their pairs are not scored).
    pub detection_failures: Vec<PhotoFailure>,
    /// Photos whose largest face has quality issues (still scored), with the issues.
    pub low_quality: BTreeMap<String, Vec<String>>,
    /// Metrics at the configured threshold.
    pub at_configured_threshold: Option<ThresholdMetrics>,
    /// Metrics at the accuracy-maximising threshold for this data.
    pub best_threshold: Option<ThresholdMetrics>,
    /// Metrics at a false-accept rate of 1%, when measurable (≥ 100 different-person pairs).
    pub at_far_1_percent: Option<ThresholdMetrics>,
    /// Mean wall time per photo: read, decode, detect, align, quality, anti-spoof, embed.
    pub mean_ms_per_photo: f64,
}

/// Summarises scored pairs (the metrics part of [`evaluate_pairs`]).
pub fn summarise(
    scores: &[ScoredPair],
    threshold: f32,
) -> (Option<ThresholdMetrics>, Option<ThresholdMetrics>, Option<ThresholdMetrics>) {
    if scores.is_empty() {
        return (None, None, None);
    }
    (Some(metrics_at(scores, threshold)), best_threshold(scores), at_far(scores, 0.01))
}

fn failure_code(e: &Error) -> &'static str {
    match e {
        Error::NotAnImage => "not_an_image",
        Error::UnsupportedFormat(_) => "unsupported_format",
        Error::Truncated => "truncated",
        Error::TooLarge { .. } => "too_large",
        _ => "corrupt",
    }
}

/// Embeds every photo of `pairs` (largest face) and scores the pairs at `threshold`.
///
/// # Errors
/// [`Error::Model`] when inference fails; unreadable photos and photos without a face are
/// reported in [`PairsReport::detection_failures`], not as errors.
pub fn evaluate_pairs(
    engine: &FaceEngine,
    pairs: &[LabelledPair],
    images_dir: &Path,
    threshold: f32,
) -> Result<PairsReport> {
    let files: BTreeSet<&str> = pairs.iter().flat_map(|p| [p.file_x.as_str(), p.file_y.as_str()]).collect();
    let mut embeddings: BTreeMap<&str, Embedding> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut low_quality = BTreeMap::new();
    let started = Instant::now();
    for &file in &files {
        let fail =
            |reason: &str, detail: String| PhotoFailure { file: file.to_string(), reason: reason.into(), detail };
        let bytes = match std::fs::read(images_dir.join(file)) {
            Ok(b) => b,
            Err(e) => {
                failures.push(fail("unreadable", e.to_string()));
                continue;
            }
        };
        let image = match engine.decode(&bytes) {
            Ok(i) => i,
            Err(e) => {
                failures.push(fail(failure_code(&e), e.to_string()));
                continue;
            }
        };
        let Some(&largest) = engine.detect(&image)?.first() else {
            failures.push(fail("no_face", "no face found".into()));
            continue;
        };
        let face = engine.analyze_face(&image, largest)?;
        if !face.quality.issues.is_empty() {
            low_quality.insert(file.to_string(), face.quality.issues.iter().map(|i| i.code().to_string()).collect());
        }
        match face.embedding {
            Some(e) => {
                embeddings.insert(file, e);
            }
            None => failures.push(fail("no_face", "degenerate landmarks".into())),
        }
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let scores: Vec<ScoredPair> = pairs
        .iter()
        .filter_map(|p| {
            let (x, y) = (embeddings.get(p.file_x.as_str())?, embeddings.get(p.file_y.as_str())?);
            Some(ScoredPair { similarity: x.cosine(y), same: p.same })
        })
        .collect();
    let (at_configured_threshold, best_threshold, at_far_1_percent) = summarise(&scores, threshold);
    Ok(PairsReport {
        pairs: pairs.len(),
        scored_pairs: scores.len(),
        same_person_pairs: scores.iter().filter(|s| s.same).count(),
        different_person_pairs: scores.iter().filter(|s| !s.same).count(),
        photos: files.len(),
        detection_failures: failures,
        low_quality,
        at_configured_threshold,
        best_threshold,
        at_far_1_percent,
        mean_ms_per_photo: if files.is_empty() { 0.0 } else { elapsed_ms / files.len() as f64 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(similarity: f32, same: bool) -> ScoredPair {
        ScoredPair { similarity, same }
    }

    #[test]
    fn parses_pairs_with_header_comments_and_errors() {
        let text = "file_x,file_y,decision\n# comment\na.jpg,b.jpg,Yes\n\n\"c.jpg\", d.jpg ,no\n";
        let pairs = parse_pairs_csv(text).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1], LabelledPair { file_x: "c.jpg".into(), file_y: "d.jpg".into(), same: false });
        assert!(parse_pairs_csv("a.jpg,b.jpg,maybe").is_err());
        assert!(parse_pairs_csv("a.jpg,b.jpg").is_err());
    }

    #[test]
    fn metrics_on_synthetic_scores() {
        let scores = [sp(0.9, true), sp(0.7, true), sp(0.35, true), sp(0.4, false), sp(0.1, false), sp(0.0, false)];
        let m = metrics_at(&scores, 0.363);
        assert_eq!((m.true_accepts, m.false_rejects, m.false_accepts, m.true_rejects), (2, 1, 1, 2));
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-9);
        assert!((m.tar - 2.0 / 3.0).abs() < 1e-9 && (m.far - 1.0 / 3.0).abs() < 1e-9);

        let best = best_threshold(&scores).unwrap();
        // 0.225, 0.375 and 0.55 all get 5/6 right; the lowest is reported.
        assert!((best.accuracy - 5.0 / 6.0).abs() < 1e-9, "{best:?}");
        assert!((best.threshold - 0.225).abs() < 1e-6, "{best:?}");

        let separable = [sp(0.8, true), sp(0.6, true), sp(0.2, false)];
        let best = best_threshold(&separable).unwrap();
        assert_eq!(best.accuracy, 1.0);
        assert!((best.threshold - 0.4).abs() < 1e-6);
        assert!(best_threshold(&[]).is_none());
    }

    #[test]
    fn tar_at_far_needs_enough_impostors() {
        let mut scores: Vec<ScoredPair> = (0..200).map(|i| sp(i as f32 / 400.0, false)).collect(); // 0 .. 0.4975
        scores.extend((0..10).map(|i| sp(0.45 + i as f32 / 100.0, true))); // 0.45 .. 0.54
        let m = at_far(&scores, 0.01).unwrap();
        // 2 of 200 impostors may pass: the threshold sits just above the 3rd highest (0.4925).
        assert_eq!(m.false_accepts, 2);
        assert!(m.far <= 0.01);
        assert!(m.threshold > 0.4925 && m.threshold < 0.4926, "{m:?}");
        assert_eq!(m.true_accepts, 5); // 0.50 .. 0.54
        assert!(at_far(&scores[..99], 0.01).is_none());
        let (at, best, far) = summarise(&scores, 0.363);
        assert!(at.is_some() && best.is_some() && far.is_some());
        assert_eq!(summarise(&[], 0.363), (None, None, None));
    }
}

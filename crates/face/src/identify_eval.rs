//! Open-set identification on a labelled folder: the computation behind
//! `rollcall eval --identify DIR`.
//!
//! The folder is laid out `DIR/<person>/<photo>`. Protocol (as an attendance door sees it):
//! people with at least [`MIN_PHOTOS_TO_ENROLL`] photos are enrolled from their first
//! [`ENROLL_PHOTOS`] photos in file-name order (with the server's enrollment rules), their
//! other photos are genuine probes; people with fewer photos are strangers, every photo of
//! theirs a stranger probe. Each photo's largest face is analysed once and kept in memory,
//! so the sweeps over thresholds and rules cost no inference.
//!
//! The per-photo data never leaves this module: reports hold counts and rates only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::decision::{CalibrationCurve, DecisionRule, OpenSetPolicy, Threshold, ThresholdRule};
use crate::embed::{Embedding, Template};
use crate::engine::FaceEngine;
use crate::index::{ExactIndex, FaceIndex, Fusion, SearchResult};
use crate::{Error, Result};

/// People with at least this many photos are enrolled.
pub const MIN_PHOTOS_TO_ENROLL: usize = 4;
/// Photos used to enroll a person (the first ones in file-name order).
pub const ENROLL_PHOTOS: usize = 3;

/// What the analysis found in one photo (largest face).
#[derive(Debug, Clone)]
struct Photo {
    /// `None`: unreadable or no face.
    face: Option<FaceData>,
}

#[derive(Debug, Clone)]
struct FaceData {
    embedding: Option<Embedding>,
    quality_ok: bool,
    issues: Vec<crate::QualityIssue>,
    live: bool,
    /// The passive check's combined score, when it ran.
    anti_spoof_score: Option<f32>,
    /// Faces at least `multiple_faces_min_width_ratio` as wide as the largest.
    comparable_faces: usize,
}

/// Which rules to apply when deciding (each can be switched off to measure it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Fusion of each person's enrolled embeddings.
    pub fusion: Fusion,
    /// Refuse probes whose largest face breaks a quality limit.
    pub quality_gate: bool,
    /// Refuse probes the anti-spoof check judges not live (when it ran).
    pub anti_spoof_gate: bool,
    /// Gallery-aware policy; `fixed_threshold` overrides its threshold.
    pub policy: OpenSetPolicy,
    /// A fixed threshold instead of the gallery-aware one.
    pub fixed_threshold: Option<f32>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fusion: Fusion::Mean,
            quality_gate: true,
            anti_spoof_gate: true,
            policy: OpenSetPolicy::default(),
            fixed_threshold: None,
        }
    }
}

/// Counts at one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// What was measured.
    pub label: String,
    /// Threshold applied.
    pub threshold: f32,
    /// Margin applied.
    pub min_margin: f32,
    /// Genuine probes identified as the right person.
    pub genuine_right: usize,
    /// Genuine probes not recognised (any reason).
    pub genuine_rejected: usize,
    /// Of those, refused before search (no face, quality, spoof).
    pub genuine_refused_before_search: usize,
    /// Of those, refused by the margin rule.
    pub genuine_ambiguous: usize,
    /// Genuine probes identified as someone else.
    pub genuine_wrong: usize,
    /// Stranger probes accepted as someone.
    pub strangers_accepted: usize,
    /// Genuine probes.
    pub genuine_probes: usize,
    /// Stranger probes.
    pub stranger_probes: usize,
}

/// The threshold that meets a false-accept rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FarPoint {
    /// Strangers accepted per stranger probe allowed.
    pub max_false_accept_rate: f64,
    /// Threshold derived from the curve in use (the shipped one unless another was given)
    /// for this gallery size.
    pub curve_threshold: f32,
    /// Lowest threshold on the sweep at which this data's strangers stay within the rate
    /// (other rules at their defaults); `None` if no swept threshold does.
    pub measured_threshold: Option<f32>,
}

/// The report of `rollcall eval --identify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentifyReport {
    /// People in the folder.
    pub people: usize,
    /// Photos in the folder.
    pub photos: usize,
    /// People with enough photos to enroll.
    pub enrollable_people: usize,
    /// People enrolled (at least one enrollment photo accepted).
    pub enrolled_people: usize,
    /// Enrollment photos refused by the server's enrollment rules.
    pub enrollment_photos_refused: usize,
    /// Genuine probes.
    pub genuine_probes: usize,
    /// Stranger probes.
    pub stranger_probes: usize,
    /// Photos where no face was found (or the file could not be read).
    pub photos_without_face: usize,
    /// Probes whose largest face breaks a quality limit.
    pub probes_low_quality: usize,
    /// Probes the anti-spoof check judged not live.
    pub probes_not_live: usize,
    /// Probes per quality issue (`too_small`, `blurry`, ...), genuine and stranger.
    pub probe_quality_issues: std::collections::BTreeMap<String, [usize; 2]>,
    /// Whether anti-spoofing ran.
    pub anti_spoof: bool,
    /// At the server's default settings.
    pub defaults: Outcome,
    /// Each rule switched off (or swapped) one at a time, from the defaults.
    pub ablations: Vec<Outcome>,
    /// The defaults with a fixed threshold, over a range of thresholds.
    pub thresholds: Vec<Outcome>,
    /// The threshold meeting the requested false-accept rate.
    pub at_false_accept_rate: FarPoint,
    /// Mean wall time per photo (read, decode, detect, align, quality, anti-spoof, embed),
    /// over all threads.
    pub mean_ms_per_photo: f64,
    /// Threads used.
    pub threads: usize,
    /// The score distributions measured here, in the shipped curve's format (numbers only).
    pub curve: CalibrationCurve,
    /// How the passive anti-spoof check treats these photos (all real), when it ran.
    pub passive_liveness: Option<PassiveLiveness>,
}

/// The passive check on real photos: how many it refuses at each threshold, the highest
/// threshold that refuses at most [`REAL_REFUSAL_BUDGET`] of them, and the highest at which
/// that holds with 95% confidence, people being the unit of sampling (the rule
/// [`crate::antispoof::DEFAULT_THRESHOLD`] follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassiveLiveness {
    /// Photos with a face the check scored (enrollment photos and probes).
    pub photos: usize,
    /// People with at least one such photo.
    pub people: usize,
    /// The engine's threshold in this run, and the share of the photos it refuses.
    pub threshold: f32,
    pub refused_at_threshold: f64,
    /// The highest threshold (two decimals) refusing at most the budget of the photos.
    pub threshold_for_budget: f32,
    /// The highest threshold (two decimals) whose share refused has a one-sided 95% upper
    /// confidence bound at most the budget, photos of one person not counted as independent:
    /// what the photos of other people should see.
    pub threshold_for_budget_95: f32,
    pub budget: f64,
    /// `(threshold, share refused)` from 0.30 to 0.80.
    pub curve: Vec<(f32, f64)>,
}

/// The share of real photos the passive check may refuse at its default threshold.
pub const REAL_REFUSAL_BUDGET: f64 = 0.01;

/// The passive check's figures over `scores` (every face it scored, each with the person it
/// belongs to), at `threshold`.
fn passive_liveness(scores: &[(usize, f32)], threshold: f32) -> Option<PassiveLiveness> {
    if scores.is_empty() {
        return None;
    }
    let refused = |t: f32| scores.iter().filter(|&&(_, score)| score < t).count() as f64 / scores.len() as f64;
    let highest_where =
        |holds: &dyn Fn(f32) -> bool| (0..=100).rev().map(|k| k as f32 / 100.0).find(|&t| holds(t)).unwrap_or(0.0);
    Some(PassiveLiveness {
        photos: scores.len(),
        people: refusals_per_person(scores, 0.0).len(),
        threshold,
        refused_at_threshold: refused(threshold),
        threshold_for_budget: highest_where(&|t| refused(t) <= REAL_REFUSAL_BUDGET),
        threshold_for_budget_95: highest_where(&|t| {
            clustered_upper_bound_95(&refusals_per_person(scores, t)) <= REAL_REFUSAL_BUDGET
        }),
        budget: REAL_REFUSAL_BUDGET,
        curve: (30..=80).step_by(5).map(|k| k as f32 / 100.0).map(|t| (t, refused(t))).collect(),
    })
}

/// `(photos, photos refused)` of each person at threshold `t`.
fn refusals_per_person(scores: &[(usize, f32)], t: f32) -> Vec<(usize, usize)> {
    let mut counts = std::collections::BTreeMap::<usize, (usize, usize)>::new();
    for &(person, score) in scores {
        let entry = counts.entry(person).or_default();
        entry.0 += 1;
        entry.1 += usize::from(score < t);
    }
    counts.into_values().collect()
}

/// The one-sided 95% upper confidence bound of a rate seen as `(trials, events)` in each of
/// several clusters (people). Photos of one person share their face, skin, lighting and
/// camera, so the passive check tends to refuse all or none of them: the sample holds
/// fewer independent observations than photos. The Wilson bound is taken over the effective
/// sample size (Kish): the photos divided by the design effect, the ratio of the
/// cluster-robust variance of the rate to the binomial one (at least 1). With every event
/// in a different cluster it is Wilson's bound over the photos.
fn clustered_upper_bound_95(clusters: &[(usize, usize)]) -> f64 {
    let n: usize = clusters.iter().map(|&(trials, _)| trials).sum();
    let k: usize = clusters.iter().map(|&(_, events)| events).sum();
    let m = clusters.len();
    if n == 0 {
        return 1.0;
    }
    let p = k as f64 / n as f64;
    let binomial = p * (1.0 - p) / n as f64;
    let design_effect = if binomial > 0.0 && m > 1 {
        let spread: f64 = clusters.iter().map(|&(trials, events)| (events as f64 - p * trials as f64).powi(2)).sum();
        let robust = m as f64 / (m - 1) as f64 * spread / (n as f64).powi(2);
        (robust / binomial).max(1.0)
    } else {
        1.0
    };
    wilson_upper_95(p, n as f64 / design_effect)
}

/// Wilson's one-sided 95% upper bound of a rate `p` measured over `n` independent trials:
/// a rate measured on one sample says little about the next unless its bound is taken.
fn wilson_upper_95(p: f64, n: f64) -> f64 {
    const Z: f64 = 1.644_853_6;
    let spread = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    (p + Z * Z / (2.0 * n) + spread) / (1.0 + Z * Z / n)
}

/// `f` of every item on `threads` threads, results in the items' order; the first error
/// stops the run.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, R)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)?));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Model("worker panicked".into())))).collect()
    });
    let mut ordered: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for r in results {
        for (i, value) in r? {
            ordered[i] = Some(value);
        }
    }
    Ok(ordered.into_iter().map(|v| v.expect("every item ran")).collect())
}

/// Lists `dir/<person>/<photo>` (people and photos in name order, image extensions only).
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let read = |d: &Path| std::fs::read_dir(d).map_err(|e| Error::InvalidArgument(format!("{}: {e}", d.display())));
    let mut people = Vec::new();
    for entry in read(dir)? {
        let path = entry.map_err(|e| Error::InvalidArgument(e.to_string()))?.path();
        if !path.is_dir() {
            continue;
        }
        let mut photos: Vec<PathBuf> = read(&path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png" | "webp" | "bmp"))
            })
            .collect();
        photos.sort();
        if !photos.is_empty() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            people.push((name, photos));
        }
    }
    people.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(people)
}

fn analyse(engine: &FaceEngine, path: &Path) -> Result<Photo> {
    let none = Photo { face: None };
    let Ok(bytes) = std::fs::read(path) else { return Ok(none) };
    let Ok(image) = engine.decode(&bytes) else { return Ok(none) };
    let detections = engine.detect(&image)?;
    let Some(&largest) = detections.first() else { return Ok(none) };
    let min_width = largest.bbox.width * engine.config().multiple_faces_min_width_ratio;
    let comparable_faces = detections.iter().filter(|d| d.bbox.width >= min_width).count();
    let face = engine.analyze_face(&image, largest)?;
    Ok(Photo {
        face: Some(FaceData {
            quality_ok: face.quality.is_acceptable(),
            issues: face.quality.issues.clone(),
            live: face.liveness.is_none_or(|l| l.is_live),
            anti_spoof_score: face.liveness.map(|l| l.anti_spoof_score),
            embedding: face.embedding,
            comparable_faces,
        }),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Enroll,
    Genuine,
    Stranger,
}

/// Everything needed to re-decide without inference.
struct Prepared {
    /// Per probe: its person, whether genuine, and why it is refused before search.
    probes: Vec<(usize, bool, Option<Refusal>)>,
    /// Per probe, per fusion (BestOf, Mean): the search result.
    searches: [Vec<SearchResult>; 2],
    gallery_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoFace,
    LowQuality,
    Spoof,
}

fn fusion_slot(f: Fusion) -> usize {
    match f {
        Fusion::BestOf => 0,
        Fusion::Mean => 1,
    }
}

fn decide_all(p: &Prepared, settings: &Settings, rule: &ThresholdRule, label: String) -> Outcome {
    let mut o = Outcome {
        label,
        threshold: rule.threshold.get(),
        min_margin: rule.min_margin,
        genuine_right: 0,
        genuine_rejected: 0,
        genuine_refused_before_search: 0,
        genuine_ambiguous: 0,
        genuine_wrong: 0,
        strangers_accepted: 0,
        genuine_probes: 0,
        stranger_probes: 0,
    };
    let searches = &p.searches[fusion_slot(settings.fusion)];
    for (i, &(person, genuine, refusal)) in p.probes.iter().enumerate() {
        if genuine {
            o.genuine_probes += 1;
        } else {
            o.stranger_probes += 1;
        }
        let refused = match refusal {
            Some(Refusal::NoFace) => true,
            Some(Refusal::LowQuality) => settings.quality_gate,
            Some(Refusal::Spoof) => settings.anti_spoof_gate,
            None => false,
        };
        let decision = (!refused).then(|| rule.decide(&searches[i]));
        let identity = decision.as_ref().and_then(|d| d.identity());
        match (genuine, identity) {
            (true, Some(id)) if id == person.to_string() => o.genuine_right += 1,
            (true, Some(_)) => o.genuine_wrong += 1,
            (true, None) => {
                o.genuine_rejected += 1;
                match &decision {
                    None => o.genuine_refused_before_search += 1,
                    Some(crate::Decision::NotRecognised { reason: crate::RejectReason::AmbiguousMatch, .. }) => {
                        o.genuine_ambiguous += 1
                    }
                    Some(_) => {}
                }
            }
            (false, Some(_)) => o.strangers_accepted += 1,
            (false, None) => {}
        }
    }
    o
}

fn rule_for(settings: &Settings, gallery_size: usize) -> ThresholdRule {
    let mut rule = settings.policy.rule_for_gallery(gallery_size);
    if let Some(t) = settings.fixed_threshold {
        rule.threshold = Threshold::new(t.clamp(-1.0, 1.0)).unwrap_or_default();
    }
    rule
}

/// Builds the calibration curve from per-identity scores of probes that pass the gates.
fn build_curve(impostor: &mut [f32], genuine: &mut [f32], fusion: Fusion, people: usize) -> CalibrationCurve {
    let (start, step, n) = (0.0f32, 0.01f32, 81usize);
    impostor.sort_by(|a, b| a.total_cmp(b));
    genuine.sort_by(|a, b| a.total_cmp(b));
    let share_at_least = |sorted: &[f32], t: f32| {
        if sorted.is_empty() {
            return 0.0;
        }
        let below = sorted.partition_point(|&s| s < t);
        (sorted.len() - below) as f64 / sorted.len() as f64
    };
    let counts: Vec<usize> =
        (0..n).map(|i| impostor.len() - impostor.partition_point(|&s| s < start + i as f32 * step)).collect();
    let measured: Vec<f64> = (0..n).map(|i| share_at_least(impostor, start + i as f32 * step)).collect();
    // Exponential tail fitted (least squares on ln f) where the rate is measured with at
    // least 20 comparisons and below 1%.
    let pts: Vec<(f64, f64)> = (0..n)
        .filter(|&i| counts[i] >= 20 && measured[i] <= 0.01)
        .map(|i| (f64::from(start + i as f32 * step), measured[i].ln()))
        .collect();
    let tail = if pts.len() >= 2 {
        let m = pts.len() as f64;
        let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
        let (mx, my) = (sx / m, sy / m);
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let b = if sxx > 0.0 { sxy / sxx } else { -30.0 };
        [my - b * mx, b]
    } else {
        [0.0, -30.0]
    };
    let impostor_far: Vec<f64> = (0..n)
        .map(|i| {
            if counts[i] >= 20 {
                measured[i]
            } else {
                let fit = (tail[0] + tail[1] * f64::from(start + i as f32 * step)).exp();
                measured[i].max(fit)
            }
        })
        .collect();
    let genuine_accept = (0..n).map(|i| share_at_least(genuine, start + i as f32 * step)).collect();
    let gm = genuine.iter().map(|&s| f64::from(s)).sum::<f64>() / genuine.len().max(1) as f64;
    let gv = genuine.iter().map(|&s| (f64::from(s) - gm).powi(2)).sum::<f64>() / genuine.len().max(1) as f64;
    CalibrationCurve {
        description: format!(
            "rollcall eval --identify: {people} enrolled identities ({ENROLL_PHOTOS} photos each at most), \
             probes passing the quality gate; per-identity scores under {fusion:?} fusion"
        ),
        fusion,
        start,
        step,
        impostor_far,
        genuine_accept,
        tail,
        genuine_mean: gm,
        genuine_sd: gv.sqrt(),
        impostor_comparisons: impostor.len() as u64,
        genuine_comparisons: genuine.len() as u64,
    }
}

/// Runs the protocol on `dir` with `threads` worker threads and reports at `settings`,
/// plus ablations, a threshold sweep and the threshold meeting `max_false_accept_rate`.
///
/// # Errors
/// [`Error::InvalidArgument`] when `dir` cannot be listed or holds nobody to enroll;
/// [`Error::Model`] when inference fails.
pub fn evaluate_identify(
    engine: &FaceEngine,
    dir: &Path,
    settings: &Settings,
    max_false_accept_rate: f64,
    threads: usize,
) -> Result<IdentifyReport> {
    let people = list(dir)?;
    let mut jobs: Vec<(usize, Role, &Path)> = Vec::new();
    for (p, (_, photos)) in people.iter().enumerate() {
        let enrolled = photos.len() >= MIN_PHOTOS_TO_ENROLL;
        for (k, photo) in photos.iter().enumerate() {
            let role = match (enrolled, k < ENROLL_PHOTOS) {
                (true, true) => Role::Enroll,
                (true, false) => Role::Genuine,
                (false, _) => Role::Stranger,
            };
            jobs.push((p, role, photo.as_path()));
        }
    }
    let started = Instant::now();
    let photos = parallel_map(&jobs, threads, |&(_, _, path)| analyse(engine, path))?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Enrollment with the server's rules (one clear face, quality, liveness).
    let mut templates: Vec<Vec<Embedding>> = vec![Vec::new(); people.len()];
    let mut refused = 0;
    for (i, &(person, role, _)) in jobs.iter().enumerate() {
        if role != Role::Enroll {
            continue;
        }
        match &photos[i].face {
            Some(FaceData { embedding: Some(e), quality_ok: true, live: true, comparable_faces: 1, .. }) => {
                templates[person].push(e.clone());
            }
            _ => refused += 1,
        }
    }
    let enrollable_people = people.iter().filter(|(_, p)| p.len() >= MIN_PHOTOS_TO_ENROLL).count();
    let mut indexes = [ExactIndex::new(Fusion::BestOf), ExactIndex::new(Fusion::Mean)];
    let mut enrolled_templates: Vec<(usize, Template)> = Vec::new();
    for (person, embeddings) in templates.into_iter().enumerate() {
        if embeddings.is_empty() {
            continue;
        }
        let template = Template::new(embeddings)?;
        for index in &mut indexes {
            index.upsert(&person.to_string(), &template);
        }
        enrolled_templates.push((person, template));
    }
    if enrolled_templates.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: nobody could be enrolled (needs people with at least {MIN_PHOTOS_TO_ENROLL} photos)",
            dir.display()
        )));
    }

    let mut probes = Vec::new();
    let mut searches = [Vec::new(), Vec::new()];
    let (mut low_quality, mut not_live) = (0, 0);
    let mut issue_counts = std::collections::BTreeMap::new();
    let (mut impostor, mut genuine_scores) = (Vec::new(), Vec::new());
    for (i, &(person, role, _)) in jobs.iter().enumerate() {
        if role == Role::Enroll {
            continue;
        }
        let face = photos[i].face.as_ref();
        let refusal = match face {
            None | Some(FaceData { embedding: None, .. }) => Some(Refusal::NoFace),
            Some(f) if !f.quality_ok => Some(Refusal::LowQuality),
            Some(f) if !f.live => Some(Refusal::Spoof),
            Some(_) => None,
        };
        low_quality += usize::from(face.is_some_and(|f| !f.quality_ok));
        for issue in face.map(|f| f.issues.as_slice()).unwrap_or_default() {
            issue_counts.entry(issue.code().to_string()).or_insert([0, 0])[usize::from(role != Role::Genuine)] += 1;
        }
        not_live += usize::from(face.is_some_and(|f| !f.live));
        probes.push((person, role == Role::Genuine, refusal));
        for (slot, index) in indexes.iter().enumerate() {
            searches[slot].push(face.and_then(|f| f.embedding.as_ref()).map(|e| index.search(e)).unwrap_or_default());
        }
        if let (None, Some(e)) = (refusal, face.and_then(|f| f.embedding.as_ref())) {
            for (owner, template) in &enrolled_templates {
                let s = match settings.fusion {
                    Fusion::BestOf => template.best_cosine(e),
                    Fusion::Mean => template.mean().cosine(e),
                };
                if *owner == person { genuine_scores.push(s) } else { impostor.push(s) }
            }
        }
    }
    let prepared = Prepared { probes, searches, gallery_size: enrolled_templates.len() };
    let n = prepared.gallery_size;

    let defaults_rule = rule_for(settings, n);
    let defaults = decide_all(&prepared, settings, &defaults_rule, "defaults".into());
    let mut ablations = Vec::new();
    let mut ablate = |label: &str, s: Settings| {
        ablations.push(decide_all(&prepared, &s, &rule_for(&s, n), label.into()));
    };
    let other_fusion = match settings.fusion {
        Fusion::BestOf => Fusion::Mean,
        Fusion::Mean => Fusion::BestOf,
    };
    ablate(&format!("fusion {other_fusion:?} instead"), Settings { fusion: other_fusion, ..*settings });
    ablate("no margin rule", Settings { policy: OpenSetPolicy { min_margin: 0.0, ..settings.policy }, ..*settings });
    ablate("no quality gate", Settings { quality_gate: false, ..*settings });
    ablate(
        "fixed threshold 0.363 (OpenCV pair threshold)",
        Settings { fixed_threshold: Some(crate::decision::OPENCV_SFACE_THRESHOLD), ..*settings },
    );
    ablate(
        "OpenCV-like baseline: best-of, no margin, no quality gate, 0.363",
        Settings {
            fusion: Fusion::BestOf,
            quality_gate: false,
            anti_spoof_gate: settings.anti_spoof_gate,
            policy: OpenSetPolicy { min_margin: 0.0, ..settings.policy },
            fixed_threshold: Some(crate::decision::OPENCV_SFACE_THRESHOLD),
        },
    );

    let thresholds: Vec<Outcome> = (30..=60)
        .map(|k| {
            let t = k as f32 / 100.0;
            let s = Settings { fixed_threshold: Some(t), ..*settings };
            decide_all(&prepared, &s, &rule_for(&s, n), format!("threshold {t:.2}"))
        })
        .collect();
    let allowed = (max_false_accept_rate * defaults.stranger_probes as f64).floor() as usize;
    let measured_threshold = (200..=800).map(|k| k as f32 / 1000.0).find(|&t| {
        let s = Settings { fixed_threshold: Some(t), ..*settings };
        decide_all(&prepared, &s, &rule_for(&s, n), String::new()).strangers_accepted <= allowed
    });
    let at_false_accept_rate = FarPoint {
        max_false_accept_rate,
        curve_threshold: settings.policy.curve.threshold_for(n, max_false_accept_rate).get(),
        measured_threshold,
    };
    let curve = build_curve(&mut impostor, &mut genuine_scores, settings.fusion, n);
    Ok(IdentifyReport {
        people: people.len(),
        photos: jobs.len(),
        enrollable_people,
        enrolled_people: n,
        enrollment_photos_refused: refused,
        genuine_probes: defaults.genuine_probes,
        stranger_probes: defaults.stranger_probes,
        photos_without_face: photos.iter().filter(|p| p.face.is_none()).count(),
        probes_low_quality: low_quality,
        probes_not_live: not_live,
        probe_quality_issues: issue_counts,
        anti_spoof: engine.anti_spoof().is_some(),
        defaults,
        ablations,
        thresholds,
        at_false_accept_rate,
        mean_ms_per_photo: if jobs.is_empty() { 0.0 } else { elapsed_ms * threads as f64 / jobs.len() as f64 },
        threads,
        curve,
        passive_liveness: passive_liveness(
            &jobs
                .iter()
                .zip(&photos)
                .filter_map(|(&(person, _, _), p)| Some((person, p.face.as_ref()?.anti_spoof_score?)))
                .collect::<Vec<_>>(),
            engine.anti_spoof().map_or(0.0, |a| a.threshold()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One photo per person: every photo is its own cluster.
    fn independent(k: usize, n: usize) -> Vec<(usize, usize)> {
        (0..n).map(|i| (1, usize::from(i < k))).collect()
    }

    #[test]
    fn without_clusters_the_bound_is_wilsons() {
        // No event in 100 trials still allows 2.6% (the textbook one-sided 95% figure).
        assert!((clustered_upper_bound_95(&independent(0, 100)) - 0.0263).abs() < 5e-4);
        assert!((clustered_upper_bound_95(&independent(7, 1421)) - 0.0091).abs() < 5e-4);
        assert!(clustered_upper_bound_95(&independent(10, 1000)) > 0.01, "exactly 1% is not known to be at most 1%");
        assert_eq!(clustered_upper_bound_95(&[]), 1.0);
    }

    #[test]
    fn refusals_of_one_person_count_for_less_than_refusals_spread_over_people() {
        // 200 people with 5 photos each, 4 refused: one each of four people, or four of one.
        let spread: Vec<(usize, usize)> = (0..200).map(|i| (5, usize::from(i < 4))).collect();
        let gathered: Vec<(usize, usize)> = (0..200).map(|i| (5, if i == 0 { 4 } else { 0 })).collect();
        let (spread, gathered) = (clustered_upper_bound_95(&spread), clustered_upper_bound_95(&gathered));
        // Equal to the bound over independent photos, up to the variance estimate's small-sample factor.
        assert!((spread - clustered_upper_bound_95(&independent(4, 1000))).abs() < 1e-4, "{spread}");
        assert!(gathered > 0.01 && spread < 0.01, "gathered {gathered}, spread {spread}");
    }

    #[test]
    fn the_confident_threshold_leaves_room_below_the_budget() {
        // 1,000 real faces of 1,000 people: 4 score 0.30, 6 score 0.505, the rest 0.955.
        let scores: Vec<f32> = [vec![0.30; 4], vec![0.505; 6], vec![0.955; 990]].into_iter().flatten().collect();
        let scores: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
        let passive = passive_liveness(&scores, 0.51).unwrap();
        assert_eq!(passive.refused_at_threshold, 0.01);
        assert_eq!(passive.threshold_for_budget, 0.95, "10 of 1,000 refused is within 1%");
        assert_eq!(passive.threshold_for_budget_95, 0.50, "4 of 1,000 is within 1% with confidence, 10 is not");
    }
}

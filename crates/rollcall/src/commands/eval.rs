//! `rollcall eval`: accuracy of the face engine on the deployer's own labelled photos.
//! The computation lives in `rollcall_face::eval`; this command reads files and prints.

use std::path::PathBuf;

use anyhow::{Context, bail};
use rollcall_face::eval::{self, PairsReport, ThresholdMetrics};
use rollcall_face::identify_eval::{self, IdentifyReport, Outcome, Settings};
use rollcall_face::liveness_eval::{self, LivenessSettings};
use rollcall_face::{CalibrationCurve, Fusion, OpenSetPolicy};

use super::engine_args::EngineArgs;

#[derive(clap::Args)]
pub struct Args {
    /// CSV of labelled pairs, columns `file_x,file_y,decision` (decision `Yes` = same person, `No` = different people).
    #[arg(long, value_name = "FILE.csv")]
    pub pairs: Option<PathBuf>,
    /// Directory the file names in the pairs list are relative to.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Similarity threshold to report accuracy at (default: the engine's, 0.363).
    #[arg(long)]
    pub threshold: Option<f32>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Open-set identification on a folder `DIR/<person>/<photo>`: people with ≥ 4 photos are enrolled
    /// from their first 3 (file-name order), their other photos are genuine probes; people with fewer
    /// photos are strangers.
    #[arg(long, value_name = "DIR", conflicts_with = "pairs")]
    pub identify: Option<PathBuf>,
    /// Strangers accepted per stranger probe that the operating point allows (the server's
    /// `max_false_accept_rate`).
    #[arg(long, default_value_t = rollcall_face::decision::DEFAULT_MAX_FALSE_ACCEPT_RATE)]
    pub max_false_accept_rate: f64,
    /// With --identify: minimum similarity margin between the best and second-best person.
    #[arg(long)]
    pub min_margin: Option<f32>,
    /// With --identify: fusion of a person's enrolled embeddings (`best-of` or `mean`).
    #[arg(long, value_parser = parse_fusion)]
    pub fusion: Option<Fusion>,
    /// With --identify: worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// With --identify: write the measured calibration curve (numbers only) to this file.
    #[arg(long, value_name = "FILE.json")]
    pub write_curve: Option<PathBuf>,
    /// With --identify: derive the threshold and confidence from this curve (written by
    /// `--write-curve`, e.g. on other people's photos) instead of the shipped one.
    #[arg(long, value_name = "FILE.json")]
    pub curve: Option<PathBuf>,
    /// The active challenge's 3-D test on a folder `DIR/<person>/<photo>`: attacks made from
    /// every photo (a print or a screen at random angles, blurred, noisy, re-compressed) and
    /// every pair of real photos of one person (docs/ACCURACY.md).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["pairs", "identify"])]
    pub liveness: Option<PathBuf>,
    /// With --liveness: the planar residual threshold to report at (default: the server's
    /// `liveness_min_planar_residual`).
    #[arg(long)]
    pub min_planar_residual: Option<f32>,
}

fn parse_fusion(s: &str) -> Result<Fusion, String> {
    match s {
        "best-of" | "best_of" => Ok(Fusion::BestOf),
        "mean" => Ok(Fusion::Mean),
        _ => Err(format!("unknown fusion {s:?}: use best-of or mean")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.identify {
        return run_identify(&args, dir);
    }
    if let Some(dir) = &args.liveness {
        return run_liveness(&args, dir);
    }
    let Some(pairs_path) = &args.pairs else {
        bail!(
            "rollcall eval: choose an evaluation: `--identify DIR`, `--liveness DIR` or `--pairs FILE.csv --images DIR`"
        );
    };
    let images = args.images.clone().or_else(|| pairs_path.parent().map(PathBuf::from)).unwrap_or_default();
    let text = std::fs::read_to_string(pairs_path).with_context(|| format!("reading {}", pairs_path.display()))?;
    let pairs = eval::parse_pairs_csv(&text)?;
    if pairs.is_empty() {
        bail!("{} lists no pairs", pairs_path.display());
    }
    let threshold = args.threshold.unwrap_or(args.engine.config().decision.threshold.get());
    rollcall_face::Threshold::new(threshold)?;
    let engine = args.engine.load()?;
    let report = eval::evaluate_pairs(&engine, &pairs, &images, threshold)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, threshold);
    }
    Ok(())
}

fn line(label: &str, m: &ThresholdMetrics) {
    println!(
        "  {label:<26} threshold {:.3}  accuracy {:>6.2}%  TAR {:>6.2}%  FAR {:>6.3}%  (accepted {}/{} same, {}/{} different)",
        m.threshold,
        m.accuracy * 100.0,
        m.tar * 100.0,
        m.far * 100.0,
        m.true_accepts,
        m.true_accepts + m.false_rejects,
        m.false_accepts,
        m.false_accepts + m.true_rejects,
    );
}

fn print_report(r: &PairsReport, threshold: f32) {
    println!(
        "photos: {}   pairs: {} ({} scored: {} same person, {} different)",
        r.photos, r.pairs, r.scored_pairs, r.same_person_pairs, r.different_person_pairs
    );
    println!("detection failures: {}", r.detection_failures.len());
    for f in &r.detection_failures {
        println!("  {}: {} ({})", f.file, f.reason, f.detail);
    }
    if !r.low_quality.is_empty() {
        println!("low-quality faces (scored anyway, refused by the server): {}", r.low_quality.len());
        for (file, issues) in &r.low_quality {
            println!("  {file}: {}", issues.join(", "));
        }
    }
    match &r.at_configured_threshold {
        Some(m) => line(&format!("at threshold {threshold:.3}"), m),
        None => println!("  no pair could be scored"),
    }
    if let Some(m) = &r.best_threshold {
        line("best threshold (this data)", m);
    }
    match &r.at_far_1_percent {
        Some(m) => line("at FAR = 1%", m),
        None if r.scored_pairs > 0 => println!("  TAR at FAR = 1%: needs at least 100 scored different-person pairs"),
        None => {}
    }
    println!("mean time per photo: {:.1} ms (decode, detect, align, quality, anti-spoof, embed)", r.mean_ms_per_photo);
}

fn run_identify(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let policy = OpenSetPolicy::new(args.max_false_accept_rate)?;
    let curve = match &args.curve {
        Some(path) => CalibrationCurve::load(path)?,
        None => CalibrationCurve::shipped(),
    };
    let policy = OpenSetPolicy { min_margin: args.min_margin.unwrap_or(policy.min_margin), curve, ..policy };
    let defaults = Settings::default();
    let settings = Settings {
        fusion: args.fusion.unwrap_or(defaults.fusion),
        policy,
        fixed_threshold: args.threshold,
        anti_spoof_gate: !args.engine.no_anti_spoof,
        ..defaults
    };
    let engine = args.engine.load()?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = identify_eval::evaluate_identify(&engine, dir, &settings, args.max_false_accept_rate, threads)
        .with_context(|| format!("evaluating {}", dir.display()))?;
    if let Some(path) = &args.write_curve {
        std::fs::write(path, serde_json::to_string_pretty(&report.curve)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_identify(&report);
    }
    Ok(())
}

fn run_liveness(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let server = rollcall_server::config::Config::with_data_dir(".");
    let settings = LivenessSettings {
        min_planar_residual: args.min_planar_residual.unwrap_or(server.liveness_min_planar_residual),
        min_turn_deg: server.liveness_min_turn_deg,
        same_person: OpenSetPolicy::default().rule_for_gallery(1).threshold.get(),
    };
    let engine = args.engine.load()?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = liveness_eval::evaluate_liveness(&engine, dir, &settings, threads)
        .with_context(|| format!("evaluating {}", dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let r = &report;
    let pct = |share: f64| format!("{:.1}%", share * 100.0);
    println!("people: {}   photos: {}   with a face: {}", r.people, r.photos, r.photos_with_face);
    let (a, l) = (&r.attack_planar_residual, &r.attack_parallax);
    println!(
        "attacks: {} sequences of {} frames (print or screen at random angles), {} with a face in every frame",
        r.attack_sequences,
        liveness_eval::ATTACK_FRAMES,
        r.attack_sequences_judged
    );
    println!(
        "  planar residual p50 {:.4}  p90 {:.4}  p99 {:.4}  max {:.4}  ({} fits failed)",
        a.p50, a.p90, a.p99, a.max, r.attack_fits_failed
    );
    println!("  landmark parallax p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}", l.p50, l.p90, l.p99, l.max);
    let t = &r.attack_turn;
    println!("  head turn shown both ways p50 {:.1}°  p99 {:.1}°  max {:.1}°", t.p50, t.p99, t.max);
    println!(
        "  able to follow two opposite {}° turns: {}; accepted by the whole challenge at {}: {}",
        r.min_turn_deg, r.attacks_following_steps, r.min_planar_residual, r.attacks_accepted_by_challenge
    );
    println!("real pairs of one person's photos: {} ({} fits failed)", r.real_pairs, r.real_fits_failed);
    for b in &r.real_by_turn {
        let (p, l) = (&b.planar_residual, &b.parallax);
        println!(
            "  turned {:>2}–{:<2}°: {:>5} pairs  residual p50 {:.4}  p90 {:.4}  parallax p50 {:.3}  refused at {}: {}",
            b.min_deg,
            b.max_deg,
            p.count,
            p.p50,
            p.p90,
            l.p50,
            r.min_planar_residual,
            pct(b.refused)
        );
    }
    println!("threshold sweep (real pairs turned ≥ {}°):", r.min_turn_deg);
    for row in &r.sweep {
        println!(
            "  {:<6}: attacks accepted {:>6}  real refused {:>6}",
            row.min_planar_residual,
            pct(row.attacks_accepted),
            pct(row.real_refused)
        );
    }
    println!(
        "at {}: attacks accepted {}, real pairs turned ≥ {}° refused {}",
        r.min_planar_residual,
        pct(r.attacks_accepted),
        r.min_turn_deg,
        pct(r.real_refused)
    );
    println!(
        "time per frame {:.1} ms, 3-D test {:.1} ms; an 8-frame decision {:.0} ms ({threads} threads)",
        r.ms_per_frame, r.ms_per_planar_test, r.ms_per_decision
    );
    Ok(())
}

fn outcome_line(o: &Outcome) {
    println!(
        "  {:<58} t {:.3} m {:.2}  right {:>4}/{}  rejected {:>3} (before search {:>2}, ambiguous {:>2})  wrong {:>2}  strangers {:>3}/{}",
        o.label,
        o.threshold,
        o.min_margin,
        o.genuine_right,
        o.genuine_probes,
        o.genuine_rejected,
        o.genuine_refused_before_search,
        o.genuine_ambiguous,
        o.genuine_wrong,
        o.strangers_accepted,
        o.stranger_probes,
    );
}

fn print_identify(r: &IdentifyReport) {
    println!(
        "people: {}   photos: {}   enrolled: {} of {} with ≥ 4 photos ({} enrollment photos refused)",
        r.people, r.photos, r.enrolled_people, r.enrollable_people, r.enrollment_photos_refused
    );
    println!(
        "probes: {} genuine, {} strangers   no face: {}   low quality: {}   not live: {}{}",
        r.genuine_probes,
        r.stranger_probes,
        r.photos_without_face,
        r.probes_low_quality,
        r.probes_not_live,
        if r.anti_spoof { "" } else { " (anti-spoof off)" }
    );
    for (issue, [genuine, strangers]) in &r.probe_quality_issues {
        println!("  quality issue {issue}: {genuine} genuine, {strangers} stranger probes");
    }
    let d = &r.defaults;
    println!("at the default settings (gallery of {}):", r.enrolled_people);
    println!("  genuine right:      {} / {}", d.genuine_right, d.genuine_probes);
    println!(
        "  genuine rejected:   {} (refused before search {}, ambiguous {})",
        d.genuine_rejected, d.genuine_refused_before_search, d.genuine_ambiguous
    );
    println!("  wrong person:       {}", d.genuine_wrong);
    println!("  strangers accepted: {} / {}", d.strangers_accepted, d.stranger_probes);
    println!("  threshold {:.3}, margin {:.2}", d.threshold, d.min_margin);
    println!("one rule changed at a time:");
    outcome_line(d);
    for o in &r.ablations {
        outcome_line(o);
    }
    println!("fixed thresholds (other rules at their defaults):");
    for o in &r.thresholds {
        outcome_line(o);
    }
    let f = &r.at_false_accept_rate;
    println!(
        "false-accept rate {}: threshold {:.3} from the curve for {} people; on this data {}",
        f.max_false_accept_rate,
        f.curve_threshold,
        r.enrolled_people,
        f.measured_threshold
            .map_or("no swept threshold meets it".into(), |t| format!("{t:.3} is the lowest that meets it")),
    );
    if let Some(passive) = &r.passive_liveness {
        println!(
            "passive liveness on {} real faces of {} people: threshold {:.2} refuses {:.1}%; {:.2} is the highest refusing at most {:.0}%, {:.2} the highest doing so with 95% confidence (people as the unit of sampling)",
            passive.photos,
            passive.people,
            passive.threshold,
            passive.refused_at_threshold * 100.0,
            passive.threshold_for_budget,
            passive.budget * 100.0,
            passive.threshold_for_budget_95,
        );
        let curve: Vec<String> =
            passive.curve.iter().map(|(t, refused)| format!("{t:.2}: {:.1}%", refused * 100.0)).collect();
        println!("  refused at each threshold: {}", curve.join(", "));
    }
    println!(
        "mean time per photo: {:.1} ms (read, decode, detect, align, quality, anti-spoof, embed; {} threads)",
        r.mean_ms_per_photo, r.threads
    );
}

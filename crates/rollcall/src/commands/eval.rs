//! `rollcall eval`: accuracy of the face engine on the deployer's own labelled photos.
//! The computation lives in `rollcall_face::eval`; this command reads files and prints.

use std::path::PathBuf;

use anyhow::{Context, bail};
use rollcall_face::eval::{self, PairsReport, ThresholdMetrics};
use rollcall_face::{EngineConfig, FaceEngine};

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
    /// Directory with the model files (`make models`).
    #[arg(long, env = "ROLLCALL_MODELS_DIR", default_value = "data/models")]
    pub models: PathBuf,
    /// Skip anti-spoofing (it does not change the scores, only the time per photo).
    #[arg(long)]
    pub no_anti_spoof: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(pairs_path) = &args.pairs else {
        bail!("rollcall eval: choose an evaluation, e.g. `--pairs FILE.csv --images DIR`");
    };
    let images = args.images.clone().or_else(|| pairs_path.parent().map(PathBuf::from)).unwrap_or_default();
    let text = std::fs::read_to_string(pairs_path).with_context(|| format!("reading {}", pairs_path.display()))?;
    let pairs = eval::parse_pairs_csv(&text)?;
    if pairs.is_empty() {
        bail!("{} lists no pairs", pairs_path.display());
    }
    let mut config = EngineConfig::new(&args.models);
    config.anti_spoof = !args.no_anti_spoof;
    let threshold = args.threshold.unwrap_or(config.decision.threshold.get());
    rollcall_face::Threshold::new(threshold)?;
    let engine = FaceEngine::load(&config).context("loading the face models (run `make models`)")?;
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

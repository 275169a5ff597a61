//! `rollcall bench`: end-to-end throughput of the face engine on a folder of photos
//! (decode, detect, align, quality, anti-spoof, embed), with a per-stage breakdown; or,
//! with `--server`, of a running server through the HTTP API (see [`http`]).

mod http;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rollcall_face::{FaceEngine, quality};

use super::engine_args::EngineArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Directory of photos (JPEG, PNG, WebP).
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// Measure a running server instead of the engine: POST the photos to
    /// `URL/api/v1/face/verify/?wait=true` and report verifications/s and latency.
    #[arg(long, value_name = "URL", requires = "api_key")]
    pub server: Option<String>,
    /// API key sent as `X-API-Key` (with `--server`).
    #[arg(long, env = "ROLLCALL_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Timed verification requests (with `--server`), after one untimed request per photo.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub requests: usize,
    /// Requests in flight at once (with `--server`).
    #[arg(long, default_value_t = 4, value_name = "C")]
    pub concurrency: usize,
    /// Passes over the photos.
    #[arg(long, default_value_t = 3)]
    pub iterations: usize,
    /// Worker threads sharing one engine (the server runs several).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Default, Clone, Copy, serde::Serialize)]
struct Stages {
    decode_ms: f64,
    detect_ms: f64,
    align_quality_ms: f64,
    anti_spoof_ms: f64,
    embed_ms: f64,
    faces: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn process(engine: &FaceEngine, bytes: &[u8], stages: &mut Stages) -> anyhow::Result<()> {
    let t = Instant::now();
    let image = engine.decode(bytes)?;
    stages.decode_ms += ms(t.elapsed());
    let t = Instant::now();
    let faces = engine.detect(&image)?;
    stages.detect_ms += ms(t.elapsed());
    for d in faces {
        stages.faces += 1;
        let t = Instant::now();
        let Some(aligned) = engine.align(&image, &d) else { continue };
        std::hint::black_box(quality::assess(&d, image.rgb().dimensions(), &aligned, &engine.config().quality));
        stages.align_quality_ms += ms(t.elapsed());
        if let Some(a) = engine.anti_spoof() {
            let t = Instant::now();
            std::hint::black_box(a.check(image.rgb(), d.bbox)?);
            stages.anti_spoof_ms += ms(t.elapsed());
        }
        let t = Instant::now();
        std::hint::black_box(engine.embed_aligned(&aligned)?);
        stages.embed_ms += ms(t.elapsed());
    }
    Ok(())
}

/// The photos of `dir` (JPEG, PNG, WebP), sorted by path.
fn read_photos(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "webp") {
            photos.push((path.clone(), std::fs::read(&path)?));
        }
    }
    photos.sort();
    if photos.is_empty() {
        bail!("no JPEG, PNG or WebP photos in {}", dir.display());
    }
    Ok(photos)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let photos = read_photos(&args.images)?;
    if let Some(server) = &args.server {
        let api_key = args.api_key.clone().context("--server needs --api-key")?;
        let load =
            http::Load { server: server.clone(), api_key, requests: args.requests, concurrency: args.concurrency };
        return http::run(&load, &photos, args.json);
    }
    let engine = args.engine.load()?;
    // Warm-up pass: prepares the detector for each input size.
    let mut warm = Stages::default();
    for (path, bytes) in &photos {
        process(&engine, bytes, &mut warm).with_context(|| path.display().to_string())?;
    }

    let threads = args.threads.max(1);
    let iterations = args.iterations.max(1);
    // Threads take the next photo of the next pass from one counter, so they stay busy
    // until the last photo whatever the number of passes.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total_photos = photos.len() * iterations;
    let started = Instant::now();
    let per_thread: Vec<anyhow::Result<Stages>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (engine, photos, next) = (&engine, &photos, &next);
                s.spawn(move || {
                    let mut stages = Stages::default();
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= total_photos {
                            return Ok(stages);
                        }
                        process(engine, &photos[n % photos.len()].1, &mut stages)?;
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench worker panicked")).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut total = Stages::default();
    for s in per_thread {
        let s = s?;
        total.decode_ms += s.decode_ms;
        total.detect_ms += s.detect_ms;
        total.align_quality_ms += s.align_quality_ms;
        total.anti_spoof_ms += s.anti_spoof_ms;
        total.embed_ms += s.embed_ms;
        total.faces += s.faces;
    }
    let processed = total_photos;
    let n = processed as f64;
    let per_image = Stages {
        decode_ms: total.decode_ms / n,
        detect_ms: total.detect_ms / n,
        align_quality_ms: total.align_quality_ms / n,
        anti_spoof_ms: total.anti_spoof_ms / n,
        embed_ms: total.embed_ms / n,
        faces: total.faces,
    };
    let images_per_second = n / wall;
    if args.json {
        let out = serde_json::json!({
            "photos": photos.len(),
            "iterations": iterations,
            "threads": threads,
            "backend": engine.backend_name(),
            "anti_spoof": !args.engine.no_anti_spoof,
            "images_processed": processed,
            "faces_processed": total.faces,
            "wall_seconds": wall,
            "images_per_second": images_per_second,
            "mean_ms_per_image_per_thread": ms(Duration::from_secs_f64(wall)) * threads as f64 / n,
            "stage_ms_per_image": per_image,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} photos × {iterations} iterations on {threads} thread(s), backend {}, anti-spoof {}",
            photos.len(),
            engine.backend_name(),
            if args.engine.no_anti_spoof { "off" } else { "on" }
        );
        println!("{processed} images ({} faces) in {wall:.2} s: {images_per_second:.2} images/s", total.faces);
        println!(
            "per image: decode {:.1} ms, detect {:.1} ms, align+quality {:.1} ms, anti-spoof {:.1} ms, embed {:.1} ms",
            per_image.decode_ms,
            per_image.detect_ms,
            per_image.align_quality_ms,
            per_image.anti_spoof_ms,
            per_image.embed_ms
        );
    }
    Ok(())
}

//! `rollcall bench --server`: verifications per second and latency through the HTTP API
//! of a running server, as a kiosk sees them (`POST /api/v1/face/verify/?wait=true`).
//!
//! `concurrency` clients send `requests` verifications between them, cycling through the
//! photos; each request is timed from send to the full answer. A request counts as a
//! verification when the server answers 200 with a `completed` task; anything else (a
//! 202 because the wait timed out, a failed task, 429, 503, a transport error) is counted
//! as an error by kind and left out of the latency figures.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// Client side of a request: the server bounds `?wait=true` itself (10 s by default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Load {
    /// Base URL, e.g. `http://127.0.0.1:8000`.
    pub server: String,
    pub api_key: String,
    pub requests: usize,
    pub concurrency: usize,
}

/// How one timed request ended.
enum Outcome {
    /// 200 with a completed task: the latency and the server's `processing_time` (s).
    Verified {
        latency: Duration,
        processing: Option<f64>,
        recognised: bool,
    },
    Error(String),
}

fn data_uri(path: &std::path::Path, bytes: &[u8]) -> String {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mime = match ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "image/jpeg",
    };
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Sends one verification; `body` is the request's JSON, serialised once before the run so
/// that the load generator, on the same cores as the server, spends no time re-encoding it.
async fn verify(client: &reqwest::Client, url: &str, key: &str, body: &[u8]) -> Outcome {
    let started = Instant::now();
    let request = client
        .post(url)
        .header("X-API-Key", key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Error(if error.is_timeout() { "timeout".into() } else { "transport".into() }),
    };
    let status = response.status().as_u16();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(_) => return Outcome::Error(format!("http_{status}")),
    };
    let latency = started.elapsed();
    match (status, body["status"].as_str()) {
        (200, Some("completed")) => Outcome::Verified {
            latency,
            processing: body["processing_time"].as_f64(),
            recognised: body["result"]["recognized"] == json!(true),
        },
        (200, Some(state)) => Outcome::Error(format!("task_{state}")),
        (202, _) => Outcome::Error("wait_timed_out".into()),
        (status, _) => {
            let code = body["error"]["code"].as_str().unwrap_or("unknown");
            Outcome::Error(format!("http_{status}_{code}"))
        }
    }
}

/// The `p`-th percentile (0–1) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn run(load: &Load, photos: &[(PathBuf, Vec<u8>)], json_output: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_async(load, photos, json_output))
}

async fn run_async(load: &Load, photos: &[(PathBuf, Vec<u8>)], json_output: bool) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/face/verify/?wait=true", load.server.trim_end_matches('/'));
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        photos
            .iter()
            .map(|(path, bytes)| {
                json!({"image": data_uri(path, bytes), "camera_id": "BENCH", "location": "rollcall bench"})
                    .to_string()
                    .into_bytes()
            })
            .collect(),
    );
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;

    // Untimed: one request per photo checks the key and warms the server's detector up
    // for each input size.
    for (body, (path, _)) in bodies.iter().zip(photos) {
        match verify(&client, &url, &load.api_key, body).await {
            Outcome::Verified { .. } => {}
            Outcome::Error(kind) if kind.starts_with("http_429") => bail!(
                "rate limited during warm-up: start the server with a higher \
                 ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS"
            ),
            Outcome::Error(kind) => {
                bail!(
                    "warm-up request with {} failed ({kind}); is {} up and the key valid?",
                    path.display(),
                    load.server
                )
            }
        }
    }

    let requests = load.requests.max(1);
    let concurrency = load.concurrency.clamp(1, requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, key, bodies, next) =
                (client.clone(), url.clone(), load.api_key.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests {
                        break outcomes;
                    }
                    outcomes.push(verify(&client, &url, &key, &bodies[n % bodies.len()]).await);
                }
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(requests);
    for client in clients {
        outcomes.extend(client.await.context("a bench client panicked")?);
    }
    let wall = started.elapsed().as_secs_f64();

    let mut latencies_ms = Vec::new();
    let mut processing = Vec::new();
    let mut recognised = 0;
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Verified { latency, processing: p, recognised: r } => {
                latencies_ms.push(latency.as_secs_f64() * 1000.0);
                processing.extend(p);
                recognised += usize::from(r);
            }
            Outcome::Error(kind) => *errors.entry(kind).or_default() += 1,
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let verified = latencies_ms.len();
    let per_second = verified as f64 / wall;
    let mean_processing_ms = if processing.is_empty() {
        f64::NAN
    } else {
        processing.iter().sum::<f64>() * 1000.0 / processing.len() as f64
    };
    let (p50, p90, p99) =
        (percentile(&latencies_ms, 0.50), percentile(&latencies_ms, 0.90), percentile(&latencies_ms, 0.99));
    let max = latencies_ms.last().copied().unwrap_or(f64::NAN);
    if json_output {
        let out = json!({
            "server": load.server,
            "photos": photos.len(),
            "requests": requests,
            "concurrency": concurrency,
            "verified": verified,
            "recognised": recognised,
            "errors": errors,
            "wall_seconds": wall,
            "verifications_per_second": per_second,
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
            "mean_processing_ms": mean_processing_ms,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{requests} verifications of {} photos, {concurrency} in flight, against {}",
            photos.len(),
            load.server
        );
        println!("{verified} verified ({recognised} recognised) in {wall:.2} s: {per_second:.2} verifications/s");
        println!(
            "latency with ?wait=true: p50 {p50:.0} ms, p90 {p90:.0} ms, p99 {p99:.0} ms, max {max:.0} ms; \
             server processing {mean_processing_ms:.0} ms per task"
        );
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(|(kind, n)| format!("{kind} ×{n}")).collect();
            println!("errors: {}", list.join(", "));
        }
    }
    if verified == 0 {
        bail!("no request was verified");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}

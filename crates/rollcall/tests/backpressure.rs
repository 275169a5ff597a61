//! Back-pressure under a burst: 200 kiosks each send 5 verifications of a 3000×2000
//! photo, all at once, to a real `rollcall serve`. Past the queue's bound they must get
//! 503 with `Retry-After`; every task accepted must complete, within about the bound;
//! and the server's peak resident memory must stay under the ceiling documented in
//! docs/PERFORMANCE.md for the default `max_inflight_body_bytes`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server, admin, enroll_obama, fixture, jpeg_data_uri};

const KIOSKS: usize = 200;
const VERIFICATIONS_PER_KIOSK: usize = 5;
/// Small, so the queue stays short and the test quick.
const MAX_QUEUE_WAIT_SECS: u64 = 3;
/// docs/PERFORMANCE.md, "Back-pressure and memory under a burst": the ceiling for the defaults.
const PEAK_RSS_CEILING_MB: u64 = 800;
/// An accepted task finishes within the bound plus this: the estimate is made from recent
/// task times while the burst's own uploads compete for the same cores.
const LATENESS_ALLOWED: Duration = Duration::from_secs(20);

/// A 3000×2000 camera frame made at test time: `obama3.jpg` scaled to the frame's height,
/// on a background with sensor-like noise so that it compresses like a real photo.
fn multi_megapixel_photo() -> Vec<u8> {
    let (width, height) = (3000, 2000);
    let portrait = image::load_from_memory(&fixture("obama3.jpg")).expect("obama3.jpg decodes").to_rgb8();
    let scaled_width = portrait.width() * height / portrait.height();
    let portrait = image::imageops::resize(&portrait, scaled_width, height, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)).wrapping_mul(2_654_435_761) >> 27;
        image::Rgb([96 + noise as u8, 104 + noise as u8, 112 + noise as u8])
    });
    image::imageops::overlay(&mut frame, &portrait, i64::from((width - scaled_width) / 2), 0);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&frame).expect("encodes");
    jpeg
}

async fn start(dir: &Path) -> Server {
    let max_queue_wait = MAX_QUEUE_WAIT_SECS.to_string();
    let env = [
        ("ROLLCALL_TASK_WORKERS", "2"),
        ("ROLLCALL_MAX_QUEUE_WAIT_SECS", max_queue_wait.as_str()),
        // Polling every accepted task's status is not what this test limits.
        ("ROLLCALL_RATE_LIMIT_GENERAL_REQUESTS", "1000000"),
        ("ROLLCALL_RATE_LIMIT_TASK_STATUS_REQUESTS", "1000000"),
    ];
    Server::start(dir, &env).await
}

/// Resident memory now, and its peak since the start, in MB.
fn memory_mb(server: &Server) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).expect("/proc status");
    let field = |name: &str| {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("a kB figure") / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One API key per kiosk, so each has the spec's own verification quota.
async fn kiosks(admin: &Client) -> Vec<Client> {
    let mut kiosks = Vec::with_capacity(KIOSKS);
    for n in 0..KIOSKS {
        let (status, key) =
            admin.post_json("/auth/api-keys/", &json!({"name": format!("Kiosk {n}"), "role": "student"})).await;
        assert_eq!(status, 201, "creating kiosk key {n}: {key}");
        let authorization = format!("Api-Key {}", key["key"].as_str().unwrap());
        kiosks.push(Client { authorization, ..admin.clone() });
    }
    kiosks
}

/// What one verification got: its final status and how long after its acceptance that
/// was seen, or a 503's `Retry-After`.
enum Answer {
    Finished { status: Value, after: Duration },
    Busy { retry_after_secs: u64 },
}

/// What a submission got; an accepted task is polled until it has finished.
async fn answer(kiosk: Client, response: reqwest::Response, accepted_at: Instant) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        202 => {
            let path = format!("/face/verify/status/{}/", body["task_id"].as_str().unwrap());
            let status = kiosk.wait_until_finished(&path).await;
            Answer::Finished { status, after: accepted_at.elapsed() }
        }
        503 => {
            assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
            let retry_after_secs = retry_after.unwrap_or_else(|| panic!("503 without Retry-After: {body}"));
            assert!(retry_after_secs >= 1, "{body}");
            Answer::Busy { retry_after_secs }
        }
        other => panic!("a verification got {other}: {body}"),
    }
}

/// A kiosk sends its verifications one after the other, without waiting for results.
async fn kiosk_burst(kiosk: Client, body: &'static [u8]) -> Vec<Answer> {
    let mut polls = Vec::with_capacity(VERIFICATIONS_PER_KIOSK);
    for _ in 0..VERIFICATIONS_PER_KIOSK {
        let response = kiosk.post("/face/verify/", reqwest::Body::from(body)).await;
        polls.push(tokio::spawn(answer(kiosk.clone(), response, Instant::now())));
    }
    let mut answers = Vec::with_capacity(polls.len());
    for poll in polls {
        answers.push(poll.await.expect("kiosk"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_multi_megapixel_verifications_is_bounded_in_queue_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let photo = multi_megapixel_photo();
    let body: &'static [u8] =
        json!({"image": jpeg_data_uri(&photo), "camera_id": "CAM001"}).to_string().into_bytes().leak();
    let server = start(dir.path()).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let admin = admin(&server, &http).await;
    enroll_obama(&admin).await;
    let kiosks = kiosks(&admin).await;
    let (rss_before, _) = memory_mb(&server);

    let started = Instant::now();
    let bursts: Vec<_> = kiosks.into_iter().map(|kiosk| tokio::spawn(kiosk_burst(kiosk, body))).collect();
    let mut finished = Vec::new();
    let mut retry_afters = Vec::new();
    for burst in bursts {
        for answer in burst.await.expect("kiosk") {
            match answer {
                Answer::Finished { status, after } => finished.push((status, after)),
                Answer::Busy { retry_after_secs } => retry_afters.push(retry_after_secs),
            }
        }
    }
    let all_secs = started.elapsed().as_secs_f64();
    let (rss_after, rss_peak) = memory_mb(&server);

    let lateness = finished.iter().map(|(_, observed)| *observed).max().unwrap_or_default();
    let recognised = finished.iter().filter(|(status, _)| status["result"]["employee_id"] == "OBAMA").count();
    println!(
        "{} accepted, {} refused (Retry-After {}–{} s); all accepted finished after {all_secs:.1} s, the \
         latest {:.1} s after its acceptance; {recognised} recognised; \
         photo {} kB ({} kB as JSON); resident memory {rss_before} MB before, peak {rss_peak} MB, \
         {rss_after} MB after",
        finished.len(),
        retry_afters.len(),
        retry_afters.iter().min().unwrap_or(&0),
        retry_afters.iter().max().unwrap_or(&0),
        lateness.as_secs_f64(),
        photo.len() / 1024,
        body.len() / 1024,
    );
    assert_eq!(finished.len() + retry_afters.len(), KIOSKS * VERIFICATIONS_PER_KIOSK);
    assert!(!retry_afters.is_empty(), "the burst never met the queue's bound");
    assert!(!finished.is_empty(), "nothing was accepted");
    for (status, _) in &finished {
        assert_eq!(status["status"], "completed", "{status}");
        assert_eq!(status["result"]["recognized"], true, "the photo shows Obama: {status}");
    }
    assert!(
        lateness <= Duration::from_secs(MAX_QUEUE_WAIT_SECS) + LATENESS_ALLOWED,
        "an accepted task waited {lateness:?}, past the {MAX_QUEUE_WAIT_SECS} s bound"
    );
    assert!(rss_peak < PEAK_RSS_CEILING_MB, "peak resident memory {rss_peak} MB, ceiling {PEAK_RSS_CEILING_MB} MB");
}

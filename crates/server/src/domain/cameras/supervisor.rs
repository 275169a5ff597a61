//! One ingestion worker per active camera, started, restarted and stopped as cameras are
//! added, changed and removed, without a server restart.
//!
//! In a deployment of several API instances each camera is watched by one of them: an
//! instance holds a camera under a lease in the database ([`camera_watchers`]), renews it
//! every [`RENEW_EVERY`] with the camera's live figures, and another takes the camera over
//! once the lease has run out ([`CAMERA_LEASE`]) — its watcher died or stalled. Every
//! instance reports every camera's figures, its own or as last shared by the watcher.
//!
//! A worker connects, samples frames at the camera's rate, finds and follows the faces in
//! them ([`Tracker`]) and, when a track ends, submits its best face as a verification task
//! — the same task `POST /face/verify/` queues, so the open-set rule, anti-spoofing,
//! cooldown and the one transaction that logs attendance are the same. When the stream
//! fails it reconnects with capped exponential backoff. Workers share nothing but the
//! task queue: a slow or broken camera never holds up another, and each holds at most one
//! frame being decoded and one best crop per track.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use image::codecs::jpeg::JpegEncoder;
use image::imageops;
use rollcall_face::{BoundingBox, DecodedImage, FaceEngine};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::preview::{self, Marked, PreviewFeed};
use super::source::{Picture, Source, SourceError, http_client};
use super::stats::{CameraStats, Snapshot, Status};
use super::tracker::{Candidate, Finished, Tracker, TrackerConfig};
use super::{Direction, masked_url, stored_camera};
use crate::crypto::Sealer;
use crate::domain::audit::{ClientInfo, Requester};
use crate::domain::face::{EngineState, FaceService, VerifyRequest};
use crate::domain::liveness::LivenessMode;
use crate::queue::heartbeat::ProcessIdentity;
use crate::queue::{TaskKind, TaskQueue};
use crate::store::camera_watchers::{self, CameraWatcher};
use crate::store::cameras::{self, CameraRecord};
use crate::store::{Db, StoreResult, users};

/// How long a camera's lease lasts unrenewed: the cameras of an instance that dies are
/// taken over by another at most this long (plus [`RENEW_EVERY`]) after its last renewal.
pub const CAMERA_LEASE: Duration = Duration::from_secs(15);
/// How often leases are renewed, figures shared and the cameras read again, so a change
/// made through another instance is followed within this.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// A session that stayed up this long was healthy: the next failure retries quickly again.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);
/// Faces analysed per frame, largest first.
const MAX_FACES_PER_FRAME: usize = 10;
/// The region sent for verification: the face box and this many box sizes around it on
/// each side, enough context for the detector and anti-spoofing (which looks at 1.4×).
const REGION_MARGIN: f32 = 1.0;
/// The region's longest side at most, in pixels: the face stays well above 112 px.
const REGION_MAX_SIDE: u32 = 1_024;
const REGION_JPEG_QUALITY: u8 = 90;

/// What the workers need, and nothing else of the application.
#[derive(Clone)]
pub struct IngestParts {
    pub db: Db,
    pub sealer: Sealer,
    pub queue: Arc<dyn TaskQueue>,
    pub face: Arc<FaceService>,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

struct Running {
    revision: i64,
    since: DateTime<Utc>,
    stop: CancellationToken,
    stats: Arc<CameraStats>,
    preview: Arc<PreviewFeed>,
}

/// The process that watches a camera.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WatchedBy {
    pub instance_id: String,
    pub hostname: String,
    pub pid: i64,
    /// Since when it has watched the camera without a break.
    pub since: DateTime<Utc>,
    /// Whether it is the instance that answered.
    pub this_instance: bool,
}

/// A camera another process watches, as it last shared it.
struct Remote {
    snapshot: Snapshot,
    watched_by: WatchedBy,
}

/// Active cameras by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub online: u32,
    pub offline: u32,
    pub errors: u32,
    /// Started and not yet sending frames.
    pub connecting: u32,
}

impl StatusCounts {
    fn add(&mut self, status: Status) {
        match status {
            Status::Online => self.online += 1,
            Status::Offline => self.offline += 1,
            Status::Error => self.errors += 1,
            Status::Connecting | Status::Inactive => self.connecting += 1,
        }
    }
}

/// The running workers, by camera id, and the figures of the cameras others watch.
pub struct CameraSupervisor {
    parts: IngestParts,
    identity: ProcessIdentity,
    /// Whether this process takes cameras to watch (`watch_cameras`), or only reports them.
    takes_cameras: bool,
    running: Mutex<HashMap<String, Running>>,
    /// Cameras other processes watch.
    remote: Mutex<HashMap<String, Remote>>,
    /// Figures of cameras that are not watched (inactive, or a sealed URL that does not open).
    idle: Mutex<HashMap<String, Arc<CameraStats>>>,
    changed: Notify,
}

impl CameraSupervisor {
    pub fn new(parts: IngestParts, identity: ProcessIdentity, takes_cameras: bool) -> Self {
        Self {
            parts,
            identity,
            takes_cameras,
            running: Mutex::default(),
            remote: Mutex::default(),
            idle: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Announces that cameras were added, changed or removed: the workers follow at once.
    pub fn cameras_changed(&self) {
        self.changed.notify_one();
    }

    /// The live figures of camera `id`; `None` for a camera nobody has reported yet.
    pub fn stats(&self, id: &str) -> Option<Snapshot> {
        if let Some(running) = lock(&self.running).get(id) {
            return Some(running.stats.snapshot());
        }
        if let Some(remote) = lock(&self.remote).get(id) {
            return Some(remote.snapshot.clone());
        }
        lock(&self.idle).get(id).map(|stats| stats.snapshot())
    }

    /// The process watching camera `id`, if one is.
    pub fn watched_by(&self, id: &str) -> Option<WatchedBy> {
        if let Some(running) = lock(&self.running).get(id) {
            return Some(self.this_process(running.since));
        }
        lock(&self.remote).get(id).map(|remote| remote.watched_by.clone())
    }

    /// Camera `id`'s live preview; `None` when this process does not watch the camera.
    pub fn preview(&self, id: &str) -> Option<Arc<PreviewFeed>> {
        lock(&self.running).get(id).map(|running| running.preview.clone())
    }

    /// How many active cameras of the deployment are in each state.
    pub fn counts(&self) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for running in lock(&self.running).values() {
            counts.add(running.stats.snapshot().status);
        }
        for remote in lock(&self.remote).values() {
            counts.add(remote.snapshot.status);
        }
        counts.errors +=
            lock(&self.idle).values().filter(|stats| stats.snapshot().status == Status::Error).count() as u32;
        counts
    }

    /// Keeps the workers in step with the `cameras` table and the leases until
    /// `shutdown`, then leaves its cameras to the other instances.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.reconcile().await {
                tracing::warn!(%error, "cannot read the cameras; will try again");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(RENEW_EVERY) => {}
            }
        }
        for (_, running) in lock(&self.running).drain() {
            running.stop.cancel();
        }
        match camera_watchers::release_all(&self.parts.db, &self.identity.instance_id).await {
            Ok(0) => {}
            Ok(cameras) => tracing::info!(cameras, "left the cameras to the other instances"),
            Err(error) => tracing::warn!(%error, "cannot give up the cameras' leases; they run out by themselves"),
        }
    }

    /// Holds (or renews) the lease of every active camera it can, then starts a worker
    /// for each held camera without one, restarts those whose camera changed, stops
    /// those it no longer holds or whose camera was deactivated or removed, and notes
    /// the figures of the cameras others watch.
    async fn reconcile(&self) -> anyhow::Result<()> {
        let db = &self.parts.db;
        let cameras = cameras::all(db).await?;
        let held = if self.takes_cameras { self.hold_active(&cameras).await? } else { HashSet::new() };
        self.follow(&cameras, &held);
        let watchers = camera_watchers::all(db).await?;
        for dropped in watchers.iter().filter(|w| w.instance_id == self.identity.instance_id) {
            if !held.contains(&dropped.camera_id) {
                camera_watchers::release(db, &self.identity.instance_id, &dropped.camera_id).await?;
            }
        }
        self.note_remote(&cameras, watchers);
        Ok(())
    }

    /// The active cameras this process holds now.
    async fn hold_active(&self, cameras: &[CameraRecord]) -> StoreResult<HashSet<String>> {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(CAMERA_LEASE).expect("a short lease");
        let mut held = HashSet::new();
        for camera in cameras.iter().filter(|camera| camera.is_active) {
            let (since, figures) = match lock(&self.running).get(&camera.id) {
                Some(running) => (running.since, serde_json::to_string(&running.stats.snapshot()).ok()),
                None => (now, None),
            };
            let hold = CameraWatcher {
                camera_id: camera.id.clone(),
                instance_id: self.identity.instance_id.clone(),
                hostname: self.identity.hostname.clone(),
                pid: i64::from(self.identity.pid),
                watching_since: since,
                lease_until,
                figures,
            };
            if camera_watchers::hold(&self.parts.db, &hold, now).await? {
                held.insert(camera.id.clone());
            }
        }
        Ok(held)
    }

    fn follow(&self, cameras: &[CameraRecord], held: &HashSet<String>) {
        let mut running = lock(&self.running);
        let mut idle = lock(&self.idle);
        running.retain(|id, worker| {
            let current = cameras.iter().find(|camera| &camera.id == id);
            let keep = held.contains(id)
                && current.is_some_and(|camera| camera.is_active && camera.revision == worker.revision);
            if !keep {
                worker.stop.cancel();
                worker.stats.stopped();
            }
            keep
        });
        idle.retain(|id, _| cameras.iter().any(|camera| &camera.id == id));
        for camera in cameras {
            if !camera.is_active {
                let stats = idle.entry(camera.id.clone()).or_default();
                stats.stopped();
                continue;
            }
            if running.contains_key(&camera.id) || !held.contains(&camera.id) {
                continue;
            }
            idle.remove(&camera.id);
            let stats = Arc::new(CameraStats::default());
            let preview = Arc::new(PreviewFeed::default());
            match self.start(camera, stats.clone(), preview.clone()) {
                Ok(stop) => {
                    let since = Utc::now();
                    let worker = Running { revision: camera.revision, since, stop, stats, preview };
                    running.insert(camera.id.clone(), worker);
                }
                Err(error) => {
                    tracing::error!(camera = %camera.id, %error, "cannot open the camera's sealed URL");
                    stats.failed(Status::Error, "the camera's stored URL cannot be decrypted with the data key".into());
                    idle.insert(camera.id.clone(), stats);
                }
            }
        }
    }

    /// Remembers the figures of the active cameras other processes hold. A lease that ran
    /// out shows the camera offline until another process takes it over.
    fn note_remote(&self, cameras: &[CameraRecord], watchers: Vec<CameraWatcher>) {
        let now = Utc::now();
        let active: HashSet<&str> =
            cameras.iter().filter(|camera| camera.is_active).map(|camera| camera.id.as_str()).collect();
        let remote = watchers
            .into_iter()
            .filter(|w| w.instance_id != self.identity.instance_id && active.contains(w.camera_id.as_str()))
            .map(|watcher| {
                let mut snapshot = watcher
                    .figures
                    .as_deref()
                    .and_then(|figures| serde_json::from_str::<Snapshot>(figures).ok())
                    .unwrap_or_else(|| CameraStats::default().snapshot());
                if watcher.lease_until < now {
                    snapshot.status = Status::Offline;
                    snapshot.online_since = None;
                    snapshot.last_error = Some(format!(
                        "the instance watching it ({} pid {}) stopped renewing its lease; another instance takes it over",
                        watcher.hostname, watcher.pid
                    ));
                }
                let watched_by = WatchedBy {
                    instance_id: watcher.instance_id,
                    hostname: watcher.hostname,
                    pid: watcher.pid,
                    since: watcher.watching_since,
                    this_instance: false,
                };
                (watcher.camera_id, Remote { snapshot, watched_by })
            })
            .collect();
        *lock(&self.remote) = remote;
    }

    fn this_process(&self, since: DateTime<Utc>) -> WatchedBy {
        WatchedBy {
            instance_id: self.identity.instance_id.clone(),
            hostname: self.identity.hostname.clone(),
            pid: i64::from(self.identity.pid),
            since,
            this_instance: true,
        }
    }

    fn start(
        &self,
        record: &CameraRecord,
        stats: Arc<CameraStats>,
        preview: Arc<PreviewFeed>,
    ) -> anyhow::Result<CancellationToken> {
        let spec = stored_camera(record, &self.parts.sealer)?;
        let camera = Watched {
            id: record.id.clone(),
            location: Some(spec.location.clone()).filter(|location| !location.is_empty()),
            masked_url: masked_url(&spec.url),
            url: spec.url,
            direction: spec.direction,
            interval: Duration::from_secs_f64(1.0 / spec.sample_fps),
            liveness_mode: spec.liveness_mode,
        };
        let stop = CancellationToken::new();
        tracing::info!(camera = %camera.id, url = %camera.masked_url, "watching camera");
        tokio::spawn(watch(Watcher { camera, parts: self.parts.clone(), stats, preview }, stop.clone()));
        Ok(stop)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A camera as its worker sees it.
struct Watched {
    id: String,
    location: Option<String>,
    url: Url,
    masked_url: String,
    direction: Direction,
    interval: Duration,
    liveness_mode: LivenessMode,
}

/// One camera's worker and what it reports to.
struct Watcher {
    camera: Watched,
    parts: IngestParts,
    stats: Arc<CameraStats>,
    preview: Arc<PreviewFeed>,
}

/// Runs sessions until `stop`, waiting longer after each failure (up to `max_backoff`).
async fn watch(watcher: Watcher, stop: CancellationToken) {
    let Watcher { camera, parts, stats, .. } = &watcher;
    let client = http_client();
    let mut backoff = FIRST_RETRY;
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = session(&watcher, &client) => outcome,
        };
        let SessionEnd { error, tracker } = outcome;
        submit_all(camera, parts, stats, tracker.map(|mut t| t.finish_all()).unwrap_or_default()).await;
        tracing::warn!(camera = %camera.id, url = %camera.masked_url, error = %error, "camera stream failed");
        stats.failed(error.status, error.message);
        if started.elapsed() >= HEALTHY_SESSION {
            backoff = FIRST_RETRY;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(parts.max_backoff.max(FIRST_RETRY));
    }
}

struct SessionEnd {
    error: SourceError,
    /// The faces being followed when the stream failed: their best faces are still verified.
    tracker: Option<Tracker<Vec<u8>>>,
}

/// One connection: frames until the stream fails.
async fn session(watcher: &Watcher, client: &reqwest::Client) -> SessionEnd {
    let Watcher { camera, parts, stats, .. } = watcher;
    let mut source = match Source::open(client, &camera.url).await {
        Ok(source) => source,
        Err(error) => return SessionEnd { error, tracker: None },
    };
    let mut followed = Some(Followed {
        tracker: Tracker::new(TrackerConfig::for_interval(camera.interval)),
        names: PreviewNames::default(),
    });
    let mut next_sample = Instant::now();
    loop {
        let due = Instant::now() >= next_sample;
        let frame = match source.next_frame(due).await {
            Ok(frame) => frame,
            Err(error) => return SessionEnd { error, tracker: followed.map(|f| f.tracker) },
        };
        stats.frame_received(frame.bytes, source.codec());
        let now = Instant::now();
        if let (true, Some(picture)) = (now >= next_sample, frame.picture) {
            next_sample = (next_sample + camera.interval).max(now);
            if let EngineState::Ready(engine) = parts.face.state() {
                let before = followed.take().expect("the tracker is back after each frame");
                followed = Some(look_at(engine, picture, before, watcher).await);
            }
        }
        let finished = followed.as_mut().map(|f| f.tracker.finish(Instant::now())).unwrap_or_default();
        submit_all(camera, parts, stats, finished).await;
        if source.is_polled() {
            tokio::time::sleep_until(next_sample.into()).await;
        }
    }
}

/// What a session keeps between frames: the faces followed, and for the preview whom
/// each track was recognised as.
struct Followed {
    tracker: Tracker<Vec<u8>>,
    names: PreviewNames,
}

/// Names of tracks for the preview, by track: `None` for a track looked up and recognised
/// as nobody. Bounded: forgotten wholesale past [`MAX_PREVIEW_NAMES`].
#[derive(Default)]
struct PreviewNames(HashMap<u64, Option<String>>);

const MAX_PREVIEW_NAMES: usize = 256;

/// Decodes a sampled frame, finds its faces and follows them, keeping a crop of each
/// track's best face so far, and draws the preview when someone watches. Runs on the
/// blocking pool; the tracker comes back with it.
async fn look_at(engine: Arc<FaceEngine>, picture: Picture, mut followed: Followed, watcher: &Watcher) -> Followed {
    let captured_at = Utc::now();
    let seen = Instant::now();
    let preview = watcher.preview.clone();
    let face = watcher.parts.face.clone();
    let work = tokio::task::spawn_blocking(move || {
        let image = match picture {
            Picture::Jpeg(jpeg) => match engine.decode(&jpeg) {
                Ok(image) => image,
                Err(_) => return (followed, None, 0, Vec::new()),
            },
            Picture::Rgb(rgb) => DecodedImage::from_rgb(rgb),
        };
        let frame_quality = frame_quality(&image);
        let mut faces = engine.detect(&image).unwrap_or_default();
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        faces.truncate(MAX_FACES_PER_FRAME);
        let boxes: Vec<BoundingBox> = faces.iter().map(|face| face.bbox).collect();
        let tracker = &mut followed.tracker;
        let tracks = tracker.assign(seen, &boxes);
        let size = (image.width(), image.height());
        let drawing = preview.due(seen);
        let (mut new_tracks, mut to_name) = (0, Vec::new());
        for (detection, track) in faces.iter().zip(&tracks) {
            let Some(track) = *track else { continue };
            let Some(aligned) = engine.align(&image, detection) else { continue };
            if drawing && !followed.names.0.contains_key(&track) {
                to_name.push((track, recognise(&engine, &face, &aligned)));
            }
            let quality = rollcall_face::quality::assess(detection, size, &aligned, &engine.config().quality);
            // A face that passes every quality limit beats any that does not.
            let score = quality.score + if quality.is_acceptable() { 1.0 } else { 0.0 };
            if tracker.would_keep(track, score) {
                let fresh = tracker.would_keep(track, f32::NEG_INFINITY);
                if let Some(kept) = face_region(&image, &detection.bbox) {
                    tracker.offer(track, Candidate { score, captured_at, kept });
                    new_tracks += usize::from(fresh);
                }
            }
        }
        if drawing {
            let marked: Vec<Marked<'_>> = boxes
                .iter()
                .zip(&tracks)
                .map(|(bbox, track)| Marked {
                    bbox: *bbox,
                    name: track.and_then(|t| followed.names.0.get(&t)).and_then(|name| name.as_deref()),
                })
                .collect();
            if let Some(jpeg) = preview::render(image.rgb(), &marked) {
                preview.publish(jpeg);
            }
        }
        (followed, Some((size, frame_quality)), new_tracks, to_name)
    });
    match work.await {
        Ok((mut followed, sampled, new_tracks, to_name)) => {
            if let Some((size, quality)) = sampled {
                watcher.stats.frame_sampled(size, quality);
            }
            for _ in 0..new_tracks {
                watcher.stats.face_tracked();
            }
            name_tracks(&watcher.parts.db, &mut followed.names, to_name).await;
            followed
        }
        Err(error) => {
            tracing::error!(%error, "analysing a camera frame failed");
            Followed {
                tracker: Tracker::new(TrackerConfig::for_interval(Duration::from_millis(500))),
                names: PreviewNames::default(),
            }
        }
    }
}

/// Whom the aligned face is, by the same open-set rule as verification (for the preview
/// only: no liveness check, nothing logged).
fn recognise(engine: &FaceEngine, face: &FaceService, aligned: &image::RgbImage) -> Option<i64> {
    face.recognise(&engine.embed_aligned(aligned).ok()?)
}

/// Remembers the names of the people the preview recognised.
async fn name_tracks(db: &Db, names: &mut PreviewNames, recognised: Vec<(u64, Option<i64>)>) {
    if names.0.len() > MAX_PREVIEW_NAMES {
        names.0.clear();
    }
    for (track, user_id) in recognised {
        let name = match user_id {
            Some(id) => users::find_by_id(db, id).await.ok().flatten().filter(|u| u.is_active).map(|u| u.full_name()),
            None => None,
        };
        names.0.insert(track, name);
    }
}

/// The face in `bbox` with room around it, as a JPEG of at most [`REGION_MAX_SIDE`].
fn face_region(image: &DecodedImage, bbox: &BoundingBox) -> Option<Vec<u8>> {
    let rgb = image.rgb();
    let (width, height) = (rgb.width() as f32, rgb.height() as f32);
    let x0 = (bbox.x - REGION_MARGIN * bbox.width).clamp(0.0, width);
    let y0 = (bbox.y - REGION_MARGIN * bbox.height).clamp(0.0, height);
    let x1 = (bbox.x + (1.0 + REGION_MARGIN) * bbox.width).clamp(0.0, width);
    let y1 = (bbox.y + (1.0 + REGION_MARGIN) * bbox.height).clamp(0.0, height);
    let (w, h) = ((x1 - x0) as u32, (y1 - y0) as u32);
    if w == 0 || h == 0 {
        return None;
    }
    let mut region = imageops::crop_imm(rgb, x0 as u32, y0 as u32, w, h).to_image();
    if w.max(h) > REGION_MAX_SIDE {
        let scale = REGION_MAX_SIDE as f32 / w.max(h) as f32;
        let side = |s: u32| ((s as f32 * scale).round() as u32).max(1);
        region = imageops::resize(&region, side(w), side(h), imageops::FilterType::Triangle);
    }
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, REGION_JPEG_QUALITY).encode_image(&region).ok()?;
    Some(jpeg)
}

/// Sharpness and exposure of a whole frame in [0, 1], from a small grey copy: the
/// Laplacian variance (as the face quality gate measures it) and how far the mean
/// brightness is from mid-grey, with clipped pixels counted against it.
fn frame_quality(image: &DecodedImage) -> f32 {
    const SIDE: u32 = 320;
    let rgb = image.rgb();
    let scale = (SIDE as f32 / rgb.width().max(rgb.height()) as f32).min(1.0);
    let (w, h) = (((rgb.width() as f32 * scale) as u32).max(3), ((rgb.height() as f32 * scale) as u32).max(3));
    let grey = imageops::grayscale(&imageops::thumbnail(rgb, w, h));
    let pixel = |x: u32, y: u32| f64::from(grey.get_pixel(x, y).0[0]);
    let (mut sum, mut sum_sq, mut count) = (0.0, 0.0, 0.0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let lap = pixel(x - 1, y) + pixel(x + 1, y) + pixel(x, y - 1) + pixel(x, y + 1) - 4.0 * pixel(x, y);
            sum += lap;
            sum_sq += lap * lap;
            count += 1.0;
        }
    }
    let variance = (sum_sq / count - (sum / count).powi(2)).max(0.0);
    let sharpness = variance / (variance + 60.0);
    let values = grey.pixels().map(|p| f64::from(p.0[0]));
    let (total, clipped) =
        values.fold((0.0, 0.0), |(t, c), v| (t + v, c + f64::from(u8::from(!(6.0..250.0).contains(&v)))));
    let pixels = f64::from(w * h);
    let exposure = (1.0 - ((total / pixels - 127.5).abs() / 127.5).powi(4)) * (1.0 - clipped / pixels).sqrt();
    (sharpness * exposure.max(0.0)).sqrt() as f32
}

/// Queues a verification of each finished track's best face.
async fn submit_all(camera: &Watched, parts: &IngestParts, stats: &CameraStats, finished: Vec<Finished<Vec<u8>>>) {
    // Exit events are not recorded yet: an exit camera follows faces but logs no arrival.
    if camera.direction == Direction::Exit {
        return;
    }
    for track in finished {
        let request = VerifyRequest {
            image: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &track.best.kept),
            camera_id: Some(camera.id.clone()),
            location: camera.location.clone(),
            captured_at: track.best.captured_at,
            requested_by: Requester { name: Some(format!("camera:{}", camera.id)), client: ClientInfo::default() },
            from_camera_worker: true,
            liveness_mode: camera.liveness_mode,
            challenge: None,
        };
        let payload = serde_json::to_vec(&request).expect("a verification request serialises");
        let owner = format!("camera:{}", camera.id);
        match parts.queue.submit(TaskKind::Verify, &owner, None, &payload).await {
            Ok(task_id) => {
                stats.verification_submitted();
                tracing::debug!(camera = %camera.id, track = track.track, %task_id, "face queued for verification");
            }
            Err(error) => tracing::warn!(camera = %camera.id, %error, "cannot queue a face seen at the camera"),
        }
    }
}

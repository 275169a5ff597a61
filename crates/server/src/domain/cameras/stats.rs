//! What a camera's ingestion worker measures as it runs, for `/cameras/…/health/` and the
//! camera list: state, uptime, frames and bytes per second over the last seconds, frame
//! quality, errors.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How far back the frame rate and bandwidth are measured.
const WINDOW: Duration = Duration::from_secs(10);
/// Frames remembered for the rate: a 60 fps stream over the window.
const MAX_WINDOW_ENTRIES: usize = 600;
/// Weight of each new sampled frame in the quality score's running mean.
const QUALITY_WEIGHT: f32 = 0.2;

/// A camera's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The worker is connecting and no frame has arrived yet.
    Connecting,
    /// Frames are arriving.
    Online,
    /// The stream cannot be reached, or stopped sending frames.
    Offline,
    /// The stream answers but cannot be used (wrong credentials, not a video, a codec
    /// that is not supported).
    Error,
    /// The camera is not active: nothing watches it.
    Inactive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Error => "error",
            Self::Inactive => "inactive",
        }
    }
}

/// A point-in-time copy of a camera's figures; in JSON, what the watching process shares
/// with the others of its deployment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub status: Status,
    /// Why the camera is offline or in error, in plain words.
    pub last_error: Option<String>,
    /// Since when frames have arrived without a break.
    pub online_since: Option<DateTime<Utc>>,
    pub last_frame: Option<DateTime<Utc>>,
    /// Frames received per second over the last seconds.
    pub fps: Option<f64>,
    pub resolution: Option<(u32, u32)>,
    pub codec: Option<String>,
    pub bandwidth_bps: Option<f64>,
    /// Sharpness and exposure of the sampled frames, in [0, 1] (a running mean).
    pub quality_score: Option<f32>,
    pub error_count: u64,
    pub frames_received: u64,
    pub frames_sampled: u64,
    pub faces_tracked: u64,
    pub verifications: u64,
}

impl Snapshot {
    /// Seconds the camera has been online without a break.
    pub fn uptime_secs(&self, now: DateTime<Utc>) -> Option<i64> {
        self.online_since.map(|since| (now - since).num_seconds().max(0))
    }
}

#[derive(Debug)]
struct Figures {
    snapshot: Snapshot,
    /// When each recent frame arrived, and its size in bytes.
    recent: VecDeque<(Instant, usize)>,
}

/// One camera's live figures, written by its worker and read by the API.
#[derive(Debug)]
pub struct CameraStats(Mutex<Figures>);

impl Default for CameraStats {
    fn default() -> Self {
        Self(Mutex::new(Figures {
            snapshot: Snapshot {
                status: Status::Connecting,
                last_error: None,
                online_since: None,
                last_frame: None,
                fps: None,
                resolution: None,
                codec: None,
                bandwidth_bps: None,
                quality_score: None,
                error_count: 0,
                frames_received: 0,
                frames_sampled: 0,
                faces_tracked: 0,
                verifications: 0,
            },
            recent: VecDeque::new(),
        }))
    }
}

impl CameraStats {
    pub fn snapshot(&self) -> Snapshot {
        let mut figures = self.lock();
        let now = Instant::now();
        figures.forget_before(now);
        let (fps, bandwidth) = figures.rates(now);
        Snapshot { fps, bandwidth_bps: bandwidth, ..figures.snapshot.clone() }
    }

    /// A frame of `bytes` arrived (sampled or not).
    pub fn frame_received(&self, bytes: usize, codec: &'static str) {
        let mut figures = self.lock();
        let now = Instant::now();
        figures.forget_before(now);
        if figures.recent.len() == MAX_WINDOW_ENTRIES {
            figures.recent.pop_front();
        }
        figures.recent.push_back((now, bytes));
        let snapshot = &mut figures.snapshot;
        let at = Utc::now();
        if snapshot.status != Status::Online {
            snapshot.status = Status::Online;
            snapshot.online_since = Some(at);
            snapshot.last_error = None;
        }
        snapshot.last_frame = Some(at);
        if snapshot.codec.as_deref() != Some(codec) {
            snapshot.codec = Some(codec.to_owned());
        }
        snapshot.frames_received += 1;
    }

    /// A frame was decoded and looked at: its size and quality.
    pub fn frame_sampled(&self, resolution: (u32, u32), quality: f32) {
        let mut figures = self.lock();
        let snapshot = &mut figures.snapshot;
        snapshot.resolution = Some(resolution);
        snapshot.frames_sampled += 1;
        snapshot.quality_score =
            Some(snapshot.quality_score.map_or(quality, |mean| mean + QUALITY_WEIGHT * (quality - mean)));
    }

    pub fn face_tracked(&self) {
        self.lock().snapshot.faces_tracked += 1;
    }

    pub fn verification_submitted(&self) {
        self.lock().snapshot.verifications += 1;
    }

    /// The stream failed: `status` says how, `error` why.
    pub fn failed(&self, status: Status, error: String) {
        let mut figures = self.lock();
        figures.recent.clear();
        let snapshot = &mut figures.snapshot;
        snapshot.status = status;
        snapshot.last_error = Some(error);
        snapshot.online_since = None;
        snapshot.error_count += 1;
    }

    /// Nothing watches the camera any more.
    pub fn stopped(&self) {
        let mut figures = self.lock();
        figures.recent.clear();
        figures.snapshot.status = Status::Inactive;
        figures.snapshot.online_since = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Figures {
    fn forget_before(&mut self, now: Instant) {
        while self.recent.front().is_some_and(|(at, _)| now.duration_since(*at) > WINDOW) {
            self.recent.pop_front();
        }
    }

    /// Frames and bits per second over the window: from the first frame in it to now.
    fn rates(&self, now: Instant) -> (Option<f64>, Option<f64>) {
        let Some((first, _)) = self.recent.front() else { return (None, None) };
        let span = now.duration_since(*first).as_secs_f64().max(1.0);
        let bytes: usize = self.recent.iter().map(|(_, bytes)| bytes).sum();
        (Some(self.recent.len() as f64 / span), Some(bytes as f64 * 8.0 / span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_frames_and_failures() {
        let stats = CameraStats::default();
        assert_eq!(stats.snapshot().status, Status::Connecting);
        for _ in 0..5 {
            stats.frame_received(50_000, "jpeg");
        }
        stats.frame_sampled((1920, 1080), 0.8);
        stats.frame_sampled((1920, 1080), 0.3);
        let online = stats.snapshot();
        assert_eq!(online.status, Status::Online);
        assert_eq!(online.frames_received, 5);
        assert_eq!(online.resolution, Some((1920, 1080)));
        assert!((online.quality_score.unwrap() - 0.7).abs() < 1e-6, "{:?}", online.quality_score);
        // Five frames within the first second: measured over at least one second.
        assert_eq!(online.fps, Some(5.0));
        assert_eq!(online.bandwidth_bps, Some(5.0 * 50_000.0 * 8.0));

        stats.failed(Status::Offline, "connection refused".into());
        let offline = stats.snapshot();
        assert_eq!((offline.status, offline.error_count, offline.fps), (Status::Offline, 1, None));
        assert_eq!(offline.last_error.as_deref(), Some("connection refused"));
        assert!(offline.online_since.is_none() && offline.last_frame.is_some());
    }
}

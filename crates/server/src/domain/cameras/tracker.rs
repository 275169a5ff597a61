//! Following faces across a camera's sampled frames, so that one person walking past is
//! one verification, made from the best frame of their track.
//!
//! A face in a new frame continues the track whose last box it overlaps most (IoU), or,
//! when a walker moved further than their box between two samples, the track whose box
//! centre is within [`TrackerConfig::max_shift`] box widths and of a similar size. A track
//! not seen for [`TrackerConfig::max_gap`] has ended: its best face is handed on. A person
//! who stays in view longer than [`TrackerConfig::max_window`] hands on the best face of
//! each such window (the attendance cooldown keeps them from being logged twice).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rollcall_face::BoundingBox;

#[derive(Debug, Clone, Copy)]
pub struct TrackerConfig {
    pub max_gap: Duration,
    pub max_window: Duration,
    /// Least IoU with a track's last box for a face to continue it by overlap.
    pub min_iou: f32,
    /// Furthest a face's centre may be from a track's last one, in the track's box widths.
    pub max_shift: f32,
    /// Tracks followed at once: faces beyond them are not followed (memory stays bounded).
    pub max_tracks: usize,
}

impl TrackerConfig {
    /// For frames sampled every `interval`: a track survives two missed samples (a face
    /// turned away, a detection missed) and at least a second and a half.
    pub fn for_interval(interval: Duration) -> Self {
        Self {
            max_gap: (interval * 3).max(Duration::from_millis(1_500)),
            max_window: Duration::from_secs(10),
            min_iou: 0.3,
            max_shift: 1.5,
            max_tracks: 16,
        }
    }
}

/// The best face of a track so far, with what the caller kept of it (a crop).
#[derive(Debug, Clone)]
pub struct Candidate<T> {
    pub score: f32,
    pub captured_at: DateTime<Utc>,
    pub kept: T,
}

/// A track's best face, handed on to be verified.
#[derive(Debug)]
pub struct Finished<T> {
    pub track: u64,
    pub best: Candidate<T>,
}

#[derive(Debug)]
struct Track<T> {
    id: u64,
    bbox: BoundingBox,
    last_seen: Instant,
    window_started: Instant,
    best: Option<Candidate<T>>,
}

#[derive(Debug)]
pub struct Tracker<T> {
    config: TrackerConfig,
    tracks: Vec<Track<T>>,
    next_id: u64,
}

impl<T> Tracker<T> {
    pub fn new(config: TrackerConfig) -> Self {
        Self { config, tracks: Vec::new(), next_id: 1 }
    }

    /// Assigns the faces of a frame seen at `now` to tracks, starting new ones for faces
    /// that continue none: the track id of each face, `None` for a face not followed.
    pub fn assign(&mut self, now: Instant, faces: &[BoundingBox]) -> Vec<Option<u64>> {
        let mut pairs = Vec::new();
        for (face_index, face) in faces.iter().enumerate() {
            for (track_index, track) in self.tracks.iter().enumerate() {
                if let Some(affinity) = self.affinity(&track.bbox, face) {
                    pairs.push((affinity, face_index, track_index));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut assigned: Vec<Option<u64>> = vec![None; faces.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, face_index, track_index) in pairs {
            if assigned[face_index].is_none() && !taken[track_index] {
                taken[track_index] = true;
                let track = &mut self.tracks[track_index];
                track.bbox = faces[face_index];
                track.last_seen = now;
                assigned[face_index] = Some(track.id);
            }
        }
        for (face_index, face) in faces.iter().enumerate() {
            if assigned[face_index].is_none() && self.tracks.len() < self.config.max_tracks {
                let id = self.next_id;
                self.next_id += 1;
                self.tracks.push(Track { id, bbox: *face, last_seen: now, window_started: now, best: None });
                assigned[face_index] = Some(id);
            }
        }
        assigned
    }

    /// How well `face` continues a track last seen at `last`: its IoU, or a small score
    /// that falls with the distance when the face moved beyond its box; `None` when it
    /// cannot be the same face.
    fn affinity(&self, last: &BoundingBox, face: &BoundingBox) -> Option<f32> {
        let iou = last.iou(face);
        if iou >= self.config.min_iou {
            return Some(iou);
        }
        let size_ratio = face.width / last.width.max(1.0);
        let centre = |b: &BoundingBox| (b.x + b.width / 2.0, b.y + b.height / 2.0);
        let ((x0, y0), (x1, y1)) = (centre(last), centre(face));
        let shift = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt() / last.width.max(1.0);
        let similar_size = (0.5..=2.0).contains(&size_ratio);
        (similar_size && shift <= self.config.max_shift)
            .then(|| 0.1 * self.config.min_iou * (1.0 - shift / 2.0).max(0.0))
    }

    /// Whether a face of `score` would become its track's best: only then is it worth
    /// keeping (encoding a crop).
    pub fn would_keep(&self, track: u64, score: f32) -> bool {
        self.tracks
            .iter()
            .find(|t| t.id == track)
            .is_some_and(|t| t.best.as_ref().is_none_or(|best| score > best.score))
    }

    /// Offers a face of `track` as its best; kept when it scores higher than the best so far.
    pub fn offer(&mut self, track: u64, candidate: Candidate<T>) {
        if let Some(track) = self.tracks.iter_mut().find(|t| t.id == track)
            && track.best.as_ref().is_none_or(|best| candidate.score > best.score)
        {
            track.best = Some(candidate);
        }
    }

    /// The best faces of the tracks that ended by `now`, and of those whose window is over.
    pub fn finish(&mut self, now: Instant) -> Vec<Finished<T>> {
        let mut finished = Vec::new();
        let (max_gap, max_window) = (self.config.max_gap, self.config.max_window);
        self.tracks.retain_mut(|track| {
            let ended = now.duration_since(track.last_seen) > max_gap;
            if ended || now.duration_since(track.window_started) > max_window {
                if let Some(best) = track.best.take() {
                    finished.push(Finished { track: track.id, best });
                }
                track.window_started = now;
            }
            !ended
        });
        finished
    }

    /// Ends every track: the stream stopped.
    pub fn finish_all(&mut self) -> Vec<Finished<T>> {
        self.tracks.drain(..).filter_map(|track| track.best.map(|best| Finished { track: track.id, best })).collect()
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32) -> BoundingBox {
        BoundingBox { x, y: 100.0, width: 100.0, height: 120.0 }
    }

    fn candidate(score: f32, kept: &'static str) -> Candidate<&'static str> {
        Candidate { score, captured_at: Utc::now(), kept }
    }

    #[test]
    fn a_walk_past_is_one_track_whose_best_face_is_handed_on_once_it_ends() {
        let start = Instant::now();
        let step = Duration::from_millis(500);
        let mut tracker = Tracker::new(TrackerConfig::for_interval(step));
        // Walking right 80 px per sample: overlapping, then (at 130 px) only near.
        let mut ids = Vec::new();
        for (n, (x, score)) in [(0.0, 0.4), (80.0, 0.9), (210.0, 0.6)].into_iter().enumerate() {
            let now = start + step * n as u32;
            let id = tracker.assign(now, &[face(x)])[0].unwrap();
            ids.push(id);
            assert_eq!(tracker.would_keep(id, score), score != 0.6, "only a better face is kept");
            tracker.offer(id, candidate(score, ["first", "best", "last"][n]));
            assert!(tracker.finish(now).is_empty(), "still in view");
        }
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        let finished = tracker.finish(start + step * 2 + Duration::from_secs(2));
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].best.kept, "best");
        assert!(tracker.is_empty());
    }

    #[test]
    fn two_people_apart_are_two_tracks_and_a_far_face_starts_a_new_one() {
        let now = Instant::now();
        let mut tracker: Tracker<()> = Tracker::new(TrackerConfig::for_interval(Duration::from_millis(500)));
        let first = tracker.assign(now, &[face(0.0), face(600.0)]);
        assert_eq!(first, [Some(1), Some(2)]);
        let later = now + Duration::from_millis(500);
        // Each moved a little; their order in the frame does not matter.
        assert_eq!(tracker.assign(later, &[face(620.0), face(20.0)]), [Some(2), Some(1)]);
        assert_eq!(tracker.assign(later, &[face(1_200.0)]), [Some(3)]);
    }

    #[test]
    fn someone_who_stays_hands_on_a_face_per_window_and_tracks_are_bounded() {
        let start = Instant::now();
        let config = TrackerConfig { max_tracks: 2, ..TrackerConfig::for_interval(Duration::from_millis(500)) };
        let mut tracker = Tracker::new(config);
        let id = tracker.assign(start, &[face(0.0)])[0].unwrap();
        tracker.offer(id, candidate(0.5, "window 1"));
        let later = start + Duration::from_secs(11);
        tracker.assign(later, &[face(0.0)]);
        let finished = tracker.finish(later);
        assert_eq!(finished.len(), 1, "the window is over, the track goes on");
        assert_eq!(tracker.len(), 1);
        assert!(tracker.would_keep(id, 0.1), "a new window starts with no best");
        assert_eq!(tracker.assign(later, &[face(0.0), face(500.0), face(1_000.0)]), [Some(id), Some(2), None]);
    }
}

//! Logging: compact, human-readable lines by default; JSON for log collectors.
//! The level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Live request statistics of the last few minutes: how many requests, how long they
/// took, how many failed. Kept per minute in a ring, so reading and recording stay cheap
/// however busy the server is.
#[derive(Debug)]
pub struct RequestStats {
    minutes: std::sync::Mutex<[MinuteStats; WINDOW_MINUTES]>,
    started: std::time::Instant,
}

/// Minutes [`RequestStats`] covers.
pub const WINDOW_MINUTES: usize = 5;

#[derive(Debug, Clone, Copy, Default)]
struct MinuteStats {
    /// Minutes since the stats started; a slot of an older minute is stale.
    minute: u64,
    requests: u64,
    errors: u64,
    total_secs: f64,
}

/// Requests of the last [`WINDOW_MINUTES`] minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentRequests {
    pub requests: u64,
    /// Answered with a 5xx status.
    pub errors: u64,
    /// Mean seconds per request; 0 without requests.
    pub mean_secs: f64,
}

impl Default for RequestStats {
    fn default() -> Self {
        Self { minutes: Default::default(), started: std::time::Instant::now() }
    }
}

impl RequestStats {
    fn minute_now(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }

    /// Counts one request that took `elapsed`, failed or not.
    pub fn record(&self, elapsed: std::time::Duration, failed: bool) {
        let minute = self.minute_now();
        let mut minutes = self.minutes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = &mut minutes[(minute % WINDOW_MINUTES as u64) as usize];
        if slot.minute != minute || slot.requests == 0 {
            *slot = MinuteStats { minute, ..MinuteStats::default() };
        }
        slot.requests += 1;
        slot.errors += u64::from(failed);
        slot.total_secs += elapsed.as_secs_f64();
    }

    /// Time since the stats started (with the server).
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn recent(&self) -> RecentRequests {
        let now = self.minute_now();
        let minutes = self.minutes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let live = minutes.iter().filter(|slot| slot.requests > 0 && now - slot.minute < WINDOW_MINUTES as u64);
        let (requests, errors, total_secs) =
            live.fold((0, 0, 0.0), |(r, e, t), slot| (r + slot.requests, e + slot.errors, t + slot.total_secs));
        RecentRequests { requests, errors, mean_secs: if requests == 0 { 0.0 } else { total_secs / requests as f64 } }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn recent_requests_average_their_durations_and_count_failures() {
        let stats = RequestStats::default();
        assert_eq!(stats.recent(), RecentRequests { requests: 0, errors: 0, mean_secs: 0.0 });
        stats.record(Duration::from_millis(100), false);
        stats.record(Duration::from_millis(300), true);
        let recent = stats.recent();
        assert_eq!((recent.requests, recent.errors), (2, 1));
        assert!((recent.mean_secs - 0.2).abs() < 1e-9);
    }
}

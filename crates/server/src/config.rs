//! Configuration: the embedded defaults (`config/rollcall.toml`) < a TOML file <
//! `ROLLCALL_*` environment variables. Loaded once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

pub use crate::domain::calendar::WorkingDays;
use crate::domain::liveness::{ChallengeSettings, LivenessMode};
use rollcall_face::challenge::ChallengeStep;

/// The commented defaults, shipped in the binary so that zero set-up works.
pub const DEFAULTS_TOML: &str = include_str!("../../../config/rollcall.toml");

/// Everything the server needs to start. Option names carry their unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(deserialize_with = "empty_as_none")]
    pub database_url: Option<String>,
    /// RabbitMQ carries tasks to workers when set; `None`: the database's own queue.
    #[serde(deserialize_with = "empty_as_none")]
    pub amqp_url: Option<SecretString>,
    /// Starts the name of every RabbitMQ queue and exchange Rollcall declares.
    #[serde(deserialize_with = "amqp_queue_prefix")]
    pub amqp_queue_prefix: String,
    /// What this process runs; set by the command (`serve`, `serve --no-workers`, `worker`).
    #[serde(skip)]
    pub role: ProcessRole,
    #[serde(deserialize_with = "empty_as_none")]
    pub public_url: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    pub jwt_secret: Option<SecretString>,
    #[serde(deserialize_with = "empty_as_none")]
    pub admin_email: Option<String>,
    #[serde(deserialize_with = "empty_as_none")]
    pub admin_password: Option<SecretString>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub max_body_bytes: usize,
    /// Photo upload bodies in flight at once (see [`crate::limiter::inflight`]).
    pub max_inflight_body_bytes: usize,
    pub log_format: LogFormat,
    pub shutdown_timeout_secs: u64,
    pub rate_limit_enabled: bool,
    pub rate_limit_auth_requests: u32,
    pub rate_limit_auth_per_secs: u64,
    pub rate_limit_auth_ip_requests: u32,
    pub rate_limit_auth_ip_per_secs: u64,
    pub rate_limit_session_requests: u32,
    pub rate_limit_session_per_secs: u64,
    pub rate_limit_face_verification_requests: u32,
    pub rate_limit_face_verification_per_secs: u64,
    pub rate_limit_task_status_requests: u32,
    pub rate_limit_task_status_per_secs: u64,
    pub rate_limit_reports_requests: u32,
    pub rate_limit_reports_per_secs: u64,
    pub rate_limit_general_requests: u32,
    pub rate_limit_general_per_secs: u64,
    /// Where API instances share rate limits and live events (`None`: each keeps its own).
    #[serde(deserialize_with = "redis_url")]
    pub redis_url: Option<SecretString>,
    /// Starts every Redis key and channel name of this deployment.
    #[serde(deserialize_with = "redis_key_prefix")]
    pub redis_key_prefix: String,
    pub rate_limit_on_redis_error: RedisErrorPolicy,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs); empty: the socket peer is the client.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<IpNet>,
    pub models_dir: PathBuf,
    #[serde(deserialize_with = "empty_as_none")]
    pub data_key: Option<SecretString>,
    pub keep_enrollment_images: bool,
    pub keep_arrival_evidence: bool,
    #[serde(deserialize_with = "retention_days")]
    pub evidence_retention_days: u32,
    pub incident_window_secs: u64,
    #[serde(deserialize_with = "min_failures")]
    pub spoof_incident_min_failures: u32,
    /// A phone check-in whose timestamp is further than this from the server's clock is refused.
    pub mobile_max_clock_skew_secs: u64,
    /// When set, `/metrics` needs `Authorization: Bearer <metrics_token>`.
    #[serde(deserialize_with = "empty_as_none")]
    pub metrics_token: Option<SecretString>,
    pub attendance_cooldown_secs: u64,
    /// The institution's time zone: what a date or an hour means in filters and reports.
    pub timezone: chrono_tz::Tz,
    #[serde(deserialize_with = "working_days")]
    pub working_days: WorkingDays,
    /// Whose seasons attendance patterns are reported by (`north` or `south`).
    pub hemisphere: crate::domain::patterns::Hemisphere,
    pub task_workers: usize,
    pub task_max_attempts: u32,
    pub task_lease_secs: u64,
    /// How often the matching index applies other processes' changes (see
    /// [`crate::domain::face::follow_index_changes`]).
    #[serde(deserialize_with = "index_sync_interval_ms")]
    pub index_sync_interval_ms: u64,
    pub task_max_queue_depth: u64,
    /// Longest estimated wait a new task is admitted to (see [`crate::queue::admission`]).
    pub max_queue_wait_secs: u64,
    pub task_wait_timeout_secs: u64,
    pub inference_backend: rollcall_face::BackendChoice,
    pub anti_spoof_threshold: f32,
    #[serde(deserialize_with = "challenge_steps")]
    pub liveness_challenge_steps: usize,
    #[serde(deserialize_with = "challenge_directions")]
    pub liveness_challenge_directions: Vec<ChallengeStep>,
    #[serde(deserialize_with = "challenge_ttl_secs")]
    pub liveness_challenge_ttl_secs: u64,
    #[serde(deserialize_with = "min_turn_deg")]
    pub liveness_min_turn_deg: f32,
    #[serde(deserialize_with = "min_planar_residual")]
    pub liveness_min_planar_residual: f32,
    pub mobile_liveness_mode: LivenessMode,
    /// Strangers accepted as someone, per stranger probe: the threshold is derived from it
    /// and the gallery size (see docs/ACCURACY.md).
    pub max_false_accept_rate: f64,
    /// A measured calibration curve to use instead of the shipped one (`None`: shipped).
    #[serde(deserialize_with = "empty_as_none")]
    pub calibration_curve: Option<PathBuf>,
    pub webhook_retry_base_ms: u64,
    pub webhook_max_attempts: u32,
    /// Lets webhook URLs reach loopback, private and link-local networks (off by default).
    pub webhook_allow_private_networks: bool,
    /// Whether this process takes active cameras to watch (when it serves the API): each
    /// camera is watched by one instance at a time, under a lease; `false` only reports them.
    pub watch_cameras: bool,
    /// The longest wait between attempts to reconnect to a camera that failed.
    pub camera_reconnect_max_secs: u64,
    /// Group the faces cameras see that match nobody into unknown visitors.
    pub track_unknown_visitors: bool,
    #[serde(deserialize_with = "retention_days")]
    pub unknown_visitor_retention_days: u32,
}

/// The parts of Rollcall one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessRole {
    /// The API and the task workers (`rollcall serve`).
    #[default]
    All,
    /// The API only (`rollcall serve --no-workers`).
    Api,
    /// Task workers only, with `/healthz`, `/readyz` and `/metrics` (`rollcall worker`).
    Worker,
}

impl ProcessRole {
    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    pub fn runs_workers(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Api => "api",
            Self::Worker => "worker",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// What rate limiting does while the shared limits in Redis cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisErrorPolicy {
    /// Requests go on, counted by this instance alone (as without Redis).
    Open,
    /// Requests that a quota applies to get 503 with `Retry-After`.
    Closed,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads the defaults, then `file` (if given, it must exist; otherwise `./rollcall.toml`
    /// when present), then `ROLLCALL_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!("config file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("rollcall.toml").exists() => figment = figment.merge(Toml::file_exact("rollcall.toml")),
            None => {}
        }
        figment = figment.merge(Self::env());
        figment.extract().map_err(|e| ConfigError(e.to_string()))
    }

    /// Only the environment variables that name a configuration key: other `ROLLCALL_*`
    /// variables (e.g. the test suite's) are not configuration.
    fn env() -> Env {
        let known = Self::keys();
        Env::prefixed("ROLLCALL_").filter(move |key| known.iter().any(|k| key.as_str().eq_ignore_ascii_case(k)))
    }

    /// The configuration keys, read from the embedded defaults.
    pub fn keys() -> Vec<String> {
        let table: toml::Table = DEFAULTS_TOML.parse().expect("embedded defaults are valid TOML");
        table.keys().cloned().collect()
    }

    /// The defaults with the data directory (and the SQLite file inside it) moved: what
    /// tests and tools start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config: Config =
            Figment::from(Toml::string(DEFAULTS_TOML)).extract().expect("embedded defaults are a valid configuration");
        config.data_dir = data_dir.into();
        config
    }

    pub fn models_dir(&self) -> PathBuf {
        if self.models_dir.as_os_str().is_empty() { self.data_dir.join("models") } else { self.models_dir.clone() }
    }

    /// Worker threads for inference: the configured number, else one per CPU core.
    pub fn task_workers(&self) -> usize {
        if self.task_workers > 0 {
            self.task_workers
        } else {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        }
    }

    /// Whether and how long unknown visitors are kept.
    pub fn visitor_policy(&self) -> crate::domain::visitors::VisitorPolicy {
        crate::domain::visitors::VisitorPolicy {
            track: self.track_unknown_visitors,
            retention_days: self.unknown_visitor_retention_days,
        }
    }

    /// What active liveness challenges ask and how answers are judged.
    pub fn liveness_challenges(&self) -> ChallengeSettings {
        ChallengeSettings {
            steps: self.liveness_challenge_steps,
            directions: self.liveness_challenge_directions.clone(),
            ttl: std::time::Duration::from_secs(self.liveness_challenge_ttl_secs),
            min_turn_deg: self.liveness_min_turn_deg,
            min_planar_residual: self.liveness_min_planar_residual,
        }
    }

    /// How long face crops are kept (`evidence_retention_days`).
    pub fn evidence_retention(&self) -> crate::domain::evidence::Retention {
        crate::domain::evidence::Retention { days: self.evidence_retention_days }
    }

    /// Where tasks wait: `database` (embedded) or `rabbitmq`.
    pub fn task_queue_backend(&self) -> &'static str {
        if self.amqp_url.is_some() { "rabbitmq" } else { "database" }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/rollcall.db", self.data_dir.display()),
        }
    }
}

/// A TOML list of weekday names, or one string of comma-separated names (as environment
/// variables spell it).
fn working_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<WorkingDays, D::Error> {
    let names = list_or_comma_separated_strings(d)?;
    let days = names
        .iter()
        .map(|name| {
            name.parse::<chrono::Weekday>()
                .map_err(|_| serde::de::Error::custom(format!("{name:?} is not a weekday (mon, tue, … sun)")))
        })
        .collect::<Result<Vec<_>, D::Error>>()?;
    if days.is_empty() {
        return Err(serde::de::Error::custom("working_days names no day"));
    }
    Ok(WorkingDays::new(&days))
}

/// Days to keep something: 1 to 3,650 (ten years).
fn retention_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    within(d, 1..=3_650, "days")
}

/// Failed checks before an incident: 1 to 100.
fn min_failures<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    within(d, 1..=100, "failed checks")
}

/// Often enough that another process's change is recognised within a second, rarely
/// enough that an idle follower costs nothing: 100 ms to 5 s.
fn index_sync_interval_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(d, 100..=5_000, "milliseconds")
}

/// A value within `range`, or a message naming the setting's limits.
fn within<'de, D, T>(d: D, range: std::ops::RangeInclusive<T>, unit: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + std::fmt::Display,
{
    let value = T::deserialize(d)?;
    if !range.contains(&value) {
        let (low, high) = (range.start(), range.end());
        return Err(serde::de::Error::custom(format!("{value}: give {low} to {high} {unit}")));
    }
    Ok(value)
}

/// Letters, digits, `.`, `-` and `_`, up to 64: safe in every queue and exchange name.
fn amqp_queue_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = String::deserialize(d)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if prefix.len() > 64 || !prefix.chars().all(allowed) {
        return Err(serde::de::Error::custom(format!("{prefix:?}: give up to 64 letters, digits, '.', '-' or '_'")));
    }
    Ok(prefix)
}

fn challenge_steps<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    within(d, 2..=4, "steps")
}

fn challenge_ttl_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within(d, 5..=300, "seconds")
}

fn min_turn_deg<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    within(d, 5.0..=45.0, "degrees")
}

fn min_planar_residual<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    within(d, 0.001..=0.5, "(1 − ρ: the share of the face one homography leaves unexplained)")
}

/// Step codes, as a list or one comma-separated string; at least two different ones.
fn challenge_directions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ChallengeStep>, D::Error> {
    let mut steps = Vec::new();
    for code in list_or_comma_separated_strings(d)? {
        let step = ChallengeStep::from_code(&code).ok_or_else(|| {
            serde::de::Error::custom(format!("{code:?} is not a step (turn_left, turn_right, look_up, look_down)"))
        })?;
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    if steps.len() < 2 {
        return Err(serde::de::Error::custom("liveness_challenge_directions needs at least two different steps"));
    }
    Ok(steps)
}

/// A `redis://` (or `unix://`) URL, or empty for none. TLS (`rediss://`) is not built in.
fn redis_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    use secrecy::ExposeSecret as _;
    let Some(url) = empty_as_none::<D, SecretString>(d)? else {
        return Ok(None);
    };
    let scheme = url.expose_secret().split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "unix" | "redis+unix") => Ok(Some(url)),
        _ => Err(serde::de::Error::custom("redis_url must be a redis:// or unix:// URL (rediss:// is not supported)")),
    }
}

/// 1 to 64 printable characters without spaces, so that keys stay readable in `redis-cli`.
fn redis_key_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = String::deserialize(d)?;
    let printable = prefix.chars().all(|c| c.is_ascii_graphic());
    if prefix.is_empty() || prefix.len() > 64 || !printable {
        return Err(serde::de::Error::custom(format!(
            "redis_key_prefix {prefix:?}: give 1 to 64 printable ASCII characters without spaces"
        )));
    }
    Ok(prefix)
}

/// An empty string means "not set" (the defaults file can only spell a missing value so).
fn empty_as_none<'de, D: serde::Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|s| !s.trim().is_empty()).map(T::from))
}

/// A TOML list of networks, or (as environment variables can only spell it) one string of
/// comma-separated networks. A bare address is a network of one.
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    list_or_comma_separated_strings(d)?.iter().map(|entry| parse_network(entry)).collect()
}

/// The non-empty, trimmed entries of a TOML list or of one comma-separated string.
fn list_or_comma_separated_strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entries {
        List(Vec<String>),
        CommaSeparated(String),
    }
    let entries = match Entries::deserialize(d)? {
        Entries::List(list) => list,
        Entries::CommaSeparated(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(entries.iter().map(|entry| entry.trim().to_owned()).filter(|entry| !entry.is_empty()).collect())
}

fn parse_network<E: serde::de::Error>(text: &str) -> Result<IpNet, E> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| E::custom(format!("{text:?} is not a network (CIDR such as 10.0.0.0/8) or an IP address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_run_with_zero_setup() {
        let config = Config::with_data_dir("./data");
        assert_eq!(config.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(config.database_url(), "sqlite://./data/rollcall.db");
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(config.access_token_ttl_secs, 900);
    }

    #[test]
    fn trusted_proxies_are_a_list_or_comma_separated_as_in_the_environment() {
        let parse = |value: &str| {
            Figment::from(Toml::string(DEFAULTS_TOML))
                .merge(Toml::string(&format!("trusted_proxies = {value}")))
                .extract::<Config>()
                .map(|config| config.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|error| error.to_string())
        };
        assert!(Config::with_data_dir("./data").trusted_proxies.is_empty());
        assert_eq!(parse(r#"["10.0.0.0/8", "::1"]"#).unwrap(), ["10.0.0.0/8", "::1/128"]);
        assert_eq!(parse(r#""127.0.0.1/32, 192.168.1.7""#).unwrap(), ["127.0.0.1/32", "192.168.1.7/32"]);
        assert_eq!(parse(r#""""#).unwrap(), Vec::<String>::new());
        let error = parse(r#""10.0.0.0/8,proxy.local""#).unwrap_err();
        assert!(error.contains("proxy.local"), "{error}");
    }

    #[test]
    fn the_calendar_is_utc_mon_to_fri_unless_configured() {
        let config = Config::with_data_dir("./data");
        assert_eq!(config.timezone, chrono_tz::UTC);
        assert_eq!(config.working_days.to_string(), "mon,tue,wed,thu,fri");
        let parse = |toml: &str| {
            Figment::from(Toml::string(DEFAULTS_TOML))
                .merge(Toml::string(toml))
                .extract::<Config>()
                .map_err(|error| error.to_string())
        };
        let config = parse("timezone = \"Europe/Berlin\"\nworking_days = \"sun, mon,tue\"").unwrap();
        assert_eq!(config.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(config.working_days.to_string(), "mon,tue,sun");
        assert!(parse("timezone = \"Mars/Olympus\"").unwrap_err().contains("Mars/Olympus"));
        assert!(parse("working_days = [\"mon\", \"someday\"]").unwrap_err().contains("someday"));
    }

    #[test]
    fn redis_is_off_by_default_and_its_settings_are_checked() {
        let config = Config::with_data_dir("./data");
        assert!(config.redis_url.is_none());
        assert_eq!(config.redis_key_prefix, "rollcall:");
        assert_eq!(config.rate_limit_on_redis_error, RedisErrorPolicy::Open);
        let parse = |toml: &str| {
            Figment::from(Toml::string(DEFAULTS_TOML))
                .merge(Toml::string(toml))
                .extract::<Config>()
                .map_err(|error| error.to_string())
        };
        let config = parse("redis_url = \"redis://:pw@cache:6379/2\"\nrate_limit_on_redis_error = \"closed\"").unwrap();
        assert!(config.redis_url.is_some());
        assert_eq!(config.rate_limit_on_redis_error, RedisErrorPolicy::Closed);
        assert!(parse("redis_url = \"http://cache:6379\"").unwrap_err().contains("redis://"));
        assert!(parse("redis_key_prefix = \"\"").unwrap_err().contains("redis_key_prefix"));
        assert!(parse("redis_key_prefix = \"a b\"").unwrap_err().contains("redis_key_prefix"));
        assert!(parse("rate_limit_on_redis_error = \"maybe\"").is_err());
    }

    #[test]
    fn unknown_keys_in_a_file_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollcall.toml");
        std::fs::write(&path, "bind_adress = \"0.0.0.0:80\"\n").unwrap();
        let error = Config::load(Some(&path)).unwrap_err();
        assert!(error.to_string().contains("bind_adress"), "{error}");
    }
}

//! The application: built once at start-up from the configuration and shared by every
//! request handler and background task.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::crypto::Sealer;
use crate::domain::attendance::AttendanceDesk;
use crate::domain::attendance_counts;
use crate::domain::auth::{self, Authenticator, PasswordPool};
use crate::domain::calendar::Calendar;
use crate::domain::cameras::supervisor::{CameraSupervisor, IngestParts};
use crate::domain::face::{FaceService, FaceTasks};
use crate::domain::users::{Email, NewPassword, Role};
use crate::events::EventBus;
use crate::limiter::inflight::InflightBytes;
use crate::limiter::memory::InProcessLimiter;
use crate::limiter::redis::RedisLimiter;
use crate::limiter::{Category, Quota, RateLimiter};
use crate::queue::TaskQueue;
use crate::queue::admission::Admission;
use crate::queue::amqp::{AmqpQueue, AmqpSettings};
use crate::queue::embedded::EmbeddedQueue;
use crate::redis_link::RedisLink;
use crate::store::{self, Db};
use crate::webhooks::{DelivererParts, Wakeup, WebhookOutbox};
use rollcall_face::{CalibrationCurve, EngineConfig, FaceEngine, ThresholdRule};

pub struct App {
    pub config: Config,
    pub db: Db,
    pub auth: Authenticator,
    pub limiter: Arc<dyn RateLimiter>,
    /// Where instances share rate limits and live events (`redis_url`); `None`: this
    /// instance keeps them itself.
    pub redis: Option<Arc<RedisLink>>,
    /// Encrypts biometric data and secrets at rest.
    pub sealer: Sealer,
    pub events: Arc<EventBus>,
    pub attendance: Arc<AttendanceDesk>,
    /// The institution's time zone and working week (`timezone`, `working_days`).
    pub calendar: Calendar,
    /// Cancelled when the server begins to shut down: background tasks and live streams stop.
    pub shutdown: CancellationToken,
    /// Wakes the webhook deliverer when a delivery is queued.
    pub webhook_wakeup: Wakeup,
    pub face: Arc<FaceService>,
    pub queue: Arc<dyn TaskQueue>,
    /// Whether a new task may join the queue (`max_queue_wait_secs`).
    pub admission: Admission,
    /// Photo upload bodies being received and queued at once (`max_inflight_body_bytes`).
    pub inflight_bodies: InflightBytes,
    /// Live statistics of the requests served in the last minutes.
    pub requests: Arc<crate::telemetry::RequestStats>,
    /// What `/metrics` exposes.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What this process's task workers are doing.
    pub workers: Arc<crate::queue::worker::WorkerStats>,
    /// How this process names itself in the table of worker processes.
    pub identity: crate::queue::heartbeat::ProcessIdentity,
    /// The ingestion workers of the active cameras.
    pub cameras: Arc<CameraSupervisor>,
}

/// Shared handle to the [`App`], cheap to clone into handlers.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Connects to the database, applies migrations, loads or creates secrets and the
    /// bootstrap admin.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_engine(config, None).await
    }

    /// Like [`App::build`], with an engine that is already loaded (tests share one);
    /// otherwise the models load in the background while the server answers.
    pub async fn build_with_engine(config: Config, engine: Option<Arc<FaceEngine>>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let db = connect_and_migrate(&config).await?;
        let secret = jwt_secret(&config)?;
        let passwords = PasswordPool::default();
        let auth =
            Authenticator::new(&secret, config.access_token_ttl_secs, config.refresh_token_ttl_secs, passwords).await?;
        let redis = redis_link(&config)?;
        let limiter = rate_limiter(&config, redis.clone());
        bootstrap_admin(&db, auth.passwords(), &config).await?;
        let sealer = data_sealer(&config)?;
        let webhook_wakeup = Wakeup::default();
        let sinks: Vec<Arc<dyn crate::events::EventSink>> = vec![Arc::new(WebhookOutbox::new(webhook_wakeup.clone()))];
        let events = Arc::new(if redis.is_some() { EventBus::relayed(sinks) } else { EventBus::new(sinks) });
        let cooldown = std::time::Duration::from_secs(config.attendance_cooldown_secs);
        let calendar = Calendar::new(config.timezone, config.working_days);
        attendance_counts::ensure_zone(&db, &calendar).await.context("cannot count attendance per day")?;
        let attendance = Arc::new(AttendanceDesk::new(db.clone(), events.clone(), sealer.clone(), calendar, cooldown));
        let shutdown = CancellationToken::new();
        let face = Arc::new(face_service(&config, engine)?);
        let enrolled = face.load_index(&db, &sealer).await.context("cannot load the enrolled faces")?;
        tracing::info!(enrolled, "matching index loaded");
        let queue = task_queue(&config, &db, &sealer, &shutdown);
        let admission =
            Admission::new(std::time::Duration::from_secs(config.max_queue_wait_secs), config.task_workers());
        let identity = crate::queue::heartbeat::ProcessIdentity::of_this_process(config.role);
        let parts = IngestParts {
            db: db.clone(),
            sealer: sealer.clone(),
            queue: queue.clone(),
            face: face.clone(),
            max_backoff: std::time::Duration::from_secs(config.camera_reconnect_max_secs),
        };
        let cameras = Arc::new(CameraSupervisor::new(parts, identity.clone(), config.watch_cameras));
        let inflight_bodies = InflightBytes::new(config.max_inflight_body_bytes.max(config.max_body_bytes));
        Ok(Self {
            config,
            db,
            auth,
            limiter,
            redis,
            sealer,
            events,
            attendance,
            calendar,
            shutdown,
            webhook_wakeup,
            face,
            queue,
            admission,
            inflight_bodies,
            requests: Arc::default(),
            metrics: Arc::default(),
            workers: Arc::default(),
            identity,
            cameras,
        })
    }

    /// The face tasks' runner, with the pieces it uses.
    pub fn face_tasks(&self) -> FaceTasks {
        FaceTasks {
            db: self.db.clone(),
            face: self.face.clone(),
            sealer: self.sealer.clone(),
            events: self.events.clone(),
            attendance: self.attendance.clone(),
            keep_enrollment_images: self.config.keep_enrollment_images,
            keep_arrival_evidence: self.config.keep_arrival_evidence,
            incident_window: std::time::Duration::from_secs(self.config.incident_window_secs),
            spoof_incident_min_failures: self.config.spoof_incident_min_failures,
            metrics: self.metrics.clone(),
            evidence_retention: self.config.evidence_retention(),
            visitors: self.config.visitor_policy(),
            challenges: self.config.liveness_challenges(),
        }
    }

    /// The webhook deliverer's pieces.
    pub fn deliverer_parts(&self) -> DelivererParts {
        DelivererParts {
            db: self.db.clone(),
            sealer: self.sealer.clone(),
            wakeup: self.webhook_wakeup.clone(),
            retry_base: std::time::Duration::from_millis(self.config.webhook_retry_base_ms),
            max_attempts: self.config.webhook_max_attempts,
            allow_private_networks: self.config.webhook_allow_private_networks,
            metrics: self.metrics.clone(),
        }
    }
}

/// The database's own queue, or RabbitMQ carrying the same rows to the workers.
fn task_queue(config: &Config, db: &Db, sealer: &Sealer, shutdown: &CancellationToken) -> Arc<dyn TaskQueue> {
    let rows = EmbeddedQueue::new(
        db.clone(),
        sealer.clone(),
        std::time::Duration::from_secs(config.task_lease_secs.max(1)),
        config.task_max_attempts,
        config.task_max_queue_depth,
    );
    let Some(url) = &config.amqp_url else { return Arc::new(rows) };
    let settings = AmqpSettings {
        url: url.expose_secret().to_owned(),
        prefix: config.amqp_queue_prefix.clone(),
        prefetch: u16::try_from(config.task_workers()).unwrap_or(u16::MAX),
        consume: config.role.runs_workers(),
    };
    AmqpQueue::start(rows, settings, shutdown.clone())
}

/// The connection to Redis when `redis_url` is set. It is made on first use, so a Redis
/// that is down does not stop the start.
fn redis_link(config: &Config) -> anyhow::Result<Option<Arc<RedisLink>>> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let link = RedisLink::open(url, &config.redis_key_prefix)?;
    tracing::info!(redis.url = %link.masked_url(), redis.key_prefix = %config.redis_key_prefix,
        "sharing rate limits and live events through Redis");
    Ok(Some(Arc::new(link)))
}

/// The spec's quotas, counted in Redis when there is one, else in this process.
fn rate_limiter(config: &Config, redis: Option<Arc<RedisLink>>) -> Arc<dyn RateLimiter> {
    let quotas = Category::ALL.into_iter().map(|category| (category, Quota::for_category(config, category)));
    match redis {
        Some(link) => Arc::new(RedisLimiter::new(link, quotas, config.rate_limit_on_redis_error)),
        None => Arc::new(InProcessLimiter::new(quotas)),
    }
}

fn face_service(config: &Config, engine: Option<Arc<FaceEngine>>) -> anyhow::Result<FaceService> {
    let rule = ThresholdRule::default();
    let mut service = match engine {
        Some(engine) => FaceService::with_engine(rule, engine),
        None => {
            let service = FaceService::new(rule);
            let mut engine_config = EngineConfig::new(config.models_dir());
            engine_config.anti_spoof_threshold = Some(config.anti_spoof_threshold);
            engine_config.backend = config.inference_backend;
            engine_config.decision = rule;
            service.start_loading(engine_config);
            service
        }
    };
    service.set_max_false_accept_rate(config.max_false_accept_rate).context("max_false_accept_rate")?;
    if let Some(path) = &config.calibration_curve {
        service.set_calibration_curve(CalibrationCurve::load(path)?).context("calibration_curve")?;
    }
    Ok(service)
}

pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    let db = Db::connect(&url).await.with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    db.migrate().await.context("cannot apply database migrations")?;
    Ok(db)
}

/// A database or Redis URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The configured secret, or one generated on first start and kept in the data dir
/// with owner-only permissions, so tokens survive restarts.
fn jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(secret) = &config.jwt_secret {
        anyhow::ensure!(secret.expose_secret().len() >= 32, "jwt_secret must be at least 32 characters long");
        return Ok(secret.clone());
    }
    read_or_create_secret(&config.data_dir.join("jwt_secret"), 48).map(SecretString::from)
}

/// Where the data key is kept unless the configuration sets one: one base64 key per line,
/// the current one first (the others are being retired by `rollcall rotate-data-key`).
pub fn data_key_file(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("data_key")
}

/// The configured data key (ring), or one generated on first start into the data dir.
pub fn data_sealer(config: &Config) -> anyhow::Result<Sealer> {
    let key = match &config.data_key {
        Some(key) => key.expose_secret().to_owned(),
        None => {
            let path = data_key_file(config);
            if !path.exists() {
                write_private_file(&path, Sealer::generate_key().as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated a new data key; back it up with the database");
            }
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
    };
    let sealer = Sealer::from_key_ring(&key).context("data_key")?;
    if sealer.key_count() > 1 {
        tracing::warn!(
            previous_keys = sealer.key_count() - 1,
            "the data key ring still holds previous keys: a key rotation did not finish; run `rollcall rotate-data-key` again"
        );
    }
    Ok(sealer)
}

/// Reads a secret file, or writes `bytes` random bytes (base64url) to it first.
pub fn read_or_create_secret(path: &Path, bytes: usize) -> anyhow::Result<String> {
    if path.exists() {
        let secret = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(secret.trim().to_owned());
    }
    let secret = auth::random_token(bytes);
    write_private_file(path, secret.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new secret");
    Ok(secret)
}

/// Replaces a private file atomically: a reader (or a crash) sees the old contents or the
/// new, never a part. Written beside it, synced, renamed over it, and the folder synced.
pub fn replace_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".new");
    let staging = std::path::PathBuf::from(staging);
    match std::fs::remove_file(&staging) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    write_private_file(&staging, contents)?;
    std::fs::rename(&staging, path)?;
    if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Creates the admin named by `admin_email`/`admin_password` when no active admin exists.
async fn bootstrap_admin(db: &Db, passwords: &PasswordPool, config: &Config) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) else {
        return Ok(());
    };
    if store::users::count_active_admins(db).await? > 0 {
        return Ok(());
    }
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("admin_email {}", e.message))?;
    let password =
        NewPassword::parse(password.expose_secret()).map_err(|e| anyhow::anyhow!("admin_password {}", e.message))?;
    create_admin(db, passwords, &email, &password, "Admin", "").await?;
    tracing::info!("created the bootstrap admin account");
    Ok(())
}

/// Creates an admin account (`rollcall admin create` and the bootstrap).
pub async fn create_admin(
    db: &Db,
    passwords: &PasswordPool,
    email: &Email,
    password: &NewPassword,
    first_name: &str,
    last_name: &str,
) -> anyhow::Result<store::users::UserRecord> {
    let employee_id = format!("ADMIN-{}", &auth::sha256_hex(email.as_str())[..8].to_uppercase());
    let user = store::users::insert(
        db,
        store::users::NewUser {
            employee_id,
            email: email.as_str().to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            role: Role::Admin,
            department: String::new(),
            password_hash: passwords.hash(password.expose()).await?,
        },
    )
    .await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_cut_from_database_urls() {
        assert_eq!(redact_url("postgres://rollcall:hunter2@db:5432/x"), "postgres://rollcall:***@db:5432/x");
        assert_eq!(redact_url("sqlite://./data/rollcall.db"), "sqlite://./data/rollcall.db");
    }

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = read_or_create_secret(&path, 32).unwrap();
        assert_eq!(read_or_create_secret(&path, 32).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}

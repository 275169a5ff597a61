//! `/system/health/` and `/system/metrics/` for admins, and `/metrics` for Prometheus.
//!
//! Health `status` rules:
//! - `unhealthy`: the database does not answer (within 3 s).
//! - `degraded`: this process runs task workers and its face engine is not loaded
//!   (loading, or failed to load); no process of the deployment has workers that showed
//!   they were alive in the last 10 s (this one's included); a process runs fewer workers
//!   than it is configured for; the oldest queued task has waited longer than
//!   `max_queue_wait_secs`; or more than 5% of the requests of the last 5 minutes failed
//!   with a 5xx; or a configured Redis does not answer (rate limits then follow `rate_limit_on_redis_error`, and live events stay on
//!   their instance).
//! - `healthy` otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Json;
use crate::app::AppState;
use crate::domain::cameras::supervisor::StatusCounts;
use crate::domain::face::EngineState;
use crate::queue::{BrokerHealth, TaskKind};
use crate::store::tasks::{self, COMPLETED};
use crate::store::worker_processes;
use crate::telemetry::WINDOW_MINUTES;

/// Where Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";

/// How long the database may take to answer the health check.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(3);
/// A worker shows it is alive at least every half second while idle; a process records
/// that every 2 s.
const STALE_HEARTBEAT: Duration = Duration::from_secs(10);
/// A share of 5xx answers above this makes the service degraded.
const DEGRADED_ERROR_RATE: f64 = 0.05;

#[derive(Serialize, ToSchema)]
pub struct SystemHealth {
    /// `healthy`, `degraded` or `unhealthy` (rules in the description).
    pub status: &'static str,
    pub timestamp: DateTime<Utc>,
    pub services: Services,
    pub performance: Performance,
}

#[derive(Serialize, ToSchema)]
pub struct Services {
    pub database: DatabaseHealth,
    pub redis: RedisHealth,
    /// `not_configured` in the embedded mode: the task queue is a table of the database.
    pub rabbitmq: RabbitMqHealth,
    pub task_queue: QueueHealth,
    pub ai_workers: WorkerHealth,
    pub cameras: CamerasHealth,
}

/// The active cameras this server watches. Not part of the overall status: a camera
/// that is down does not stop the service.
#[derive(Serialize, ToSchema)]
pub struct CamerasHealth {
    /// `not_configured` without active cameras; `healthy` when every one is online or
    /// connecting; `degraded` otherwise.
    pub status: &'static str,
    #[serde(flatten)]
    pub counts: StatusCounts,
}

impl CamerasHealth {
    fn new(counts: StatusCounts) -> Self {
        let total = counts.online + counts.offline + counts.errors + counts.connecting;
        let status = match total {
            0 => "not_configured",
            _ if counts.offline + counts.errors == 0 => "healthy",
            _ => "degraded",
        };
        Self { status, counts }
    }
}

/// The broker that carries tasks to the workers (`amqp_url`).
#[derive(Serialize, ToSchema)]
pub struct RabbitMqHealth {
    /// `healthy`, `unhealthy` (unreachable: submissions get 503) or `not_configured`.
    pub status: &'static str,
    /// Seconds to read the queues' figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time: Option<f64>,
    /// Messages waiting per task kind (not counting those delivered to a worker).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ready: BTreeMap<String, u32>,
    /// Workers consuming per task kind, over every worker process.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub consumers: BTreeMap<String, u32>,
    /// Tasks that failed every attempt, kept in the dead-letter queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RabbitMqHealth {
    fn new(broker: Option<BrokerHealth>) -> Self {
        let Some(broker) = broker else {
            return Self {
                status: "not_configured",
                response_time: None,
                ready: BTreeMap::new(),
                consumers: BTreeMap::new(),
                dead_letters: None,
                error: None,
            };
        };
        let per_kind = |figures: Vec<(TaskKind, u32)>| {
            figures.into_iter().map(|(kind, n)| (kind.as_str().to_owned(), n)).collect()
        };
        Self {
            status: if broker.reachable { "healthy" } else { "unhealthy" },
            response_time: Some(rounded(broker.response_time.as_secs_f64(), 4)),
            ready: per_kind(broker.ready),
            consumers: per_kind(broker.consumers),
            dead_letters: broker.reachable.then_some(broker.dead_letters),
            error: broker.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseHealth {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    /// Seconds of one round trip (`SELECT 1`).
    pub response_time: f64,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub connections_in_use: u32,
    pub connections_idle: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The Redis that API instances share rate limits and live events through.
#[derive(Serialize, ToSchema)]
pub struct RedisHealth {
    /// `not_configured` without `redis_url`; else `healthy` or `unhealthy`.
    pub status: &'static str,
    /// Seconds of one PING's round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time: Option<f64>,
    /// The share of the memory Redis may use that it uses (of `maxmemory`, or of the
    /// host's memory when unlimited), e.g. `"45%"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<String>,
    /// Bytes in use (`used_memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RedisHealth {
    const NOT_CONFIGURED: RedisHealth = RedisHealth {
        status: "not_configured",
        response_time: None,
        memory_usage: None,
        used_memory: None,
        error: None,
    };
}

#[derive(Serialize, ToSchema)]
pub struct QueueHealth {
    /// `healthy`, or `backlogged` when the oldest task has waited longer than
    /// `max_queue_wait_secs`.
    pub status: &'static str,
    /// `database` (the embedded queue) or `rabbitmq` (rows in the database, carried by RabbitMQ).
    pub backend: &'static str,
    pub queue_size: i64,
    /// Tasks waiting, per kind (`enroll`, `verify`, `bulk_verify`).
    pub queued: BTreeMap<String, i64>,
    /// Seconds the oldest queued task has waited; `null` with none queued.
    pub oldest_wait: Option<f64>,
}

/// The task workers of the deployment: this process's, if it runs any, and those of
/// every other process whose workers showed they were alive in the last 10 s (each
/// records its workers every 2 s). A process that stopped gracefully or was killed drops
/// out by itself.
#[derive(Serialize, ToSchema)]
pub struct WorkerHealth {
    /// `healthy`, `degraded` or `loading` (this process runs workers and its face models
    /// are loading).
    pub status: &'static str,
    /// Workers running now, over the processes in `processes`.
    pub active_workers: usize,
    /// Workers those processes are configured to run.
    pub configured_workers: usize,
    /// Workers running a task now.
    pub busy_workers: usize,
    /// Seconds since a worker last showed it is alive, the freshest of `processes`;
    /// `null` with none.
    pub heartbeat_age: Option<f64>,
    /// The processes counted, this one first.
    pub processes: Vec<WorkerProcessHealth>,
    /// This process's engine. An API-only process (`--no-workers`) runs no face tasks, so
    /// its engine does not decide `status`; each worker process reports its own.
    pub engine: EngineHealth,
}

/// One process that runs task workers.
#[derive(Serialize, ToSchema)]
pub struct WorkerProcessHealth {
    pub hostname: String,
    pub pid: i64,
    /// `all` (`rollcall serve`) or `worker` (`rollcall worker`).
    pub role: String,
    pub active_workers: usize,
    pub configured_workers: usize,
    pub busy_workers: usize,
    /// Seconds since one of its workers last showed it is alive (as of its latest record,
    /// written every 2 s, for other processes).
    pub heartbeat_age: Option<f64>,
}

impl WorkerProcessHealth {
    /// Whether the process runs all its workers and they showed they were alive lately.
    fn is_sound(&self) -> bool {
        self.active_workers >= self.configured_workers
            && self.heartbeat_age.is_some_and(|age| age <= STALE_HEARTBEAT.as_secs_f64())
    }
}

#[derive(Serialize, ToSchema)]
pub struct EngineHealth {
    /// `loaded`, `loading` or `failed`.
    pub status: &'static str,
    /// `onnxruntime` or `tract` once loaded.
    pub backend: Option<&'static str>,
    /// Whether the anti-spoof models are loaded.
    pub anti_spoof: bool,
    /// People in the matching index.
    pub enrolled: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Performance {
    /// Mean seconds to answer a request, over the last 5 minutes.
    pub avg_api_response_time: f64,
    /// Requests per minute over the last 5 minutes (or since the start, if sooner).
    pub requests_per_minute: f64,
    /// Share of the last 5 minutes' requests answered with a 5xx.
    pub error_rate: f64,
}

fn rounded(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// The service's health from live checks: the database's round trip and pool, the task
/// queue, the workers and the face engine, and the request counters of the last 5
/// minutes. `status` follows the rules above. For admins; `/readyz` is the cheap probe.
#[utoipa::path(get, path = "/system/health/", tag = "operations",
    responses((status = 200, body = SystemHealth), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn system_health(State(state): State<AppState>) -> ApiResult<Json<SystemHealth>> {
    let database = database_health(&state).await;
    let task_queue = if database.status == "healthy" { Some(queue_health(&state).await?) } else { None };
    let ai_workers = worker_health(&state, database.status == "healthy").await?;
    let rabbitmq = RabbitMqHealth::new(state.queue.broker_health().await);
    let redis = redis_health(&state).await;
    let performance = performance(&state);
    let degraded = ai_workers.status != "healthy"
        || rabbitmq.status == "unhealthy"
        || redis.status == "unhealthy"
        || task_queue.as_ref().is_some_and(|queue| queue.status != "healthy")
        || performance.error_rate > DEGRADED_ERROR_RATE;
    let status = match () {
        () if database.status != "healthy" => "unhealthy",
        () if degraded => "degraded",
        () => "healthy",
    };
    let task_queue = task_queue.unwrap_or(QueueHealth {
        status: "unknown",
        backend: state.config.task_queue_backend(),
        queue_size: 0,
        queued: BTreeMap::new(),
        oldest_wait: None,
    });
    Ok(Json(SystemHealth {
        status,
        timestamp: Utc::now(),
        services: Services {
            database,
            redis,
            rabbitmq,
            task_queue,
            ai_workers,
            cameras: CamerasHealth::new(state.cameras.counts()),
        },
        performance,
    }))
}

async fn database_health(state: &AppState) -> DatabaseHealth {
    let started = Instant::now();
    let error = match tokio::time::timeout(DATABASE_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(format!("the database does not answer: {error}")),
        Err(_) => Some(format!("the database did not answer within {} s", DATABASE_TIMEOUT.as_secs())),
    };
    let (in_use, idle) = state.db.connections();
    DatabaseHealth {
        status: if error.is_none() { "healthy" } else { "unhealthy" },
        response_time: rounded(started.elapsed().as_secs_f64(), 4),
        backend: state.db.backend_name(),
        connections_in_use: in_use,
        connections_idle: idle,
        error,
    }
}

async fn redis_health(state: &AppState) -> RedisHealth {
    let Some(link) = &state.redis else {
        return RedisHealth::NOT_CONFIGURED;
    };
    let found = link.health().await;
    let memory = found.memory;
    RedisHealth {
        status: if found.error.is_none() { "healthy" } else { "unhealthy" },
        response_time: Some(rounded(found.response_time.as_secs_f64(), 4)),
        memory_usage: memory.and_then(|memory| memory.share()).map(|share| format!("{:.0}%", share * 100.0)),
        used_memory: memory.map(|memory| memory.used),
        error: found.error,
    }
}

async fn queue_health(state: &AppState) -> ApiResult<QueueHealth> {
    let queued: BTreeMap<String, i64> = tasks::queued_per_kind(&state.db).await?.into_iter().collect();
    let oldest_wait = tasks::oldest_queued_at(&state.db)
        .await?
        .map(|queued_at| (Utc::now() - queued_at).num_milliseconds().max(0) as f64 / 1000.0);
    let backlogged = oldest_wait.is_some_and(|wait| wait > state.config.max_queue_wait_secs as f64);
    Ok(QueueHealth {
        status: if backlogged { "backlogged" } else { "healthy" },
        backend: state.config.task_queue_backend(),
        queue_size: queued.values().sum(),
        queued,
        oldest_wait: oldest_wait.map(|wait| rounded(wait, 3)),
    })
}

/// The workers of every process that beat lately (see [`WorkerHealth`]); other processes
/// are only read while the database answers.
async fn worker_health(state: &AppState, database_answers: bool) -> ApiResult<WorkerHealth> {
    let engine = engine_health(state);
    let mut processes: Vec<WorkerProcessHealth> = this_process_workers(state).into_iter().collect();
    if database_answers {
        processes.extend(other_process_workers(state).await?);
    }
    let runs_workers = state.config.role.runs_workers();
    let status = match () {
        () if runs_workers && engine.status == "loading" => "loading",
        () if runs_workers && engine.status == "failed" => "degraded",
        () if processes.is_empty() || !processes.iter().all(WorkerProcessHealth::is_sound) => "degraded",
        () => "healthy",
    };
    let heartbeat_age = processes.iter().filter_map(|process| process.heartbeat_age).reduce(f64::min);
    Ok(WorkerHealth {
        status,
        active_workers: processes.iter().map(|process| process.active_workers).sum(),
        configured_workers: processes.iter().map(|process| process.configured_workers).sum(),
        busy_workers: processes.iter().map(|process| process.busy_workers).sum(),
        heartbeat_age,
        processes,
        engine,
    })
}

/// This process's workers, seen first-hand rather than through its row.
fn this_process_workers(state: &AppState) -> Option<WorkerProcessHealth> {
    let identity = &state.identity;
    state.config.role.runs_workers().then(|| WorkerProcessHealth {
        hostname: identity.hostname.clone(),
        pid: i64::from(identity.pid),
        role: identity.role.as_str().to_owned(),
        active_workers: state.workers.alive(),
        configured_workers: state.config.task_workers(),
        busy_workers: state.workers.busy(),
        heartbeat_age: state.workers.heartbeat_age().map(|age| rounded(age.as_secs_f64(), 3)),
    })
}

/// The other processes whose workers showed they were alive within [`STALE_HEARTBEAT`].
async fn other_process_workers(state: &AppState) -> ApiResult<Vec<WorkerProcessHealth>> {
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(STALE_HEARTBEAT).unwrap_or_default();
    let beats = worker_processes::beaten_since(&state.db, since).await?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(beats
        .into_iter()
        .filter(|beat| beat.instance_id != state.identity.instance_id)
        .map(|beat| WorkerProcessHealth {
            hostname: beat.hostname,
            pid: beat.pid,
            role: beat.role,
            active_workers: count(beat.workers_alive),
            configured_workers: count(beat.workers_configured),
            busy_workers: count(beat.workers_busy),
            heartbeat_age: Some(rounded((now - beat.beat_at).num_milliseconds().max(0) as f64 / 1000.0, 3)),
        })
        .collect())
}

fn engine_health(state: &AppState) -> EngineHealth {
    match state.face.state() {
        EngineState::Ready(engine) => EngineHealth {
            status: "loaded",
            backend: Some(engine.backend_name()),
            anti_spoof: engine.anti_spoof().is_some(),
            enrolled: state.face.enrolled(),
            error: None,
        },
        EngineState::Loading => EngineHealth {
            status: "loading",
            backend: None,
            anti_spoof: false,
            enrolled: state.face.enrolled(),
            error: None,
        },
        EngineState::Failed(error) => EngineHealth {
            status: "failed",
            backend: None,
            anti_spoof: false,
            enrolled: state.face.enrolled(),
            error: Some(error),
        },
    }
}

fn performance(state: &AppState) -> Performance {
    let recent = state.requests.recent();
    let minutes = (state.requests.uptime().as_secs_f64() / 60.0).clamp(1.0, WINDOW_MINUTES as f64);
    Performance {
        avg_api_response_time: rounded(recent.mean_secs, 4),
        requests_per_minute: rounded(recent.requests as f64 / minutes, 1),
        error_rate: if recent.requests == 0 { 0.0 } else { rounded(recent.errors as f64 / recent.requests as f64, 4) },
    }
}

#[derive(Serialize, ToSchema)]
pub struct SystemMetrics {
    /// Share of the CPUs busy, over a 0.2 s sample, in [0, 1]; `null` where the system
    /// does not tell (as for the other machine figures).
    pub cpu_usage: Option<f64>,
    /// Share of the machine's memory in use, in [0, 1].
    pub memory_usage: Option<f64>,
    /// Share of the data directory's disk in use, in [0, 1].
    pub disk_usage: Option<f64>,
    /// Bytes through every network interface since the machine started.
    pub network_io: Option<NetworkIo>,
    pub face_processing: FaceProcessing,
}

#[derive(Serialize, ToSchema)]
pub struct NetworkIo {
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Serialize, ToSchema)]
pub struct FaceProcessing {
    /// Face tasks (enrollments and verifications) that ended, as the task table records
    /// them: it survives restarts.
    pub total_processed: i64,
    /// Mean seconds a completed task ran.
    pub avg_processing_time: Option<f64>,
    /// Share of the ended tasks that completed (a completed verification may still have
    /// recognised nobody); `null` before the first.
    pub success_rate: Option<f64>,
    /// The same per task kind.
    pub by_kind: BTreeMap<String, KindProcessing>,
}

#[derive(Serialize, ToSchema)]
pub struct KindProcessing {
    pub completed: i64,
    pub failed: i64,
    pub avg_processing_time: Option<f64>,
}

/// Machine and processing figures: CPU, memory and disk (of the data directory) in use,
/// network totals, and the face tasks processed with their mean time and success rate
/// (from the task table). For admins.
#[utoipa::path(get, path = "/system/metrics/", tag = "operations",
    responses((status = 200, body = SystemMetrics), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn system_metrics(State(state): State<AppState>) -> ApiResult<Json<SystemMetrics>> {
    let data_dir = state.config.data_dir.clone();
    let host = tokio::spawn(async move { host_figures(&data_dir).await });
    let ended = tasks::ended_per_kind(&state.db).await?;
    let mut by_kind: BTreeMap<String, KindProcessing> = BTreeMap::new();
    for row in &ended {
        let kind = by_kind.entry(row.kind.clone()).or_insert(KindProcessing {
            completed: 0,
            failed: 0,
            avg_processing_time: None,
        });
        if row.status == COMPLETED {
            kind.completed = row.count;
            kind.avg_processing_time = row.mean_processing_ms.map(|ms| rounded(ms / 1000.0, 3));
        } else {
            kind.failed = row.count;
        }
    }
    let completed: i64 = by_kind.values().map(|kind| kind.completed).sum();
    let total: i64 = completed + by_kind.values().map(|kind| kind.failed).sum::<i64>();
    let completed_ms: f64 = ended
        .iter()
        .filter(|row| row.status == COMPLETED)
        .filter_map(|row| row.mean_processing_ms.map(|ms| ms * row.count as f64))
        .sum();
    let host = host.await.map_err(|e| ApiError::internal(anyhow::anyhow!("system figures: {e}")))?;
    Ok(Json(SystemMetrics {
        cpu_usage: host.cpu,
        memory_usage: host.memory,
        disk_usage: host.disk,
        network_io: host.network,
        face_processing: FaceProcessing {
            total_processed: total,
            avg_processing_time: (completed > 0).then(|| rounded(completed_ms / completed as f64 / 1000.0, 3)),
            success_rate: (total > 0).then(|| rounded(completed as f64 / total as f64, 4)),
            by_kind,
        },
    }))
}

/// CPU (sampled over 0.2 s), memory, the data directory's disk and the network totals;
/// each `None` where the system does not tell (e.g. without `/proc`).
async fn host_figures(data_dir: &std::path::Path) -> HostFigures {
    use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System};
    let refresh = RefreshKind::nothing()
        .with_cpu(CpuRefreshKind::nothing().with_usage())
        .with_memory(MemoryRefreshKind::everything());
    let (cpu, memory) = match System::new_with_specifics(refresh) {
        Ok(mut system) => {
            tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(200))).await;
            system.refresh_cpu_usage();
            let cpu = f64::from(system.global_cpu_usage()) / 100.0;
            let total = system.total_memory();
            let memory = (total > 0).then(|| system.used_memory() as f64 / total as f64);
            (Some(cpu.clamp(0.0, 1.0)), memory)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read CPU and memory figures");
            (None, None)
        }
    };
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // The disk whose mount point is the longest prefix of the data directory.
    let disk = Disks::new_with_refreshed_list().ok().and_then(|disks| {
        let disk = disks
            .iter()
            .filter(|disk| data_dir.starts_with(disk.mount_point()))
            .max_by_key(|disk| disk.mount_point().as_os_str().len())?;
        let total = disk.total_space();
        (total > 0).then(|| total.saturating_sub(disk.available_space()) as f64 / total as f64)
    });
    let network = Networks::new_with_refreshed_list().ok().map(|networks| {
        networks.values().fold(NetworkIo { bytes_sent: 0, bytes_received: 0 }, |io, data| NetworkIo {
            bytes_sent: io.bytes_sent + data.total_transmitted(),
            bytes_received: io.bytes_received + data.total_received(),
        })
    });
    let share = |value: Option<f64>| value.map(|value| rounded(value, 4));
    HostFigures { cpu: share(cpu), memory: share(memory), disk: share(disk), network }
}

struct HostFigures {
    cpu: Option<f64>,
    memory: Option<f64>,
    disk: Option<f64>,
    network: Option<NetworkIo>,
}

/// Prometheus metrics (OpenMetrics text): requests by route template and status, task
/// durations by kind and outcome, queue depth by kind, recognitions by outcome, webhook
/// deliveries by outcome, build info. Open to anyone unless `metrics_token` is set; then
/// it takes `Authorization: Bearer <metrics_token>`.
pub async fn prometheus_metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        use secrecy::ExposeSecret as _;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        // Digests compared, so the time taken says nothing about the token.
        let digest = |text: &str| <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
        let matches = given.is_some_and(|given| digest(given) == digest(token.expose_secret()));
        if !matches {
            return Err(ApiError::Unauthorized("/metrics needs Authorization: Bearer <metrics_token>".into()));
        }
    }
    let mut queued = tasks::queued_per_kind(&state.db).await?;
    for kind in TaskKind::ALL {
        if !queued.iter().any(|(name, _)| name == kind.as_str()) {
            queued.push((kind.as_str().to_owned(), 0));
        }
    }
    let text = state.metrics.render(&queued);
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

/// The spec's maintenance request.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// `cleanup_old_logs`, `vacuum_database`, `rebuild_face_index`, `purge_expired_tokens`
    /// or `purge_evidence`.
    pub task: String,
    /// `cleanup_old_logs`: `{"days_to_keep": N}` (1 to 36,500); the others take none.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// Start a maintenance task: `cleanup_old_logs` deletes attendance logs (with their
/// disputes and face crops), audit entries and ended tasks older than `days_to_keep`;
/// `vacuum_database` reclaims space and refreshes statistics (VACUUM and ANALYZE);
/// `rebuild_face_index` reloads the matching index from the stored templates;
/// `purge_expired_tokens` deletes expired refresh tokens; `purge_evidence` deletes face
/// crops older than `evidence_retention_days` and unknown visitors not seen for
/// `unknown_visitor_retention_days`. It runs as a durable task: follow it at
/// `/system/maintenance/{task_id}/`; its result says what changed. Audited
/// (`maintenance_started`).
#[utoipa::path(post, path = "/system/maintenance/", tag = "operations", request_body = MaintenanceRequest,
    responses((status = 202, body = Object, description = "`task_id`, `status`"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start_maintenance(
    State(state): State<AppState>,
    super::extract::Admin(admin): super::extract::Admin,
    client: crate::domain::audit::ClientInfo,
    Json(request): Json<MaintenanceRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<serde_json::Value>)> {
    use crate::domain::maintenance::Maintenance;
    let maintenance = Maintenance::parse(request.task.trim(), &request.parameters)
        .map_err(|(field, message)| ApiError::validation(field, message))?;
    let payload = serde_json::to_vec(&maintenance).map_err(ApiError::internal)?;
    let task_id = state
        .queue
        .submit(TaskKind::Maintenance, &admin.key(), None, &payload)
        .await
        .map_err(super::face::queue_error)?;
    let details = serde_json::json!({"task": maintenance.name(), "task_id": task_id, "maintenance": maintenance});
    crate::domain::audit::record(
        &state.db,
        &client,
        crate::domain::audit::AuditEvent::success("maintenance_started", Some(admin.audit_name()), details),
    )
    .await;
    let body = serde_json::json!({"task_id": task_id, "task": maintenance.name(), "status": "queued",
        "message": format!("{} queued", maintenance.name())});
    Ok((axum::http::StatusCode::ACCEPTED, Json(body)))
}

/// A maintenance task's status and, once it has ended, its result. For admins.
#[utoipa::path(get, path = "/system/maintenance/{task_id}/", tag = "operations", params(("task_id" = String, Path)),
    responses((status = 200, body = super::face::TaskStatusBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn maintenance_status(
    State(state): State<AppState>,
    _admin: super::extract::Admin,
    super::extract::Path(task_id): super::extract::Path<String>,
) -> ApiResult<Json<super::face::TaskStatusBody>> {
    let status = state.queue.status(&task_id).await.map_err(super::face::queue_error)?;
    match status {
        Some(status) if status.kind == TaskKind::Maintenance => Ok(Json(status.into())),
        _ => Err(ApiError::NotFound(format!("no maintenance task {task_id}"))),
    }
}

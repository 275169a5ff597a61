//! Durable background tasks. [`TaskQueue`] is the seam: [`embedded::EmbeddedQueue`]
//! keeps tasks as database rows (the default, nothing else to run); [`amqp::AmqpQueue`]
//! hands them to workers through RabbitMQ, the rows staying the truth. [`worker`] runs them on a pool of workers.

pub mod admission;
pub mod amqp;
pub mod embedded;
pub mod heartbeat;
pub mod worker;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::tasks::{self, TaskClaim};
use crate::store::{Db, StoreError, Tx};

/// What a task does; its id starts with [`TaskKind::prefix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Enroll,
    Verify,
    BulkVerify,
    /// Database upkeep an admin started (`POST /system/maintenance/`).
    Maintenance,
    /// A phone check-in (`POST /mobile/check-in/`).
    CheckIn,
}

impl TaskKind {
    pub const ALL: [TaskKind; 5] = [Self::Enroll, Self::Verify, Self::BulkVerify, Self::Maintenance, Self::CheckIn];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Verify => "verify",
            Self::BulkVerify => "bulk_verify",
            Self::Maintenance => "maintenance",
            Self::CheckIn => "check_in",
        }
    }

    /// Task ids look like the spec's: `enroll_<uuid>`, `verify_<uuid>`, `bulk_<uuid>`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Verify => "verify",
            Self::BulkVerify => "bulk",
            Self::Maintenance => "maintenance",
            Self::CheckIn => "checkin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn new_id(self) -> String {
        format!("{}_{}", self.prefix(), uuid::Uuid::new_v4())
    }
}

/// A claimed task, its input already decrypted.
#[derive(Debug)]
pub struct Task {
    pub id: String,
    pub kind: TaskKind,
    pub owner: String,
    pub payload: Vec<u8>,
    /// 1 for the first run.
    pub attempt: u32,
    pub max_attempts: u32,
    pub created_at: DateTime<Utc>,
}

impl Task {
    /// The worker's claim: every write the task makes is conditioned on it still holding
    /// (see [`crate::store::lease`]), so a worker whose lease expired changes nothing.
    pub fn claim(&self) -> TaskClaim {
        TaskClaim { id: self.id.clone(), attempt: i64::from(self.attempt) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Running,
    Completed,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// What a client may learn about a task.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    pub id: String,
    pub kind: TaskKind,
    pub owner: String,
    pub state: TaskState,
    pub attempts: u32,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub processing_time: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the task queue is full ({depth} tasks waiting); try again shortly")]
    Full { depth: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a queued task could not be decrypted: {0}")]
    Corrupt(String),
    /// The broker cannot take the task now; nothing was queued.
    #[error("the task queue is unavailable ({0}); try again shortly")]
    Unavailable(String),
}

/// What the broker says about its queues, for the health check.
#[derive(Debug, Clone)]
pub struct BrokerHealth {
    /// `None` when the broker is unreachable.
    pub reachable: bool,
    pub response_time: Duration,
    /// Messages waiting per task kind (delivered but unacknowledged ones not counted).
    pub ready: Vec<(TaskKind, u32)>,
    /// Workers consuming per task kind, over every process.
    pub consumers: Vec<(TaskKind, u32)>,
    /// Messages of tasks that failed every attempt.
    pub dead_letters: u32,
    pub error: Option<String>,
}

/// A task's writes were refused: the worker's lease had expired and another worker
/// claimed the task. The worker drops the task; the new holder finishes it.
#[derive(Debug, thiserror::Error)]
#[error("the task's lease expired and another worker took it over")]
pub struct ClaimLost;

/// A transaction for the writes a task makes (attendance, incidents, templates, events),
/// or for writes of no task. Its first statement confirms that the task's claim still
/// holds (and, on PostgreSQL, locks the task's row until the commit), so a worker that
/// lost its lease writes nothing: [`ClaimLost`].
pub async fn begin_for_task(db: &Db, task: Option<&TaskClaim>) -> anyhow::Result<Tx> {
    let tx = db.begin().await?;
    if let Some(claim) = task
        && !tasks::confirm_claim(&tx, claim).await?
    {
        return Err(ClaimLost.into());
    }
    Ok(tx)
}

/// How a task ended when it did not succeed.
#[derive(Debug)]
pub struct TaskFailure {
    pub message: String,
    /// Worth another attempt (e.g. the database was unreachable).
    pub retryable: bool,
    /// See [`TaskFailure::lease_lost`].
    pub lease_lost: bool,
}

impl TaskFailure {
    /// The worker's claim on the task was lost mid-run: its writes were refused, and the
    /// worker that holds the task now records the outcome.
    pub fn lease_lost() -> Self {
        Self {
            message: "the task's lease expired and another worker took it over".into(),
            retryable: false,
            lease_lost: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false, lease_lost: false }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true, lease_lost: false }
    }
}

impl From<anyhow::Error> for TaskFailure {
    fn from(error: anyhow::Error) -> Self {
        if error.is::<ClaimLost>() { Self::lease_lost() } else { Self::retryable(format!("{error:#}")) }
    }
}

/// Whether a worker's update of its task took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Yes,
    /// The worker's lease had expired and another worker claimed the task: nothing changed.
    LeaseLost,
}

impl From<bool> for Recorded {
    fn from(held: bool) -> Self {
        if held { Self::Yes } else { Self::LeaseLost }
    }
}

#[async_trait::async_trait]
pub trait TaskQueue: Send + Sync {
    /// Stores a task; refuses with [`QueueError::Full`] past the configured depth.
    /// `subject` is the person an enrollment is for.
    async fn submit(
        &self,
        kind: TaskKind,
        owner: &str,
        subject: Option<i64>,
        payload: &[u8],
    ) -> Result<String, QueueError>;
    /// Takes the next task under a lease, if any.
    async fn claim(&self) -> Result<Option<Task>, QueueError>;
    /// Extends the lease of a running task.
    async fn heartbeat(&self, task: &Task) -> Result<Recorded, QueueError>;
    async fn complete(&self, task: &Task, result: &Value, elapsed: Duration) -> Result<Recorded, QueueError>;
    /// Fails the task, or puts it back when the failure is retryable and attempts remain.
    async fn fail(&self, task: &Task, failure: &TaskFailure, elapsed: Duration) -> Result<Recorded, QueueError>;
    /// Ends the tasks whose worker died during every attempt; run periodically.
    async fn sweep_abandoned(&self) -> Result<u64, QueueError>;
    async fn status(&self, id: &str) -> Result<Option<TaskStatus>, QueueError>;
    /// Tasks waiting for a worker.
    async fn depth(&self) -> Result<u64, QueueError>;
    /// Typical processing time of a task of `kind`, from recent ones.
    async fn typical_duration(&self, kind: TaskKind) -> Result<Option<Duration>, QueueError>;
    /// Resolves when a task may be waiting (a submission or a release).
    async fn wait_for_work(&self, timeout: Duration);
    /// Announces the id of every task that finishes.
    fn finished(&self) -> tokio::sync::broadcast::Receiver<String>;
    /// The worker let go of `task` without recording how it ended (its lease was lost):
    /// whoever holds the task now decides.
    async fn abandon(&self, _task: &Task) {}
    /// The broker's figures; `None` when the queue has no broker.
    async fn broker_health(&self) -> Option<BrokerHealth> {
        None
    }
}

//! Durable background tasks. [`TaskQueue`] is the seam: [`embedded::EmbeddedQueue`]
//! keeps tasks as database rows (the default, nothing else to run); a broker-backed
//! queue can implement the same trait. [`worker`] runs them on a pool of workers.

pub mod embedded;
pub mod worker;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::StoreError;

/// What a task does; its id starts with [`TaskKind::prefix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Enroll,
    Verify,
    BulkVerify,
}

impl TaskKind {
    pub const ALL: [TaskKind; 3] = [Self::Enroll, Self::Verify, Self::BulkVerify];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Verify => "verify",
            Self::BulkVerify => "bulk_verify",
        }
    }

    /// Task ids look like the spec's: `enroll_<uuid>`, `verify_<uuid>`, `bulk_<uuid>`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Verify => "verify",
            Self::BulkVerify => "bulk",
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
}

/// How a task ended when it did not succeed.
#[derive(Debug)]
pub struct TaskFailure {
    pub message: String,
    /// Worth another attempt (e.g. the database was unreachable).
    pub retryable: bool,
}

impl TaskFailure {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true }
    }
}

impl From<anyhow::Error> for TaskFailure {
    fn from(error: anyhow::Error) -> Self {
        Self::retryable(format!("{error:#}"))
    }
}

#[async_trait::async_trait]
pub trait TaskQueue: Send + Sync {
    /// Stores a task; refuses with [`QueueError::Full`] past the configured depth.
    async fn submit(&self, kind: TaskKind, owner: &str, payload: &[u8]) -> Result<String, QueueError>;
    /// Takes the next task under a lease, if any.
    async fn claim(&self) -> Result<Option<Task>, QueueError>;
    /// Extends the lease of a running task; false when it is no longer ours.
    async fn heartbeat(&self, id: &str) -> Result<bool, QueueError>;
    async fn complete(&self, task: &Task, result: &Value, elapsed: Duration) -> Result<(), QueueError>;
    /// Fails the task, or puts it back when the failure is retryable and attempts remain.
    async fn fail(&self, task: &Task, failure: &TaskFailure, elapsed: Duration) -> Result<(), QueueError>;
    async fn status(&self, id: &str) -> Result<Option<TaskStatus>, QueueError>;
    /// Tasks waiting for a worker.
    async fn depth(&self) -> Result<u64, QueueError>;
    /// Typical processing time of a task of `kind`, from recent ones.
    async fn typical_duration(&self, kind: TaskKind) -> Result<Option<Duration>, QueueError>;
    /// Resolves when a task may be waiting (a submission or a release).
    async fn wait_for_work(&self, timeout: Duration);
    /// Announces the id of every task that finishes.
    fn finished(&self) -> tokio::sync::broadcast::Receiver<String>;
}

//! The embedded queue: tasks are rows of the `tasks` table, so a queued task survives a
//! crash, and a task whose worker died is taken again once its lease expires.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use super::{QueueError, Recorded, Task, TaskFailure, TaskKind, TaskQueue, TaskState, TaskStatus};
use crate::crypto::Sealer;
use crate::store::tasks::{self as task_store, NewTask, TaskClaim, TaskRecord};
use crate::store::{Db, Exec};

pub struct EmbeddedQueue {
    db: Db,
    /// Task inputs (photos) are biometric data: encrypted in the table too.
    sealer: Sealer,
    lease: Duration,
    max_attempts: u32,
    max_depth: u64,
    work: Notify,
    finished: broadcast::Sender<String>,
}

impl EmbeddedQueue {
    pub fn new(db: Db, sealer: Sealer, lease: Duration, max_attempts: u32, max_depth: u64) -> Self {
        Self {
            db,
            sealer,
            lease,
            max_attempts: max_attempts.max(1),
            max_depth,
            work: Notify::new(),
            finished: broadcast::channel(4096).0,
        }
    }

    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    pub(super) fn lease_until(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(30))
    }

    pub(super) fn announce(&self, id: &str) {
        let _ = self.finished.send(id.to_owned());
    }

    /// Refuses a new task past the configured depth.
    pub(super) async fn check_depth(&self) -> Result<(), QueueError> {
        let depth = task_store::count_queued(&self.db).await?.max(0) as u64;
        if depth >= self.max_depth {
            return Err(QueueError::Full { depth });
        }
        Ok(())
    }

    /// Stores a new task's row through `exec`: the pool, or a transaction that commits
    /// only once a broker has the task (which then must not wait for another connection
    /// of the pool while it holds SQLite's write lock).
    pub(super) async fn insert(
        &self,
        exec: &impl Exec,
        kind: TaskKind,
        owner: &str,
        subject: Option<i64>,
        payload: &[u8],
    ) -> Result<String, QueueError> {
        let id = kind.new_id();
        let task = NewTask {
            id: &id,
            kind: kind.as_str(),
            owner,
            subject,
            payload: self.sealer.seal(payload, &crate::store::sealed::task_payload_binding(&id)),
            max_attempts: i64::from(self.max_attempts),
        };
        task_store::insert(exec, task).await?;
        Ok(id)
    }

    /// The task of a claimed row, its input decrypted; a row that cannot be read (an
    /// unknown kind, a changed data key) fails at once.
    pub(super) async fn open_claimed(&self, record: TaskRecord) -> Result<Task, QueueError> {
        let claim = TaskClaim { id: record.id.clone(), attempt: record.attempts };
        let refuse = |message: String| async move {
            task_store::finish(&self.db, &claim, task_store::FAILED, None, Some(message.clone()), 0).await?;
            self.announce(&claim.id);
            Err(QueueError::Corrupt(message))
        };
        let Some(kind) = TaskKind::parse(&record.kind) else {
            return refuse(format!("unknown task kind {:?}", record.kind)).await;
        };
        let payload = match self.sealer.open(&record.payload, &crate::store::sealed::task_payload_binding(&record.id)) {
            Ok(payload) => payload,
            Err(error) => {
                return refuse(format!("the task's input cannot be decrypted ({error}); was the data key changed?"))
                    .await;
            }
        };
        Ok(Task {
            id: record.id,
            kind,
            owner: record.owner,
            payload,
            attempt: u32::try_from(record.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(record.max_attempts).unwrap_or(1),
            created_at: record.created_at,
        })
    }
}

fn state_of(status: &str) -> TaskState {
    match status {
        task_store::QUEUED => TaskState::Queued,
        task_store::RUNNING => TaskState::Running,
        task_store::COMPLETED => TaskState::Completed,
        _ => TaskState::Failed,
    }
}

fn to_status(record: TaskRecord) -> Option<TaskStatus> {
    let kind = TaskKind::parse(&record.kind)?;
    Some(TaskStatus {
        kind,
        state: state_of(&record.status),
        attempts: u32::try_from(record.attempts).unwrap_or(0),
        result: record.result.as_deref().and_then(|r| serde_json::from_str(r).ok()),
        error: record.error,
        created_at: record.created_at,
        finished_at: record.finished_at,
        processing_time: record.processing_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        owner: record.owner,
        id: record.id,
    })
}

fn millis(elapsed: Duration) -> i64 {
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl TaskQueue for EmbeddedQueue {
    async fn submit(
        &self,
        kind: TaskKind,
        owner: &str,
        subject: Option<i64>,
        payload: &[u8],
    ) -> Result<String, QueueError> {
        self.check_depth().await?;
        let id = self.insert(&self.db, kind, owner, subject, payload).await?;
        self.work.notify_one();
        Ok(id)
    }

    async fn claim(&self) -> Result<Option<Task>, QueueError> {
        match task_store::claim_next(&self.db, self.lease_until()).await? {
            Some(record) => self.open_claimed(record).await.map(Some),
            None => Ok(None),
        }
    }

    async fn heartbeat(&self, task: &Task) -> Result<Recorded, QueueError> {
        Ok(task_store::extend_lease(&self.db, &task.claim(), self.lease_until()).await?.into())
    }

    async fn complete(&self, task: &Task, result: &Value, elapsed: Duration) -> Result<Recorded, QueueError> {
        let result = Some(result.to_string());
        let recorded: Recorded =
            task_store::finish(&self.db, &task.claim(), task_store::COMPLETED, result, None, millis(elapsed))
                .await?
                .into();
        self.announce(&task.id);
        Ok(recorded)
    }

    async fn fail(&self, task: &Task, failure: &TaskFailure, elapsed: Duration) -> Result<Recorded, QueueError> {
        if failure.retryable && task.attempt < task.max_attempts {
            let recorded = task_store::requeue(&self.db, &task.claim(), &failure.message).await?.into();
            self.work.notify_one();
            return Ok(recorded);
        }
        let message = if failure.retryable {
            format!("{} (gave up after {} attempts)", failure.message, task.attempt)
        } else {
            failure.message.clone()
        };
        let recorded: Recorded =
            task_store::finish(&self.db, &task.claim(), task_store::FAILED, None, Some(message), millis(elapsed))
                .await?
                .into();
        self.announce(&task.id);
        Ok(recorded)
    }

    async fn sweep_abandoned(&self) -> Result<u64, QueueError> {
        let failed = task_store::fail_abandoned(&self.db).await?;
        if failed > 0 {
            tracing::warn!(tasks = failed, "tasks failed: their worker stopped during every attempt");
        }
        Ok(failed)
    }

    async fn status(&self, id: &str) -> Result<Option<TaskStatus>, QueueError> {
        Ok(task_store::find(&self.db, id).await?.and_then(to_status))
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(task_store::count_queued(&self.db).await?.max(0) as u64)
    }

    async fn typical_duration(&self, kind: TaskKind) -> Result<Option<Duration>, QueueError> {
        let recent = task_store::recent_processing_ms(&self.db, kind.as_str(), 20).await?;
        if recent.is_empty() {
            return Ok(None);
        }
        let mean = recent.iter().sum::<i64>() / recent.len() as i64;
        Ok(Some(Duration::from_millis(mean.max(0) as u64)))
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    fn finished(&self) -> broadcast::Receiver<String> {
        self.finished.subscribe()
    }
}

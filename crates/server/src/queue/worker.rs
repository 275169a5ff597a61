//! The worker pool: each worker claims a task, keeps its lease alive while it runs, and
//! records how it ended. A panicking task fails; it does not take the worker with it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Recorded, Task, TaskFailure, TaskQueue};
use crate::metrics::Metrics;

/// What this process's workers are doing, for the health check.
#[derive(Debug)]
pub struct WorkerStats {
    alive: AtomicUsize,
    busy: AtomicUsize,
    /// Milliseconds after `started` of the latest sign of life of any worker; 0: none yet.
    last_beat_ms: AtomicU64,
    started: Instant,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            alive: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            last_beat_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl WorkerStats {
    /// Workers running (claiming or working).
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    /// Workers running a task now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// How long ago a worker last showed it is alive (it does at least every half second
    /// while idle, and when each task ends); `None` before the first.
    pub fn heartbeat_age(&self) -> Option<Duration> {
        let beat = self.last_beat_ms.load(Ordering::Relaxed);
        (beat > 0).then(|| self.started.elapsed().saturating_sub(Duration::from_millis(beat)))
    }

    fn beat(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.last_beat_ms.store(now, Ordering::Relaxed);
    }
}

/// What workers report to: their stats and the task metrics.
#[derive(Clone)]
pub struct WorkerObservers {
    pub stats: Arc<WorkerStats>,
    pub metrics: Arc<Metrics>,
}

/// Runs one kind of work; the face service implements it.
#[async_trait::async_trait]
pub trait TaskRunner: Send + Sync {
    /// False while the runner cannot start work yet (models loading): workers wait.
    fn ready(&self) -> bool;
    async fn run(&self, task: &Task) -> Result<Value, TaskFailure>;
}

/// Starts `workers` workers. They stop claiming when `shutdown` is cancelled and finish
/// the task they hold (the lease makes an unfinished task run again after a restart).
pub fn spawn_workers(
    queue: Arc<dyn TaskQueue>,
    runner: Arc<dyn TaskRunner>,
    workers: usize,
    lease: Duration,
    observers: WorkerObservers,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    (0..workers)
        .map(|n| {
            let (queue, runner, shutdown, observers) =
                (queue.clone(), runner.clone(), shutdown.clone(), observers.clone());
            tokio::spawn(async move {
                observers.stats.alive.fetch_add(1, Ordering::Relaxed);
                work(n, queue, runner, lease, &observers, shutdown).await;
                observers.stats.alive.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(worker = n, "task worker stopped");
            })
        })
        .collect()
}

async fn work(
    n: usize,
    queue: Arc<dyn TaskQueue>,
    runner: Arc<dyn TaskRunner>,
    lease: Duration,
    observers: &WorkerObservers,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        observers.stats.beat();
        if !runner.ready() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        match queue.claim().await {
            Ok(Some(task)) => {
                observers.stats.busy.fetch_add(1, Ordering::Relaxed);
                run_one(&queue, &runner, task, lease, &observers.metrics).await;
                observers.stats.busy.fetch_sub(1, Ordering::Relaxed);
            }
            Ok(None) => {
                tokio::select! {
                    () = queue.wait_for_work(Duration::from_millis(500)) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Err(error) => {
                tracing::error!(worker = n, error = %error, "could not claim a task");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run_one(
    queue: &Arc<dyn TaskQueue>,
    runner: &Arc<dyn TaskRunner>,
    task: Task,
    lease: Duration,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let task = Arc::new(task);
    let heartbeat = keep_alive(queue.clone(), task.clone(), lease / 3);
    let outcome = AssertUnwindSafe(runner.run(&task)).catch_unwind().await;
    heartbeat.abort();
    let elapsed = started.elapsed();
    let counted_as = match &outcome {
        Ok(Ok(_)) => "completed",
        Ok(Err(failure)) if failure.lease_lost => "lease_lost",
        Ok(Err(failure)) if failure.retryable && task.attempt < task.max_attempts => "retried",
        _ => "failed",
    };
    metrics.record_task(task.kind.as_str(), counted_as, elapsed);
    let recorded = match outcome {
        Ok(Err(failure)) if failure.lease_lost => {
            queue.abandon(&task).await;
            Ok(Recorded::LeaseLost)
        }
        Ok(Ok(result)) => {
            tracing::info!(task.id = %task.id, task.kind = task.kind.as_str(), duration_ms = elapsed.as_millis() as u64, "task completed");
            queue.complete(&task, &result, elapsed).await
        }
        Ok(Err(failure)) => {
            tracing::warn!(task.id = %task.id, attempt = task.attempt, retryable = failure.retryable, error = %failure.message, "task failed");
            queue.fail(&task, &failure, elapsed).await
        }
        Err(_) => {
            tracing::error!(task.id = %task.id, "task panicked");
            queue.fail(&task, &TaskFailure::permanent("internal error while processing the task"), elapsed).await
        }
    };
    match recorded {
        Ok(Recorded::Yes) => {}
        Ok(Recorded::LeaseLost) => {
            tracing::warn!(task.id = %task.id, attempt = task.attempt, "task outcome dropped: its lease expired and another worker took it over");
        }
        // The lease will expire and the task will run again.
        Err(error) => tracing::error!(task.id = %task.id, error = %error, "could not record how a task ended"),
    }
}

fn keep_alive(queue: Arc<dyn TaskQueue>, task: Arc<Task>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            tick.tick().await;
            match queue.heartbeat(&task).await {
                Ok(Recorded::Yes) => {}
                Ok(Recorded::LeaseLost) => {
                    tracing::warn!(task.id = %task.id, "a task lost its lease; its writes will be refused");
                    break;
                }
                Err(error) => tracing::warn!(task.id = %task.id, error = %error, "could not extend a task's lease"),
            }
        }
    })
}

/// Fails, every `every`, the tasks whose worker died during their last allowed attempt.
pub fn spawn_sweeper(queue: Arc<dyn TaskQueue>, every: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            if let Err(error) = queue.sweep_abandoned().await {
                tracing::warn!(error = %error, "could not sweep abandoned tasks");
            }
        }
        tracing::info!("abandoned-task sweeper stopped");
    })
}

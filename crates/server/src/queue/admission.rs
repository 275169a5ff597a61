//! Admission: a new task is taken only while the work already queued can be done within
//! `max_queue_wait_secs`. Past that, callers get an honest "busy, try again in N s"
//! instead of a task id that would wait for minutes while its photo sits in the queue.
//! The queue's hard depth cap (`task_max_queue_depth`) still applies on top.
//!
//! The estimated wait is the queued tasks shared by the workers, each taking as long as
//! recent tasks of the kind being submitted: `depth × typical ÷ workers`. `workers` are
//! this process's; several processes sharing one database make the estimate pessimistic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{QueueError, TaskKind, TaskQueue};

/// Assumed duration of a task of a kind that has not completed recently (a fresh server).
const UNKNOWN_TASK_TIME: Duration = Duration::from_secs(1);

/// How long a measured typical duration is reused: the admission check then costs one
/// query per submission (the depth), and the typical duration one per kind per period.
const TYPICAL_REFRESH: Duration = Duration::from_secs(2);

/// What a caller can expect of a task submitted now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Until a worker takes the task: the queued work shared by the workers.
    pub wait: Duration,
    /// Until the task has finished: its place in line, in rounds of the workers, times
    /// the typical task time.
    pub finish: Duration,
}

impl Estimate {
    /// For a task joining `depth` queued tasks that take `typical` each, run by `workers`.
    pub fn new(depth: u64, typical: Duration, workers: u32) -> Self {
        let workers = u64::from(workers.max(1));
        let wait = typical.mul_f64(depth as f64 / workers as f64);
        let rounds = (depth + 1).div_ceil(workers);
        Self { wait, finish: typical.mul_f64(rounds as f64) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the server is busy: about {} s of work is queued (the limit is {} s); try again in {} s",
        .wait.as_secs(), .limit.as_secs(), whole_secs(*.retry_after)
    )]
    Busy { wait: Duration, limit: Duration, retry_after: Duration },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

fn whole_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The admission rule, with the typical task durations it has read recently.
pub struct Admission {
    max_wait: Duration,
    workers: u32,
    typical: Mutex<HashMap<TaskKind, (Instant, Duration)>>,
}

impl Admission {
    pub fn new(max_wait: Duration, workers: usize) -> Self {
        let workers = u32::try_from(workers).unwrap_or(u32::MAX).max(1);
        Self { max_wait, workers, typical: Mutex::default() }
    }

    /// The estimate for a task of `kind` submitted now, if it may be: refused with
    /// [`Refusal::Busy`] (and how long until the queue is back within the limit) when
    /// the estimated wait passes `max_wait`.
    pub async fn admit(&self, queue: &dyn TaskQueue, kind: TaskKind) -> Result<Estimate, Refusal> {
        let estimate = self.estimate(queue, kind).await?;
        self.check(estimate)?;
        Ok(estimate)
    }

    /// The estimate for a task of `kind` submitted now, admitted or not.
    pub async fn estimate(&self, queue: &dyn TaskQueue, kind: TaskKind) -> Result<Estimate, QueueError> {
        let depth = queue.depth().await?;
        let typical = self.typical(queue, kind).await?;
        Ok(Estimate::new(depth, typical, self.workers))
    }

    fn check(&self, estimate: Estimate) -> Result<(), Refusal> {
        if estimate.wait <= self.max_wait {
            return Ok(());
        }
        // By then the workers have done the excess and the queue is back within the limit.
        let retry_after = (estimate.wait - self.max_wait).max(Duration::from_secs(1));
        Err(Refusal::Busy { wait: estimate.wait, limit: self.max_wait, retry_after })
    }

    async fn typical(&self, queue: &dyn TaskQueue, kind: TaskKind) -> Result<Duration, QueueError> {
        if let Some(&(read_at, typical)) = self.typical.lock().expect("typical durations lock").get(&kind)
            && read_at.elapsed() < TYPICAL_REFRESH
        {
            return Ok(typical);
        }
        // Not remembered while unknown, so the first measured duration counts at once.
        let Some(typical) = queue.typical_duration(kind).await? else {
            return Ok(UNKNOWN_TASK_TIME);
        };
        self.typical.lock().expect("typical durations lock").insert(kind, (Instant::now(), typical));
        Ok(typical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_wait_is_the_queued_work_shared_by_the_workers() {
        let estimate = Estimate::new(10, Duration::from_millis(200), 2);
        assert_eq!(estimate.wait, SECOND);
        // Eleventh in line with two workers: finished at the end of the sixth round.
        assert_eq!(estimate.finish, Duration::from_millis(1200));
        assert_eq!(Estimate::new(0, SECOND, 4), Estimate { wait: Duration::ZERO, finish: SECOND });
        assert_eq!(Estimate::new(3, SECOND, 0).wait, 3 * SECOND, "no workers counts as one");
    }

    #[test]
    fn a_wait_up_to_the_limit_is_admitted_and_past_it_refused_until_the_excess_is_done() {
        let admission = Admission::new(30 * SECOND, 2);
        assert!(admission.check(Estimate::new(60, SECOND, 2)).is_ok(), "exactly 30 s");
        match admission.check(Estimate::new(85, SECOND, 2)) {
            Err(Refusal::Busy { wait, limit, retry_after }) => {
                assert_eq!(
                    (wait, limit, retry_after),
                    (Duration::from_millis(42_500), 30 * SECOND, 12_500 * Duration::from_millis(1))
                );
            }
            other => panic!("expected busy, got {other:?}"),
        }
        let Err(busy) = admission.check(Estimate::new(61, SECOND, 2)) else { panic!("30.5 s admitted") };
        assert!(busy.to_string().ends_with("try again in 1 s"), "{busy}");
    }
}

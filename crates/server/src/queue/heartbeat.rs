//! Worker process heartbeats: every process that runs task workers writes what they are
//! doing to `worker_processes` every [`BEAT_EVERY`], so that the health check of any
//! instance, API-only ones included, counts the workers of the whole deployment.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::worker::WorkerStats;
use crate::config::ProcessRole;
use crate::store::Db;
use crate::store::worker_processes::{self, WorkerProcessBeat};

/// How often a process that runs workers records their state.
pub const BEAT_EVERY: Duration = Duration::from_secs(2);

/// This process, as the table of worker processes names it.
#[derive(Debug, Clone)]
pub struct ProcessIdentity {
    pub instance_id: String,
    pub hostname: String,
    pub pid: u32,
    pub role: ProcessRole,
    pub started_at: DateTime<Utc>,
}

impl ProcessIdentity {
    pub fn of_this_process(role: ProcessRole) -> Self {
        Self {
            instance_id: uuid::Uuid::new_v4().to_string(),
            // Only a label for operators: a machine that will not tell still runs workers.
            hostname: sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_owned()),
            pid: std::process::id(),
            role,
            started_at: Utc::now(),
        }
    }

    /// The beat to record now; `None` until a worker has shown it is alive, so that a
    /// process whose workers stall stops beating like one that died.
    fn beat(&self, stats: &WorkerStats, configured: usize) -> Option<WorkerProcessBeat> {
        let age = chrono::Duration::from_std(stats.heartbeat_age()?).ok()?;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Some(WorkerProcessBeat {
            instance_id: self.instance_id.clone(),
            hostname: self.hostname.clone(),
            pid: i64::from(self.pid),
            role: self.role.as_str().to_owned(),
            workers_configured: count(configured),
            workers_alive: count(stats.alive()),
            workers_busy: count(stats.busy()),
            started_at: self.started_at,
            beat_at: Utc::now() - age,
        })
    }
}

/// Records this process's workers every [`BEAT_EVERY`] until `shutdown`, then deletes
/// its row, so that other instances stop counting it at once.
pub async fn beat_until_shutdown(
    db: Db,
    identity: ProcessIdentity,
    stats: Arc<WorkerStats>,
    configured: usize,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        if let Some(beat) = identity.beat(&stats, configured)
            && let Err(error) = worker_processes::beat(&db, &beat).await
        {
            tracing::warn!(%error, "cannot record this process's worker heartbeat; will try again");
        }
    }
    match worker_processes::remove(&db, &identity.instance_id).await {
        Ok(_) => tracing::info!("worker heartbeat stopped"),
        Err(error) => tracing::warn!(
            %error,
            "worker heartbeat stopped, but its row stays until it is stale; other instances count it for 10 s"
        ),
    }
}

//! `worker_processes`: one row per process that runs task workers, beaten every few
//! seconds, so that every instance's health check sees the workers of the deployment.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, OnConflict, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum WorkerProcesses {
    Table,
    InstanceId,
    Hostname,
    Pid,
    Role,
    WorkersConfigured,
    WorkersAlive,
    WorkersBusy,
    StartedAt,
    BeatAt,
}

const COLUMNS: [WorkerProcesses; 9] = [
    WorkerProcesses::InstanceId,
    WorkerProcesses::Hostname,
    WorkerProcesses::Pid,
    WorkerProcesses::Role,
    WorkerProcesses::WorkersConfigured,
    WorkerProcesses::WorkersAlive,
    WorkerProcesses::WorkersBusy,
    WorkerProcesses::StartedAt,
    WorkerProcesses::BeatAt,
];

/// What one process said about its workers at its latest beat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkerProcessBeat {
    /// A uuid the process drew at start-up.
    pub instance_id: String,
    pub hostname: String,
    pub pid: i64,
    /// `all` (`rollcall serve`) or `worker` (`rollcall worker`).
    pub role: String,
    pub workers_configured: i64,
    pub workers_alive: i64,
    pub workers_busy: i64,
    pub started_at: DateTime<Utc>,
    /// When the process's workers last showed they were alive.
    pub beat_at: DateTime<Utc>,
}

/// Records `beat`, replacing the process's previous one.
pub async fn beat(db: &Db, beat: &WorkerProcessBeat) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(WorkerProcesses::Table)
        .columns(COLUMNS)
        .values_panic([
            beat.instance_id.clone().into(),
            beat.hostname.clone().into(),
            beat.pid.into(),
            beat.role.clone().into(),
            beat.workers_configured.into(),
            beat.workers_alive.into(),
            beat.workers_busy.into(),
            beat.started_at.into(),
            beat.beat_at.into(),
        ])
        .on_conflict(
            OnConflict::column(WorkerProcesses::InstanceId)
                .update_columns([
                    WorkerProcesses::WorkersConfigured,
                    WorkerProcesses::WorkersAlive,
                    WorkerProcesses::WorkersBusy,
                    WorkerProcesses::BeatAt,
                ])
                .to_owned(),
        )
        .to_owned();
    db.execute(&statement).await?;
    Ok(())
}

/// Deletes the row of the process `instance_id`, which is shutting down; whether it had one.
pub async fn remove(db: &Db, instance_id: &str) -> StoreResult<bool> {
    let statement = Query::delete()
        .from_table(WorkerProcesses::Table)
        .and_where(Expr::col(WorkerProcesses::InstanceId).eq(instance_id))
        .to_owned();
    Ok(db.execute(&statement).await? > 0)
}

/// The processes that beat at `since` or later, freshest first.
pub async fn beaten_since(db: &Db, since: DateTime<Utc>) -> StoreResult<Vec<WorkerProcessBeat>> {
    let statement = Query::select()
        .columns(COLUMNS)
        .from(WorkerProcesses::Table)
        .and_where(Expr::col(WorkerProcesses::BeatAt).gte(since))
        .order_by(WorkerProcesses::BeatAt, Order::Desc)
        .order_by(WorkerProcesses::InstanceId, Order::Asc)
        .to_owned();
    db.fetch_all(&statement).await
}

/// Deletes the rows of processes that have not beaten since `before`; how many went.
pub async fn delete_not_beaten_since(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(WorkerProcesses::Table)
        .and_where(Expr::col(WorkerProcesses::BeatAt).lt(before))
        .to_owned();
    db.execute(&statement).await
}

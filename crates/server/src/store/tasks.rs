//! The `tasks` table: the embedded durable queue. A task is a row before it is work.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, Order, Query};

use super::{Alias, Db, StoreResult};

#[derive(Iden)]
enum Tasks {
    Table,
    Id,
    Kind,
    Owner,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    LeaseUntil,
    Result,
    Error,
    CreatedAt,
    StartedAt,
    FinishedAt,
    ProcessingMs,
}

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRecord {
    pub id: String,
    pub kind: String,
    pub owner: String,
    /// Sealed (encrypted) input; empty once the task has ended.
    pub payload: Vec<u8>,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_until: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub processing_ms: Option<i64>,
}

pub async fn insert(
    db: &Db,
    id: &str,
    kind: &str,
    owner: &str,
    payload: Vec<u8>,
    max_attempts: i64,
) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(Tasks::Table)
        .columns([
            Tasks::Id,
            Tasks::Kind,
            Tasks::Owner,
            Tasks::Payload,
            Tasks::Status,
            Tasks::MaxAttempts,
            Tasks::CreatedAt,
        ])
        .values_panic([
            id.into(),
            kind.into(),
            owner.into(),
            payload.into(),
            QUEUED.into(),
            max_attempts.into(),
            Utc::now().into(),
        ])
        .to_owned();
    db.execute(&statement).await.map(drop)
}

pub async fn find(db: &Db, id: &str) -> StoreResult<Option<TaskRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Tasks waiting for a worker.
pub async fn count_queued(db: &Db) -> StoreResult<i64> {
    let statement = Query::select()
        .expr_as(Expr::col(Tasks::Id).count(), Alias::Count)
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Status).eq(QUEUED))
        .to_owned();
    db.count(&statement).await
}

/// A task a worker may take: queued, or running under a lease that has expired (its
/// worker died) and with attempts left.
fn claimable(now: DateTime<Utc>) -> Cond {
    Cond::any().add(Expr::col(Tasks::Status).eq(QUEUED)).add(
        Cond::all()
            .add(Expr::col(Tasks::Status).eq(RUNNING))
            .add(Expr::col(Tasks::LeaseUntil).lt(now))
            .add(Expr::col(Tasks::Attempts).lt(Expr::col(Tasks::MaxAttempts))),
    )
}

/// Takes the oldest claimable task under a lease until `lease_until`. Safe when several
/// workers (or processes) claim at once: the update re-checks the condition, so only
/// one of them gets the row.
pub async fn claim_next(db: &Db, lease_until: DateTime<Utc>) -> StoreResult<Option<TaskRecord>> {
    let now = Utc::now();
    let oldest = Query::select()
        .column(Tasks::Id)
        .from(Tasks::Table)
        .cond_where(claimable(now))
        .order_by(Tasks::CreatedAt, Order::Asc)
        .limit(1)
        .to_owned();
    let statement = Query::update()
        .table(Tasks::Table)
        .values([
            (Tasks::Status, RUNNING.into()),
            (Tasks::Attempts, Expr::col(Tasks::Attempts).add(1)),
            (Tasks::LeaseUntil, lease_until.into()),
            (Tasks::StartedAt, now.into()),
        ])
        .and_where(Expr::col(Tasks::Id).in_subquery(oldest))
        .cond_where(claimable(now))
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Keeps a running task's lease alive. False when the task is no longer ours.
pub async fn extend_lease(db: &Db, id: &str, lease_until: DateTime<Utc>) -> StoreResult<bool> {
    let statement = Query::update()
        .table(Tasks::Table)
        .value(Tasks::LeaseUntil, lease_until)
        .and_where(Expr::col(Tasks::Id).eq(id))
        .and_where(Expr::col(Tasks::Status).eq(RUNNING))
        .to_owned();
    Ok(db.execute(&statement).await? == 1)
}

/// Ends a task; its sealed input is erased.
pub async fn finish(
    db: &Db,
    id: &str,
    status: &str,
    result: Option<String>,
    error: Option<String>,
    processing_ms: i64,
) -> StoreResult<()> {
    let statement = Query::update()
        .table(Tasks::Table)
        .values([
            (Tasks::Status, status.into()),
            (Tasks::Result, result.into()),
            (Tasks::Error, error.into()),
            (Tasks::Payload, Vec::<u8>::new().into()),
            (Tasks::LeaseUntil, Option::<DateTime<Utc>>::None.into()),
            (Tasks::FinishedAt, Utc::now().into()),
            (Tasks::ProcessingMs, processing_ms.into()),
        ])
        .and_where(Expr::col(Tasks::Id).eq(id))
        .to_owned();
    db.execute(&statement).await.map(drop)
}

/// Puts a task back in the queue after a failure that may pass.
pub async fn requeue(db: &Db, id: &str, error: &str) -> StoreResult<()> {
    let statement = Query::update()
        .table(Tasks::Table)
        .values([
            (Tasks::Status, QUEUED.into()),
            (Tasks::Error, error.into()),
            (Tasks::LeaseUntil, Option::<DateTime<Utc>>::None.into()),
        ])
        .and_where(Expr::col(Tasks::Id).eq(id))
        .to_owned();
    db.execute(&statement).await.map(drop)
}

/// Tasks whose worker died on every attempt end `failed` with the reason.
pub async fn fail_abandoned(db: &Db) -> StoreResult<u64> {
    let now = Utc::now();
    let statement = Query::update()
        .table(Tasks::Table)
        .values([
            (Tasks::Status, FAILED.into()),
            (Tasks::Error, "the worker stopped during every attempt (crash or restart)".into()),
            (Tasks::Payload, Vec::<u8>::new().into()),
            (Tasks::FinishedAt, now.into()),
        ])
        .and_where(Expr::col(Tasks::Status).eq(RUNNING))
        .and_where(Expr::col(Tasks::LeaseUntil).lt(now))
        .and_where(Expr::col(Tasks::Attempts).gte(Expr::col(Tasks::MaxAttempts)))
        .to_owned();
    db.execute(&statement).await
}

#[derive(sqlx::FromRow)]
struct Duration {
    processing_ms: Option<i64>,
}

/// Processing times of the most recent completed tasks of `kind`, for estimates.
pub async fn recent_processing_ms(db: &Db, kind: &str, limit: u64) -> StoreResult<Vec<i64>> {
    let statement = Query::select()
        .column(Tasks::ProcessingMs)
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Kind).eq(kind))
        .and_where(Expr::col(Tasks::Status).eq(COMPLETED))
        .order_by(Tasks::FinishedAt, Order::Desc)
        .limit(limit)
        .to_owned();
    let rows: Vec<Duration> = db.fetch_all(&statement).await?;
    Ok(rows.into_iter().filter_map(|row| row.processing_ms).collect())
}

//! The `tasks` table: the embedded durable queue. A task is a row before it is work.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, IntoIden, Order, Query};

use super::lease::{Claim, LeasedTable};
use super::{Alias, Db, Exec, StoreResult};

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
    Subject,
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
/// The kind name of enrollment tasks (see `queue::TaskKind`).
const ENROLL_KIND: &str = "enroll";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRecord {
    pub id: String,
    pub kind: String,
    pub owner: String,
    pub subject: Option<i64>,
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

/// The claim a worker holds on a task: its id and the attempt it runs.
pub type TaskClaim = Claim<String>;

fn leased() -> LeasedTable {
    LeasedTable::new(Tasks::Table, Tasks::Id, Tasks::Status, Tasks::Attempts, Tasks::LeaseUntil, RUNNING)
}

/// A task to store. `subject` is the person an enrollment is for, so that erasing them
/// also drops their photos still waiting in the queue.
pub struct NewTask<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub owner: &'a str,
    pub subject: Option<i64>,
    pub payload: Vec<u8>,
    pub max_attempts: i64,
}

pub async fn insert(db: &impl Exec, task: NewTask<'_>) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(Tasks::Table)
        .columns([
            Tasks::Id,
            Tasks::Kind,
            Tasks::Owner,
            Tasks::Subject,
            Tasks::Payload,
            Tasks::Status,
            Tasks::MaxAttempts,
            Tasks::CreatedAt,
        ])
        .values_panic([
            task.id.into(),
            task.kind.into(),
            task.owner.into(),
            task.subject.into(),
            task.payload.into(),
            QUEUED.into(),
            task.max_attempts.into(),
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

/// When the longest-waiting queued task was queued; `None` with none queued.
pub async fn oldest_queued_at(db: &Db) -> StoreResult<Option<DateTime<Utc>>> {
    #[derive(sqlx::FromRow)]
    struct Oldest {
        created_at: Option<DateTime<Utc>>,
    }
    let statement = Query::select()
        .expr_as(Expr::col(Tasks::CreatedAt).min(), sea_query::Alias::new("created_at"))
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Status).eq(QUEUED))
        .to_owned();
    let oldest: Option<Oldest> = db.fetch_optional(&statement).await?;
    Ok(oldest.and_then(|row| row.created_at))
}

/// A task a worker may take: queued, or running under a lease that has expired (its
/// worker died) and with attempts left.
fn claimable(now: DateTime<Utc>) -> Cond {
    Cond::any()
        .add(Expr::col(Tasks::Status).eq(QUEUED))
        .add(leased().expired(now).add(Expr::col(Tasks::Attempts).lt(Expr::col(Tasks::MaxAttempts))))
}

/// Takes the oldest claimable task under a lease until `lease_until`; safe when several
/// workers or processes claim at once (see [`super::lease`]).
pub async fn claim_next(db: &Db, lease_until: DateTime<Utc>) -> StoreResult<Option<TaskRecord>> {
    let now = Utc::now();
    let order = [Tasks::CreatedAt.into_iden()];
    let statement =
        leased().claim(claimable(now), &order, lease_until, vec![(Tasks::StartedAt.into_iden(), now.into())]);
    db.fetch_optional(&statement).await
}

/// Takes task `id` under a lease until `lease_until` if it is claimable (the broker
/// handed its message to this worker); `None` when it has finished, is held by a live
/// lease, or does not exist.
pub async fn claim_by_id(db: &Db, id: &str, lease_until: DateTime<Utc>) -> StoreResult<Option<TaskRecord>> {
    let now = Utc::now();
    let this_task = Cond::all().add(claimable(now)).add(Expr::col(Tasks::Id).eq(id));
    let statement = leased().claim(this_task, &[], lease_until, vec![(Tasks::StartedAt.into_iden(), now.into())]);
    db.fetch_optional(&statement).await
}

/// Keeps a running task's lease alive. False when the claim is lost.
pub async fn extend_lease(db: &impl Exec, claim: &TaskClaim, lease_until: DateTime<Utc>) -> StoreResult<bool> {
    Ok(db.execute(&leased().extend(claim, lease_until)).await? == 1)
}

/// True while `claim` holds; run first in a transaction of the task's writes, so they
/// commit only if the worker still owns the task (the row stays locked on PostgreSQL
/// until the commit, so the claim cannot be lost in between).
pub async fn confirm_claim(db: &impl Exec, claim: &TaskClaim) -> StoreResult<bool> {
    let touch = vec![(Tasks::Attempts.into_iden(), Expr::col(Tasks::Attempts).into())];
    Ok(db.execute(&leased().update_held(claim, touch)).await? == 1)
}

/// Ends a task; its sealed input is erased. False when the claim was lost (another
/// worker runs the task now), in which case nothing changed.
pub async fn finish(
    db: &Db,
    claim: &TaskClaim,
    status: &str,
    result: Option<String>,
    error: Option<String>,
    processing_ms: i64,
) -> StoreResult<bool> {
    let statement = leased().update_held(
        claim,
        vec![
            (Tasks::Status.into_iden(), status.into()),
            (Tasks::Result.into_iden(), result.into()),
            (Tasks::Error.into_iden(), error.into()),
            (Tasks::Payload.into_iden(), Vec::<u8>::new().into()),
            (Tasks::LeaseUntil.into_iden(), Option::<DateTime<Utc>>::None.into()),
            (Tasks::FinishedAt.into_iden(), Utc::now().into()),
            (Tasks::ProcessingMs.into_iden(), processing_ms.into()),
        ],
    );
    Ok(db.execute(&statement).await? == 1)
}

/// Puts a task back in the queue after a failure that may pass. False when the claim
/// was lost.
pub async fn requeue(db: &Db, claim: &TaskClaim, error: &str) -> StoreResult<bool> {
    let statement = leased().update_held(
        claim,
        vec![
            (Tasks::Status.into_iden(), QUEUED.into()),
            (Tasks::Error.into_iden(), error.into()),
            (Tasks::LeaseUntil.into_iden(), Option::<DateTime<Utc>>::None.into()),
        ],
    );
    Ok(db.execute(&statement).await? == 1)
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
        .cond_where(leased().expired(now))
        .and_where(Expr::col(Tasks::Attempts).gte(Expr::col(Tasks::MaxAttempts)))
        .to_owned();
    db.execute(&statement).await
}

/// Ends the enrollments of `user_id` that have not finished, erasing their photos: the
/// person's biometric data was erased or they were deactivated. A worker running one
/// loses its claim and stores nothing.
pub async fn cancel_enrollments(db: &impl Exec, user_id: i64, reason: &str) -> StoreResult<u64> {
    let statement = Query::update()
        .table(Tasks::Table)
        .values([
            (Tasks::Status, FAILED.into()),
            (Tasks::Error, reason.into()),
            (Tasks::Payload, Vec::<u8>::new().into()),
            (Tasks::LeaseUntil, Option::<DateTime<Utc>>::None.into()),
            (Tasks::FinishedAt, Utc::now().into()),
        ])
        .and_where(Expr::col(Tasks::Kind).eq(ENROLL_KIND))
        .and_where(Expr::col(Tasks::Subject).eq(user_id))
        .and_where(Expr::col(Tasks::Status).is_in([QUEUED, RUNNING]))
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

/// How many tasks wait, per kind (kinds with none are absent).
pub async fn queued_per_kind(db: &Db) -> StoreResult<Vec<(String, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        kind: String,
        count: i64,
    }
    let statement = Query::select()
        .column(Tasks::Kind)
        .expr_as(Expr::col(Tasks::Id).count(), Alias::Count)
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Status).eq(QUEUED))
        .group_by_col(Tasks::Kind)
        .to_owned();
    let rows: Vec<Row> = db.fetch_all(&statement).await?;
    Ok(rows.into_iter().map(|row| (row.kind, row.count)).collect())
}

/// Tasks that ended, per kind and status (`completed`, `failed`), with their mean
/// processing time: what the task table remembers across restarts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ended {
    pub kind: String,
    pub status: String,
    pub count: i64,
    pub mean_processing_ms: Option<f64>,
}

pub async fn ended_per_kind(db: &Db) -> StoreResult<Vec<Ended>> {
    let statement = Query::select()
        .columns([Tasks::Kind, Tasks::Status])
        .expr_as(Expr::col(Tasks::Id).count(), Alias::Count)
        .expr_as(
            Expr::cust(r#"AVG(CAST("processing_ms" AS DOUBLE PRECISION))"#),
            sea_query::Alias::new("mean_processing_ms"),
        )
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Status).is_in([COMPLETED, FAILED]))
        .group_by_col(Tasks::Kind)
        .group_by_col(Tasks::Status)
        .to_owned();
    db.fetch_all(&statement).await
}

/// Deletes the tasks that ended before `cutoff` (queued and running ones stay); how many
/// went.
pub async fn delete_ended_before(db: &Db, cutoff: DateTime<Utc>) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(Tasks::Table)
        .and_where(Expr::col(Tasks::Status).is_in([COMPLETED, FAILED]))
        .and_where(Expr::col(Tasks::FinishedAt).lt(cutoff))
        .to_owned();
    db.execute(&statement).await
}

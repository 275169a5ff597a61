//! The `arrival_evidence` table: the sealed face crop of a face log.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum ArrivalEvidence {
    Table,
    AttendanceId,
    Crop,
    CreatedAt,
}

#[derive(Iden)]
enum AttendanceLogs {
    Table,
    Id,
    UserId,
}

/// Rows a purge deletes per statement: SQLite's write lock is held that long, no longer.
const PURGE_BATCH: u64 = 1_000;

/// Keeps the sealed crop of log `attendance_id`, in the log's transaction.
pub async fn insert(db: &impl Exec, attendance_id: i64, sealed_crop: Vec<u8>, now: DateTime<Utc>) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(ArrivalEvidence::Table)
        .columns([ArrivalEvidence::AttendanceId, ArrivalEvidence::Crop, ArrivalEvidence::CreatedAt])
        .values_panic([attendance_id.into(), sealed_crop.into(), now.into()])
        .to_owned();
    db.execute(&statement).await.map(drop)
}

#[derive(sqlx::FromRow)]
pub struct SealedCrop {
    pub crop: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// The sealed crop of log `attendance_id`, if one is kept.
pub async fn find(db: &impl Exec, attendance_id: i64) -> StoreResult<Option<SealedCrop>> {
    let statement = Query::select()
        .columns([ArrivalEvidence::Crop, ArrivalEvidence::CreatedAt])
        .from(ArrivalEvidence::Table)
        .and_where(Expr::col(ArrivalEvidence::AttendanceId).eq(attendance_id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// When the crop of log `attendance_id` was kept, if one is (without reading it).
pub async fn kept_at(db: &impl Exec, attendance_id: i64) -> StoreResult<Option<DateTime<Utc>>> {
    #[derive(sqlx::FromRow)]
    struct Kept {
        created_at: DateTime<Utc>,
    }
    let statement = Query::select()
        .column(ArrivalEvidence::CreatedAt)
        .from(ArrivalEvidence::Table)
        .and_where(Expr::col(ArrivalEvidence::AttendanceId).eq(attendance_id))
        .to_owned();
    Ok(db.fetch_optional::<Kept>(&statement).await?.map(|kept| kept.created_at))
}

/// Deletes the crops kept before `cutoff`, a batch per statement; how many went.
pub async fn purge_kept_before(db: &Db, cutoff: DateTime<Utc>) -> StoreResult<u64> {
    let mut purged = 0;
    loop {
        let batch = Query::select()
            .column(ArrivalEvidence::AttendanceId)
            .from(ArrivalEvidence::Table)
            .and_where(Expr::col(ArrivalEvidence::CreatedAt).lt(cutoff))
            .limit(PURGE_BATCH)
            .to_owned();
        let statement = Query::delete()
            .from_table(ArrivalEvidence::Table)
            .and_where(Expr::col(ArrivalEvidence::AttendanceId).in_subquery(batch))
            .to_owned();
        let deleted = db.execute(&statement).await?;
        purged += deleted;
        if deleted < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

/// Deletes every crop of person `user_id`'s logs (their biometric data is being erased).
pub async fn erase_for_user(db: &impl Exec, user_id: i64) -> StoreResult<u64> {
    let logs = Query::select()
        .column(AttendanceLogs::Id)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .to_owned();
    let statement = Query::delete()
        .from_table(ArrivalEvidence::Table)
        .and_where(Expr::col(ArrivalEvidence::AttendanceId).in_subquery(logs))
        .to_owned();
    db.execute(&statement).await
}

//! The `attendance_logs` table.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, OnConflict, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum AttendanceLogs {
    Table,
    UserId,
    Timestamp,
    CameraId,
    Location,
    Confidence,
    Similarity,
    AntiSpoofScore,
    VerificationTime,
    Source,
    TaskId,
    Details,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttendanceRecord {
    pub id: i64,
    pub user_id: i64,
    pub timestamp: DateTime<Utc>,
    pub camera_id: Option<String>,
    pub location: Option<String>,
    pub confidence: Option<f64>,
    pub similarity: Option<f64>,
    pub anti_spoof_score: Option<f64>,
    pub verification_time: Option<f64>,
    pub source: String,
    pub task_id: Option<String>,
    pub details: String,
}

/// What a new log records about one arrival (whose it is goes beside it).
#[derive(Debug, Clone)]
pub struct NewAttendance {
    pub timestamp: DateTime<Utc>,
    pub camera_id: Option<String>,
    pub location: Option<String>,
    pub confidence: Option<f64>,
    pub similarity: Option<f64>,
    pub anti_spoof_score: Option<f64>,
    pub verification_time: Option<f64>,
    /// `verify`, `bulk_verify`, `webhook` or `manual`.
    pub source: &'static str,
    pub task_id: Option<String>,
    pub details: serde_json::Value,
}

/// Inserts `user_id`'s log. `None` when this task already logged this person (a re-run).
pub async fn insert(db: &impl Exec, user_id: i64, log: &NewAttendance) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::insert()
        .into_table(AttendanceLogs::Table)
        .columns([
            AttendanceLogs::UserId,
            AttendanceLogs::Timestamp,
            AttendanceLogs::CameraId,
            AttendanceLogs::Location,
            AttendanceLogs::Confidence,
            AttendanceLogs::Similarity,
            AttendanceLogs::AntiSpoofScore,
            AttendanceLogs::VerificationTime,
            AttendanceLogs::Source,
            AttendanceLogs::TaskId,
            AttendanceLogs::Details,
        ])
        .values_panic([
            user_id.into(),
            log.timestamp.into(),
            log.camera_id.clone().into(),
            log.location.clone().into(),
            log.confidence.into(),
            log.similarity.into(),
            log.anti_spoof_score.into(),
            log.verification_time.into(),
            log.source.into(),
            log.task_id.clone().into(),
            log.details.to_string().into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

pub async fn find_for_task(db: &impl Exec, task_id: &str, user_id: i64) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::TaskId).eq(task_id))
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// The person's most recent log at or after `since`.
pub async fn latest_since(db: &impl Exec, user_id: i64, since: DateTime<Utc>) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .and_where(Expr::col(AttendanceLogs::Timestamp).gte(since))
        .order_by(AttendanceLogs::Timestamp, Order::Desc)
        .limit(1)
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Every log of a person, oldest first.
pub async fn for_user(db: &Db, user_id: i64) -> StoreResult<Vec<AttendanceRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .order_by(AttendanceLogs::Timestamp, Order::Asc)
        .to_owned();
    db.fetch_all(&statement).await
}

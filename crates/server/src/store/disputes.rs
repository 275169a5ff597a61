//! The `attendance_disputes` table.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, OnConflict, Order, Query};

use super::users::Users;
use super::{Alias, Db, Exec, StoreResult};

#[derive(Iden)]
enum AttendanceDisputes {
    Table,
    Id,
    UserId,
    Kind,
    AttendanceId,
    ClaimedAt,
    Reason,
    Status,
    CreatedAt,
    ResolvedAt,
    ResolvedBy,
    ResolutionNote,
    ResultingAttendanceId,
}

/// "This log is not me": accepted, the log is voided.
pub const NOT_ME: &str = "not_me";
/// "I was there and no log says so": accepted, a manual mark is made.
pub const MISSED_ARRIVAL: &str = "missed_arrival";
pub const OPEN: &str = "open";
pub const ACCEPTED: &str = "accepted";
pub const REJECTED: &str = "rejected";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DisputeRecord {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub attendance_id: Option<i64>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    pub resulting_attendance_id: Option<i64>,
}

/// A dispute with the person who filed it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DisputeListing {
    #[sqlx(flatten)]
    pub record: DisputeRecord,
    pub employee_id: String,
    pub first_name: String,
    pub last_name: String,
    pub department: String,
}

pub struct NewDispute<'a> {
    pub user_id: i64,
    pub kind: &'static str,
    pub attendance_id: Option<i64>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub reason: &'a str,
}

/// Files a dispute; `None` when the log has an open dispute already.
pub async fn insert(db: &impl Exec, dispute: NewDispute<'_>) -> StoreResult<Option<DisputeRecord>> {
    let statement = Query::insert()
        .into_table(AttendanceDisputes::Table)
        .columns([
            AttendanceDisputes::UserId,
            AttendanceDisputes::Kind,
            AttendanceDisputes::AttendanceId,
            AttendanceDisputes::ClaimedAt,
            AttendanceDisputes::Reason,
            AttendanceDisputes::CreatedAt,
        ])
        .values_panic([
            dispute.user_id.into(),
            dispute.kind.into(),
            dispute.attendance_id.into(),
            dispute.claimed_at.into(),
            dispute.reason.into(),
            Utc::now().into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

pub async fn find(db: &impl Exec, id: i64) -> StoreResult<Option<DisputeRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceDisputes::Table)
        .and_where(Expr::col(AttendanceDisputes::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// The open dispute of log `attendance_id`, if any.
pub async fn open_for_log(db: &impl Exec, attendance_id: i64) -> StoreResult<Option<DisputeRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceDisputes::Table)
        .and_where(Expr::col(AttendanceDisputes::AttendanceId).eq(attendance_id))
        .and_where(Expr::col(AttendanceDisputes::Status).eq(OPEN))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// What a resolution records.
pub struct Resolution<'a> {
    /// [`ACCEPTED`] or [`REJECTED`].
    pub status: &'static str,
    pub by: &'a str,
    pub note: Option<&'a str>,
}

/// Resolves dispute `id` if it is open; `None` when it is not (resolved before, or no
/// such dispute). In a transaction, the update is the claim that no other resolution of
/// the same dispute can make.
pub async fn resolve(db: &impl Exec, id: i64, resolution: Resolution<'_>) -> StoreResult<Option<DisputeRecord>> {
    let statement = Query::update()
        .table(AttendanceDisputes::Table)
        .values([
            (AttendanceDisputes::Status, resolution.status.into()),
            (AttendanceDisputes::ResolvedAt, Utc::now().into()),
            (AttendanceDisputes::ResolvedBy, resolution.by.into()),
            (AttendanceDisputes::ResolutionNote, resolution.note.into()),
        ])
        .and_where(Expr::col(AttendanceDisputes::Id).eq(id))
        .and_where(Expr::col(AttendanceDisputes::Status).eq(OPEN))
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Records the log an accepted missed arrival made.
pub async fn set_resulting_log(db: &impl Exec, id: i64, attendance_id: i64) -> StoreResult<Option<DisputeRecord>> {
    let statement = Query::update()
        .table(AttendanceDisputes::Table)
        .value(AttendanceDisputes::ResultingAttendanceId, attendance_id)
        .and_where(Expr::col(AttendanceDisputes::Id).eq(id))
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Which disputes to list.
#[derive(Debug, Clone, Default)]
pub struct DisputeFilter {
    pub user_id: Option<i64>,
    pub status: Option<&'static str>,
    pub kind: Option<&'static str>,
}

/// One page of disputes, newest first, and how many match.
pub async fn list(db: &Db, filter: &DisputeFilter, limit: u64, offset: u64) -> StoreResult<(Vec<DisputeListing>, i64)> {
    let dispute = |column| (AttendanceDisputes::Table, column);
    let mut condition = Cond::all();
    if let Some(user_id) = filter.user_id {
        condition = condition.add(Expr::col(dispute(AttendanceDisputes::UserId)).eq(user_id));
    }
    if let Some(status) = filter.status {
        condition = condition.add(Expr::col(dispute(AttendanceDisputes::Status)).eq(status));
    }
    if let Some(kind) = filter.kind {
        condition = condition.add(Expr::col(dispute(AttendanceDisputes::Kind)).eq(kind));
    }
    let filer = Expr::col(dispute(AttendanceDisputes::UserId)).equals((Users::Table, Users::Id));
    let page = Query::select()
        .column((AttendanceDisputes::Table, sea_query::Asterisk))
        .columns([
            (Users::Table, Users::EmployeeId),
            (Users::Table, Users::FirstName),
            (Users::Table, Users::LastName),
            (Users::Table, Users::Department),
        ])
        .from(AttendanceDisputes::Table)
        .inner_join(Users::Table, filer)
        .cond_where(condition.clone())
        .order_by(dispute(AttendanceDisputes::Id), Order::Desc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let count = Query::select()
        .expr_as(Expr::col(dispute(AttendanceDisputes::Id)).count(), Alias::Count)
        .from(AttendanceDisputes::Table)
        .cond_where(condition)
        .to_owned();
    Ok((db.fetch_all(&page).await?, db.count(&count).await?))
}

/// Deletes the disputes about the logs `log_ids` selects (disputed or made by them).
pub async fn delete_about_logs(db: &impl Exec, log_ids: sea_query::SelectStatement) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(AttendanceDisputes::Table)
        .cond_where(
            Cond::any()
                .add(Expr::col(AttendanceDisputes::AttendanceId).in_subquery(log_ids.clone()))
                .add(Expr::col(AttendanceDisputes::ResultingAttendanceId).in_subquery(log_ids)),
        )
        .to_owned();
    db.execute(&statement).await
}

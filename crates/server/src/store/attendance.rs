//! The `attendance_logs` table.

use chrono::{DateTime, Utc};
use sea_query::{Alias as SqlAlias, Cond, Expr, Iden, OnConflict, Order, Query, SimpleExpr};

use super::attendance_counts;
use super::local_time::{LocalSeconds, UtcOffsets};
use super::users::{UserRecord, Users};
use super::{Alias, Db, Exec, StoreResult};

#[derive(Iden)]
pub(super) enum AttendanceLogs {
    Table,
    Id,
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
    Status,
    VoidedAt,
    VoidedBy,
    VoidReason,
}

/// A log that counts; a voided one stays visible but counts nowhere.
pub const VALID: &str = "valid";
pub const VOIDED: &str = "voided";

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
    /// [`VALID`] or [`VOIDED`].
    pub status: String,
    pub voided_at: Option<DateTime<Utc>>,
    pub voided_by: Option<String>,
    pub void_reason: Option<String>,
}

impl AttendanceRecord {
    pub fn is_voided(&self) -> bool {
        self.status == VOIDED
    }
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

impl NewAttendance {
    /// An arrival entered by hand at `timestamp`: no camera, no scores; `details` say why
    /// and by whom.
    pub fn manual(timestamp: DateTime<Utc>, details: serde_json::Value) -> Self {
        Self {
            timestamp,
            camera_id: None,
            location: None,
            confidence: None,
            similarity: None,
            anti_spoof_score: None,
            verification_time: None,
            source: "manual",
            task_id: None,
            details,
        }
    }
}

/// Inserts `user_id`'s log. `None` when this task already logged this person (a re-run).
pub async fn insert(db: &impl Exec, user_id: i64, log: &NewAttendance) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::insert()
        .into_table(AttendanceLogs::Table)
        .columns(insert_columns())
        .values_panic(insert_values(user_id, log))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Inserts many logs in one statement, with no cooldown check and no events: for demo
/// data and imports of history. Keep batches to about a thousand rows.
pub async fn insert_many(db: &impl Exec, logs: &[(i64, NewAttendance)]) -> StoreResult<u64> {
    let mut statement = Query::insert();
    statement.into_table(AttendanceLogs::Table).columns(insert_columns());
    for (user_id, log) in logs {
        statement.values_panic(insert_values(*user_id, log));
    }
    db.execute(&statement).await
}

fn insert_columns() -> [AttendanceLogs; 11] {
    [
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
    ]
}

fn insert_values(user_id: i64, log: &NewAttendance) -> [SimpleExpr; 11] {
    [
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
    ]
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

/// The person's most recent valid log from `since` to `until` (both inclusive).
pub async fn latest_between(
    db: &impl Exec,
    user_id: i64,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .and_where(Expr::col(AttendanceLogs::Timestamp).gte(since))
        .and_where(Expr::col(AttendanceLogs::Timestamp).lte(until))
        .and_where(Expr::col(AttendanceLogs::Status).eq(VALID))
        .order_by(AttendanceLogs::Timestamp, Order::Desc)
        .limit(1)
        .to_owned();
    db.fetch_optional(&statement).await
}

pub async fn find(db: &impl Exec, id: i64) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// How many valid logs the person has from `from` to `to` (exclusive).
pub async fn count_valid_between(
    db: &impl Exec,
    user_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<i64> {
    let statement = Query::select()
        .expr_as(Expr::col(AttendanceLogs::Id).count(), Alias::Count)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .and_where(Expr::col(AttendanceLogs::Timestamp).gte(from))
        .and_where(Expr::col(AttendanceLogs::Timestamp).lt(to))
        .and_where(Expr::col(AttendanceLogs::Status).eq(VALID))
        .to_owned();
    db.count(&statement).await
}

/// The first and the last log's timestamps; `None` when there are no logs.
pub async fn time_span(db: &impl Exec) -> StoreResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    #[derive(sqlx::FromRow)]
    struct Span {
        first: Option<DateTime<Utc>>,
        last: Option<DateTime<Utc>>,
    }
    let timestamp = || Expr::col(AttendanceLogs::Timestamp);
    let statement = Query::select()
        .expr_as(timestamp().min(), SqlAlias::new("first"))
        .expr_as(timestamp().max(), SqlAlias::new("last"))
        .from(AttendanceLogs::Table)
        .to_owned();
    let span = db.fetch_optional::<Span>(&statement).await?;
    Ok(span.and_then(|span| span.first.zip(span.last)))
}

/// The timestamps of the person's valid logs, oldest first.
pub async fn valid_times_of(db: &impl Exec, user_id: i64) -> StoreResult<Vec<DateTime<Utc>>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        timestamp: DateTime<Utc>,
    }
    let statement = Query::select()
        .column(AttendanceLogs::Timestamp)
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(AttendanceLogs::UserId).eq(user_id))
        .and_where(Expr::col(AttendanceLogs::Status).eq(VALID))
        .order_by(AttendanceLogs::Timestamp, Order::Asc)
        .to_owned();
    Ok(db.fetch_all::<Row>(&statement).await?.into_iter().map(|row| row.timestamp).collect())
}

/// Voids log `id` if it is valid; `None` when it is not (already voided, or no such log).
pub async fn void(
    db: &impl Exec,
    id: i64,
    voided_by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> StoreResult<Option<AttendanceRecord>> {
    let statement = Query::update()
        .table(AttendanceLogs::Table)
        .values([
            (AttendanceLogs::Status, VOIDED.into()),
            (AttendanceLogs::VoidedAt, at.into()),
            (AttendanceLogs::VoidedBy, voided_by.into()),
            (AttendanceLogs::VoidReason, reason.into()),
        ])
        .and_where(Expr::col(AttendanceLogs::Id).eq(id))
        .and_where(Expr::col(AttendanceLogs::Status).eq(VALID))
        .returning_all()
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

/// A log with the person it belongs to, as the logs listing shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttendanceListing {
    #[sqlx(flatten)]
    pub record: AttendanceRecord,
    pub employee_id: String,
    pub first_name: String,
    pub last_name: String,
    pub department: String,
}

impl AttendanceListing {
    /// `record` as the listing shows it, `user` being the person it belongs to.
    pub fn of(record: AttendanceRecord, user: &UserRecord) -> Self {
        Self {
            record,
            employee_id: user.employee_id.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            department: user.department.clone(),
        }
    }
}

/// Which logs to list; every field that is set narrows the list.
#[derive(Debug, Clone, Default)]
pub struct AttendanceFilter {
    pub user_id: Option<i64>,
    pub employee_id: Option<String>,
    /// Any of these people.
    pub employee_ids: Option<Vec<String>>,
    pub department: Option<String>,
    /// The reader's own department, when they may read only that one (faculty): kept
    /// apart from `department` so that both apply.
    pub department_of_reader: Option<String>,
    /// Only the people expected to attend: active faculty and students.
    pub expected_attendees: bool,
    pub camera_id: Option<String>,
    /// Stored sources, any of which matches (`verify` and `bulk_verify` are both face logs).
    pub sources: Option<Vec<&'static str>>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    /// [`VALID`] or [`VOIDED`]; `None`: both.
    pub status: Option<&'static str>,
}

/// The roles of the people expected to attend (admins run the service).
pub const ATTENDEE_ROLES: [&str; 2] = ["faculty", "student"];

impl AttendanceFilter {
    fn condition(&self) -> Cond {
        let log = |column| (AttendanceLogs::Table, column);
        let mut condition = self.people_condition();
        if let Some(user_id) = self.user_id {
            condition = condition.add(Expr::col(log(AttendanceLogs::UserId)).eq(user_id));
        }
        if let Some(camera_id) = &self.camera_id {
            condition = condition.add(Expr::col(log(AttendanceLogs::CameraId)).eq(camera_id.as_str()));
        }
        if let Some(sources) = &self.sources {
            condition = condition.add(Expr::col(log(AttendanceLogs::Source)).is_in(sources.iter().copied()));
        }
        if let Some(from) = self.from {
            condition = condition.add(Expr::col(log(AttendanceLogs::Timestamp)).gte(from));
        }
        if let Some(to) = self.to {
            condition = condition.add(Expr::col(log(AttendanceLogs::Timestamp)).lt(to));
        }
        if let Some(status) = self.status {
            condition = condition.add(Expr::col(log(AttendanceLogs::Status)).eq(status));
        }
        condition
    }

    /// The part of the filter that selects people (columns of `users`).
    pub(super) fn people_condition(&self) -> Cond {
        let user = |column| (Users::Table, column);
        let mut condition = Cond::all();
        if let Some(user_id) = self.user_id {
            condition = condition.add(Expr::col(user(Users::Id)).eq(user_id));
        }
        if let Some(employee_id) = &self.employee_id {
            condition = condition.add(Expr::col(user(Users::EmployeeId)).eq(employee_id.as_str()));
        }
        if let Some(employee_ids) = &self.employee_ids {
            condition =
                condition.add(Expr::col(user(Users::EmployeeId)).is_in(employee_ids.iter().map(String::as_str)));
        }
        if let Some(department) = &self.department {
            condition = condition.add(Expr::col(user(Users::Department)).eq(department.as_str()));
        }
        if let Some(department) = &self.department_of_reader {
            condition = condition.add(Expr::col(user(Users::Department)).eq(department.as_str()));
        }
        if self.expected_attendees {
            condition = condition
                .add(Expr::col(user(Users::IsActive)).eq(true))
                .add(Expr::col(user(Users::Role)).is_in(ATTENDEE_ROLES));
        }
        condition
    }
}

/// One page of logs, newest first (ties by id, newest first), and how many match. The
/// order is served by the `attendance_logs_time_id` index.
/// Where a page of the listing starts: after `offset` logs, or after a given log (keyset
/// paging, which costs the same at any depth).
#[derive(Debug, Clone, Copy)]
pub enum PageStart {
    Offset(u64),
    /// After the log of this timestamp and id, in the listing's order.
    After {
        timestamp: DateTime<Utc>,
        id: i64,
    },
}

/// A page of the logs `filter` matches, newest first (ties: the higher id first), and how
/// many logs it matches in all.
pub async fn list(
    db: &Db,
    filter: &AttendanceFilter,
    limit: u64,
    start: PageStart,
) -> StoreResult<(Vec<AttendanceListing>, i64)> {
    let log = |column| Expr::col((AttendanceLogs::Table, column));
    let mut page = listing_query();
    page.cond_where(filter.condition())
        .order_by((AttendanceLogs::Table, AttendanceLogs::Timestamp), Order::Desc)
        .order_by((AttendanceLogs::Table, AttendanceLogs::Id), Order::Desc)
        .limit(limit);
    match start {
        PageStart::Offset(offset) => {
            page.offset(offset);
        }
        PageStart::After { timestamp, id } => {
            let position = Expr::tuple([log(AttendanceLogs::Timestamp).into(), log(AttendanceLogs::Id).into()]);
            page.and_where(position.lt(Expr::tuple([timestamp.into(), id.into()])));
        }
    }
    let count = Query::select()
        .expr_as(Expr::col((AttendanceLogs::Table, AttendanceLogs::Id)).count(), Alias::Count)
        .from(AttendanceLogs::Table)
        .inner_join(Users::Table, owner_of_log())
        .cond_where(filter.condition())
        .to_owned();
    Ok((db.fetch_all(&page).await?, db.count(&count).await?))
}

/// Log `id` with the names of its person.
pub async fn find_listing(db: &Db, id: i64) -> StoreResult<Option<AttendanceListing>> {
    let statement = listing_query().and_where(Expr::col((AttendanceLogs::Table, AttendanceLogs::Id)).eq(id)).to_owned();
    db.fetch_optional(&statement).await
}

/// Logs with the names of their people, for [`AttendanceListing`].
fn listing_query() -> sea_query::SelectStatement {
    Query::select()
        .column((AttendanceLogs::Table, sea_query::Asterisk))
        .columns([
            (Users::Table, Users::EmployeeId),
            (Users::Table, Users::FirstName),
            (Users::Table, Users::LastName),
            (Users::Table, Users::Department),
        ])
        .from(AttendanceLogs::Table)
        .inner_join(Users::Table, owner_of_log())
        .to_owned()
}

pub(super) fn owner_of_log() -> SimpleExpr {
    Expr::col((AttendanceLogs::Table, AttendanceLogs::UserId)).equals((Users::Table, Users::Id))
}

/// How [`tally`] groups valid logs; several groupings combine (e.g. department and day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// The local day ([`Tally::day`]).
    Day,
    /// The local hour of the day ([`Tally::hour`]).
    Hour,
    Department,
    /// The person ([`Tally::user_id`]).
    Person,
}

/// One group of valid logs. Columns of groupings not asked for are `None`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tally {
    /// Local day, as days since 1970-01-01 ([`super::local_time::day_to_date`]).
    pub day: Option<i64>,
    /// Local hour, 0–23.
    pub hour: Option<i64>,
    pub department: Option<String>,
    pub user_id: Option<i64>,
    /// Logs in the group.
    pub attendances: i64,
    /// Distinct people in the group.
    pub persons: i64,
    /// Distinct (person, local day) pairs in the group: person-days present.
    pub person_days: i64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

/// What [`tally`] counts beyond logs and people.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting<'a> {
    /// Only logs of these local weekdays (0 = Monday … 6 = Sunday).
    pub weekdays: Option<&'a [u32]>,
    /// Count [`Tally::person_days`] (a distinct count over every log's local day: the
    /// costly measure, left at 0 unless asked for).
    pub person_days: bool,
    /// Count [`Tally::persons`] (left at 0 unless asked for).
    pub persons: bool,
}

impl Counting<'static> {
    /// Logs and distinct people.
    pub fn persons() -> Self {
        Self { persons: true, ..Self::default() }
    }
}

/// Counts of the valid logs that `filter` selects, grouped in the database (no rows are
/// loaded): one [`Tally`] per group, or one for everything when `groups` is empty. Days
/// and hours are local by `offsets`, which must cover the filter's time range.
///
/// A range of whole local days is answered from the counts kept as logs are written
/// ([`super::attendance_counts`]) where they know enough, else from the logs.
pub async fn tally(
    db: &Db,
    filter: &AttendanceFilter,
    offsets: &UtcOffsets,
    counting: Counting<'_>,
    groups: &[Grouping],
) -> StoreResult<Vec<Tally>> {
    let whole_days = filter
        .from
        .zip(filter.to)
        .and_then(|(from, to)| Some((offsets.day_starting_at(from)?, offsets.day_starting_at(to)?)));
    match whole_days {
        Some(days) if attendance_counts::can_answer(filter, counting, groups) => {
            attendance_counts::tally(db, filter, days, counting, groups).await
        }
        _ => tally_from_logs(db, filter, offsets, counting, groups).await,
    }
}

/// [`tally`] counted from the logs themselves.
pub async fn tally_from_logs(
    db: &Db,
    filter: &AttendanceFilter,
    offsets: &UtcOffsets,
    counting: Counting<'_>,
    groups: &[Grouping],
) -> StoreResult<Vec<Tally>> {
    let local = LocalSeconds::of(db.backend(), r#""attendance_logs"."timestamp""#, offsets);
    let user_column = || Expr::col((AttendanceLogs::Table, AttendanceLogs::UserId));
    // One text value per person and day (`||` makes text of numbers on both backends).
    let person_day = format!(r#""attendance_logs"."user_id" || '/' || {}"#, local.day_sql());
    let mut statement = Query::select();
    statement
        .from(AttendanceLogs::Table)
        .inner_join(Users::Table, owner_of_log())
        .cond_where(AttendanceFilter { status: Some(VALID), ..filter.clone() }.condition())
        .expr_as(Expr::col((AttendanceLogs::Table, AttendanceLogs::Id)).count(), SqlAlias::new("attendances"))
        .expr_as(
            if counting.persons { user_column().count_distinct() } else { Expr::cust("CAST(0 AS BIGINT)") },
            SqlAlias::new("persons"),
        )
        .expr_as(
            Expr::cust(if counting.person_days {
                format!("COUNT(DISTINCT {person_day})")
            } else {
                "CAST(0 AS BIGINT)".into()
            }),
            SqlAlias::new("person_days"),
        )
        .expr_as(Expr::col((AttendanceLogs::Table, AttendanceLogs::Timestamp)).min(), SqlAlias::new("first_at"))
        .expr_as(Expr::col((AttendanceLogs::Table, AttendanceLogs::Timestamp)).max(), SqlAlias::new("last_at"));
    if let Some(weekdays) = counting.weekdays {
        let listed = weekdays.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        // 1970-01-01, local day 0, was a Thursday (weekday 3).
        statement.and_where(Expr::cust(format!("(({}) + 3) % 7 IN ({listed})", local.day_sql())));
    }
    let null_integer = || Expr::cust("CAST(NULL AS BIGINT)");
    let columns: [(Grouping, &str, SimpleExpr, SimpleExpr); 4] = [
        (Grouping::Day, "day", local.day(), null_integer()),
        (Grouping::Hour, "hour", local.hour(), null_integer()),
        (
            Grouping::Department,
            "department",
            Expr::col((Users::Table, Users::Department)).into(),
            Expr::cust("CAST(NULL AS TEXT)"),
        ),
        (Grouping::Person, "user_id", user_column().into(), null_integer()),
    ];
    for (grouping, name, grouped, absent) in columns {
        if groups.contains(&grouping) {
            statement.expr_as(grouped.clone(), SqlAlias::new(name)).add_group_by([grouped]);
        } else {
            statement.expr_as(absent, SqlAlias::new(name));
        }
    }
    db.fetch_all(&statement).await
}

/// How many people `filter` selects, per department (its log columns are ignored).
pub async fn people_per_department(db: &Db, filter: &AttendanceFilter) -> StoreResult<Vec<(String, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        department: String,
        people: i64,
    }
    let statement = Query::select()
        .column((Users::Table, Users::Department))
        .expr_as(Expr::col((Users::Table, Users::Id)).count(), SqlAlias::new("people"))
        .from(Users::Table)
        .cond_where(filter.people_condition())
        .group_by_col((Users::Table, Users::Department))
        .to_owned();
    let rows: Vec<Row> = db.fetch_all(&statement).await?;
    Ok(rows.into_iter().map(|row| (row.department, row.people)).collect())
}

/// The people `filter` selects (its log columns are ignored), by department and
/// employee id; at most `limit`.
pub async fn people(db: &Db, filter: &AttendanceFilter, limit: u64) -> StoreResult<Vec<UserRecord>> {
    let statement = Query::select()
        .column((Users::Table, sea_query::Asterisk))
        .from(Users::Table)
        .cond_where(filter.people_condition())
        .order_by((Users::Table, Users::Department), Order::Asc)
        .order_by((Users::Table, Users::EmployeeId), Order::Asc)
        .limit(limit)
        .to_owned();
    db.fetch_all(&statement).await
}

/// Up to `limit` logs of `filter` in time order (ties by id), those after `after` (the
/// timestamp and id of the last log of the previous call): a range read in pages of a
/// bounded size, however many logs it holds.
pub async fn chronological(
    db: &Db,
    filter: &AttendanceFilter,
    after: Option<(DateTime<Utc>, i64)>,
    limit: u64,
) -> StoreResult<Vec<AttendanceListing>> {
    let mut condition = filter.condition();
    if let Some((timestamp, id)) = after {
        let log = |column| Expr::col((AttendanceLogs::Table, column));
        condition = condition.add(
            Cond::any()
                .add(log(AttendanceLogs::Timestamp).gt(timestamp))
                .add(log(AttendanceLogs::Timestamp).eq(timestamp).and(log(AttendanceLogs::Id).gt(id))),
        );
    }
    let page = listing_query()
        .cond_where(condition)
        .order_by((AttendanceLogs::Table, AttendanceLogs::Timestamp), Order::Asc)
        .order_by((AttendanceLogs::Table, AttendanceLogs::Id), Order::Asc)
        .limit(limit)
        .to_owned();
    db.fetch_all(&page).await
}

/// Logs a deletion removes per transaction: SQLite's write lock is held that long, no longer.
const DELETE_BATCH: u64 = 5_000;

/// Deletes the logs timestamped before `cutoff`, with the disputes about them (their face
/// crops go with them), a batch per transaction; how many logs went.
pub async fn delete_before(db: &Db, cutoff: DateTime<Utc>) -> StoreResult<u64> {
    let mut deleted = 0;
    loop {
        let batch = || {
            Query::select()
                .column(AttendanceLogs::Id)
                .from(AttendanceLogs::Table)
                .and_where(Expr::col(AttendanceLogs::Timestamp).lt(cutoff))
                .order_by(AttendanceLogs::Id, Order::Asc)
                .limit(DELETE_BATCH)
                .to_owned()
        };
        let tx = db.begin().await?;
        super::disputes::delete_about_logs(&tx, batch()).await?;
        let logs = Query::delete()
            .from_table(AttendanceLogs::Table)
            .and_where(Expr::col(AttendanceLogs::Id).in_subquery(batch()))
            .to_owned();
        let count = tx.execute(&logs).await?;
        tx.commit().await?;
        deleted += count;
        if count < DELETE_BATCH {
            return Ok(deleted);
        }
    }
}

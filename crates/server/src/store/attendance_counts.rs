//! `attendance_hour_counts` (valid logs per local day, hour, department and attendee flag)
//! and `attendance_day_counts` (people with a valid log per local day), kept in the
//! transactions that write, void and delete logs; migration 0012 says why.
//! [`super::attendance::tally`] answers from them for whole local days, reading a few
//! rows per day where counting the logs reads every log of the range.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_query::{Alias as SqlAlias, Cond, Expr, Iden, IntoIden, OnConflict, Query, SimpleExpr};

use super::attendance::{
    ATTENDEE_ROLES, AttendanceFilter, AttendanceLogs, Counting, Grouping, Tally, VALID, count_valid_between,
    owner_of_log,
};
use super::local_time::{LocalDay, LocalSeconds, UtcOffsets};
use super::users::{UserRecord, Users};
use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum AttendanceHourCounts {
    Table,
    Logs,
}

#[derive(Iden)]
enum AttendanceDayCounts {
    Table,
    Persons,
}

/// The columns both count tables have.
#[derive(Iden, Clone, Copy)]
enum Counted {
    Day,
    Hour,
    Department,
    Attendee,
}

#[derive(Iden)]
enum AttendanceCountsZone {
    Table,
    Id,
    Zone,
}

/// Whom a person's logs are counted under: their department, and whether they are
/// expected to attend (active faculty and students).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountKey {
    pub department: String,
    pub attendee: bool,
}

impl CountKey {
    pub fn of(user: &UserRecord) -> Self {
        Self {
            department: user.department.clone(),
            attendee: user.is_active && ATTENDEE_ROLES.contains(&user.role.as_str()),
        }
    }
}

/// [`CountKey::attendee`] of the `users` row of a query, in SQL. Literal SQL, with no
/// bound values, so that PostgreSQL matches it between `SELECT` and `GROUP BY`.
fn attendee_sql() -> SimpleExpr {
    let roles = ATTENDEE_ROLES.iter().map(|role| format!("'{role}'")).collect::<Vec<_>>().join(", ");
    Expr::cust(format!(r#"("users"."is_active" AND "users"."role" IN ({roles}))"#))
}

/// Rows of an upsert statement per transaction: well under both backends' limits on bound values.
const UPSERT_BATCH: usize = 500;

/// Adds `logs` (negative: takes them away) to each (day, hour) cell under `key`.
async fn add_logs(db: &impl Exec, key: &CountKey, cells: &[((i64, i64), i64)]) -> StoreResult<()> {
    for batch in cells.chunks(UPSERT_BATCH) {
        let mut statement = Query::insert();
        statement
            .into_table(AttendanceHourCounts::Table)
            .columns([
                Counted::Day.into_iden(),
                Counted::Hour.into_iden(),
                Counted::Department.into_iden(),
                Counted::Attendee.into_iden(),
                AttendanceHourCounts::Logs.into_iden(),
            ])
            .on_conflict(
                OnConflict::columns([Counted::Day, Counted::Hour, Counted::Department, Counted::Attendee])
                    .value(
                        AttendanceHourCounts::Logs,
                        Expr::cust(r#""attendance_hour_counts"."logs" + "excluded"."logs""#),
                    )
                    .to_owned(),
            );
        for &((day, hour), logs) in batch {
            statement.values_panic([
                day.into(),
                hour.into(),
                key.department.clone().into(),
                key.attendee.into(),
                logs.into(),
            ]);
        }
        db.execute(&statement).await?;
    }
    Ok(())
}

/// Adds `persons` (negative: takes them away) to each day under `key`.
async fn add_persons(db: &impl Exec, key: &CountKey, days: &[i64], persons: i64) -> StoreResult<()> {
    for batch in days.chunks(UPSERT_BATCH) {
        let mut statement = Query::insert();
        statement
            .into_table(AttendanceDayCounts::Table)
            .columns([
                Counted::Day.into_iden(),
                Counted::Department.into_iden(),
                Counted::Attendee.into_iden(),
                AttendanceDayCounts::Persons.into_iden(),
            ])
            .on_conflict(
                OnConflict::columns([Counted::Day, Counted::Department, Counted::Attendee])
                    .value(
                        AttendanceDayCounts::Persons,
                        Expr::cust(r#""attendance_day_counts"."persons" + "excluded"."persons""#),
                    )
                    .to_owned(),
            );
        for &day in batch {
            statement.values_panic([day.into(), key.department.clone().into(), key.attendee.into(), persons.into()]);
        }
        db.execute(&statement).await?;
    }
    Ok(())
}

/// Counts a log of `user_id` made on `day` at local `hour`, just written (`change` 1) or
/// just voided (`change` -1) in transaction `tx`.
pub async fn count_log(
    tx: &impl Exec,
    user_id: i64,
    key: &CountKey,
    day: &LocalDay,
    hour: i64,
    change: i64,
) -> StoreResult<()> {
    add_logs(tx, key, &[((day.number, hour), change)]).await?;
    let valid_that_day = count_valid_between(tx, user_id, day.start, day.end).await?;
    // The person's first log of the day, or the last one gone: one person more or less.
    let person_changed = if change > 0 { valid_that_day == 1 } else { valid_that_day == 0 };
    if person_changed {
        add_persons(tx, key, &[day.number], change.signum()).await?;
    }
    Ok(())
}

/// Moves a person's counts from `from` to `to` (their department, role or active flag
/// changed): `cells` are their valid logs per (local day, hour).
pub async fn move_person(
    tx: &impl Exec,
    from: &CountKey,
    to: &CountKey,
    cells: &BTreeMap<(i64, i64), i64>,
) -> StoreResult<()> {
    let taken: Vec<_> = cells.iter().map(|(&cell, &logs)| (cell, -logs)).collect();
    let given: Vec<_> = cells.iter().map(|(&cell, &logs)| (cell, logs)).collect();
    add_logs(tx, from, &taken).await?;
    add_logs(tx, to, &given).await?;
    let days: Vec<i64> = cells.keys().map(|&(day, _)| day).collect::<BTreeSet<_>>().into_iter().collect();
    add_persons(tx, from, &days, -1).await?;
    add_persons(tx, to, &days, 1).await
}

fn days_from(first: i64, end: i64) -> Cond {
    Cond::all().add(Expr::col(Counted::Day).gte(first)).add(Expr::col(Counted::Day).lt(end))
}

/// Counts local days `first` to `end` (exclusive) again from the logs from `from` to `to`
/// (their instants), in `tx`. `offsets` cover that time.
pub async fn recount(
    tx: &impl Exec,
    (first, end): (i64, i64),
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    offsets: &UtcOffsets,
) -> StoreResult<()> {
    forget(tx, days_from(first, end)).await?;
    let local = LocalSeconds::of(tx.backend(), r#""attendance_logs"."timestamp""#, offsets);
    let logs_of_range = || {
        let log = |column| (AttendanceLogs::Table, column);
        Query::select()
            .from(AttendanceLogs::Table)
            .inner_join(Users::Table, owner_of_log())
            .and_where(Expr::col(log(AttendanceLogs::Status)).eq(VALID))
            .and_where(Expr::col(log(AttendanceLogs::Timestamp)).gte(from))
            .and_where(Expr::col(log(AttendanceLogs::Timestamp)).lt(to))
            .to_owned()
    };
    let department = || Expr::col((Users::Table, Users::Department));
    let mut hours = logs_of_range();
    hours
        .exprs([local.day(), local.hour(), department().into(), attendee_sql(), Expr::cust("COUNT(*)")])
        .add_group_by([local.day(), local.hour(), department().into(), attendee_sql()]);
    let statement = Query::insert()
        .into_table(AttendanceHourCounts::Table)
        .columns([
            Counted::Day.into_iden(),
            Counted::Hour.into_iden(),
            Counted::Department.into_iden(),
            Counted::Attendee.into_iden(),
            AttendanceHourCounts::Logs.into_iden(),
        ])
        .select_from(hours)
        .expect("five columns for five")
        .to_owned();
    tx.execute(&statement).await?;
    let mut days = logs_of_range();
    days.exprs([
        local.day(),
        department().into(),
        attendee_sql(),
        Expr::cust(r#"COUNT(DISTINCT "attendance_logs"."user_id")"#),
    ])
    .add_group_by([local.day(), department().into(), attendee_sql()]);
    let statement = Query::insert()
        .into_table(AttendanceDayCounts::Table)
        .columns([
            Counted::Day.into_iden(),
            Counted::Department.into_iden(),
            Counted::Attendee.into_iden(),
            AttendanceDayCounts::Persons.into_iden(),
        ])
        .select_from(days)
        .expect("four columns for four")
        .to_owned();
    tx.execute(&statement).await?;
    Ok(())
}

/// Forgets the counts of the local days before `day` (their logs were deleted).
pub async fn forget_before(tx: &impl Exec, day: i64) -> StoreResult<()> {
    forget(tx, Cond::all().add(Expr::col(Counted::Day).lt(day))).await
}

async fn forget(tx: &impl Exec, days: Cond) -> StoreResult<()> {
    let hours = Query::delete().from_table(AttendanceHourCounts::Table).cond_where(days.clone()).to_owned();
    tx.execute(&hours).await?;
    let days = Query::delete().from_table(AttendanceDayCounts::Table).cond_where(days).to_owned();
    tx.execute(&days).await?;
    Ok(())
}

/// Records in `tx` that the counts are of `zone`'s local days. `true` when they were not:
/// the caller counts every day again in the same transaction. The row's lock makes a
/// second process starting at the same time wait, and then find the zone recorded.
pub async fn claim_zone(tx: &impl Exec, zone: &str) -> StoreResult<bool> {
    let row = Query::insert()
        .into_table(AttendanceCountsZone::Table)
        .columns([AttendanceCountsZone::Id, AttendanceCountsZone::Zone])
        .values_panic([1.into(), "".into()])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned();
    tx.execute(&row).await?;
    let claim = Query::update()
        .table(AttendanceCountsZone::Table)
        .value(AttendanceCountsZone::Zone, zone)
        .and_where(Expr::col(AttendanceCountsZone::Id).eq(1))
        .and_where(Expr::col(AttendanceCountsZone::Zone).ne(zone))
        .to_owned();
    Ok(tx.execute(&claim).await? == 1)
}

/// Whether [`tally`] can answer for `filter`, `counting` and `groups` (given whole days):
/// the counts know days, hours, departments and attendees, not people, cameras or sources.
pub(super) fn can_answer(filter: &AttendanceFilter, counting: Counting<'_>, groups: &[Grouping]) -> bool {
    let narrower_than_counted = filter.user_id.is_some()
        || filter.employee_id.is_some()
        || filter.employee_ids.is_some()
        || filter.camera_id.is_some()
        || filter.sources.is_some();
    let (by_day, by_hour) = (groups.contains(&Grouping::Day), groups.contains(&Grouping::Hour));
    // People are counted per day (not per hour); over several days, distinct people are
    // counted from the logs per person, which knows no weekdays.
    let persons_countable = by_day || counting.weekdays.is_none();
    !narrower_than_counted
        && !groups.contains(&Grouping::Person)
        && !((counting.person_days || counting.persons) && by_hour)
        && (!counting.persons || persons_countable)
}

/// One group of a count query; columns of groupings not asked for are `NULL`.
#[derive(sqlx::FromRow)]
struct CountedGroup {
    day: Option<i64>,
    hour: Option<i64>,
    department: Option<String>,
    value: i64,
}

type GroupKey = (Option<i64>, Option<i64>, Option<String>);

impl CountedGroup {
    fn key(&self) -> GroupKey {
        (self.day, self.hour, self.department.clone())
    }
}

/// [`super::attendance::tally`] for local days `first` to `end` (exclusive), from the
/// counts; the caller checked [`can_answer`]. `from` and `to` are the days' instants.
pub(super) async fn tally(
    db: &Db,
    filter: &AttendanceFilter,
    (first, end): (i64, i64),
    counting: Counting<'_>,
    groups: &[Grouping],
) -> StoreResult<Vec<Tally>> {
    let mut condition = days_from(first, end);
    for department in [&filter.department, &filter.department_of_reader].into_iter().flatten() {
        condition = condition.add(Expr::col(Counted::Department).eq(department.as_str()));
    }
    if filter.expected_attendees {
        condition = condition.add(Expr::col(Counted::Attendee).eq(true));
    }
    if let Some(weekdays) = counting.weekdays {
        let listed = weekdays.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        // Day 0, 1970-01-01, was a Thursday (weekday 3).
        condition = condition.add(Expr::cust(format!(r#"("day" + 3) % 7 IN ({listed})"#)));
    }
    let logs = counted_groups(db, AttendanceHourCounts::Table, "logs", condition.clone(), groups).await?;
    let mut tallies: BTreeMap<GroupKey, Tally> = logs
        .into_iter()
        .map(|group| {
            let tally = Tally {
                day: group.day,
                hour: group.hour,
                department: group.department.clone(),
                user_id: None,
                attendances: group.value,
                persons: 0,
                person_days: 0,
                first_at: None,
                last_at: None,
            };
            (group.key(), tally)
        })
        .collect();
    let by_day = groups.contains(&Grouping::Day);
    if counting.person_days || (counting.persons && by_day) {
        for group in counted_groups(db, AttendanceDayCounts::Table, "persons", condition, groups).await? {
            if let Some(tally) = tallies.get_mut(&group.key()) {
                tally.person_days = if counting.person_days { group.value } else { 0 };
                tally.persons = if counting.persons { group.value } else { 0 };
            }
        }
    }
    if counting.persons && !by_day {
        for group in persons_in_range(db, filter, groups).await? {
            if let Some(tally) = tallies.get_mut(&group.key()) {
                tally.persons = group.value;
            }
        }
    }
    Ok(tallies.into_values().collect())
}

/// `SUM(measure)` of a count table under `condition`, per group (one row for no groups).
async fn counted_groups(
    db: &Db,
    table: impl Iden + 'static,
    measure: &str,
    condition: Cond,
    groups: &[Grouping],
) -> StoreResult<Vec<CountedGroup>> {
    let mut statement = Query::select();
    statement
        .from(table)
        .cond_where(condition)
        .expr_as(Expr::cust(format!(r#"CAST(COALESCE(SUM("{measure}"), 0) AS BIGINT)"#)), SqlAlias::new("value"));
    let columns =
        [(Grouping::Day, Counted::Day), (Grouping::Hour, Counted::Hour), (Grouping::Department, Counted::Department)];
    for (grouping, column) in columns {
        if groups.contains(&grouping) {
            statement.expr_as(Expr::col(column), column).group_by_col(column);
        } else {
            statement.expr_as(null_of(column), column);
        }
    }
    if !groups.is_empty() {
        statement.and_having(Expr::cust(format!(r#"SUM("{measure}") > 0"#)));
    }
    db.fetch_all(&statement).await
}

fn null_of(column: Counted) -> SimpleExpr {
    match column {
        Counted::Department => Expr::cust("CAST(NULL AS TEXT)"),
        _ => Expr::cust("CAST(NULL AS BIGINT)"),
    }
}

/// Distinct people with a valid log in `filter`'s time range, per department if grouped:
/// one index probe per person (`attendance_logs_user_time`), however many logs there are.
async fn persons_in_range(db: &Db, filter: &AttendanceFilter, groups: &[Grouping]) -> StoreResult<Vec<CountedGroup>> {
    let log = |column| (AttendanceLogs::Table, column);
    let mut logged = Query::select();
    logged
        .expr(Expr::val(1))
        .from(AttendanceLogs::Table)
        .and_where(Expr::col(log(AttendanceLogs::UserId)).equals((Users::Table, Users::Id)))
        .and_where(Expr::col(log(AttendanceLogs::Status)).eq(VALID));
    if let Some(from) = filter.from {
        logged.and_where(Expr::col(log(AttendanceLogs::Timestamp)).gte(from));
    }
    if let Some(to) = filter.to {
        logged.and_where(Expr::col(log(AttendanceLogs::Timestamp)).lt(to));
    }
    let mut statement = Query::select();
    statement
        .from(Users::Table)
        .cond_where(filter.people_condition())
        .and_where(Expr::exists(logged))
        .expr_as(Expr::cust("COUNT(*)"), SqlAlias::new("value"))
        .expr_as(Expr::cust("CAST(NULL AS BIGINT)"), Counted::Day)
        .expr_as(Expr::cust("CAST(NULL AS BIGINT)"), Counted::Hour);
    let department = Expr::col((Users::Table, Users::Department));
    if groups.contains(&Grouping::Department) {
        statement.expr_as(department.clone(), Counted::Department).add_group_by([department.into()]);
    } else {
        statement.expr_as(Expr::cust("CAST(NULL AS TEXT)"), Counted::Department);
    }
    db.fetch_all(&statement).await
}

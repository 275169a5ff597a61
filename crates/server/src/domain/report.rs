//! Attendance reports: how many of the people expected came, over a range of local dates,
//! overall, per department, per day and per person.
//!
//! The people expected are the active faculty and students the report selects (admins
//! run the service and are not counted). A person is present on a day with at least one
//! valid log that day; the attendance rate is the present person-days on working days
//! over the expected person-days (people × working days in the range). Arrivals on other
//! days are listed per day but raise no rate.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::calendar::{Calendar, DateRange};
use crate::store::attendance::{self as attendance_store, AttendanceFilter, Counting, Grouping};
use crate::store::local_time::day_to_date;
use crate::store::users::UserRecord;
use crate::store::{Db, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct AttendanceReport {
    pub range: DateRange,
    /// Working days in the range.
    pub working_days: i64,
    /// People expected to attend.
    pub total_employees: i64,
    /// Distinct (person, working day) pairs with a valid log.
    pub present_person_days: i64,
    /// People × working days.
    pub expected_person_days: i64,
    /// Present over expected person-days; 0 when nobody is expected.
    pub attendance_rate: f64,
    /// Valid logs in the range, on any day.
    pub total_attendances: i64,
    pub departments: BTreeMap<String, DepartmentStats>,
    /// Every date of the range with the people present that day.
    pub daily: Vec<DayAttendance>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentStats {
    pub total_employees: i64,
    pub present_person_days: i64,
    pub attendance_rate: f64,
    /// Present person-days per working day.
    pub avg_daily_attendance: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayAttendance {
    pub date: NaiveDate,
    pub working_day: bool,
    /// People with a valid log that day.
    pub present: i64,
}

/// One person's line of a report.
#[derive(Debug, Clone)]
pub struct PersonAttendance {
    pub person: UserRecord,
    /// Working days with a valid log.
    pub days_present: i64,
    pub attendance_rate: f64,
    pub first_arrival: Option<DateTime<Utc>>,
    pub last_arrival: Option<DateTime<Utc>>,
}

/// The report of `range` for the people `filter` selects (its time range is replaced).
pub async fn attendance_report(
    db: &Db,
    calendar: &Calendar,
    range: DateRange,
    filter: &AttendanceFilter,
) -> StoreResult<AttendanceReport> {
    let filter = in_range(calendar, range, filter);
    let (from, to) = (filter.from.expect("in range"), filter.to.expect("in range"));
    let offsets = calendar.offsets(from, to);
    let working_weekdays = calendar.working_days().numbers();
    let on_working_days = Counting { weekdays: Some(working_weekdays.as_slice()), person_days: true, persons: false };
    let working_days = calendar.working_dates(range).count() as i64;

    let people = attendance_store::people_per_department(db, &filter).await?;
    let present = attendance_store::tally(db, &filter, &offsets, on_working_days, &[Grouping::Department]).await?;
    let present: BTreeMap<String, i64> =
        present.into_iter().filter_map(|tally| Some((tally.department?, tally.person_days))).collect();
    let departments: BTreeMap<String, DepartmentStats> = people
        .iter()
        .map(|(department, employees)| {
            let present_person_days = present.get(department).copied().unwrap_or(0);
            let stats = DepartmentStats {
                total_employees: *employees,
                present_person_days,
                attendance_rate: ratio(present_person_days, employees * working_days),
                avg_daily_attendance: ratio(present_person_days, working_days),
            };
            (department.clone(), stats)
        })
        .collect();

    let total_employees = people.iter().map(|(_, employees)| employees).sum::<i64>();
    let present_person_days = departments.values().map(|stats| stats.present_person_days).sum::<i64>();
    let expected_person_days = total_employees * working_days;
    let totals = attendance_store::tally(db, &filter, &offsets, Counting::default(), &[]).await?;
    let days = attendance_store::tally(db, &filter, &offsets, Counting::persons(), &[Grouping::Day]).await?;
    let present_by_day: BTreeMap<NaiveDate, i64> =
        days.into_iter().filter_map(|tally| Some((day_to_date(tally.day?)?, tally.persons))).collect();
    Ok(AttendanceReport {
        range,
        working_days,
        total_employees,
        present_person_days,
        expected_person_days,
        attendance_rate: ratio(present_person_days, expected_person_days),
        total_attendances: totals.first().map_or(0, |tally| tally.attendances),
        departments,
        daily: range
            .dates()
            .map(|date| DayAttendance {
                date,
                working_day: calendar.is_working_day(date),
                present: present_by_day.get(&date).copied().unwrap_or(0),
            })
            .collect(),
    })
}

/// Each person's attendance over `range`, at most `limit` people (by department and
/// employee id).
pub async fn people_attendance(
    db: &Db,
    calendar: &Calendar,
    range: DateRange,
    filter: &AttendanceFilter,
    limit: u64,
) -> StoreResult<Vec<PersonAttendance>> {
    let filter = in_range(calendar, range, filter);
    let offsets = calendar.offsets(filter.from.expect("in range"), filter.to.expect("in range"));
    let working_weekdays = calendar.working_days().numbers();
    let on_working_days = Counting { weekdays: Some(working_weekdays.as_slice()), person_days: true, persons: false };
    let working_days = calendar.working_dates(range).count() as i64;
    let people = attendance_store::people(db, &filter, limit).await?;
    let on_working_days = attendance_store::tally(db, &filter, &offsets, on_working_days, &[Grouping::Person]).await?;
    let on_working_days: BTreeMap<i64, i64> =
        on_working_days.into_iter().filter_map(|tally| Some((tally.user_id?, tally.person_days))).collect();
    let arrivals = attendance_store::tally(db, &filter, &offsets, Counting::default(), &[Grouping::Person]).await?;
    let arrivals: BTreeMap<i64, FirstAndLast> =
        arrivals.into_iter().filter_map(|tally| Some((tally.user_id?, (tally.first_at, tally.last_at)))).collect();
    Ok(people
        .into_iter()
        .map(|person| {
            let days_present = on_working_days.get(&person.id).copied().unwrap_or(0);
            let (first_arrival, last_arrival) = arrivals.get(&person.id).copied().unwrap_or_default();
            PersonAttendance {
                days_present,
                attendance_rate: ratio(days_present, working_days),
                first_arrival,
                last_arrival,
                person,
            }
        })
        .collect())
}

/// A person's first and last arrival of a range.
type FirstAndLast = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `filter` over the instants of `range`, counting only the people expected to attend.
pub fn in_range(calendar: &Calendar, range: DateRange, filter: &AttendanceFilter) -> AttendanceFilter {
    let (from, to) = calendar.instants(range);
    AttendanceFilter { from: Some(from), to: Some(to), expected_attendees: true, ..filter.clone() }
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

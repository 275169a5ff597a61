//! Attendance summaries: how many arrivals and people in a range of local dates, by
//! department and by local hour, counted in the database.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::domain::calendar::{Calendar, DateRange};
use crate::store::attendance::{self as attendance_store, AttendanceFilter, Counting, Grouping};
use crate::store::{Db, StoreResult};

/// The span a summary covers when its dates are not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    pub const NAMES: &str = "daily, weekly, monthly, yearly";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "monthly" => Self::Monthly,
            "yearly" => Self::Yearly,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// The period that contains `date`: the day, its week (Monday to Sunday), its month or
    /// its year.
    pub fn containing(self, date: NaiveDate) -> DateRange {
        let (from, to) = match self {
            Self::Daily => (date, date),
            Self::Weekly => {
                let monday = date - Days::new(u64::from(date.weekday().num_days_from_monday()));
                (monday, monday + Days::new(6))
            }
            Self::Monthly => {
                let first = date.with_day(1).expect("every month has a first day");
                (first, first + Months::new(1) - Days::new(1))
            }
            Self::Yearly => (
                NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("1 January exists"),
                NaiveDate::from_ymd_opt(date.year(), 12, 31).expect("31 December exists"),
            ),
        };
        DateRange { from, to }
    }

    /// The range a request means: both dates as given; one date, the period from (or up
    /// to) it; none, the period containing `today`.
    pub fn range(self, from: Option<NaiveDate>, to: Option<NaiveDate>, today: NaiveDate) -> Option<DateRange> {
        match (from, to) {
            (Some(from), Some(to)) => DateRange::new(from, to),
            (Some(from), None) => DateRange::new(from, self.containing(from).to),
            (None, Some(to)) => DateRange::new(self.containing(to).from, to),
            (None, None) => Some(self.containing(today)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub range: DateRange,
    /// Valid logs in the range.
    pub total_attendances: i64,
    /// Distinct people with a valid log in the range.
    pub unique_persons: i64,
    /// Valid logs per department of the people logged.
    pub departments: BTreeMap<String, i64>,
    /// Valid logs per local hour ("08:00" counts 08:00:00–08:59:59); hours without logs
    /// are left out.
    pub hourly_distribution: BTreeMap<String, i64>,
}

/// Summarises the valid logs of `filter` (its time range is replaced by `range`).
pub async fn summarise(
    db: &Db,
    calendar: &Calendar,
    range: DateRange,
    filter: AttendanceFilter,
) -> StoreResult<Summary> {
    let (from, to) = calendar.instants(range);
    let filter = AttendanceFilter { from: Some(from), to: Some(to), ..filter };
    let offsets = calendar.offsets(from, to);
    let totals = attendance_store::tally(db, &filter, &offsets, Counting::persons(), &[]).await?;
    let total = totals.first();
    let departments =
        attendance_store::tally(db, &filter, &offsets, Counting::default(), &[Grouping::Department]).await?;
    let hours = attendance_store::tally(db, &filter, &offsets, Counting::default(), &[Grouping::Hour]).await?;
    Ok(Summary {
        range,
        total_attendances: total.map_or(0, |t| t.attendances),
        unique_persons: total.map_or(0, |t| t.persons),
        departments: departments.into_iter().filter_map(|t| Some((t.department?, t.attendances))).collect(),
        hourly_distribution: hours
            .into_iter()
            .filter_map(|t| Some((format!("{:02}:00", t.hour?), t.attendances)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_missing_date_is_the_end_of_the_period_from_the_other() {
        let today = date("2024-02-14");
        let range = |period: Period, from: Option<&str>, to: Option<&str>| {
            let range = period.range(from.map(date), to.map(date), today).unwrap();
            (range.from.to_string(), range.to.to_string())
        };
        let pair = |from: &str, to: &str| (from.to_owned(), to.to_owned());
        assert_eq!(range(Period::Daily, None, None), pair("2024-02-14", "2024-02-14"));
        assert_eq!(range(Period::Weekly, None, None), pair("2024-02-12", "2024-02-18"));
        assert_eq!(range(Period::Monthly, None, None), pair("2024-02-01", "2024-02-29"));
        assert_eq!(range(Period::Yearly, None, None), pair("2024-01-01", "2024-12-31"));
        assert_eq!(range(Period::Monthly, Some("2023-12-10"), None), pair("2023-12-10", "2023-12-31"));
        assert_eq!(range(Period::Weekly, None, Some("2024-03-13")), pair("2024-03-11", "2024-03-13"));
        assert!(Period::Daily.range(Some(today), Some(date("2024-02-13")), today).is_none());
    }
}

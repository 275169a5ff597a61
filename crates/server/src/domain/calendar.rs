//! The institution's calendar: its time zone and working week. Timestamps are stored and
//! returned in UTC; a date in a filter or a report ("the 15th", "Mondays", "8 o'clock")
//! means a day or an hour of this zone, daylight-saving changes included.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::store::local_time::{LocalDay, UtcOffsets, date_to_day};

/// The weekdays people are expected on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingDays(u8);

impl WorkingDays {
    pub fn new(days: &[Weekday]) -> Self {
        Self(days.iter().fold(0, |mask, day| mask | 1 << day.num_days_from_monday()))
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & 1 << day.num_days_from_monday() != 0
    }

    /// The working days as numbers, 0 = Monday … 6 = Sunday.
    pub fn numbers(self) -> Vec<u32> {
        (0..7).filter(|n| self.0 & 1 << n != 0).collect()
    }
}

impl Default for WorkingDays {
    fn default() -> Self {
        Self::new(&[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri])
    }
}

impl fmt::Display for WorkingDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = (0..7)
            .map(|n| Weekday::try_from(n).expect("0..7 are weekdays"))
            .filter(|day| self.contains(*day))
            .map(|day| day.to_string().to_lowercase())
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The institution's time zone and working week.
#[derive(Debug, Clone, Copy)]
pub struct Calendar {
    zone: Tz,
    working_days: WorkingDays,
}

/// Inclusive local dates, as filters and reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    /// `None` when `from` is after `to`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Option<Self> {
        (from <= to).then_some(Self { from, to })
    }

    /// The number of days in the range.
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        self.from.iter_days().take(self.days() as usize)
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.from, self.to)
    }
}

impl Calendar {
    pub fn new(zone: Tz, working_days: WorkingDays) -> Self {
        Self { zone, working_days }
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn working_days(&self) -> WorkingDays {
        self.working_days
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.working_days.contains(date.weekday())
    }

    /// The local date at `instant`.
    pub fn date_of(&self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.zone).date_naive()
    }

    pub fn today(&self) -> NaiveDate {
        self.date_of(Utc::now())
    }

    /// The first instant of a local date. Where a daylight-saving change skips midnight,
    /// the day starts at the first local time that exists.
    pub fn start_of(&self, date: NaiveDate) -> DateTime<Utc> {
        let mut time = date.and_time(NaiveTime::MIN);
        loop {
            if let Some(start) = self.zone.from_local_datetime(&time).earliest() {
                return start.with_timezone(&Utc);
            }
            // No zone skips more than a few hours; step to the end of the gap.
            time += Duration::minutes(15);
        }
    }

    /// The instants of a range of local dates: from the start of the first to the start of
    /// the day after the last (exclusive).
    pub fn instants(&self, range: DateRange) -> (DateTime<Utc>, DateTime<Utc>) {
        let after = range.to.succ_opt().unwrap_or(NaiveDate::MAX);
        (self.start_of(range.from), self.start_of(after))
    }

    /// The local day of `date`, with its instants.
    pub fn local_day(&self, date: NaiveDate) -> LocalDay {
        let (start, end) = self.instants(DateRange { from: date, to: date });
        LocalDay { number: date_to_day(date), start, end }
    }

    /// The local day and hour of `instant`: where a log made then is counted.
    pub fn day_and_hour(&self, instant: DateTime<Utc>) -> (LocalDay, i64) {
        let local = instant.with_timezone(&self.zone);
        (self.local_day(local.date_naive()), i64::from(local.hour()))
    }

    /// The working days of a range.
    pub fn working_dates(&self, range: DateRange) -> impl Iterator<Item = NaiveDate> + use<> {
        let working_days = self.working_days;
        range.dates().filter(move |date| working_days.contains(date.weekday()))
    }

    /// The zone's UTC offsets from `from` to `until`: what the database needs to turn a
    /// timestamp into a local day and hour in SQL.
    pub fn offsets(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> UtcOffsets {
        let offset_at =
            |instant: DateTime<Utc>| self.zone.offset_from_utc_datetime(&instant.naive_utc()).fix().local_minus_utc();
        let mut offsets = UtcOffsets::constant(offset_at(from));
        let step = Duration::hours(1);
        let mut instant = from;
        while instant < until {
            let next = (instant + step).min(until);
            if offset_at(next) != offset_at(instant) {
                // Zones change their offset at most once an hour: find the second it does.
                let (mut before, mut after) = (instant, next);
                while after - before > Duration::seconds(1) {
                    let middle = before + (after - before) / 2;
                    if offset_at(middle) == offset_at(before) { before = middle } else { after = middle }
                }
                offsets.change_at(after.timestamp(), offset_at(after));
            }
            instant = next;
        }
        offsets
    }
}

impl Default for Calendar {
    fn default() -> Self {
        Self::new(chrono_tz::UTC, WorkingDays::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_local_day_spans_23_hours_on_the_spring_change_and_25_on_the_autumn_one() {
        let berlin = Calendar::new(chrono_tz::Europe::Berlin, WorkingDays::default());
        let spring = DateRange::new(date("2024-03-31"), date("2024-03-31")).unwrap();
        let (start, end) = berlin.instants(spring);
        assert_eq!(start.to_rfc3339(), "2024-03-30T23:00:00+00:00");
        assert_eq!((end - start).num_hours(), 23);
        let autumn = DateRange::new(date("2024-10-27"), date("2024-10-27")).unwrap();
        let (start, end) = berlin.instants(autumn);
        assert_eq!((end - start).num_hours(), 25);
    }

    #[test]
    fn offsets_change_at_the_exact_second_of_a_daylight_saving_change() {
        let berlin = Calendar::new(chrono_tz::Europe::Berlin, WorkingDays::default());
        let range = DateRange::new(date("2024-01-01"), date("2024-12-31")).unwrap();
        let (from, until) = berlin.instants(range);
        let offsets = berlin.offsets(from, until);
        let spring = "2024-03-31T01:00:00Z".parse::<DateTime<Utc>>().unwrap().timestamp();
        let autumn = "2024-10-27T01:00:00Z".parse::<DateTime<Utc>>().unwrap().timestamp();
        assert_eq!(offsets.first(), 3600);
        assert_eq!(offsets.changes(), [(spring, 7200), (autumn, 3600)]);
        assert!(Calendar::default().offsets(from, until).changes().is_empty());
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_when_the_clocks_resume() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2022-09-11.
        let santiago = Calendar::new(chrono_tz::America::Santiago, WorkingDays::default());
        let start = santiago.start_of(date("2022-09-11"));
        assert_eq!(start.to_rfc3339(), "2022-09-11T04:00:00+00:00");
    }

    #[test]
    fn working_dates_follow_the_working_week() {
        let calendar = Calendar::default();
        let range = DateRange::new(date("2024-03-11"), date("2024-03-24")).unwrap();
        assert_eq!(calendar.working_dates(range).count(), 10);
        let six_days = Calendar::new(
            chrono_tz::UTC,
            WorkingDays::new(&[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat]),
        );
        assert_eq!(six_days.working_dates(range).count(), 12);
        assert!(DateRange::new(date("2024-03-12"), date("2024-03-11")).is_none());
    }
}

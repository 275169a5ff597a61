//! Attendance patterns: the average day of each weekday, the attendance rate per season,
//! and a forecast of next week's attendance with a confidence measured by back-testing.
//!
//! Attendance on a day is the number of people present (a valid log that day). The
//! forecast is a seasonal mean with weekly seasonality: each day of next week (Monday to
//! Sunday) is predicted as the mean attendance of the same weekday over the last
//! [`SEASON_WEEKS`] complete weeks before today. Its confidence is `1 − MAPE`, the mean
//! absolute percentage error of the same method's weekly totals over up to
//! [`BACKTEST_WEEKS`] recent weeks, each forecast from the weeks before it only.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::domain::calendar::{Calendar, DateRange};
use crate::domain::report;
use crate::store::attendance::{self as attendance_store, AttendanceFilter, Counting, Grouping};
use crate::store::local_time::day_to_date;
use crate::store::{Db, StoreResult};

/// Weeks of history a forecast averages.
pub const SEASON_WEEKS: u64 = 4;
/// Recent weeks the forecast is back-tested on.
pub const BACKTEST_WEEKS: u64 = 4;
/// The shortest history a forecast is made from: two weeks, one to forecast from and one
/// to back-test on.
pub const MIN_HISTORY_DAYS: i64 = 14;

/// Which half of the world the seasons are those of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hemisphere {
    #[default]
    North,
    South,
}

/// Meteorological seasons: spring is March to May in the north, September to November
/// in the south.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Season {
    Spring,
    Summer,
    Fall,
    Winter,
}

impl Season {
    pub const ALL: [Season; 4] = [Self::Spring, Self::Summer, Self::Fall, Self::Winter];

    pub fn of(date: NaiveDate, hemisphere: Hemisphere) -> Self {
        let northern = match date.month() {
            3..=5 => Self::Spring,
            6..=8 => Self::Summer,
            9..=11 => Self::Fall,
            _ => Self::Winter,
        };
        match (hemisphere, northern) {
            (Hemisphere::North, season) => season,
            (Hemisphere::South, Self::Spring) => Self::Fall,
            (Hemisphere::South, Self::Summer) => Self::Winter,
            (Hemisphere::South, Self::Fall) => Self::Spring,
            (Hemisphere::South, Self::Winter) => Self::Summer,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Spring => "spring",
            Self::Summer => "summer",
            Self::Fall => "fall",
            Self::Winter => "winter",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patterns {
    /// The range asked for, from its first day with attendance.
    pub range: DateRange,
    /// Per weekday (Monday first) of the range.
    pub weekdays: Vec<WeekdayPattern>,
    /// Attendance rate per season, over the working days of the range in it; `None` for a
    /// season the range has no working day of.
    pub seasons: BTreeMap<Season, Option<f64>>,
    pub forecast: Result<Forecast, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeekdayPattern {
    pub weekday: Weekday,
    /// Mean people present on this weekday's dates in the range.
    pub avg_attendance: f64,
    /// The local hour with the most arrivals on this weekday; `None` without arrivals.
    pub peak_hour: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Next Monday to Sunday.
    pub week: DateRange,
    /// Predicted people present per day of `week`.
    pub days: Vec<(NaiveDate, f64)>,
    pub total: f64,
    /// `1 − MAPE` of the back-test, in [0, 1].
    pub confidence: f64,
    pub mean_absolute_percentage_error: f64,
    /// Weeks the back-test measured.
    pub backtest_weeks: u64,
    /// Weeks each daily prediction averages.
    pub season_weeks: u64,
}

/// Patterns of the people `filter` selects over `range`, and the forecast made on
/// `today` (from the complete days before it).
pub async fn patterns(
    db: &Db,
    calendar: &Calendar,
    hemisphere: Hemisphere,
    range: DateRange,
    today: NaiveDate,
    filter: &AttendanceFilter,
) -> StoreResult<Patterns> {
    let in_range = report::in_range(calendar, range, filter);
    let offsets = calendar.offsets(in_range.from.expect("in range"), in_range.to.expect("in range"));
    let present = present_per_day(db, &in_range, &offsets).await?;
    // Days before the first attendance are before the records begin, not days nobody came.
    let range = DateRange { from: present.keys().next().copied().unwrap_or(range.from).max(range.from), ..range };
    let hours =
        attendance_store::tally(db, &in_range, &offsets, Counting::default(), &[Grouping::Day, Grouping::Hour]).await?;
    let mut arrivals_by_weekday_hour: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    for tally in hours {
        let (Some(date), Some(hour)) = (tally.day.and_then(day_to_date), tally.hour) else { continue };
        *arrivals_by_weekday_hour.entry((date.weekday().num_days_from_monday(), hour as u32)).or_default() +=
            tally.attendances;
    }
    let weekdays = (0..7)
        .map(|n| {
            let weekday = Weekday::try_from(n as u8).expect("0..7 are weekdays");
            let dates: Vec<NaiveDate> = range.dates().filter(|date| date.weekday() == weekday).collect();
            let total: i64 = dates.iter().map(|date| present.get(date).copied().unwrap_or(0)).sum();
            let peak_hour = arrivals_by_weekday_hour
                .range((n, 0)..=(n, 23))
                .max_by_key(|&(&(_, hour), &count)| (count, std::cmp::Reverse(hour)))
                .map(|(&(_, hour), _)| hour);
            let avg_attendance = if dates.is_empty() { 0.0 } else { total as f64 / dates.len() as f64 };
            WeekdayPattern { weekday, avg_attendance, peak_hour }
        })
        .collect();
    let seasons = seasonal_rates(db, calendar, hemisphere, range, &in_range, &offsets).await?;
    let forecast = forecast_next_week(db, calendar, today, filter).await?;
    Ok(Patterns { range, weekdays, seasons, forecast })
}

/// People present per local day of `filter`'s range.
async fn present_per_day(
    db: &Db,
    filter: &AttendanceFilter,
    offsets: &crate::store::local_time::UtcOffsets,
) -> StoreResult<BTreeMap<NaiveDate, i64>> {
    let days = attendance_store::tally(db, filter, offsets, Counting::persons(), &[Grouping::Day]).await?;
    Ok(days.into_iter().filter_map(|tally| Some((day_to_date(tally.day?)?, tally.persons))).collect())
}

/// Present person-days over people × working days, per season of the range.
async fn seasonal_rates(
    db: &Db,
    calendar: &Calendar,
    hemisphere: Hemisphere,
    range: DateRange,
    filter: &AttendanceFilter,
    offsets: &crate::store::local_time::UtcOffsets,
) -> StoreResult<BTreeMap<Season, Option<f64>>> {
    let working = calendar.working_days().numbers();
    let days = attendance_store::tally(
        db,
        filter,
        offsets,
        Counting { weekdays: Some(&working), person_days: true, persons: false },
        &[Grouping::Day],
    )
    .await?;
    let people: i64 = attendance_store::people_per_department(db, filter).await?.iter().map(|(_, n)| n).sum();
    let mut present: BTreeMap<Season, i64> = BTreeMap::new();
    for tally in days {
        if let Some(date) = tally.day.and_then(day_to_date) {
            *present.entry(Season::of(date, hemisphere)).or_default() += tally.person_days;
        }
    }
    let mut working_days: BTreeMap<Season, i64> = BTreeMap::new();
    for date in calendar.working_dates(range) {
        *working_days.entry(Season::of(date, hemisphere)).or_default() += 1;
    }
    Ok(Season::ALL
        .into_iter()
        .map(|season| {
            let expected = people * working_days.get(&season).copied().unwrap_or(0);
            let rate = (expected > 0).then(|| present.get(&season).copied().unwrap_or(0) as f64 / expected as f64);
            (season, rate)
        })
        .collect())
}

/// The forecast of the week after the current one, or why none can be made.
async fn forecast_next_week(
    db: &Db,
    calendar: &Calendar,
    today: NaiveDate,
    filter: &AttendanceFilter,
) -> StoreResult<Result<Forecast, String>> {
    let yesterday = today - Days::new(1);
    let window_days = 7 * (SEASON_WEEKS + BACKTEST_WEEKS);
    let window = DateRange { from: yesterday - Days::new(window_days - 1), to: yesterday };
    let in_window = report::in_range(calendar, window, filter);
    let offsets = calendar.offsets(in_window.from.expect("in range"), in_window.to.expect("in range"));
    let present = present_per_day(db, &in_window, &offsets).await?;
    let Some(first) = present.keys().next().copied() else {
        return Ok(Err("no attendance in the last 8 weeks to forecast from".to_owned()));
    };
    let history = History { first, last: yesterday, present };
    Ok(history.forecast(next_monday(today)))
}

/// The Monday after the week of `date`.
fn next_monday(date: NaiveDate) -> NaiveDate {
    date + Days::new(u64::from(7 - date.weekday().num_days_from_monday()))
}

/// People present per day from `first` to `last` (days without an entry: nobody).
struct History {
    first: NaiveDate,
    last: NaiveDate,
    present: BTreeMap<NaiveDate, i64>,
}

impl History {
    fn days(&self) -> i64 {
        (self.last - self.first).num_days() + 1
    }

    /// The mean of `date`'s weekday over the last [`SEASON_WEEKS`] weeks up to `until`
    /// (inclusive) within the history; `None` when none of them is in it.
    fn seasonal_mean(&self, date: NaiveDate, until: NaiveDate) -> Option<f64> {
        let mut earlier = date - Days::new(7);
        while earlier > until {
            earlier = earlier - Days::new(7);
        }
        let samples: Vec<i64> = (0..SEASON_WEEKS)
            .map(|week| earlier - Days::new(7 * week))
            .take_while(|sample| *sample >= self.first)
            .map(|sample| self.present.get(&sample).copied().unwrap_or(0))
            .collect();
        (!samples.is_empty()).then(|| samples.iter().sum::<i64>() as f64 / samples.len() as f64)
    }

    /// The predicted total of the 7 days from `start`, from the history up to `until`.
    fn week_total(&self, start: NaiveDate, until: NaiveDate) -> Option<f64> {
        (0..7).map(|day| self.seasonal_mean(start + Days::new(day), until)).sum()
    }

    fn forecast(&self, week_start: NaiveDate) -> Result<Forecast, String> {
        if self.days() < MIN_HISTORY_DAYS {
            return Err(format!("attendance history starts {}: a forecast needs {MIN_HISTORY_DAYS} days", self.first));
        }
        let mut errors = Vec::new();
        for back in 0..BACKTEST_WEEKS {
            let end = self.last - Days::new(7 * back);
            let start = end - Days::new(6);
            // Only weeks with a full week of history before them are back-tested.
            if start - Days::new(7) < self.first {
                break;
            }
            let actual: i64 = (0..7).map(|day| self.present.get(&(start + Days::new(day))).copied().unwrap_or(0)).sum();
            let Some(predicted) = self.week_total(start, start - Days::new(1)) else { break };
            errors.push(percentage_error(predicted, actual as f64));
        }
        let mape = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
        let days: Vec<(NaiveDate, f64)> = (0..7)
            .map(|day| {
                let date = week_start + Days::new(day);
                (date, self.seasonal_mean(date, self.last).unwrap_or(0.0))
            })
            .collect();
        Ok(Forecast {
            week: DateRange { from: week_start, to: week_start + Days::new(6) },
            total: days.iter().map(|(_, value)| value).sum(),
            days,
            confidence: (1.0 - mape).clamp(0.0, 1.0),
            mean_absolute_percentage_error: mape,
            backtest_weeks: errors.len() as u64,
            season_weeks: SEASON_WEEKS,
        })
    }
}

/// `|predicted − actual| / actual`; a week nobody came is predicted right only by 0.
fn percentage_error(predicted: f64, actual: f64) -> f64 {
    if actual == 0.0 { if predicted == 0.0 { 0.0 } else { 1.0 } } else { ((predicted - actual) / actual).abs() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    /// `weeks` weeks ending on Sunday 2024-06-30 with `per_weekday` people each weekday.
    fn periodic(weeks: u64, per_weekday: [i64; 7]) -> History {
        let last = date("2024-06-30");
        let first = last - Days::new(7 * weeks - 1);
        let present = DateRange { from: first, to: last }
            .dates()
            .map(|day| (day, per_weekday[day.weekday().num_days_from_monday() as usize]))
            .collect();
        History { first, last, present }
    }

    #[test]
    fn a_periodic_history_is_forecast_exactly_with_full_confidence() {
        let week = [30, 28, 31, 25, 20, 2, 0];
        let forecast = periodic(8, week).forecast(date("2024-07-08")).unwrap();
        assert_eq!(forecast.total, 136.0);
        assert_eq!(forecast.days[0], (date("2024-07-08"), 30.0));
        assert_eq!((forecast.confidence, forecast.backtest_weeks), (1.0, 4));
    }

    #[test]
    fn a_growing_history_is_forecast_with_the_error_its_back_test_measured() {
        // Attendance grows by 10 % a week: the mean of four weeks lags behind.
        let last = date("2024-06-30");
        let first = last - Days::new(55);
        let present = DateRange { from: first, to: last }
            .dates()
            .map(|day| (day, (100.0 * 1.1_f64.powi(((day - first).num_days() / 7) as i32)).round() as i64))
            .collect();
        let forecast = History { first, last, present }.forecast(date("2024-07-01")).unwrap();
        assert!(forecast.confidence > 0.7 && forecast.confidence < 0.95, "{forecast:?}");
        assert!((forecast.mean_absolute_percentage_error + forecast.confidence - 1.0).abs() < 1e-12);
    }

    #[test]
    fn under_two_weeks_of_history_no_forecast_is_made() {
        let error = periodic(1, [5; 7]).forecast(date("2024-07-01")).unwrap_err();
        assert!(error.contains("14 days"), "{error}");
        assert!(periodic(2, [5; 7]).forecast(date("2024-07-01")).is_ok());
    }

    #[test]
    fn seasons_follow_the_hemisphere() {
        assert_eq!(Season::of(date("2024-04-10"), Hemisphere::North), Season::Spring);
        assert_eq!(Season::of(date("2024-04-10"), Hemisphere::South), Season::Fall);
        assert_eq!(Season::of(date("2024-12-01"), Hemisphere::North), Season::Winter);
        assert_eq!(Season::of(date("2024-01-15"), Hemisphere::South), Season::Summer);
    }
}

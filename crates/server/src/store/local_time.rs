//! Local days and hours computed in SQL: a timestamp column plus the zone's UTC offset at
//! that instant, the same expression on SQLite and PostgreSQL. Reports group by these in
//! the database instead of loading rows.

use sea_query::{Expr, SimpleExpr};

use super::Backend;

const SECONDS_PER_DAY: i64 = 86_400;

/// A zone's UTC offsets over a span of time: `first`, then each change (from that Unix
/// second on, the new offset), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtcOffsets {
    first: i32,
    changes: Vec<(i64, i32)>,
}

impl UtcOffsets {
    pub fn constant(offset_secs: i32) -> Self {
        Self { first: offset_secs, changes: Vec::new() }
    }

    /// From Unix second `at` on, the offset is `offset_secs`; changes are added in order.
    pub fn change_at(&mut self, at: i64, offset_secs: i32) {
        self.changes.push((at, offset_secs));
    }

    pub fn first(&self) -> i32 {
        self.first
    }

    pub fn changes(&self) -> &[(i64, i32)] {
        &self.changes
    }

    /// The offset at Unix second `at`.
    pub fn at(&self, at: i64) -> i32 {
        self.changes.iter().take_while(|(from, _)| *from <= at).last().map_or(self.first, |(_, offset)| *offset)
    }

    /// The local day that starts at `instant`, when a local day starts then.
    pub fn day_starting_at(&self, instant: chrono::DateTime<chrono::Utc>) -> Option<i64> {
        let local = instant.timestamp() + i64::from(self.at(instant.timestamp()));
        (local.rem_euclid(SECONDS_PER_DAY) == 0).then(|| local.div_euclid(SECONDS_PER_DAY))
    }
}

/// One local day: its number (as [`LocalSeconds::day`] counts) and its instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDay {
    pub number: i64,
    pub start: chrono::DateTime<chrono::Utc>,
    /// Exclusive: the start of the next day.
    pub end: chrono::DateTime<chrono::Utc>,
}

/// A timestamp column in local Unix seconds (seconds since 1970-01-01 00:00 local time).
#[derive(Debug, Clone)]
pub struct LocalSeconds(String);

impl LocalSeconds {
    /// `column` is a quoted, qualified column name such as `"attendance_logs"."timestamp"`.
    pub fn of(backend: Backend, column: &str, offsets: &UtcOffsets) -> Self {
        let epoch = match backend {
            Backend::Sqlite => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
            Backend::Postgres => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"),
        };
        let offset = if offsets.changes.is_empty() {
            offsets.first.to_string()
        } else {
            let mut case = String::from("CASE");
            let mut current = offsets.first;
            for (at, next) in &offsets.changes {
                case.push_str(&format!(" WHEN {epoch} < {at} THEN {current}"));
                current = *next;
            }
            case.push_str(&format!(" ELSE {current} END"));
            case
        };
        Self(format!("({epoch} + {offset})"))
    }

    /// The local day, as days since 1970-01-01 (see [`day_to_date`]).
    pub fn day(&self) -> SimpleExpr {
        Expr::cust(self.day_sql())
    }

    /// [`Self::day`] as SQL text, to combine with other columns.
    pub fn day_sql(&self) -> String {
        format!("({} / {SECONDS_PER_DAY})", self.0)
    }

    /// The local hour of the day, 0–23.
    pub fn hour(&self) -> SimpleExpr {
        Expr::cust(format!("(({} % {SECONDS_PER_DAY}) / 3600)", self.0))
    }
}

/// The day number of a date, as [`LocalSeconds::day`] counts.
pub fn date_to_day(date: chrono::NaiveDate) -> i64 {
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days()
}

/// The date of a day number from [`LocalSeconds::day`].
pub fn day_to_date(day: i64) -> Option<chrono::NaiveDate> {
    chrono::DateTime::from_timestamp(day.checked_mul(SECONDS_PER_DAY)?, 0).map(|instant| instant.date_naive())
}

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

/// The date of a day number from [`LocalSeconds::day`].
pub fn day_to_date(day: i64) -> Option<chrono::NaiveDate> {
    chrono::DateTime::from_timestamp(day.checked_mul(SECONDS_PER_DAY)?, 0).map(|instant| instant.date_naive())
}

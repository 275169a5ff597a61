//! Keeping the attendance counts ([`crate::store::attendance_counts`]) true to the logs in
//! the institution's calendar: counted again when the zone changes, moved with a person
//! whose department or role changes, forgotten with deleted logs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::calendar::{Calendar, DateRange};
use crate::store::attendance as attendance_store;
use crate::store::attendance_counts::{self as counts, CountKey};
use crate::store::local_time::date_to_day;
use crate::store::users::UserRecord;
use crate::store::{Db, Exec, StoreResult};

/// Makes the counts those of `calendar`'s zone: at start-up, counts every day again when
/// they were kept for another zone or never kept (the first start after an upgrade). One
/// transaction; a second process starting at the same time waits for it.
pub async fn ensure_zone(db: &Db, calendar: &Calendar) -> StoreResult<()> {
    let zone = calendar.zone().name();
    let tx = db.begin().await?;
    if counts::claim_zone(&tx, zone).await? {
        counts::forget_before(&tx, i64::MAX).await?;
        if let Some((first, last)) = attendance_store::time_span(&tx).await? {
            let range = DateRange { from: calendar.date_of(first), to: calendar.date_of(last) };
            tracing::info!(%zone, %range, "counting attendance per local day");
            recount(&tx, calendar, range).await?;
        }
    }
    tx.commit().await
}

/// Counts the days of `range` again from their logs, in `tx`.
pub async fn recount(tx: &impl Exec, calendar: &Calendar, range: DateRange) -> StoreResult<()> {
    let (from, to) = calendar.instants(range);
    let days = (date_to_day(range.from), date_to_day(range.to) + 1);
    counts::recount(tx, days, (from, to), &calendar.offsets(from, to)).await
}

/// After the logs before `cutoff` were deleted: forgets the days before it and counts the
/// day it falls in again.
pub async fn forget_before(db: &Db, calendar: &Calendar, cutoff: DateTime<Utc>) -> StoreResult<()> {
    let date = calendar.date_of(cutoff);
    let tx = db.begin().await?;
    counts::forget_before(&tx, date_to_day(date)).await?;
    recount(&tx, calendar, DateRange { from: date, to: date }).await?;
    tx.commit().await
}

/// Moves `before`'s counts to where `after` (the same person, changed in `tx`) counts.
pub async fn move_person(
    tx: &impl Exec,
    calendar: &Calendar,
    before: &UserRecord,
    after: &UserRecord,
) -> StoreResult<()> {
    let (from, to) = (CountKey::of(before), CountKey::of(after));
    if from == to {
        return Ok(());
    }
    let mut cells: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for timestamp in attendance_store::valid_times_of(tx, before.id).await? {
        let (day, hour) = calendar.day_and_hour(timestamp);
        *cells.entry((day.number, hour)).or_default() += 1;
    }
    counts::move_person(tx, &from, &to, &cells).await
}

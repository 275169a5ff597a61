//! Arrival evidence: the face crop a face log was decided on, kept sealed for its log
//! for `evidence_retention_days`, then purged.

use chrono::{DateTime, Duration, Utc};

use crate::crypto::Sealer;
use crate::store::evidence as evidence_store;
use crate::store::{Db, StoreResult, sealed};

/// How long crops are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub days: u32,
}

impl Retention {
    /// Until when a crop kept at `kept_at` is kept.
    pub fn kept_until(self, kept_at: DateTime<Utc>) -> DateTime<Utc> {
        kept_at + Duration::days(i64::from(self.days))
    }

    /// Deletes the crops older than the retention period; how many went.
    pub async fn purge_expired(self, db: &Db, now: DateTime<Utc>) -> StoreResult<u64> {
        evidence_store::purge_kept_before(db, now - Duration::days(i64::from(self.days))).await
    }
}

/// The face crop of log `attendance_id` (JPEG), opened; `None` when none is kept.
pub async fn face_crop(db: &Db, sealer: &Sealer, attendance_id: i64) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(kept) = evidence_store::find(db, attendance_id).await? else {
        return Ok(None);
    };
    Ok(Some(sealer.open(&kept.crop, &sealed::arrival_evidence_binding(attendance_id))?))
}

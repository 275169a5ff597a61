//! Keeping the matching index in step with the other processes on the same database:
//! each one follows the feed of index changes (`face_index_changes`) and reloads the
//! people named in it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::FaceService;
use crate::crypto::Sealer;
use crate::store::{Db, face_index_changes};

/// Changes read at once; a longer backlog is read in several batches on one tick.
const BATCH: u64 = 500;

impl FaceService {
    /// Applies the feed's changes after the last one applied: each person named is
    /// reloaded from the database as they are now, so a change applied twice, or after
    /// this process's own update of the same person, leaves the same entry. How many
    /// people were reloaded.
    ///
    /// # Errors
    /// When the database cannot be read or a template does not open; nothing is marked
    /// applied then, and the next call starts again from the same change.
    pub async fn follow_changes(&self, db: &Db, sealer: &Sealer) -> anyhow::Result<usize> {
        let mut reloaded = 0;
        loop {
            let followed = self.followed.load(Ordering::SeqCst);
            let changes = face_index_changes::after(db, followed, BATCH).await?;
            let Some(last) = changes.last().map(|change| change.seq) else {
                return Ok(reloaded);
            };
            let people: BTreeSet<i64> = changes.iter().map(|change| change.user_id).collect();
            for &user_id in &people {
                self.refresh(db, sealer, user_id).await?;
            }
            self.followed.store(last, Ordering::SeqCst);
            reloaded += people.len();
            tracing::debug!(
                from_seq = followed + 1,
                to_seq = last,
                people = people.len(),
                "face index changes applied"
            );
            if (changes.len() as u64) < BATCH {
                return Ok(reloaded);
            }
        }
    }
}

/// Follows the feed of index changes every `every` until `shutdown`.
pub async fn follow_index_changes(
    face: Arc<FaceService>,
    db: Db,
    sealer: Sealer,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        if let Err(error) = face.follow_changes(&db, &sealer).await {
            tracing::warn!(%error, "cannot apply the face index changes of other processes; will try again");
        }
    }
    tracing::info!("face index follower stopped");
}

//! Liveness policy: how each source of verifications checks that a face is live, and the
//! active challenges a kiosk or phone answers (see `rollcall_face::challenge` for how an
//! answer is judged).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rollcall_face::challenge::{ChallengePolicy, ChallengeStep};
use serde::{Deserialize, Serialize};

use crate::store::{Db, StoreResult, liveness_challenges};

/// Frames an answer carries.
pub const MIN_FRAMES: usize = 4;
pub const MAX_FRAMES: usize = 12;

/// How verifications from one source check liveness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LivenessMode {
    /// The passive anti-spoof score refuses faces below `anti_spoof_threshold`: a weak
    /// signal, not a defence against photos or screens.
    #[default]
    Passive,
    /// Every verification answers an active challenge; the passive score is only reported.
    Active,
    /// No check: the passive score is only reported.
    Off,
}

impl LivenessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passive => "passive",
            Self::Active => "active",
            Self::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Passive, Self::Active, Self::Off].into_iter().find(|mode| mode.as_str() == text)
    }
}

impl TryFrom<String> for LivenessMode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("unknown liveness mode {value:?}"))
    }
}

/// What challenges ask and how answers are judged (server policy).
#[derive(Debug, Clone)]
pub struct ChallengeSettings {
    pub steps: usize,
    pub directions: Vec<ChallengeStep>,
    pub ttl: Duration,
    pub min_turn_deg: f32,
    pub min_planar_residual: f32,
}

impl ChallengeSettings {
    /// The policy an answer is judged by; `min_continuity` is the 1:1 operating point.
    pub fn policy(&self, min_continuity: f32) -> ChallengePolicy {
        ChallengePolicy {
            min_turn_deg: self.min_turn_deg,
            min_planar_residual: self.min_planar_residual,
            min_continuity,
        }
    }
}

/// A challenge as issued.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: String,
    pub steps: Vec<ChallengeStep>,
    pub expires_at: DateTime<Utc>,
}

/// Issues a challenge to `caller`: `settings.steps` different directions in random order.
pub async fn issue(db: &Db, settings: &ChallengeSettings, caller: &str) -> StoreResult<Challenge> {
    let mut steps = settings.directions.clone();
    steps.shuffle(&mut rand::rngs::OsRng);
    steps.truncate(settings.steps.min(steps.len()));
    let id = format!("liveness_{}", uuid::Uuid::new_v4());
    let expires_at = Utc::now() + chrono::Duration::from_std(settings.ttl).unwrap_or(chrono::Duration::zero());
    let codes = serde_json::to_string(&steps).expect("steps serialise");
    liveness_challenges::insert(db, &id, caller, &codes, expires_at).await?;
    Ok(Challenge { id, steps, expires_at })
}

/// What redeeming a challenge gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Redeemed {
    /// Unused and unexpired: now used, and these are the steps to judge the answer by.
    Fresh { steps: Vec<ChallengeStep> },
    /// Why the answer cannot be judged.
    Refused { failure: ChallengeRefusal },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeRefusal {
    /// Issued to this caller, but its time ran out.
    ChallengeExpired,
    /// Already answered once.
    ChallengeUsed,
    /// Never issued to this caller.
    ChallengeUnknown,
}

impl ChallengeRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::ChallengeExpired => "challenge_expired",
            Self::ChallengeUsed => "challenge_used",
            Self::ChallengeUnknown => "challenge_unknown",
        }
    }
}

/// Uses `caller`'s challenge `id` up: the first answer to an unexpired challenge gets its
/// steps; any later answer, from any process, is refused. An expired challenge is used up
/// as well, so it cannot be tried again.
pub async fn redeem(db: &Db, id: &str, caller: &str) -> StoreResult<Redeemed> {
    let now = Utc::now();
    let first = liveness_challenges::mark_used(db, id, caller, now).await?;
    let Some(record) = liveness_challenges::find(db, id, caller).await? else {
        return Ok(Redeemed::Refused { failure: ChallengeRefusal::ChallengeUnknown });
    };
    let failure = if !first {
        ChallengeRefusal::ChallengeUsed
    } else if record.expires_at <= now {
        ChallengeRefusal::ChallengeExpired
    } else {
        return Ok(match serde_json::from_str::<Vec<ChallengeStep>>(&record.steps) {
            Ok(steps) if !steps.is_empty() => Redeemed::Fresh { steps },
            _ => Redeemed::Refused { failure: ChallengeRefusal::ChallengeUnknown },
        });
    };
    Ok(Redeemed::Refused { failure })
}

/// Deletes challenges that expired over a day ago (hourly maintenance); how many went.
pub async fn purge_expired(db: &Db) -> StoreResult<u64> {
    liveness_challenges::delete_expired(db, Utc::now() - chrono::Duration::days(1)).await
}

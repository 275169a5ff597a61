//! The `liveness_challenges` table: one row per issued challenge, used at most once.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum LivenessChallenges {
    Table,
    Id,
    Caller,
    Steps,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChallengeRecord {
    pub id: String,
    pub caller: String,
    /// JSON array of step codes.
    pub steps: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert(db: &Db, id: &str, caller: &str, steps: &str, expires_at: DateTime<Utc>) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(LivenessChallenges::Table)
        .columns([
            LivenessChallenges::Id,
            LivenessChallenges::Caller,
            LivenessChallenges::Steps,
            LivenessChallenges::CreatedAt,
            LivenessChallenges::ExpiresAt,
        ])
        .values_panic([id.into(), caller.into(), steps.into(), Utc::now().into(), expires_at.into()])
        .to_owned();
    db.execute(&statement).await.map(drop)
}

/// Marks the caller's challenge used, if it was not: true for exactly one of any number
/// of concurrent answers, whichever process they reach.
pub async fn mark_used(db: &Db, id: &str, caller: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let statement = Query::update()
        .table(LivenessChallenges::Table)
        .value(LivenessChallenges::UsedAt, now)
        .and_where(Expr::col(LivenessChallenges::Id).eq(id))
        .and_where(Expr::col(LivenessChallenges::Caller).eq(caller))
        .and_where(Expr::col(LivenessChallenges::UsedAt).is_null())
        .to_owned();
    Ok(db.execute(&statement).await? == 1)
}

/// The caller's challenge, used or not; another caller's is not found.
pub async fn find(db: &Db, id: &str, caller: &str) -> StoreResult<Option<ChallengeRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(LivenessChallenges::Table)
        .and_where(Expr::col(LivenessChallenges::Id).eq(id))
        .and_where(Expr::col(LivenessChallenges::Caller).eq(caller))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Deletes the challenges that expired before `before`; how many went.
pub async fn delete_expired(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(LivenessChallenges::Table)
        .and_where(Expr::col(LivenessChallenges::ExpiresAt).lt(before))
        .to_owned();
    db.execute(&statement).await
}

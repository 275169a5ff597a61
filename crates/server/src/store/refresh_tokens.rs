//! The `refresh_tokens` table: one row per issued refresh token, stored as a hash.
//! Tokens of one login form a family; rotation marks a row rotated and adds the next.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum RefreshTokens {
    Table,
    Id,
    TokenHash,
    FamilyId,
    UserId,
    CreatedAt,
    ExpiresAt,
    RotatedAt,
    RevokedAt,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    pub id: i64,
    pub token_hash: String,
    pub family_id: String,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    db: &Db,
    token_hash: &str,
    family_id: &str,
    user_id: i64,
    expires_at: DateTime<Utc>,
) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(RefreshTokens::Table)
        .columns([
            RefreshTokens::TokenHash,
            RefreshTokens::FamilyId,
            RefreshTokens::UserId,
            RefreshTokens::CreatedAt,
            RefreshTokens::ExpiresAt,
        ])
        .values_panic([token_hash.into(), family_id.into(), user_id.into(), Utc::now().into(), expires_at.into()])
        .to_owned();
    db.execute(&statement).await.map(drop)
}

pub async fn find_by_hash(db: &Db, token_hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(RefreshTokens::Table)
        .and_where(Expr::col(RefreshTokens::TokenHash).eq(token_hash))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Marks a live token rotated. Returns false when it was already rotated or revoked,
/// so two concurrent refreshes with one token cannot both succeed.
pub async fn mark_rotated(db: &Db, id: i64) -> StoreResult<bool> {
    let statement = Query::update()
        .table(RefreshTokens::Table)
        .value(RefreshTokens::RotatedAt, Utc::now())
        .and_where(Expr::col(RefreshTokens::Id).eq(id))
        .and_where(Expr::col(RefreshTokens::RotatedAt).is_null())
        .and_where(Expr::col(RefreshTokens::RevokedAt).is_null())
        .to_owned();
    Ok(db.execute(&statement).await? == 1)
}

pub async fn revoke_family(db: &Db, family_id: &str) -> StoreResult<u64> {
    let statement = Query::update()
        .table(RefreshTokens::Table)
        .value(RefreshTokens::RevokedAt, Utc::now())
        .and_where(Expr::col(RefreshTokens::FamilyId).eq(family_id))
        .and_where(Expr::col(RefreshTokens::RevokedAt).is_null())
        .to_owned();
    db.execute(&statement).await
}

pub async fn revoke_all_for_user(db: &impl Exec, user_id: i64) -> StoreResult<u64> {
    let statement = Query::update()
        .table(RefreshTokens::Table)
        .value(RefreshTokens::RevokedAt, Utc::now())
        .and_where(Expr::col(RefreshTokens::UserId).eq(user_id))
        .and_where(Expr::col(RefreshTokens::RevokedAt).is_null())
        .to_owned();
    db.execute(&statement).await
}

/// Deletes the tokens that expired before `now` (an expired token is refused whatever its
/// row says); how many went.
pub async fn delete_expired(db: &Db, now: DateTime<Utc>) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(RefreshTokens::Table)
        .and_where(Expr::col(RefreshTokens::ExpiresAt).lt(now))
        .to_owned();
    db.execute(&statement).await
}

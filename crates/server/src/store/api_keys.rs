//! The `api_keys` table. Keys are stored as SHA-256 hashes: they are long random
//! strings, so a slow password hash adds nothing but latency to every device request.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Order, Query};

use super::{Db, Exec, StoreResult};
use crate::domain::liveness::LivenessMode;
use crate::domain::users::Role;

#[derive(Iden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Prefix,
    KeyHash,
    Role,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
    LivenessMode,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, shown so people can tell keys apart.
    pub prefix: String,
    pub key_hash: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub liveness_mode: LivenessMode,
}

pub async fn insert(
    db: &Db,
    name: &str,
    prefix: &str,
    key_hash: &str,
    role: Role,
    liveness_mode: LivenessMode,
    created_by: Option<i64>,
) -> StoreResult<ApiKeyRecord> {
    let statement = Query::insert()
        .into_table(ApiKeys::Table)
        .columns([
            ApiKeys::Name,
            ApiKeys::Prefix,
            ApiKeys::KeyHash,
            ApiKeys::Role,
            ApiKeys::LivenessMode,
            ApiKeys::CreatedBy,
            ApiKeys::CreatedAt,
        ])
        .values_panic([
            name.into(),
            prefix.into(),
            key_hash.into(),
            role.as_str().into(),
            liveness_mode.as_str().into(),
            created_by.into(),
            Utc::now().into(),
        ])
        .returning_all()
        .to_owned();
    db.fetch_one_unique(&statement, &["key_hash"]).await
}

/// The live (not revoked) key with this hash.
pub async fn find_live_by_hash(db: &Db, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(ApiKeys::Table)
        .and_where(Expr::col(ApiKeys::KeyHash).eq(key_hash))
        .and_where(Expr::col(ApiKeys::RevokedAt).is_null())
        .to_owned();
    db.fetch_optional(&statement).await
}

pub async fn list(db: &Db) -> StoreResult<Vec<ApiKeyRecord>> {
    let statement =
        Query::select().column(sea_query::Asterisk).from(ApiKeys::Table).order_by(ApiKeys::Id, Order::Asc).to_owned();
    db.fetch_all(&statement).await
}

pub async fn find_by_id(db: &Db, id: i64) -> StoreResult<Option<ApiKeyRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(ApiKeys::Table)
        .and_where(Expr::col(ApiKeys::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Revokes a key; false when there is no such live key.
pub async fn revoke(db: &Db, id: i64) -> StoreResult<bool> {
    let statement = Query::update()
        .table(ApiKeys::Table)
        .value(ApiKeys::RevokedAt, Utc::now())
        .and_where(Expr::col(ApiKeys::Id).eq(id))
        .and_where(Expr::col(ApiKeys::RevokedAt).is_null())
        .to_owned();
    Ok(db.execute(&statement).await? == 1)
}

pub async fn touch(db: &Db, id: i64) -> StoreResult<()> {
    let statement = Query::update()
        .table(ApiKeys::Table)
        .value(ApiKeys::LastUsedAt, Utc::now())
        .and_where(Expr::col(ApiKeys::Id).eq(id))
        .to_owned();
    db.execute(&statement).await.map(drop)
}

//! The `sites` table: where people may check in from a phone.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum Sites {
    Table,
    Id,
    Name,
    Latitude,
    Longitude,
    RadiusM,
    CreatedAt,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SiteRecord {
    pub id: i64,
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
    pub created_at: DateTime<Utc>,
}

/// A site's fields, checked.
#[derive(Debug, Clone)]
pub struct SiteFields {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
}

/// Adds a site; [`super::StoreError::Conflict`] when the name is taken.
pub async fn insert(db: &Db, site: &SiteFields) -> StoreResult<SiteRecord> {
    let statement = Query::insert()
        .into_table(Sites::Table)
        .columns([Sites::Name, Sites::Latitude, Sites::Longitude, Sites::RadiusM, Sites::CreatedAt])
        .values_panic([
            site.name.clone().into(),
            site.latitude.into(),
            site.longitude.into(),
            site.radius_m.into(),
            Utc::now().into(),
        ])
        .returning_all()
        .to_owned();
    db.fetch_one_unique(&statement, &["name"]).await
}

/// Every site, by name. Sites are few (a campus has tens).
pub async fn all(db: &impl Exec) -> StoreResult<Vec<SiteRecord>> {
    let statement =
        Query::select().column(sea_query::Asterisk).from(Sites::Table).order_by(Sites::Name, Order::Asc).to_owned();
    db.fetch_all(&statement).await
}

pub async fn find(db: &Db, id: i64) -> StoreResult<Option<SiteRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Sites::Table)
        .and_where(Expr::col(Sites::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Replaces site `id`'s fields; `None` when there is no such site.
pub async fn update(db: &Db, id: i64, site: &SiteFields) -> StoreResult<Option<SiteRecord>> {
    let statement = Query::update()
        .table(Sites::Table)
        .values([
            (Sites::Name, site.name.clone().into()),
            (Sites::Latitude, site.latitude.into()),
            (Sites::Longitude, site.longitude.into()),
            (Sites::RadiusM, site.radius_m.into()),
        ])
        .and_where(Expr::col(Sites::Id).eq(id))
        .returning_all()
        .to_owned();
    db.fetch_optional_unique(&statement, &["name"]).await
}

pub async fn delete(db: &Db, id: i64) -> StoreResult<bool> {
    let statement = Query::delete().from_table(Sites::Table).and_where(Expr::col(Sites::Id).eq(id)).to_owned();
    Ok(db.execute(&statement).await? > 0)
}

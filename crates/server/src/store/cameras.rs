//! The `cameras` table: the streams the server watches. The URL with its credentials is
//! sealed ([`super::sealed::CAMERA_URLS`]); only the masked URL is stored in the clear.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum Cameras {
    Table,
    Id,
    Name,
    Location,
    IpAddress,
    Url,
    MaskedUrl,
    Direction,
    SampleFps,
    IsActive,
    LivenessMode,
    Revision,
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CameraRecord {
    pub id: String,
    pub name: String,
    pub location: String,
    pub ip_address: Option<String>,
    /// Sealed: the stream URL with its credentials.
    pub url: Vec<u8>,
    pub masked_url: String,
    pub direction: String,
    pub sample_fps: f64,
    pub is_active: bool,
    /// `passive` or `off`.
    pub liveness_mode: String,
    /// Grows with every change: an ingestion worker started on an older one restarts.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A camera's fields, checked, with the URL already sealed for the camera's row.
#[derive(Debug, Clone)]
pub struct CameraFields {
    pub name: String,
    pub location: String,
    pub ip_address: Option<String>,
    pub url: Vec<u8>,
    pub masked_url: String,
    pub direction: String,
    pub sample_fps: f64,
    pub is_active: bool,
    pub liveness_mode: String,
}

/// Adds camera `id`; [`super::StoreError::Conflict`] when the id is taken.
pub async fn insert(db: &Db, id: &str, camera: CameraFields) -> StoreResult<CameraRecord> {
    let now = Utc::now();
    let statement = Query::insert()
        .into_table(Cameras::Table)
        .columns([
            Cameras::Id,
            Cameras::Name,
            Cameras::Location,
            Cameras::IpAddress,
            Cameras::Url,
            Cameras::MaskedUrl,
            Cameras::Direction,
            Cameras::SampleFps,
            Cameras::IsActive,
            Cameras::LivenessMode,
            Cameras::Revision,
            Cameras::CreatedAt,
            Cameras::UpdatedAt,
        ])
        .values_panic([
            id.into(),
            camera.name.into(),
            camera.location.into(),
            camera.ip_address.into(),
            camera.url.into(),
            camera.masked_url.into(),
            camera.direction.into(),
            camera.sample_fps.into(),
            camera.is_active.into(),
            camera.liveness_mode.into(),
            1i64.into(),
            now.into(),
            now.into(),
        ])
        .returning_all()
        .to_owned();
    db.fetch_one_unique(&statement, &["id"]).await
}

/// Every camera, by id. Cameras are few (a campus has tens).
pub async fn all(db: &impl Exec) -> StoreResult<Vec<CameraRecord>> {
    let statement =
        Query::select().column(sea_query::Asterisk).from(Cameras::Table).order_by(Cameras::Id, Order::Asc).to_owned();
    db.fetch_all(&statement).await
}

pub async fn find(db: &impl Exec, id: &str) -> StoreResult<Option<CameraRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Cameras::Table)
        .and_where(Expr::col(Cameras::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Replaces camera `id`'s fields and counts a new revision; `None` when there is no such
/// camera.
pub async fn update(db: &Db, id: &str, camera: CameraFields) -> StoreResult<Option<CameraRecord>> {
    let statement = Query::update()
        .table(Cameras::Table)
        .values([
            (Cameras::Name, camera.name.into()),
            (Cameras::Location, camera.location.into()),
            (Cameras::IpAddress, camera.ip_address.into()),
            (Cameras::Url, camera.url.into()),
            (Cameras::MaskedUrl, camera.masked_url.into()),
            (Cameras::Direction, camera.direction.into()),
            (Cameras::SampleFps, camera.sample_fps.into()),
            (Cameras::IsActive, camera.is_active.into()),
            (Cameras::LivenessMode, camera.liveness_mode.into()),
            (Cameras::UpdatedAt, Utc::now().into()),
        ])
        .value(Cameras::Revision, Expr::col(Cameras::Revision).add(1))
        .and_where(Expr::col(Cameras::Id).eq(id))
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

pub async fn delete(db: &Db, id: &str) -> StoreResult<bool> {
    let statement = Query::delete().from_table(Cameras::Table).and_where(Expr::col(Cameras::Id).eq(id)).to_owned();
    Ok(db.execute(&statement).await? > 0)
}

//! `face_templates` (one encrypted template per person) and `enrollment_images`.

use chrono::Utc;
use sea_query::{Expr, Iden, OnConflict, Query};

use super::users::Users;
use super::{Db, StoreResult};

#[derive(Iden)]
enum FaceTemplates {
    Table,
    UserId,
    Template,
    Embeddings,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum EnrollmentImages {
    Table,
    UserId,
    Image,
    CreatedAt,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedTemplate {
    pub user_id: i64,
    /// AES-256-GCM sealed [`rollcall_face::Template`] bytes.
    pub template: Vec<u8>,
}

/// Stores or replaces a person's template, and marks them enrolled.
pub async fn upsert(db: &Db, user_id: i64, sealed: Vec<u8>, embeddings: i64) -> StoreResult<()> {
    let now = Utc::now();
    let statement = Query::insert()
        .into_table(FaceTemplates::Table)
        .columns([
            FaceTemplates::UserId,
            FaceTemplates::Template,
            FaceTemplates::Embeddings,
            FaceTemplates::CreatedAt,
            FaceTemplates::UpdatedAt,
        ])
        .values_panic([user_id.into(), sealed.into(), embeddings.into(), now.into(), now.into()])
        .on_conflict(
            OnConflict::column(FaceTemplates::UserId)
                .update_columns([FaceTemplates::Template, FaceTemplates::Embeddings, FaceTemplates::UpdatedAt])
                .to_owned(),
        )
        .to_owned();
    db.execute(&statement).await?;
    set_enrolled(db, user_id, true).await
}

async fn set_enrolled(db: &Db, user_id: i64, enrolled: bool) -> StoreResult<()> {
    let statement = Query::update()
        .table(Users::Table)
        .value(Users::FaceEnrolled, enrolled)
        .and_where(Expr::col(Users::Id).eq(user_id))
        .to_owned();
    db.execute(&statement).await.map(drop)
}

/// Erases a person's template and kept photos. False when there was no template.
pub async fn erase(db: &Db, user_id: i64) -> StoreResult<bool> {
    let images = Query::delete()
        .from_table(EnrollmentImages::Table)
        .and_where(Expr::col(EnrollmentImages::UserId).eq(user_id))
        .to_owned();
    db.execute(&images).await?;
    let template = Query::delete()
        .from_table(FaceTemplates::Table)
        .and_where(Expr::col(FaceTemplates::UserId).eq(user_id))
        .to_owned();
    let erased = db.execute(&template).await? > 0;
    set_enrolled(db, user_id, false).await?;
    Ok(erased)
}

pub async fn find(db: &Db, user_id: i64) -> StoreResult<Option<SealedTemplate>> {
    let statement = Query::select()
        .columns([FaceTemplates::UserId, FaceTemplates::Template])
        .from(FaceTemplates::Table)
        .and_where(Expr::col(FaceTemplates::UserId).eq(user_id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Templates of active people: what the matching index is loaded from.
pub async fn all_active(db: &Db) -> StoreResult<Vec<SealedTemplate>> {
    let statement = Query::select()
        .columns([(FaceTemplates::Table, FaceTemplates::UserId), (FaceTemplates::Table, FaceTemplates::Template)])
        .from(FaceTemplates::Table)
        .inner_join(
            Users::Table,
            Expr::col((Users::Table, Users::Id)).equals((FaceTemplates::Table, FaceTemplates::UserId)),
        )
        .and_where(Expr::col((Users::Table, Users::IsActive)).eq(true))
        .to_owned();
    db.fetch_all(&statement).await
}

pub async fn keep_image(db: &Db, user_id: i64, sealed: Vec<u8>) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(EnrollmentImages::Table)
        .columns([EnrollmentImages::UserId, EnrollmentImages::Image, EnrollmentImages::CreatedAt])
        .values_panic([user_id.into(), sealed.into(), Utc::now().into()])
        .to_owned();
    db.execute(&statement).await.map(drop)
}

//! `face_templates` (one encrypted template per person) and `enrollment_images`.

use chrono::Utc;
use sea_query::{Alias as Name, Expr, Func, Iden, OnConflict, Query, SimpleExpr};

use super::face_index_changes::FaceIndexChanges;
use super::users::Users;
use super::{Alias, Db, Exec, StoreResult};

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
pub async fn upsert(db: &impl Exec, user_id: i64, sealed: Vec<u8>, embeddings: i64) -> StoreResult<()> {
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

async fn set_enrolled(db: &impl Exec, user_id: i64, enrolled: bool) -> StoreResult<()> {
    let statement = Query::update()
        .table(Users::Table)
        .value(Users::FaceEnrolled, enrolled)
        .and_where(Expr::col(Users::Id).eq(user_id))
        .to_owned();
    db.execute(&statement).await.map(drop)
}

/// Erases a person's template, kept photos and the face crops of their logs. False when
/// there was no template.
pub async fn erase(db: &impl Exec, user_id: i64) -> StoreResult<bool> {
    super::evidence::erase_for_user(db, user_id).await?;
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

pub async fn find(db: &impl Exec, user_id: i64) -> StoreResult<Option<SealedTemplate>> {
    let statement = Query::select()
        .columns([FaceTemplates::UserId, FaceTemplates::Template])
        .from(FaceTemplates::Table)
        .and_where(Expr::col(FaceTemplates::UserId).eq(user_id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Templates of active people with ids above `after`, in id order, at most `limit`: what
/// the matching index is loaded from, a page at a time.
pub async fn active_page(db: &Db, after: i64, limit: u64) -> StoreResult<Vec<SealedTemplate>> {
    let statement = Query::select()
        .columns([(FaceTemplates::Table, FaceTemplates::UserId), (FaceTemplates::Table, FaceTemplates::Template)])
        .from(FaceTemplates::Table)
        .inner_join(
            Users::Table,
            Expr::col((Users::Table, Users::Id)).equals((FaceTemplates::Table, FaceTemplates::UserId)),
        )
        .and_where(Expr::col((Users::Table, Users::IsActive)).eq(true))
        .and_where(Expr::col((FaceTemplates::Table, FaceTemplates::UserId)).gt(after))
        .order_by((FaceTemplates::Table, FaceTemplates::UserId), sea_query::Order::Asc)
        .limit(limit)
        .to_owned();
    db.fetch_all(&statement).await
}

/// What the matching index should hold for one person, as of one change of the feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexEntry {
    /// The `seq` of the person's latest change in the feed (0 when none is left).
    pub version: i64,
    /// The sealed template, when the person is active and has one.
    pub template: Option<Vec<u8>>,
}

/// A person's current [`IndexEntry`]. One statement reads both parts, so the template
/// is the one the version's change left (one snapshot on either backend).
pub async fn index_entry(db: &Db, user_id: i64) -> StoreResult<IndexEntry> {
    let version = Query::select()
        .expr(Expr::col(FaceIndexChanges::Seq).max())
        .from(FaceIndexChanges::Table)
        .and_where(Expr::col(FaceIndexChanges::UserId).eq(user_id))
        .to_owned();
    let template = Query::select()
        .column((FaceTemplates::Table, FaceTemplates::Template))
        .from(FaceTemplates::Table)
        .inner_join(
            Users::Table,
            Expr::col((Users::Table, Users::Id)).equals((FaceTemplates::Table, FaceTemplates::UserId)),
        )
        .and_where(Expr::col((FaceTemplates::Table, FaceTemplates::UserId)).eq(user_id))
        .and_where(Expr::col((Users::Table, Users::IsActive)).eq(true))
        .to_owned();
    let subquery =
        |select: sea_query::SelectStatement| SimpleExpr::SubQuery(None, Box::new(select.into_sub_query_statement()));
    let statement = Query::select()
        .expr_as(Func::coalesce([subquery(version), 0i64.into()]), Name::new("version"))
        .expr_as(subquery(template), Name::new("template"))
        .to_owned();
    db.fetch_one_unique(&statement, &[]).await
}

/// Replaces a person's kept enrollment photos (sealed) with `sealed`: the photos kept are
/// always those of the current template, and a re-run of the same enrollment keeps them once.
pub async fn replace_images(db: &impl Exec, user_id: i64, sealed: Vec<Vec<u8>>) -> StoreResult<()> {
    let old = Query::delete()
        .from_table(EnrollmentImages::Table)
        .and_where(Expr::col(EnrollmentImages::UserId).eq(user_id))
        .to_owned();
    db.execute(&old).await?;
    if sealed.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut statement = Query::insert()
        .into_table(EnrollmentImages::Table)
        .columns([EnrollmentImages::UserId, EnrollmentImages::Image, EnrollmentImages::CreatedAt])
        .to_owned();
    for image in sealed {
        statement.values_panic([user_id.into(), image.into(), now.into()]);
    }
    db.execute(&statement).await.map(drop)
}

/// How many enrollment photos are kept for a person.
pub async fn kept_images(db: &Db, user_id: i64) -> StoreResult<i64> {
    let statement = Query::select()
        .expr_as(Expr::col(EnrollmentImages::UserId).count(), Alias::Count)
        .from(EnrollmentImages::Table)
        .and_where(Expr::col(EnrollmentImages::UserId).eq(user_id))
        .to_owned();
    db.count(&statement).await
}

//! The `visitors` and `visitor_sightings` tables: strangers seen at cameras, grouped by
//! likeness. Embeddings and crops are sealed ([`super::sealed::VISITOR_EMBEDDINGS`],
//! [`super::sealed::VISITOR_CROPS`], [`super::sealed::SIGHTING_EMBEDDINGS`]).

use chrono::{DateTime, Utc};
use sea_query::{Expr, Func, Iden, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum VisitorNumbers {
    Table,
    Id,
    LastNumber,
}

#[derive(Iden)]
enum Visitors {
    Table,
    Number,
    Embedding,
    Crop,
    CropQuality,
    Sightings,
    FirstSeen,
    LastSeen,
}

#[derive(Iden)]
enum VisitorSightings {
    Table,
    TaskId,
    VisitorNumber,
    CameraId,
    SeenAt,
    Similarity,
    QualityScore,
    Embedding,
}

/// Rows a purge deletes per statement: SQLite's write lock is held that long, no longer.
const PURGE_BATCH: u64 = 1_000;

/// A visitor as listed, without its sealed embedding and crop.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VisitorRecord {
    pub number: i64,
    pub sightings: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A visitor's sealed mean embedding, what a new sighting is compared with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedLikeness {
    pub number: i64,
    pub embedding: Vec<u8>,
    pub sightings: i64,
    pub crop_quality: f64,
}

/// Sightings of one visitor at one camera.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CameraSightings {
    pub visitor_number: i64,
    pub camera_id: String,
    pub sightings: i64,
    pub last_seen: DateTime<Utc>,
}

/// One sighting to record, its embedding sealed.
pub struct NewSighting<'a> {
    pub task_id: &'a str,
    pub camera_id: &'a str,
    pub seen_at: DateTime<Utc>,
    /// To the visitor it joined; none for a new visitor.
    pub similarity: Option<f64>,
    pub quality_score: f64,
    pub embedding: Vec<u8>,
}

/// Takes the clustering lock for the rest of `tx` (SQLite's `BEGIN IMMEDIATE` holds the
/// write lock already; PostgreSQL locks the one numbering row).
pub async fn lock_numbering(tx: &impl Exec) -> StoreResult<()> {
    #[derive(sqlx::FromRow)]
    struct Last {
        #[allow(dead_code)]
        last_number: i64,
    }
    let statement = Query::select()
        .column(VisitorNumbers::LastNumber)
        .from(VisitorNumbers::Table)
        .and_where(Expr::col(VisitorNumbers::Id).eq(1))
        .lock(sea_query::LockType::Update)
        .to_owned();
    tx.fetch_optional::<Last>(&statement).await.map(drop)
}

/// The visitor task `task_id` already placed its face with, if it ran before.
pub async fn sighting_of_task(db: &impl Exec, task_id: &str) -> StoreResult<Option<i64>> {
    #[derive(sqlx::FromRow)]
    struct Of {
        visitor_number: i64,
    }
    let statement = Query::select()
        .column(VisitorSightings::VisitorNumber)
        .from(VisitorSightings::Table)
        .and_where(Expr::col(VisitorSightings::TaskId).eq(task_id))
        .to_owned();
    Ok(db.fetch_optional::<Of>(&statement).await?.map(|of| of.visitor_number))
}

/// Every visitor seen since `since`, with its sealed likeness. Visitors are bounded by
/// the retention period, so this is a campus's strangers of a few weeks.
pub async fn likenesses_since(db: &impl Exec, since: DateTime<Utc>) -> StoreResult<Vec<SealedLikeness>> {
    let statement = Query::select()
        .columns([Visitors::Number, Visitors::Embedding, Visitors::Sightings, Visitors::CropQuality])
        .from(Visitors::Table)
        .and_where(Expr::col(Visitors::LastSeen).gte(since))
        .order_by(Visitors::Number, Order::Asc)
        .to_owned();
    db.fetch_all(&statement).await
}

/// Adds a visitor with the next number; its number.
pub async fn insert(
    tx: &impl Exec,
    sealed: impl FnOnce(i64) -> (Vec<u8>, Vec<u8>),
    crop_quality: f64,
    seen_at: DateTime<Utc>,
) -> StoreResult<i64> {
    #[derive(sqlx::FromRow)]
    struct Next {
        last_number: i64,
    }
    let next = Query::update()
        .table(VisitorNumbers::Table)
        .value(VisitorNumbers::LastNumber, Expr::col(VisitorNumbers::LastNumber).add(1))
        .and_where(Expr::col(VisitorNumbers::Id).eq(1))
        .returning_col(VisitorNumbers::LastNumber)
        .to_owned();
    let number = tx.fetch_one_unique::<Next>(&next, &[]).await?.last_number;
    let (embedding, crop) = sealed(number);
    let statement = Query::insert()
        .into_table(Visitors::Table)
        .columns([
            Visitors::Number,
            Visitors::Embedding,
            Visitors::Crop,
            Visitors::CropQuality,
            Visitors::Sightings,
            Visitors::FirstSeen,
            Visitors::LastSeen,
        ])
        .values_panic([
            number.into(),
            embedding.into(),
            crop.into(),
            crop_quality.into(),
            0i64.into(),
            seen_at.into(),
            seen_at.into(),
        ])
        .to_owned();
    tx.execute(&statement).await?;
    Ok(number)
}

/// Replaces visitor `number`'s likeness and, when a better face was seen, its crop.
pub async fn update_likeness(
    tx: &impl Exec,
    number: i64,
    embedding: Vec<u8>,
    better_crop: Option<(Vec<u8>, f64)>,
) -> StoreResult<()> {
    let mut statement = Query::update();
    statement
        .table(Visitors::Table)
        .value(Visitors::Embedding, embedding)
        .and_where(Expr::col(Visitors::Number).eq(number));
    if let Some((crop, quality)) = better_crop {
        statement.value(Visitors::Crop, crop).value(Visitors::CropQuality, quality);
    }
    tx.execute(&statement).await.map(drop)
}

/// Records a sighting of visitor `number` and counts it on the visitor.
pub async fn add_sighting(tx: &impl Exec, number: i64, sighting: NewSighting<'_>) -> StoreResult<()> {
    let seen_at = sighting.seen_at;
    let statement = Query::insert()
        .into_table(VisitorSightings::Table)
        .columns([
            VisitorSightings::TaskId,
            VisitorSightings::VisitorNumber,
            VisitorSightings::CameraId,
            VisitorSightings::SeenAt,
            VisitorSightings::Similarity,
            VisitorSightings::QualityScore,
            VisitorSightings::Embedding,
        ])
        .values_panic([
            sighting.task_id.into(),
            number.into(),
            sighting.camera_id.into(),
            seen_at.into(),
            sighting.similarity.into(),
            sighting.quality_score.into(),
            sighting.embedding.into(),
        ])
        .to_owned();
    tx.execute(&statement).await?;
    let count = Query::update()
        .table(Visitors::Table)
        .value(Visitors::Sightings, Expr::col(Visitors::Sightings).add(1))
        .value(
            Visitors::FirstSeen,
            Expr::case(Expr::col(Visitors::FirstSeen).gt(seen_at), seen_at).finally(Expr::col(Visitors::FirstSeen)),
        )
        .value(
            Visitors::LastSeen,
            Expr::case(Expr::col(Visitors::LastSeen).lt(seen_at), seen_at).finally(Expr::col(Visitors::LastSeen)),
        )
        .and_where(Expr::col(Visitors::Number).eq(number))
        .to_owned();
    tx.execute(&count).await.map(drop)
}

/// A page of visitors, the most recently seen first, and how many there are.
pub async fn page(db: &Db, limit: u64, offset: u64) -> StoreResult<(Vec<VisitorRecord>, i64)> {
    let statement = Query::select()
        .columns([Visitors::Number, Visitors::Sightings, Visitors::FirstSeen, Visitors::LastSeen])
        .from(Visitors::Table)
        .order_by(Visitors::LastSeen, Order::Desc)
        .order_by(Visitors::Number, Order::Desc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let count = Query::select()
        .expr_as(Func::count(Expr::col(Visitors::Number)), super::Alias::Count)
        .from(Visitors::Table)
        .to_owned();
    Ok((db.fetch_all(&statement).await?, db.count(&count).await?))
}

pub async fn find(db: &impl Exec, number: i64) -> StoreResult<Option<VisitorRecord>> {
    let statement = Query::select()
        .columns([Visitors::Number, Visitors::Sightings, Visitors::FirstSeen, Visitors::LastSeen])
        .from(Visitors::Table)
        .and_where(Expr::col(Visitors::Number).eq(number))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Sightings per camera of the visitors `numbers`.
pub async fn per_camera(db: &Db, numbers: &[i64]) -> StoreResult<Vec<CameraSightings>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let statement = Query::select()
        .columns([VisitorSightings::VisitorNumber, VisitorSightings::CameraId])
        .expr_as(Expr::cust("COUNT(*)"), Name::Sightings)
        .expr_as(Func::max(Expr::col(VisitorSightings::SeenAt)), Name::LastSeen)
        .from(VisitorSightings::Table)
        .and_where(Expr::col(VisitorSightings::VisitorNumber).is_in(numbers.iter().copied()))
        .add_group_by([Expr::cust("visitor_number"), Expr::cust("camera_id")])
        .order_by(VisitorSightings::VisitorNumber, Order::Asc)
        .order_by(VisitorSightings::CameraId, Order::Asc)
        .to_owned();
    db.fetch_all(&statement).await
}

#[derive(Iden)]
enum Name {
    Sightings,
    LastSeen,
}

/// Visitor `number`'s sealed crop.
pub async fn crop(db: &Db, number: i64) -> StoreResult<Option<Vec<u8>>> {
    #[derive(sqlx::FromRow)]
    struct Crop {
        crop: Vec<u8>,
    }
    let statement = Query::select()
        .column(Visitors::Crop)
        .from(Visitors::Table)
        .and_where(Expr::col(Visitors::Number).eq(number))
        .to_owned();
    Ok(db.fetch_optional::<Crop>(&statement).await?.map(|row| row.crop))
}

/// The sealed embeddings of visitor `number`'s best sightings (by quality), at most `limit`.
pub async fn best_embeddings(db: &impl Exec, number: i64, limit: u64) -> StoreResult<Vec<Vec<u8>>> {
    #[derive(sqlx::FromRow)]
    struct Sealed {
        embedding: Vec<u8>,
    }
    let statement = Query::select()
        .column(VisitorSightings::Embedding)
        .from(VisitorSightings::Table)
        .and_where(Expr::col(VisitorSightings::VisitorNumber).eq(number))
        .order_by(VisitorSightings::QualityScore, Order::Desc)
        .order_by(VisitorSightings::SeenAt, Order::Desc)
        .limit(limit)
        .to_owned();
    Ok(db.fetch_all::<Sealed>(&statement).await?.into_iter().map(|row| row.embedding).collect())
}

/// Deletes visitor `number` with its sightings; false when there was none.
pub async fn delete(db: &impl Exec, number: i64) -> StoreResult<bool> {
    let sightings = Query::delete()
        .from_table(VisitorSightings::Table)
        .and_where(Expr::col(VisitorSightings::VisitorNumber).eq(number))
        .to_owned();
    db.execute(&sightings).await?;
    let visitor =
        Query::delete().from_table(Visitors::Table).and_where(Expr::col(Visitors::Number).eq(number)).to_owned();
    Ok(db.execute(&visitor).await? > 0)
}

/// Deletes the sightings made before `cutoff` and the visitors last seen before it, a
/// batch per statement; how many visitors went.
pub async fn purge_seen_before(db: &Db, cutoff: DateTime<Utc>) -> StoreResult<u64> {
    loop {
        let batch = Query::select()
            .column(VisitorSightings::TaskId)
            .from(VisitorSightings::Table)
            .and_where(Expr::col(VisitorSightings::SeenAt).lt(cutoff))
            .limit(PURGE_BATCH)
            .to_owned();
        let statement = Query::delete()
            .from_table(VisitorSightings::Table)
            .and_where(Expr::col(VisitorSightings::TaskId).in_subquery(batch))
            .to_owned();
        if db.execute(&statement).await? < PURGE_BATCH {
            break;
        }
    }
    let mut purged = 0;
    loop {
        let batch = Query::select()
            .column(Visitors::Number)
            .from(Visitors::Table)
            .and_where(Expr::col(Visitors::LastSeen).lt(cutoff))
            .limit(PURGE_BATCH)
            .to_owned();
        let statement = Query::delete()
            .from_table(Visitors::Table)
            .and_where(Expr::col(Visitors::Number).in_subquery(batch))
            .to_owned();
        let deleted = db.execute(&statement).await?;
        purged += deleted;
        if deleted < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

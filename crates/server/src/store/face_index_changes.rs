//! `face_index_changes`: the feed of people whose place in the matching index changed,
//! which every server process follows to keep its in-memory index in step with the others.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum FaceIndexHead {
    Table,
    Id,
    LastSeq,
}

#[derive(Iden)]
pub(super) enum FaceIndexChanges {
    Table,
    Seq,
    UserId,
    ChangedAt,
}

/// One entry of the feed: `user_id`'s template or activity changed in the transaction
/// that took `seq`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IndexChange {
    pub seq: i64,
    pub user_id: i64,
}

#[derive(sqlx::FromRow)]
struct Head {
    last_seq: i64,
}

/// Adds `user_id` to the feed, in the transaction that changed them; the change's `seq`.
///
/// Call it as the transaction's last statement: it locks the feed's head row until the
/// commit, so that changes are numbered in commit order, and holding that lock while
/// waiting for other rows could deadlock against a transaction that holds those rows.
pub async fn record(tx: &impl Exec, user_id: i64) -> StoreResult<i64> {
    let next = Query::update()
        .table(FaceIndexHead::Table)
        .value(FaceIndexHead::LastSeq, Expr::col(FaceIndexHead::LastSeq).add(1))
        .and_where(Expr::col(FaceIndexHead::Id).eq(1))
        .returning_col(FaceIndexHead::LastSeq)
        .to_owned();
    let seq = tx.fetch_one_unique::<Head>(&next, &[]).await?.last_seq;
    let statement = Query::insert()
        .into_table(FaceIndexChanges::Table)
        .columns([FaceIndexChanges::Seq, FaceIndexChanges::UserId, FaceIndexChanges::ChangedAt])
        .values_panic([seq.into(), user_id.into(), Utc::now().into()])
        .to_owned();
    tx.execute(&statement).await?;
    Ok(seq)
}

/// The `seq` of the latest committed change (0 before the first); stays put when old
/// changes are purged.
pub async fn latest(db: &Db) -> StoreResult<i64> {
    let statement = Query::select()
        .column(FaceIndexHead::LastSeq)
        .from(FaceIndexHead::Table)
        .and_where(Expr::col(FaceIndexHead::Id).eq(1))
        .to_owned();
    Ok(db.fetch_optional::<Head>(&statement).await?.map_or(0, |head| head.last_seq))
}

/// Up to `limit` changes after `seq`, oldest first.
pub async fn after(db: &Db, seq: i64, limit: u64) -> StoreResult<Vec<IndexChange>> {
    let statement = Query::select()
        .columns([FaceIndexChanges::Seq, FaceIndexChanges::UserId])
        .from(FaceIndexChanges::Table)
        .and_where(Expr::col(FaceIndexChanges::Seq).gt(seq))
        .order_by(FaceIndexChanges::Seq, Order::Asc)
        .limit(limit)
        .to_owned();
    db.fetch_all(&statement).await
}

/// Deletes the changes made before `before`; how many went.
pub async fn delete_before(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(FaceIndexChanges::Table)
        .and_where(Expr::col(FaceIndexChanges::ChangedAt).lt(before))
        .to_owned();
    db.execute(&statement).await
}

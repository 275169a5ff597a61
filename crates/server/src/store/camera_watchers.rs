//! `camera_watchers`: which process watches each camera, under a lease it renews, with
//! the camera's live figures as of the latest renewal (see migration 0019).

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, OnConflict, Order, Query};

use super::{Db, Exec, StoreResult};

#[derive(Iden)]
enum CameraWatchers {
    Table,
    CameraId,
    InstanceId,
    Hostname,
    Pid,
    WatchingSince,
    LeaseUntil,
    Figures,
}

const COLUMNS: [CameraWatchers; 7] = [
    CameraWatchers::CameraId,
    CameraWatchers::InstanceId,
    CameraWatchers::Hostname,
    CameraWatchers::Pid,
    CameraWatchers::WatchingSince,
    CameraWatchers::LeaseUntil,
    CameraWatchers::Figures,
];

/// One process's hold on one camera.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CameraWatcher {
    pub camera_id: String,
    /// The uuid the watching process drew at start-up.
    pub instance_id: String,
    pub hostname: String,
    pub pid: i64,
    /// Since when this process has held the camera without a break.
    pub watching_since: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    /// The camera's live figures (JSON) at the latest renewal.
    pub figures: Option<String>,
}

/// Takes camera `hold.camera_id` for process `hold.instance_id` until `hold.lease_until`,
/// or renews the lease it has; true when that process holds the camera now. Refused while
/// another process's lease runs past `now`. `watching_since` is kept across renewals.
/// Two processes taking over one expired lease at once: the row's lock (PostgreSQL) or
/// the single writer (SQLite) lets one through, and the other sees a live lease.
pub async fn hold(db: &Db, hold: &CameraWatcher, now: DateTime<Utc>) -> StoreResult<bool> {
    let kept_since = r#"CASE WHEN "camera_watchers"."instance_id" = "excluded"."instance_id"
        THEN "camera_watchers"."watching_since" ELSE "excluded"."watching_since" END"#;
    let statement = Query::insert()
        .into_table(CameraWatchers::Table)
        .columns(COLUMNS)
        .values_panic([
            hold.camera_id.clone().into(),
            hold.instance_id.clone().into(),
            hold.hostname.clone().into(),
            hold.pid.into(),
            hold.watching_since.into(),
            hold.lease_until.into(),
            hold.figures.clone().into(),
        ])
        .on_conflict(
            OnConflict::column(CameraWatchers::CameraId)
                .update_columns([
                    CameraWatchers::InstanceId,
                    CameraWatchers::Hostname,
                    CameraWatchers::Pid,
                    CameraWatchers::LeaseUntil,
                    CameraWatchers::Figures,
                ])
                .value(CameraWatchers::WatchingSince, Expr::cust(kept_since))
                .action_cond_where(
                    Cond::any()
                        .add(
                            Expr::col((CameraWatchers::Table, CameraWatchers::InstanceId)).eq(hold.instance_id.clone()),
                        )
                        .add(Expr::col((CameraWatchers::Table, CameraWatchers::LeaseUntil)).lt(now)),
                )
                .to_owned(),
        )
        .to_owned();
    Ok(db.execute(&statement).await? > 0)
}

/// Gives up process `instance_id`'s hold on `camera_id`; whether it had one.
pub async fn release(db: &Db, instance_id: &str, camera_id: &str) -> StoreResult<bool> {
    let statement = Query::delete()
        .from_table(CameraWatchers::Table)
        .and_where(Expr::col(CameraWatchers::InstanceId).eq(instance_id))
        .and_where(Expr::col(CameraWatchers::CameraId).eq(camera_id))
        .to_owned();
    Ok(db.execute(&statement).await? > 0)
}

/// Gives up every camera process `instance_id` holds (it is stopping); how many.
pub async fn release_all(db: &Db, instance_id: &str) -> StoreResult<u64> {
    let statement = Query::delete()
        .from_table(CameraWatchers::Table)
        .and_where(Expr::col(CameraWatchers::InstanceId).eq(instance_id))
        .to_owned();
    db.execute(&statement).await
}

/// Every hold, live or run out, by camera id.
pub async fn all(db: &Db) -> StoreResult<Vec<CameraWatcher>> {
    let statement = Query::select()
        .columns(COLUMNS)
        .from(CameraWatchers::Table)
        .order_by(CameraWatchers::CameraId, Order::Asc)
        .to_owned();
    db.fetch_all(&statement).await
}

//! The `incidents` table: security incidents such as spoofing attempts.

use chrono::{DateTime, Utc};
use sea_query::{Expr, Iden, Order, Query};

use super::{Db, StoreError, StoreResult};

#[derive(Iden)]
enum Incidents {
    Table,
    Id,
    Type,
    CameraId,
    Severity,
    Description,
    Details,
    TaskId,
    CreatedAt,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IncidentRecord {
    pub id: i64,
    pub r#type: String,
    pub camera_id: Option<String>,
    pub severity: String,
    pub description: String,
    pub details: String,
    pub task_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub struct NewIncident {
    pub kind: &'static str,
    pub camera_id: Option<String>,
    pub severity: &'static str,
    pub description: String,
    pub details: String,
    pub task_id: Option<String>,
}

/// Opens an incident. `None` when this task already opened one of this type.
pub async fn insert(db: &Db, incident: NewIncident) -> StoreResult<Option<IncidentRecord>> {
    let statement = Query::insert()
        .into_table(Incidents::Table)
        .columns([
            Incidents::Type,
            Incidents::CameraId,
            Incidents::Severity,
            Incidents::Description,
            Incidents::Details,
            Incidents::TaskId,
            Incidents::CreatedAt,
        ])
        .values_panic([
            incident.kind.into(),
            incident.camera_id.into(),
            incident.severity.into(),
            incident.description.into(),
            incident.details.into(),
            incident.task_id.into(),
            Utc::now().into(),
        ])
        .returning_all()
        .to_owned();
    match db.fetch_one_unique(&statement, &["task_id"]).await {
        Ok(record) => Ok(Some(record)),
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The most recent incidents, newest first.
pub async fn recent(db: &Db, limit: u64) -> StoreResult<Vec<IncidentRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Incidents::Table)
        .order_by(Incidents::Id, Order::Desc)
        .limit(limit)
        .to_owned();
    db.fetch_all(&statement).await
}

pub async fn for_task(db: &Db, task_id: &str) -> StoreResult<Vec<IncidentRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Incidents::Table)
        .and_where(Expr::col(Incidents::TaskId).eq(task_id))
        .to_owned();
    db.fetch_all(&statement).await
}

//! The `incidents` table: security incidents such as spoofing attempts.

use chrono::{DateTime, Utc};
use sea_query::{Iden, OnConflict, Query};

use super::{Exec, StoreResult};

#[derive(Iden)]
enum Incidents {
    Table,
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
pub async fn insert(db: &impl Exec, incident: NewIncident) -> StoreResult<Option<IncidentRecord>> {
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
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

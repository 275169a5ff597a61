//! The `incidents` table (security incidents such as spoofing attempts), the sightings
//! that count on them, and the photos reporters sent with them.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, OnConflict, Order, Query};

use super::{Alias, Db, Exec, StoreResult};

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
    Status,
    OccurredAt,
    LastSeenAt,
    Occurrences,
    GroupKey,
    ReportedBy,
    AcknowledgedAt,
    AcknowledgedBy,
    AcknowledgementNote,
    ResolvedAt,
    ResolvedBy,
    ResolutionNote,
}

#[derive(Iden)]
enum IncidentSightings {
    Table,
    TaskId,
    IncidentId,
    SeenAt,
}

#[derive(Iden)]
enum IncidentImages {
    Table,
    IncidentId,
    Image,
    Mime,
}

pub const OPEN: &str = "open";
pub const ACKNOWLEDGED: &str = "acknowledged";
pub const RESOLVED: &str = "resolved";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IncidentRecord {
    pub id: i64,
    pub r#type: String,
    pub camera_id: Option<String>,
    pub severity: String,
    pub description: String,
    pub details: String,
    /// The task whose detection opened it (detected incidents).
    pub task_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// [`OPEN`], [`ACKNOWLEDGED`] or [`RESOLVED`].
    pub status: String,
    /// When it happened (the first detection, or the time the reporter gave).
    pub occurred_at: DateTime<Utc>,
    /// The latest detection that counted on it.
    pub last_seen_at: DateTime<Utc>,
    pub occurrences: i64,
    pub reported_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledgement_note: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
}

pub struct NewIncident {
    pub kind: String,
    pub camera_id: Option<String>,
    pub severity: String,
    pub description: String,
    pub details: String,
    pub occurred_at: DateTime<Utc>,
    pub reported_by: Option<String>,
}

/// Opens a reported incident.
pub async fn insert(db: &impl Exec, incident: NewIncident) -> StoreResult<IncidentRecord> {
    let statement = insert_statement(incident, None, None, 1).returning_all().to_owned();
    db.fetch_one_unique(&statement, &[]).await
}

/// The `INSERT` of a new incident, first and last seen when it occurred; a detection's has
/// the task that saw it and the group it counts in.
fn insert_statement(
    incident: NewIncident,
    task_id: Option<String>,
    group_key: Option<String>,
    occurrences: i64,
) -> sea_query::InsertStatement {
    Query::insert()
        .into_table(Incidents::Table)
        .columns([
            Incidents::Type,
            Incidents::CameraId,
            Incidents::Severity,
            Incidents::Description,
            Incidents::Details,
            Incidents::CreatedAt,
            Incidents::OccurredAt,
            Incidents::LastSeenAt,
            Incidents::ReportedBy,
            Incidents::TaskId,
            Incidents::GroupKey,
            Incidents::Occurrences,
        ])
        .values_panic([
            incident.kind.into(),
            incident.camera_id.into(),
            incident.severity.into(),
            incident.description.into(),
            incident.details.into(),
            Utc::now().into(),
            incident.occurred_at.into(),
            incident.occurred_at.into(),
            incident.reported_by.into(),
            task_id.into(),
            group_key.into(),
            occurrences.into(),
        ])
        .to_owned()
}

/// A detection (e.g. a failed liveness check) made by a task.
pub struct Sighting {
    pub task_id: String,
    /// Detections of one group within the window count on one incident.
    pub group_key: String,
    pub incident: NewIncident,
}

/// What counting a sighting came to.
pub enum Counted {
    /// It opened a new incident, or raised an open one's count.
    Now(Box<IncidentRecord>),
    /// It was recorded, but its group has had fewer than the minimum within the window:
    /// no incident yet.
    Pending,
    /// Its task had counted it before (the task is being run again).
    Already,
}

/// Counts `sighting` on the open incident of its group last seen within `window`, or, once
/// the group has had `min_sightings` within the window, on a new one that counts them all;
/// once per task. One transaction: the unique group key makes concurrent sightings in any
/// process add to one incident.
pub async fn count_sighting(
    db: &impl Exec,
    sighting: Sighting,
    window: chrono::Duration,
    min_sightings: u32,
) -> StoreResult<Counted> {
    if counted_before(db, &sighting.task_id).await? {
        return Ok(Counted::Already);
    }
    let seen_at = sighting.incident.occurred_at;
    // A group gone quiet for longer than the window starts a new incident.
    let quiet = Query::update()
        .table(Incidents::Table)
        .value(Incidents::GroupKey, Option::<String>::None)
        .and_where(Expr::col(Incidents::GroupKey).eq(sighting.group_key.clone()))
        .and_where(Expr::col(Incidents::LastSeenAt).lt(seen_at - window))
        .to_owned();
    db.execute(&quiet).await?;
    let mut occurrences = 1;
    if min_sightings > 1 && !group_is_open(db, &sighting.group_key).await? {
        occurrences = note_pending(db, &sighting, seen_at - window).await?;
        if occurrences < i64::from(min_sightings) {
            return Ok(Counted::Pending);
        }
        // They are the new incident's occurrences now.
        let taken = Query::delete()
            .from_table(PendingSightings::Table)
            .and_where(Expr::col(PendingSightings::GroupKey).eq(sighting.group_key.clone()))
            .to_owned();
        db.execute(&taken).await?;
    }
    let statement =
        insert_statement(sighting.incident, Some(sighting.task_id.clone()), Some(sighting.group_key), occurrences)
            .on_conflict(
                OnConflict::column(Incidents::GroupKey)
                    .value(Incidents::Occurrences, Expr::col((Incidents::Table, Incidents::Occurrences)).add(1))
                    .value(Incidents::LastSeenAt, Expr::cust("excluded.last_seen_at"))
                    .to_owned(),
            )
            .returning_all()
            .to_owned();
    let record: IncidentRecord = db.fetch_one_unique(&statement, &[]).await?;
    let sighting = Query::insert()
        .into_table(IncidentSightings::Table)
        .columns([IncidentSightings::TaskId, IncidentSightings::IncidentId, IncidentSightings::SeenAt])
        .values_panic([sighting.task_id.into(), record.id.into(), seen_at.into()])
        .to_owned();
    db.execute(&sighting).await?;
    Ok(Counted::Now(Box::new(record)))
}

/// Whether task `task_id` counted its sighting already, on an incident or as pending.
async fn counted_before(db: &impl Exec, task_id: &str) -> StoreResult<bool> {
    let on_incident = Query::select()
        .column(IncidentSightings::TaskId)
        .from(IncidentSightings::Table)
        .and_where(Expr::col(IncidentSightings::TaskId).eq(task_id))
        .to_owned();
    let pending = Query::select()
        .column(PendingSightings::TaskId)
        .from(PendingSightings::Table)
        .and_where(Expr::col(PendingSightings::TaskId).eq(task_id))
        .to_owned();
    Ok(db.fetch_optional::<TaskIdRow>(&on_incident).await?.is_some()
        || db.fetch_optional::<TaskIdRow>(&pending).await?.is_some())
}

async fn group_is_open(db: &impl Exec, group_key: &str) -> StoreResult<bool> {
    let statement = Query::select()
        .column(Incidents::Id)
        .from(Incidents::Table)
        .and_where(Expr::col(Incidents::GroupKey).eq(group_key))
        .to_owned();
    Ok(db.fetch_optional::<super::Id>(&statement).await?.is_some())
}

/// Records a sighting that has no incident to count on; how many its group has had since
/// `since`, this one included. Older pending sightings are forgotten.
async fn note_pending(db: &impl Exec, sighting: &Sighting, since: DateTime<Utc>) -> StoreResult<i64> {
    let stale = Query::delete()
        .from_table(PendingSightings::Table)
        .and_where(Expr::col(PendingSightings::SeenAt).lt(since))
        .to_owned();
    db.execute(&stale).await?;
    let insert = Query::insert()
        .into_table(PendingSightings::Table)
        .columns([PendingSightings::TaskId, PendingSightings::GroupKey, PendingSightings::SeenAt])
        .values_panic([
            sighting.task_id.clone().into(),
            sighting.group_key.clone().into(),
            sighting.incident.occurred_at.into(),
        ])
        .to_owned();
    db.execute(&insert).await?;
    let count = Query::select()
        .expr_as(Expr::col(PendingSightings::TaskId).count(), super::Alias::Count)
        .from(PendingSightings::Table)
        .and_where(Expr::col(PendingSightings::GroupKey).eq(sighting.group_key.clone()))
        .to_owned();
    db.count(&count).await
}

#[derive(Iden)]
enum PendingSightings {
    Table,
    TaskId,
    GroupKey,
    SeenAt,
}

#[derive(sqlx::FromRow)]
struct TaskIdRow {
    #[allow(dead_code)]
    task_id: String,
}

/// Which incidents to list; every field that is set narrows the list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub kind: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub camera_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

impl IncidentFilter {
    fn condition(&self) -> Cond {
        let mut condition = Cond::all();
        let equals = [
            (Incidents::Type, &self.kind),
            (Incidents::Severity, &self.severity),
            (Incidents::Status, &self.status),
            (Incidents::CameraId, &self.camera_id),
        ];
        for (column, value) in equals {
            if let Some(value) = value {
                condition = condition.add(Expr::col(column).eq(value.clone()));
            }
        }
        if let Some(from) = self.from {
            condition = condition.add(Expr::col(Incidents::OccurredAt).gte(from));
        }
        if let Some(to) = self.to {
            condition = condition.add(Expr::col(Incidents::OccurredAt).lt(to));
        }
        condition
    }
}

/// A page of the incidents `filter` matches, the latest first, and how many it matches.
pub async fn list(
    db: &Db,
    filter: &IncidentFilter,
    limit: u64,
    offset: u64,
) -> StoreResult<(Vec<IncidentRecord>, i64)> {
    let page = Query::select()
        .column(sea_query::Asterisk)
        .from(Incidents::Table)
        .cond_where(filter.condition())
        .order_by(Incidents::OccurredAt, Order::Desc)
        .order_by(Incidents::Id, Order::Desc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let count = Query::select()
        .expr_as(Expr::col(Incidents::Id).count(), Alias::Count)
        .from(Incidents::Table)
        .cond_where(filter.condition())
        .to_owned();
    Ok((db.fetch_all(&page).await?, db.count(&count).await?))
}

pub async fn find(db: &impl Exec, id: i64) -> StoreResult<Option<IncidentRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Incidents::Table)
        .and_where(Expr::col(Incidents::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// A step of an incident's follow-up.
pub struct StatusChange<'a> {
    pub to: &'static str,
    /// The statuses it may come from.
    pub from: &'static [&'static str],
    pub by: &'a str,
    pub note: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Moves incident `id` to `change.to` if its status is one of `change.from`; `None` when
/// it is not (or there is no such incident). Resolving takes it out of its group, so later
/// detections open a new incident.
pub async fn change_status(db: &impl Exec, id: i64, change: StatusChange<'_>) -> StoreResult<Option<IncidentRecord>> {
    let mut statement = Query::update();
    statement
        .table(Incidents::Table)
        .value(Incidents::Status, change.to)
        .and_where(Expr::col(Incidents::Id).eq(id))
        .and_where(Expr::col(Incidents::Status).is_in(change.from.iter().copied()));
    let note = change.note.map(str::to_owned);
    if change.to == RESOLVED {
        statement
            .value(Incidents::ResolvedAt, change.at)
            .value(Incidents::ResolvedBy, change.by)
            .value(Incidents::ResolutionNote, note)
            .value(Incidents::GroupKey, Option::<String>::None);
    } else {
        statement
            .value(Incidents::AcknowledgedAt, change.at)
            .value(Incidents::AcknowledgedBy, change.by)
            .value(Incidents::AcknowledgementNote, note);
    }
    statement.returning_all();
    db.fetch_optional(&statement).await
}

/// Keeps the sealed photo sent with incident `incident_id`, in the incident's transaction.
pub async fn insert_image(db: &impl Exec, incident_id: i64, sealed_image: Vec<u8>, mime: &str) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(IncidentImages::Table)
        .columns([IncidentImages::IncidentId, IncidentImages::Image, IncidentImages::Mime])
        .values_panic([incident_id.into(), sealed_image.into(), mime.into()])
        .to_owned();
    db.execute(&statement).await.map(drop)
}

#[derive(sqlx::FromRow)]
pub struct SealedImage {
    pub image: Vec<u8>,
    pub mime: String,
}

pub async fn find_image(db: &impl Exec, incident_id: i64) -> StoreResult<Option<SealedImage>> {
    let statement = Query::select()
        .columns([IncidentImages::Image, IncidentImages::Mime])
        .from(IncidentImages::Table)
        .and_where(Expr::col(IncidentImages::IncidentId).eq(incident_id))
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Whether a photo is kept with incident `incident_id` (without reading it).
pub async fn has_image(db: &impl Exec, incident_id: i64) -> StoreResult<bool> {
    let statement = Query::select()
        .expr_as(Expr::col(IncidentImages::IncidentId).count(), Alias::Count)
        .from(IncidentImages::Table)
        .and_where(Expr::col(IncidentImages::IncidentId).eq(incident_id))
        .to_owned();
    Ok(db.count(&statement).await? > 0)
}

//! Security incidents: reported by people and devices, opened by detections (a failed
//! liveness check), and followed up by admins: open → acknowledged → resolved.

use chrono::Utc;

use crate::crypto::Sealer;
use crate::store::incidents::{self as incident_store, IncidentRecord, NewIncident, StatusChange};
use crate::store::{Db, sealed};

/// The kinds of incident there are.
pub const KINDS: [&str; 6] =
    ["spoofing_attempt", "unknown_person", "tailgating", "camera_tampering", "unauthorized_access", "other"];
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// A photo sent with a report, validated as an image.
pub struct ReportImage {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
}

/// Opens a reported incident with its photo (sealed), in one transaction.
pub async fn report(
    db: &Db,
    sealer: &Sealer,
    incident: NewIncident,
    image: Option<ReportImage>,
) -> anyhow::Result<IncidentRecord> {
    let tx = db.begin().await?;
    let record = incident_store::insert(&tx, incident).await?;
    if let Some(image) = image {
        let sealed_image = sealer.seal(&image.bytes, &sealed::incident_image_binding(record.id));
        incident_store::insert_image(&tx, record.id, sealed_image, image.mime).await?;
    }
    tx.commit().await?;
    Ok(record)
}

/// The photo sent with incident `id`, opened, and its MIME type.
pub async fn image(db: &Db, sealer: &Sealer, id: i64) -> anyhow::Result<Option<(Vec<u8>, String)>> {
    let Some(kept) = incident_store::find_image(db, id).await? else {
        return Ok(None);
    };
    Ok(Some((sealer.open(&kept.image, &sealed::incident_image_binding(id))?, kept.mime)))
}

/// A step of the follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Acknowledge,
    Resolve,
}

impl Step {
    fn change<'a>(self, by: &'a str, note: Option<&'a str>) -> StatusChange<'a> {
        let (to, from): (_, &'static [&'static str]) = match self {
            Self::Acknowledge => (incident_store::ACKNOWLEDGED, &[incident_store::OPEN]),
            Self::Resolve => (incident_store::RESOLVED, &[incident_store::OPEN, incident_store::ACKNOWLEDGED]),
        };
        StatusChange { to, from, by, note, at: Utc::now() }
    }
}

/// What a step came to.
pub enum Followed {
    Now(IncidentRecord),
    /// The incident's status does not allow the step (e.g. it is resolved).
    NotAllowed(IncidentRecord),
    NoSuchIncident,
}

/// Takes `step` on incident `id`, as `by`, with `note`.
pub async fn follow_up(db: &Db, id: i64, step: Step, by: &str, note: Option<&str>) -> anyhow::Result<Followed> {
    if let Some(record) = incident_store::change_status(db, id, step.change(by, note)).await? {
        return Ok(Followed::Now(record));
    }
    Ok(match incident_store::find(db, id).await? {
        Some(record) => Followed::NotAllowed(record),
        None => Followed::NoSuchIncident,
    })
}

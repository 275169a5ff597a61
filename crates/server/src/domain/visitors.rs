//! Unknown visitors: faces that cameras saw live and clearly and that matched nobody,
//! grouped by likeness so the same stranger keeps one id (`V-0001`) across sightings.
//!
//! A sighting joins the most similar visitor seen within the retention period when their
//! similarity reaches the identification operating point (the likeness at which two faces
//! are taken for one person), and starts a new visitor otherwise. Placing one sighting is
//! one transaction under the numbering lock, conditioned on the verification task's claim:
//! two servers placing the same stranger take turns, and a task run twice places once.
//! Embeddings and crops are sealed for their visitor and purged with them after
//! `unknown_visitor_retention_days`.

use chrono::{DateTime, Duration, Utc};
use rollcall_face::{Embedding, Template};

use crate::crypto::Sealer;
use crate::queue::begin_for_task;
use crate::store::tasks::TaskClaim;
use crate::store::visitors::{self as visitor_store, NewSighting, SealedLikeness};
use crate::store::{Db, Exec, StoreResult, sealed};

/// How many sightings the likeness averages at most: a visitor's face may change slowly
/// (a haircut, glasses) and the likeness follows it.
const LIKENESS_MEMORY: f32 = 10.0;

/// Whether unknown visitors are kept, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct VisitorPolicy {
    /// `track_unknown_visitors`.
    pub track: bool,
    /// `unknown_visitor_retention_days`.
    pub retention_days: u32,
}

impl VisitorPolicy {
    fn retention(self) -> Duration {
        Duration::days(i64::from(self.retention_days))
    }

    /// Deletes the sightings and visitors older than the retention period; how many
    /// visitors went.
    pub async fn purge_expired(self, db: &Db, now: DateTime<Utc>) -> StoreResult<u64> {
        visitor_store::purge_seen_before(db, now - self.retention()).await
    }
}

/// A visitor's label, e.g. `V-0001`.
pub fn label(number: i64) -> String {
    format!("V-{number:04}")
}

/// The number in a label (`V-0001` → 1); `None` for anything else.
pub fn parse_label(label: &str) -> Option<i64> {
    let digits = label.strip_prefix("V-")?;
    if digits.len() < 4 || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|number| *number > 0)
}

/// A face seen at a camera, live and of good quality, that matched nobody.
pub struct Stranger {
    pub embedding: Embedding,
    /// The face with some room around it (JPEG).
    pub crop: Vec<u8>,
    pub quality_score: f32,
}

/// Where a sighting was made, by which verification task.
pub struct SightingContext<'a> {
    pub task_id: &'a str,
    pub claim: &'a TaskClaim,
    pub camera_id: &'a str,
    pub seen_at: DateTime<Utc>,
}

/// The visitor a sighting was placed with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub number: i64,
    /// Similarity to the visitor it joined; `None` for a new visitor.
    pub similarity: Option<f32>,
}

/// Places a stranger's sighting with a visitor, a new one if it resembles none enough.
/// `same_person` is the similarity at which two faces are taken for one person.
pub async fn place(
    db: &Db,
    sealer: &Sealer,
    policy: VisitorPolicy,
    context: SightingContext<'_>,
    stranger: &Stranger,
    same_person: f32,
) -> anyhow::Result<Placed> {
    let tx = begin_for_task(db, Some(context.claim)).await?;
    visitor_store::lock_numbering(&tx).await?;
    if let Some(number) = visitor_store::sighting_of_task(&tx, context.task_id).await? {
        return Ok(Placed { number, similarity: None });
    }
    let known = visitor_store::likenesses_since(&tx, context.seen_at - policy.retention()).await?;
    let closest = closest(sealer, &known, &stranger.embedding)?.filter(|(_, similarity, _)| *similarity >= same_person);
    let quality = f64::from(stranger.quality_score);
    let placed = match closest {
        Some((visitor, similarity, likeness)) => {
            join(&tx, sealer, visitor, &likeness, stranger).await?;
            Placed { number: visitor.number, similarity: Some(similarity) }
        }
        None => {
            let seal = |number: i64| {
                (
                    sealer.seal(&single(&stranger.embedding), &sealed::visitor_embedding_binding(number)),
                    sealer.seal(&stranger.crop, &sealed::visitor_crop_binding(number)),
                )
            };
            let number = visitor_store::insert(&tx, seal, quality, context.seen_at).await?;
            Placed { number, similarity: None }
        }
    };
    let sighting = NewSighting {
        task_id: context.task_id,
        camera_id: context.camera_id,
        seen_at: context.seen_at,
        similarity: placed.similarity.map(f64::from),
        quality_score: quality,
        embedding: sealer.seal(&single(&stranger.embedding), &sealed::sighting_embedding_binding(placed.number)),
    };
    visitor_store::add_sighting(&tx, placed.number, sighting).await?;
    tx.commit().await?;
    Ok(placed)
}

/// The visitor most like `probe`, with the similarity and their opened likeness.
fn closest<'a>(
    sealer: &Sealer,
    known: &'a [SealedLikeness],
    probe: &Embedding,
) -> anyhow::Result<Option<(&'a SealedLikeness, f32, Embedding)>> {
    let mut best: Option<(&SealedLikeness, f32, Embedding)> = None;
    for visitor in known {
        let likeness = open_embedding(sealer, &visitor.embedding, &sealed::visitor_embedding_binding(visitor.number))?;
        let similarity = likeness.cosine(probe);
        if best.as_ref().is_none_or(|(_, top, _)| similarity > *top) {
            best = Some((visitor, similarity, likeness));
        }
    }
    Ok(best)
}

/// Moves the visitor's likeness towards the new face and keeps the better crop.
async fn join(
    tx: &impl Exec,
    sealer: &Sealer,
    visitor: &SealedLikeness,
    likeness: &Embedding,
    stranger: &Stranger,
) -> anyhow::Result<()> {
    let weight = (visitor.sightings as f32).clamp(1.0, LIKENESS_MEMORY);
    let moved: Vec<f32> =
        likeness.as_slice().iter().zip(stranger.embedding.as_slice()).map(|(old, new)| old * weight + new).collect();
    let moved = Embedding::new(&moved).unwrap_or_else(|_| likeness.clone());
    let sealed_likeness = sealer.seal(&single(&moved), &sealed::visitor_embedding_binding(visitor.number));
    let better_crop = (f64::from(stranger.quality_score) > visitor.crop_quality).then(|| {
        (sealer.seal(&stranger.crop, &sealed::visitor_crop_binding(visitor.number)), f64::from(stranger.quality_score))
    });
    visitor_store::update_likeness(tx, visitor.number, sealed_likeness, better_crop).await?;
    Ok(())
}

/// One embedding in the template format (a template of one).
fn single(embedding: &Embedding) -> Vec<u8> {
    Template::new(vec![embedding.clone()]).expect("one embedding is a template").to_bytes()
}

fn open_embedding(sealer: &Sealer, sealed: &[u8], binding: &crate::crypto::Binding) -> anyhow::Result<Embedding> {
    let template = Template::from_bytes(&sealer.open(sealed, binding)?)?;
    Ok(template.mean().clone())
}

/// A template made of visitor `number`'s best sightings (at most `limit`), for enrolling
/// them; `None` when the visitor has no sighting left.
pub async fn template_of(db: &impl Exec, sealer: &Sealer, number: i64, limit: u64) -> anyhow::Result<Option<Template>> {
    let binding = sealed::sighting_embedding_binding(number);
    let mut embeddings = Vec::new();
    for sealed in visitor_store::best_embeddings(db, number, limit).await? {
        embeddings.push(open_embedding(sealer, &sealed, &binding)?);
    }
    Ok(if embeddings.is_empty() { None } else { Some(Template::new(embeddings)?) })
}

/// Visitor `number`'s best face (JPEG); `None` when there is no such visitor.
pub async fn crop(db: &Db, sealer: &Sealer, number: i64) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(sealed_crop) = visitor_store::crop(db, number).await? else {
        return Ok(None);
    };
    Ok(Some(sealer.open(&sealed_crop, &sealed::visitor_crop_binding(number))?))
}

/// The sightings a template is made of at most: as many as the photos of an enrollment.
const MAX_ENROLLED_SIGHTINGS: u64 = 10;

/// Why a visitor could not be enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("there is no visitor {0}")]
    NoVisitor(String),
    #[error("{0} is deactivated")]
    Inactive(String),
    #[error("{0} has a face template already: enroll a visitor as a person without one")]
    AlreadyEnrolled(String),
    #[error("{visitor} looks like user {other}, who is enrolled already: one person, one identity")]
    Duplicate { visitor: String, other: i64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for EnrollError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Internal(error.into())
    }
}

/// What enrolling a visitor needs.
pub struct Enrollment<'a> {
    pub db: &'a Db,
    pub sealer: &'a Sealer,
    pub face: &'a crate::domain::face::FaceService,
    pub events: &'a crate::events::EventBus,
}

/// Makes visitor `number` the face of `user`, who has none yet: a template of the best
/// sightings is stored, the visitor and their sightings are deleted and
/// `enrollment_completed` is recorded, in one transaction; the person is recognised from
/// then on. How many sightings the template was made of.
pub async fn enroll(
    enrollment: Enrollment<'_>,
    number: i64,
    user: &crate::store::users::UserRecord,
) -> Result<usize, EnrollError> {
    use crate::store::{face_index_changes, templates, users};
    let tx = enrollment.db.begin().await?;
    if !users::lock(&tx, user.id).await?.is_some_and(|person| person.is_active) {
        return Err(EnrollError::Inactive(user.employee_id.clone()));
    }
    if templates::find(&tx, user.id).await?.is_some() {
        return Err(EnrollError::AlreadyEnrolled(user.employee_id.clone()));
    }
    let Some(template) = template_of(&tx, enrollment.sealer, number, MAX_ENROLLED_SIGHTINGS).await? else {
        return Err(EnrollError::NoVisitor(label(number)));
    };
    if let Some(other) = enrollment.face.duplicate_of(user.id, &template) {
        return Err(EnrollError::Duplicate { visitor: label(number), other });
    }
    let used = template.embeddings().len();
    let sealed_template = enrollment.sealer.seal(&template.to_bytes(), &sealed::template_binding(user.id));
    templates::upsert(&tx, user.id, sealed_template, used as i64).await?;
    visitor_store::delete(&tx, number).await?;
    let event = crate::events::Event {
        kind: crate::events::EventKind::EnrollmentCompleted,
        key: format!("enrollment:visitor:{number}:{}", user.id),
        timestamp: Utc::now(),
        data: serde_json::json!({"employee_id": user.employee_id, "name": user.full_name(), "photos_used": 0,
            "visitor_id": label(number), "sightings_used": used}),
    };
    enrollment.events.record(&tx, &event).await?;
    let version = face_index_changes::record(&tx, user.id).await?;
    tx.commit().await?;
    enrollment.face.remember(user.id, &template, version);
    enrollment.events.announce([event]);
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_numbers_and_nothing_else() {
        assert_eq!(label(1), "V-0001");
        assert_eq!(label(12_345), "V-12345");
        assert_eq!(parse_label("V-0001"), Some(1));
        assert_eq!(parse_label("V-12345"), Some(12_345));
        for bad in ["V-1", "V-0000", "v-0001", "V-00a1", "0001", "V-", "V-99999999999999"] {
            assert_eq!(parse_label(bad), None, "{bad}");
        }
    }
}

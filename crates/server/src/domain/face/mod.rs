//! Face recognition as the server uses it: the engine (loaded once, in the background),
//! the in-memory matching index of enrolled people, and the tasks that enroll and
//! verify faces.

mod active;
mod check_in;
mod enroll;
mod sync;
mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rollcall_face::{
    CalibrationCurve, ExactIndex, FaceEngine, FaceIndex, Fusion, OpenSetPolicy, Template, Threshold, ThresholdRule,
};
use serde::{Deserialize, Serialize};

use crate::crypto::Sealer;
use crate::domain::attendance::AttendanceDesk;
use crate::events::EventBus;
use crate::queue::worker::TaskRunner;
use crate::queue::{Task, TaskFailure, TaskKind};
use crate::store::{Db, face_index_changes, tasks, templates};

pub use active::ChallengeAnswer;
pub use check_in::CheckInRequest;
pub use enroll::EnrollRequest;
pub use sync::follow_index_changes;
pub use verify::{BulkOptions, BulkRequest, FrameRequest, MAX_FACES_LIMIT, VerifyRequest};

/// Whether the engine can be used yet.
#[derive(Debug, Clone)]
pub enum EngineState {
    Loading,
    Ready(Arc<FaceEngine>),
    Failed(String),
}

/// The engine and the gallery of enrolled people. Identities in the index are user ids.
pub struct FaceService {
    engine: Arc<OnceLock<Result<Arc<FaceEngine>, String>>>,
    index: Arc<RwLock<ExactIndex>>,
    /// Per person, the `seq` of the feed change (`face_index_changes`) their entry in the
    /// index reflects. An update older than the entry is dropped, so updates may arrive
    /// twice or out of order (this process's own writes and the feed's) and the newest
    /// wins. Locked before `index` when both are.
    versions: Mutex<HashMap<i64, i64>>,
    /// The last feed change this process has applied.
    followed: AtomicI64,
    /// The threshold follows the gallery size: see [`FaceService::rule`].
    policy: OpenSetPolicy,
    /// The thread loading the models, until it is waited for.
    loader: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The decision rule for the gallery as it is at the moment of the decision.
#[derive(Debug, Clone, Copy)]
pub struct CurrentRule(ThresholdRule);

impl std::ops::Deref for CurrentRule {
    type Target = ThresholdRule;
    fn deref(&self) -> &ThresholdRule {
        &self.0
    }
}

impl FaceService {
    /// `rule` gives the margin; the threshold is derived per decision from the gallery size
    /// and the policy's false-accept rate (default 0.005, see
    /// [`FaceService::set_max_false_accept_rate`]).
    pub fn new(rule: ThresholdRule) -> Self {
        let policy = OpenSetPolicy { min_margin: rule.min_margin, ..OpenSetPolicy::default() };
        Self {
            engine: Arc::default(),
            index: Arc::new(RwLock::new(ExactIndex::new(Fusion::Mean))),
            versions: Mutex::default(),
            followed: AtomicI64::new(0),
            policy,
            loader: Mutex::default(),
        }
    }

    /// Sets the strangers accepted per stranger probe (`config.max_false_accept_rate`).
    ///
    /// # Errors
    /// Unless `0 < rate < 1`.
    pub fn set_max_false_accept_rate(&mut self, rate: f64) -> anyhow::Result<()> {
        self.policy = OpenSetPolicy { min_margin: self.policy.min_margin, ..OpenSetPolicy::new(rate)? };
        Ok(())
    }

    /// Derives the threshold and confidence from a curve measured on the deployer's photos.
    ///
    /// # Errors
    /// When the curve was measured under another fusion than the matching index uses.
    pub fn set_calibration_curve(&mut self, curve: &'static CalibrationCurve) -> anyhow::Result<()> {
        let index_fusion = self.index.read().expect("index lock").fusion();
        anyhow::ensure!(
            curve.fusion == index_fusion,
            "the curve was measured under {:?} fusion; the server matches under {index_fusion:?} (re-run `rollcall eval --identify` with `--fusion mean`)",
            curve.fusion,
        );
        self.policy = OpenSetPolicy { curve, ..self.policy };
        Ok(())
    }

    /// Uses an engine that is already loaded (tests share one).
    pub fn with_engine(rule: ThresholdRule, engine: Arc<FaceEngine>) -> Self {
        let service = Self::new(rule);
        let _ = service.engine.set(Ok(engine));
        service
    }

    /// Loads the models on a thread of their own, so the server answers meanwhile.
    pub fn start_loading(&self, config: rollcall_face::EngineConfig) {
        if self.engine.get().is_some() {
            return;
        }
        let slot = Arc::clone(&self.engine);
        let loader = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let loaded = FaceEngine::load(&config).map(Arc::new).map_err(|error| {
                let message = format!("the face engine could not load: {error}");
                tracing::error!(models_dir = %config.models_dir.display(), "{message}");
                message
            });
            if let Ok(engine) = &loaded {
                let duration_ms = started.elapsed().as_millis() as u64;
                tracing::info!(duration_ms, backend = engine.backend_name(), "face engine loaded");
            }
            let _ = slot.set(loaded);
        });
        *self.loader.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(loader);
    }

    /// Waits (up to `timeout`) for the models to finish loading, when they still are. A
    /// process must not exit while the inference runtime is being set up on another
    /// thread: its global state is torn down at exit under the loader's feet (SIGSEGV).
    pub async fn wait_for_loading(&self, timeout: std::time::Duration) {
        let Some(loader) = self.loader.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
            return;
        };
        if tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || loader.join())).await.is_err() {
            tracing::warn!(timeout_secs = timeout.as_secs(), "the face engine was still loading at shutdown");
        }
    }

    pub fn state(&self) -> EngineState {
        match self.engine.get() {
            None => EngineState::Loading,
            Some(Ok(engine)) => EngineState::Ready(engine.clone()),
            Some(Err(message)) => EngineState::Failed(message.clone()),
        }
    }

    fn engine(&self) -> Result<Arc<FaceEngine>, TaskFailure> {
        match self.state() {
            EngineState::Ready(engine) => Ok(engine),
            EngineState::Loading => Err(TaskFailure::retryable("the face engine is still loading")),
            EngineState::Failed(message) => Err(TaskFailure::permanent(message)),
        }
    }

    /// The rule for the current gallery: the smallest threshold at which a stranger is
    /// accepted with probability at most `max_false_accept_rate` against
    /// [`FaceService::enrolled_count`] people (a lookup in the engine's shipped curve).
    pub fn rule(&self) -> CurrentRule {
        CurrentRule(self.policy.rule_for_gallery(self.enrolled_count()))
    }

    /// The rule of a 1:1 comparison with one person's own template: the operating point
    /// of a gallery of one.
    pub fn one_to_one_rule(&self) -> ThresholdRule {
        self.policy.rule_for_gallery(1)
    }

    /// The current rule, made stricter by a requested threshold above its own; a lower one
    /// changes nothing (callers who may not loosen recognition).
    pub fn stricter_rule(&self, threshold: Option<f32>) -> Result<ThresholdRule, String> {
        let current = self.rule().threshold.get();
        self.rule_with_threshold(threshold.map(|requested| requested.max(current)))
    }

    /// A copy of the rule with another similarity threshold (bulk-verify's option, as an admin sets it).
    pub fn rule_with_threshold(&self, threshold: Option<f32>) -> Result<ThresholdRule, String> {
        match threshold {
            None => Ok(*self.rule()),
            Some(value) => {
                let threshold = Threshold::new(value).map_err(|e| e.to_string())?;
                Ok(ThresholdRule { threshold, ..*self.rule() })
            }
        }
    }

    /// Another enrolled person whom `template` matches at the current operating point (its
    /// mean embedding as the probe, the person themselves left out): enrolling it would give
    /// one face two identities.
    pub fn duplicate_of(&self, user_id: i64, template: &Template) -> Option<i64> {
        let own = user_id.to_string();
        let search = self.index.read().expect("index lock").search(template.mean());
        let other = [search.best, search.second].into_iter().flatten().find(|hit| hit.identity != own)?;
        let threshold = self.rule().threshold.get();
        (other.similarity >= threshold).then(|| other.identity.parse().ok()).flatten()
    }

    /// Fills the index from the database: the templates of active people. Following the
    /// feed starts at the change that was latest before the load, so a change committed
    /// meanwhile is applied again rather than missed.
    pub async fn load_index(&self, db: &Db, sealer: &Sealer) -> anyhow::Result<usize> {
        let latest = face_index_changes::latest(db).await?;
        for_each_active(db, sealer, |user_id, template| {
            self.index.write().expect("index lock").upsert(&user_id.to_string(), &template);
        })
        .await?;
        self.followed.store(latest, Ordering::SeqCst);
        Ok(self.enrolled_count())
    }

    /// Builds the index afresh from the stored templates of active people and puts it in
    /// place of the one in memory (which may hold people deactivated or erased by another
    /// process); how many people it holds.
    pub async fn rebuild_index(&self, db: &Db, sealer: &Sealer) -> anyhow::Result<usize> {
        let latest = face_index_changes::latest(db).await?;
        let mut fresh = ExactIndex::new(Fusion::Mean);
        for_each_active(db, sealer, |user_id, template| fresh.upsert(&user_id.to_string(), &template)).await?;
        // People updated after the snapshot was read may be older in it than in the index
        // it replaces: reload them.
        let newer: Vec<i64> = {
            let versions = self.versions.lock().expect("versions lock");
            *self.index.write().expect("index lock") = fresh;
            versions.iter().filter(|(_, version)| **version > latest).map(|(user_id, _)| *user_id).collect()
        };
        for user_id in newer {
            self.refresh(db, sealer, user_id).await?;
        }
        Ok(self.enrolled_count())
    }

    /// Puts the template that feed change `version` stored for a person into the index.
    pub fn remember(&self, user_id: i64, template: &Template, version: i64) {
        self.apply(user_id, version, Some(template));
    }

    /// Removes a person from the index as of feed change `version` (erasure, deactivation).
    pub fn forget(&self, user_id: i64, version: i64) {
        self.apply(user_id, version, None);
    }

    /// Reloads a person's entry from the database: their template when they are active and
    /// have one, else nothing (reactivation, deactivation, changes made by other processes).
    pub async fn refresh(&self, db: &Db, sealer: &Sealer, user_id: i64) -> anyhow::Result<()> {
        let entry = templates::index_entry(db, user_id).await?;
        let template = match &entry.template {
            Some(sealed) => Some(open_sealed(sealer, user_id, sealed)?),
            None => None,
        };
        self.apply(user_id, entry.version, template.as_ref());
        Ok(())
    }

    /// Sets a person's entry, unless the index already reflects a later change.
    fn apply(&self, user_id: i64, version: i64, template: Option<&Template>) {
        let mut versions = self.versions.lock().expect("versions lock");
        let current = versions.entry(user_id).or_insert(version);
        if *current > version {
            return;
        }
        *current = version;
        let mut index = self.index.write().expect("index lock");
        match template {
            Some(template) => index.upsert(&user_id.to_string(), template),
            None => {
                index.remove(&user_id.to_string());
            }
        }
    }

    pub fn enrolled_count(&self) -> usize {
        self.index.read().expect("index lock").len()
    }

    fn index(&self) -> Arc<RwLock<ExactIndex>> {
        self.index.clone()
    }

    /// The person `embedding` is recognised as by the current open-set rule, if anyone.
    pub fn recognise(&self, embedding: &rollcall_face::Embedding) -> Option<i64> {
        use rollcall_face::{DecisionRule as _, FaceIndex as _};
        let search = self.index.read().expect("index lock").search(embedding);
        match self.rule().decide(&search) {
            rollcall_face::Decision::Recognised { identity, .. } => identity.parse().ok(),
            rollcall_face::Decision::NotRecognised { .. } => None,
        }
    }

    /// People in the matching index.
    pub fn enrolled(&self) -> usize {
        self.index.read().expect("index lock").len()
    }
}

/// Templates read from the database at a time when the index is loaded: the sealed copies
/// of a large gallery are never all in memory at once (at 100,000 people they were about
/// 55 MB, which the allocator kept after the load).
const TEMPLATE_PAGE: u64 = 2_000;

/// Gives every active person's template to `each`, in id order, a page at a time. Pages are
/// separate reads, which is safe for the index: a change committed meanwhile is in the feed
/// the caller follows from before the first page.
async fn for_each_active(db: &Db, sealer: &Sealer, mut each: impl FnMut(i64, Template)) -> anyhow::Result<()> {
    let mut after = i64::MIN;
    loop {
        let page = templates::active_page(db, after, TEMPLATE_PAGE).await?;
        for record in &page {
            each(record.user_id, open_template(sealer, record)?);
        }
        match page.last() {
            Some(last) if page.len() as u64 == TEMPLATE_PAGE => after = last.user_id,
            _ => return Ok(()),
        }
    }
}

fn open_template(sealer: &Sealer, sealed: &templates::SealedTemplate) -> anyhow::Result<Template> {
    open_sealed(sealer, sealed.user_id, &sealed.template)
}

fn open_sealed(sealer: &Sealer, user_id: i64, sealed: &[u8]) -> anyhow::Result<Template> {
    let bytes = sealer.open(sealed, &crate::store::sealed::template_binding(user_id))?;
    Ok(Template::from_bytes(&bytes)?)
}

/// Erases a person's biometric data — template, kept photos, the face crops of their
/// logs, and their enrollments still queued or running (with the photos in them) — in one
/// transaction that also tells the other processes; then the matching index forgets them.
/// False when there was no template.
pub async fn erase(db: &Db, face: &FaceService, user_id: i64) -> anyhow::Result<bool> {
    let tx = db.begin().await?;
    tasks::cancel_enrollments(&tx, user_id, "the person's face data was erased before the enrollment ran").await?;
    let erased = templates::erase(&tx, user_id).await?;
    let version = face_index_changes::record(&tx, user_id).await?;
    tx.commit().await?;
    face.forget(user_id, version);
    Ok(erased)
}

/// Runs the worker pool's tasks (face tasks and maintenance), with the pieces they use.
pub struct FaceTasks {
    pub db: Db,
    pub face: Arc<FaceService>,
    pub sealer: Sealer,
    pub events: Arc<EventBus>,
    pub attendance: Arc<AttendanceDesk>,
    /// Keep the photos a template was made from, sealed (`keep_enrollment_images`).
    pub keep_enrollment_images: bool,
    /// Keep the face crop of each face arrival, sealed (`keep_arrival_evidence`).
    pub keep_arrival_evidence: bool,
    /// Failed liveness checks at one camera this close together count on one incident.
    pub incident_window: std::time::Duration,
    /// Failed liveness checks of one camera within the window before an incident opens.
    pub spoof_incident_min_failures: u32,
    /// Counts recognitions by outcome.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How long face crops are kept (`purge_evidence`).
    pub evidence_retention: crate::domain::evidence::Retention,
    /// Whether faces seen at cameras that match nobody become unknown visitors.
    pub visitors: crate::domain::visitors::VisitorPolicy,
    /// How active liveness answers are judged.
    pub challenges: crate::domain::liveness::ChallengeSettings,
}

#[async_trait::async_trait]
impl TaskRunner for FaceTasks {
    fn ready(&self) -> bool {
        !matches!(self.face.state(), EngineState::Loading)
    }

    async fn run(&self, task: &Task) -> Result<serde_json::Value, TaskFailure> {
        match task.kind {
            TaskKind::Enroll => enroll::run(self, task).await,
            TaskKind::Verify => verify::run_verify(self, task).await,
            TaskKind::BulkVerify => verify::run_bulk(self, task).await,
            TaskKind::Maintenance => crate::domain::maintenance::run(self, task).await,
            TaskKind::CheckIn => check_in::run(self, task).await,
        }
    }
}

/// Runs CPU-bound engine work on the blocking pool, never on the async runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, TaskFailure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| TaskFailure::permanent("internal error while analysing the image"))
}

fn decode_payload<T: for<'de> Deserialize<'de>>(task: &Task) -> Result<T, TaskFailure> {
    serde_json::from_slice(&task.payload)
        .map_err(|e| TaskFailure::permanent(format!("the task's input is not valid: {e}")))
}

/// The face box as clients see it.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl From<rollcall_face::BoundingBox> for FaceBox {
    fn from(b: rollcall_face::BoundingBox) -> Self {
        Self { x: b.x, y: b.y, width: b.width, height: b.height }
    }
}

/// Rounds for responses: scores are not meaningful beyond 4 decimals.
fn round4(value: f32) -> f64 {
    (f64::from(value) * 10_000.0).round() / 10_000.0
}

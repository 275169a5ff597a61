//! Synthetic people and attendance, so that reports, analytics and dashboards can be seen
//! and benchmarked without real people: departments of students and faculty, each person
//! with their own attendance rate, arrivals around a department's start time (later on
//! Mondays), fewer people on Fridays and in summer, a few holidays nobody comes, the odd
//! second arrival after lunch and weekend visit. Seeded: the same plan gives the same data.
//!
//! Demo people (`DEMO-000001`, …) cannot log in: their password is random and shown to
//! nobody. Nothing here is used by the tests' assertions.
//!
//! With [`DemoPlan::faces`], each person is also enrolled with a template of one random
//! embedding, sealed like a real one, to measure what a large gallery costs (loading the
//! face index, its memory, 1:N search); a photo of a real person matches none of them.

use chrono::{Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::crypto::Sealer;
use crate::domain::attendance_counts;
use crate::domain::calendar::{Calendar, DateRange};
use crate::domain::users::Role;
use crate::store::attendance::{self as attendance_store, NewAttendance};
use crate::store::users::{self as user_store, NewUser};
use crate::store::{Db, StoreResult, sealed, templates};

const DEPARTMENTS: [(&str, u32); 8] = [
    ("Computer Science", 22),
    ("Mathematics", 12),
    ("Physics", 10),
    ("Biology", 14),
    ("Economics", 16),
    ("History", 8),
    ("Engineering", 12),
    ("Administration", 6),
];
const FIRST_NAMES: [&str; 16] = [
    "Amara", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Mateo",
    "Nadia", "Omar", "Priya",
];
const LAST_NAMES: [&str; 16] = [
    "Adams", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen", "Kim",
    "Larsen", "Moreau", "Nakamura", "Okafor", "Patel",
];
/// Logs written per statement.
const BATCH: usize = 1000;
/// People written per statement.
const PEOPLE_BATCH: usize = 200;

pub struct DemoPlan {
    pub people: usize,
    pub days: u32,
    /// The last day of the data (usually yesterday).
    pub last_day: NaiveDate,
    pub seed: u64,
    /// Enrolls every person with a random template sealed by this key.
    pub faces: Option<Sealer>,
}

#[derive(Debug)]
pub struct DemoData {
    pub people: usize,
    pub logs: u64,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// Whether demo people exist in `db` already.
pub async fn exists(db: &Db) -> StoreResult<bool> {
    Ok(user_store::find_by_employee_id(db, &employee_id(0)).await?.is_some())
}

/// Writes the plan's people and attendance into `db`. `password_hash` is every demo
/// person's (of a password nobody knows).
pub async fn generate(db: &Db, calendar: &Calendar, plan: &DemoPlan, password_hash: &str) -> StoreResult<DemoData> {
    // Counts of the zone first: the days written here are then counted once, below.
    attendance_counts::ensure_zone(db, calendar).await?;
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut people = Vec::with_capacity(plan.people);
    for start in (0..plan.people).step_by(PEOPLE_BATCH) {
        let batch: Vec<(NewUser, Person)> =
            (start..(start + PEOPLE_BATCH).min(plan.people)).map(|n| person(n, &mut rng, password_hash)).collect();
        let (users, traits): (Vec<NewUser>, Vec<Person>) = batch.into_iter().unzip();
        let tx = db.begin().await?;
        let records = user_store::insert_many(&tx, users).await?;
        if let Some(sealer) = &plan.faces {
            for record in &records {
                let template = random_template(&mut rng);
                let sealed = sealer.seal(&template.to_bytes(), &sealed::template_binding(record.id));
                templates::upsert(&tx, record.id, sealed, 1).await?;
            }
        }
        tx.commit().await?;
        people.extend(records.into_iter().map(|record| record.id).zip(traits));
    }
    let first_day = plan.last_day - Days::new(u64::from(plan.days.max(1)) - 1);
    let mut logs: Vec<(i64, NewAttendance)> = Vec::with_capacity(BATCH);
    let mut written = 0;
    for date in first_day.iter_days().take_while(|date| *date <= plan.last_day) {
        let holiday = calendar.is_working_day(date) && rng.gen_bool(1.0 / 40.0);
        if holiday {
            continue;
        }
        for (user_id, person) in &people {
            for arrival in person.arrivals(date, calendar, &mut rng) {
                logs.push((*user_id, arrival));
                if logs.len() == BATCH {
                    written += attendance_store::insert_many(db, &logs).await?;
                    logs.clear();
                }
            }
        }
    }
    if !logs.is_empty() {
        written += attendance_store::insert_many(db, &logs).await?;
    }
    let tx = db.begin().await?;
    attendance_counts::recount(&tx, calendar, DateRange { from: first_day, to: plan.last_day }).await?;
    tx.commit().await?;
    Ok(DemoData { people: people.len(), logs: written, first_day, last_day: plan.last_day })
}

fn employee_id(n: usize) -> String {
    format!("DEMO-{:06}", n + 1)
}

/// How one demo person attends.
struct Person {
    /// Chance of coming on a working day.
    rate: f64,
    /// Usual arrival, minutes after midnight.
    arrives_at: f64,
    department: usize,
}

/// One embedding of independent uniform components, normalised.
fn random_template(rng: &mut StdRng) -> rollcall_face::Template {
    let values: Vec<f32> = (0..rollcall_face::EMBEDDING_DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let embedding = rollcall_face::Embedding::new(&values).expect("128 finite values, not all zero");
    rollcall_face::Template::new(vec![embedding]).expect("one embedding")
}

fn person(n: usize, rng: &mut StdRng, password_hash: &str) -> (NewUser, Person) {
    let department = weighted_department(rng);
    let faculty = n.is_multiple_of(12);
    let first = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())];
    let user = NewUser {
        employee_id: employee_id(n),
        email: format!("demo{}@demo.rollcall.invalid", n + 1),
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        role: if faculty { Role::Faculty } else { Role::Student },
        department: DEPARTMENTS[department].0.to_owned(),
        password_hash: password_hash.to_owned(),
    };
    // Departments start between 08:00 and 09:10; faculty come a little earlier.
    let start = 480.0 + 10.0 * department as f64 - if faculty { 20.0 } else { 0.0 };
    let rate = if faculty { rng.gen_range(0.90..0.99) } else { rng.gen_range(0.70..0.98) };
    (user, Person { rate, arrives_at: start + rng.gen_range(-15.0..15.0), department })
}

/// A department, picked by the weights of [`DEPARTMENTS`].
fn weighted_department(rng: &mut StdRng) -> usize {
    let total: u32 = DEPARTMENTS.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.gen_range(0..total);
    for (index, (_, weight)) in DEPARTMENTS.iter().enumerate() {
        if pick < *weight {
            return index;
        }
        pick -= weight;
    }
    0
}

impl Person {
    fn arrivals(&self, date: NaiveDate, calendar: &Calendar, rng: &mut StdRng) -> Vec<NewAttendance> {
        let chance = if calendar.is_working_day(date) {
            let weekday = match date.weekday() {
                Weekday::Mon => 0.97,
                Weekday::Fri => 0.92,
                _ => 1.0,
            };
            let season = if matches!(date.month(), 7 | 8) { 0.8 } else { 1.0 };
            self.rate * weekday * season
        } else {
            0.02
        };
        if !rng.gen_bool(chance.clamp(0.0, 1.0)) {
            return Vec::new();
        }
        let monday_delay = if date.weekday() == Weekday::Mon { 10.0 } else { 0.0 };
        let mut minutes = vec![(self.arrives_at + monday_delay + 18.0 * normal(rng)).clamp(390.0, 690.0)];
        if rng.gen_bool(0.25) {
            minutes.push((780.0 + 15.0 * normal(rng)).clamp(730.0, 840.0));
        }
        minutes.into_iter().filter_map(|minute| self.arrival(date, minute, calendar, rng)).collect()
    }

    fn arrival(&self, date: NaiveDate, minute: f64, calendar: &Calendar, rng: &mut StdRng) -> Option<NewAttendance> {
        let seconds = (minute * 60.0) as u32 + rng.gen_range(0..60);
        let local = date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)?);
        let timestamp = calendar.zone().from_local_datetime(&local).earliest()?.with_timezone(&Utc);
        let manual = rng.gen_bool(0.03);
        let similarity = rng.gen_range(0.55..0.85);
        Some(NewAttendance {
            timestamp,
            camera_id: (!manual).then(|| format!("CAM-{:02}-ENTRANCE", self.department + 1)),
            location: (!manual).then(|| format!("{} entrance", DEPARTMENTS[self.department].0)),
            confidence: (!manual).then(|| (0.9 + (similarity - 0.55) / 3.0_f64).min(0.999)),
            similarity: (!manual).then_some(similarity),
            anti_spoof_score: (!manual).then(|| rng.gen_range(0.85..0.99)),
            verification_time: (!manual).then(|| rng.gen_range(0.2..0.9)),
            source: if manual { "manual" } else { "verify" },
            task_id: None,
            details: if manual { json!({"reason": "demo data", "marked_by": "demo"}) } else { json!({"demo": true}) },
        })
    }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen_range(0.0..1.0));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

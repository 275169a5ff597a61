//! What makes recognition trustworthy under attack and failure: requests cannot loosen
//! the decision, one face has one identity, every decision is audited, and each task's
//! writes happen once — across workers whose leases expire and across servers that share
//! one database.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rollcall_server::App;
use rollcall_server::domain::audit::Requester;
use rollcall_server::domain::face::{self, EnrollRequest, VerifyRequest};
use rollcall_server::domain::users::Role;
use rollcall_server::queue::worker::TaskRunner;
use rollcall_server::queue::{Recorded, Task, TaskKind, TaskState};
use rollcall_server::store::{attendance, audit, tasks, users, webhooks};
use serde_json::{Value, json};

use crate::helpers::*;

/// A task's result, submitted with `?wait=true`.
async fn result_of(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    run_task(app, path, token, body).await["result"].clone()
}

async fn enroll(app: &TestApp, employee_id: &str, photos: &[&str], extra: Value) -> Value {
    let images: Vec<String> = photos.iter().map(|name| photo(name)).collect();
    let mut body = json!({"employee_id": employee_id, "images": images});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    result_of(app, "/face/enroll/", &app.admin_token, body).await
}

fn with_key(app: &TestApp, key: &str, path: &str) -> reqwest::RequestBuilder {
    app.client.post(app.url(path)).header("X-API-Key", key)
}

/// obama3.jpg blurred until the quality gate refuses it.
fn blurred_photo() -> String {
    let image = image::load_from_memory(&fixture("obama3.jpg")).unwrap().to_rgb8();
    let blurred = image::imageops::blur(&image, 8.0);
    let mut bytes = std::io::Cursor::new(Vec::new());
    blurred.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    data_uri(bytes.get_ref(), "image/jpeg")
}

/// The one face of a bulk result's one frame.
fn only_face(result: &Value) -> &Value {
    &result["frames"][0]["faces"][0]
}

#[tokio::test]
async fn a_request_cannot_loosen_recognition() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    let student = app.create_user("STU001", "student", "Physics").await;
    let student_key = app.create_api_key("Door kiosk", "student").await;
    assert_eq!(enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"], json!({})).await["success"], true);

    let loosened =
        json!({"images": [{"id": "door", "image": photo("biden.jpg")}], "options": {"similarity_threshold": -1}});
    let by_student = app.post("/face/bulk-verify/", Some(&student.token), loosened.clone()).await;
    assert_eq!(by_student.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(by_student).await, "forbidden");
    let by_key = with_key(&app, &student_key, "/face/bulk-verify/").json(&loosened).send().await.unwrap();
    assert_eq!(by_key.status(), StatusCode::FORBIDDEN, "a student-role API key may not loosen it either");

    // A quality minimum of 0 leaves the server's gate in place, and the stranger unrecognised.
    let no_quality =
        json!({"images": [{"id": "door", "image": photo("biden.jpg")}], "options": {"quality_threshold": 0}});
    let stranger = result_of(&app, "/face/bulk-verify/", &student.token, no_quality).await;
    assert_eq!(only_face(&stranger)["recognized"], false, "{stranger}");
    assert_eq!(stranger["attendance_logged"], 0);
    for options in [json!({}), json!({"quality_threshold": 0})] {
        let body = json!({"images": [{"id": "door", "image": blurred_photo()}], "options": options});
        let response = with_key(&app, &student_key, "/face/bulk-verify/?wait=true").json(&body).send().await.unwrap();
        let result: Value = response.json().await.unwrap();
        let face = only_face(&result["result"]);
        assert_eq!(face["reason"], "low_quality", "options {options}: {result}");
        assert_eq!(face["recognized"], false);
    }

    // An admin may set a lower threshold; the override is audited.
    let admin_override = result_of(&app, "/face/bulk-verify/", &app.admin_token, loosened).await;
    assert_eq!(admin_override["similarity_threshold"], -1.0, "{admin_override}");
    let overrides = app.audit_entries("threshold_override").await;
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert!(overrides[0]["user_id"].as_str().unwrap().starts_with("ADMIN-"), "{overrides:?}");
    assert_eq!(overrides[0]["details"]["requested"], -1.0);
}

#[tokio::test]
async fn one_face_has_one_identity_and_every_decision_is_audited() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    app.create_user("IMPOSTOR", "student", "Physics").await;
    let kiosk = app.create_api_key("Main entrance kiosk", "student").await;
    assert_eq!(enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"], json!({})).await["success"], true);

    let duplicate = enroll(&app, "IMPOSTOR", &["obama3.jpg"], json!({})).await;
    assert_eq!(duplicate["success"], false, "{duplicate}");
    assert_eq!(duplicate["reason"], "duplicate_identity");
    assert_eq!(duplicate["duplicate_of"], "OBAMA");
    let impostor: Value = app.get("/users/?search=IMPOSTOR", &app.admin_token).await.json().await.unwrap();
    assert_eq!(impostor["results"][0]["face_enrolled"], false, "no template was stored");
    // Re-enrolling a person with new photos of themselves is not a duplicate.
    assert_eq!(enroll(&app, "OBAMA", &["obama.jpg", "obama3.jpg"], json!({})).await["success"], true);
    for name in ["biden.jpg", "obama2.jpg"] {
        let body = json!({"image": photo(name), "camera_id": "CAM001"});
        let response = with_key(&app, &kiosk, "/face/verify/?wait=true").json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let verifications = app.audit_entries("face_verification").await;
    assert_eq!(verifications.len(), 2, "{verifications:?}");
    let (recognised, stranger) = (&verifications[0], &verifications[1]);
    assert_eq!(recognised["user_id"], "api_key:Main entrance kiosk");
    assert_eq!(recognised["details"]["camera_id"], "CAM001");
    assert_eq!(recognised["details"]["recognized"], true);
    assert_eq!(recognised["details"]["attendance_logged"], true);
    assert!(recognised["details"]["processing_ms"].is_u64(), "{recognised}");
    assert_eq!(stranger["details"]["recognized"], false);
    assert_eq!(stranger["details"]["employee_id"], Value::Null);
    assert_eq!(recognised["details"]["employee_id"], "OBAMA");
    let stored = serde_json::to_string(&verifications).unwrap();
    assert!(!stored.contains("base64") && stored.len() < 4000, "no photo in the audit log");
    let forced = enroll(&app, "IMPOSTOR", &["obama3.jpg"], json!({"allow_duplicate": true})).await;
    assert_eq!(forced["success"], true, "{forced}");
    assert_eq!(forced["duplicate_of"], "OBAMA");

    let enrollments = app.audit_entries("enrollment").await;
    let outcomes: Vec<(bool, bool)> = enrollments
        .iter()
        .map(|entry| (entry["success"].as_bool().unwrap(), entry["details"]["allow_duplicate"].as_bool().unwrap()))
        .collect();
    // Newest first: forced duplicate, re-enrollment, refused duplicate, first enrollment.
    assert_eq!(outcomes, [(true, true), (true, false), (false, false), (true, false)], "{enrollments:?}");
    assert_eq!(enrollments[1]["details"]["duplicate_of"], Value::Null);
    assert_eq!(enrollments[2]["details"]["reason"], "duplicate_identity");
}

#[tokio::test]
async fn two_servers_on_one_database_log_one_arrival_per_cooldown() {
    let first = spawn_face_app().await;
    let obama = first.create_user("OBAMA", "faculty", "Government").await;
    assert_eq!(enroll(&first, "OBAMA", &["obama.jpg", "obama2.jpg"], json!({})).await["success"], true);
    let second = spawn_face_app_beside(&first, |_| {}).await;

    let arrivals: Vec<_> = (0..8)
        .map(|n| {
            let (address, client) = if n % 2 == 0 {
                (first.address.clone(), first.client.clone())
            } else {
                (second.address.clone(), second.client.clone())
            };
            let token = if n % 2 == 0 { first.admin_token.clone() } else { second.admin_token.clone() };
            tokio::spawn(async move {
                let body = json!({"image": photo("obama3.jpg"), "camera_id": "CAM001"});
                let url = format!("{address}/api/v1/face/verify/?wait=true");
                let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let body: Value = response.json().await.unwrap();
                body["result"].clone()
            })
        })
        .collect();
    let mut logged = 0;
    for arrival in arrivals {
        let result = arrival.await.unwrap();
        assert_eq!(result["employee_id"], "OBAMA", "{result}");
        logged += usize::from(result["attendance_logged"] == true);
    }
    assert_eq!(logged, 1, "one of eight simultaneous arrivals is logged");
    let db = rollcall_server::store::Db::connect(&first.database_url).await.unwrap();
    assert_eq!(attendance::for_user(&db, obama.id).await.unwrap().len(), 1);
    db.close().await;
}

/// The app without its HTTP server or workers: the test plays the workers.
async fn bare_app(lease_secs: u64) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), fresh_database_url(dir.path()).await);
    config.task_lease_secs = lease_secs;
    config.attendance_cooldown_secs = 0;
    (App::build_with_engine(config, Some(face_engine())).await.unwrap(), dir)
}

async fn add_person(app: &App, employee_id: &str) -> i64 {
    let person = users::NewUser {
        employee_id: employee_id.into(),
        email: format!("{}@college.edu", employee_id.to_lowercase()),
        first_name: "Test".into(),
        last_name: employee_id.into(),
        role: Role::Faculty,
        department: "Government".into(),
        password_hash: "not-a-login".into(),
    };
    users::insert(&app.db, person).await.unwrap().id
}

fn enrollment(employee_id: &str, photos: &[&str]) -> Vec<u8> {
    let request = EnrollRequest {
        employee_id: employee_id.into(),
        images: photos.iter().map(|name| photo(name)).collect(),
        quality_check: true,
        allow_duplicate: false,
        requested_by: Requester::default(),
    };
    serde_json::to_vec(&request).unwrap()
}

async fn claim(app: &App) -> Task {
    app.queue.claim().await.unwrap().expect("a task to claim")
}

/// Runs a claimed task to its end, as a worker does.
async fn finish(app: &App, runner: &dyn TaskRunner, task: &Task) -> Recorded {
    let result = runner.run(task).await.expect("the task succeeds");
    app.queue.complete(task, &result, Duration::from_millis(1)).await.unwrap()
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_changes_nothing() {
    let (app, _dir) = bare_app(1).await;
    let runner = app.face_tasks();
    let obama = add_person(&app, "OBAMA").await;
    app.queue
        .submit(TaskKind::Enroll, "test", Some(obama), &enrollment("OBAMA", &["obama.jpg", "obama2.jpg"]))
        .await
        .unwrap();
    assert_eq!(finish(&app, &runner, &claim(&app).await).await, Recorded::Yes);
    let secret =
        app.sealer.seal(b"a-webhook-signing-secret", &rollcall_server::store::sealed::webhook_secret_binding(1));
    let fields = webhooks::WebhookFields {
        url: "http://127.0.0.1:9/hook".into(),
        events: "attendance_logged".into(),
        secret,
        is_active: true,
    };
    let webhook = webhooks::insert(&app.db, fields, None).await.unwrap();

    let verification = VerifyRequest {
        image: photo("obama3.jpg"),
        camera_id: Some("CAM001".into()),
        location: None,
        captured_at: chrono::Utc::now(),
        requested_by: Requester::default(),
        from_camera_worker: false,
        liveness_mode: Default::default(),
        challenge: None,
    };
    let id =
        app.queue.submit(TaskKind::Verify, "test", None, &serde_json::to_vec(&verification).unwrap()).await.unwrap();
    let stale = claim(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let current = claim(&app).await;
    assert_eq!(
        (stale.id.as_str(), current.id.as_str()),
        (id.as_str(), id.as_str()),
        "the expired task is claimed again"
    );
    assert_eq!(current.attempt, stale.attempt + 1);

    // The stale worker wakes up: every write it tries is refused.
    assert_eq!(app.queue.heartbeat(&stale).await.unwrap(), Recorded::LeaseLost);
    let refused = runner.run(&stale).await.expect_err("the stale worker's writes are refused");
    assert!(refused.lease_lost, "{}", refused.message);
    assert_eq!(finish(&app, &runner, &current).await, Recorded::Yes);
    let stale_result = json!({"recognized": false, "stale": true});
    assert_eq!(app.queue.complete(&stale, &stale_result, Duration::ZERO).await.unwrap(), Recorded::LeaseLost);
    let failure = rollcall_server::queue::TaskFailure::retryable("stale");
    assert_eq!(app.queue.fail(&stale, &failure, Duration::ZERO).await.unwrap(), Recorded::LeaseLost);

    let status = app.queue.status(&id).await.unwrap().unwrap();
    assert_eq!(status.state, TaskState::Completed);
    let result = status.result.unwrap();
    assert_eq!((result["attendance_logged"].clone(), result.get("stale")), (json!(true), None), "{result}");
    let logs = attendance::for_user(&app.db, obama).await.unwrap();
    assert_eq!(logs.len(), 1, "one arrival logged: {logs:?}");
    assert_eq!(result["attendance_id"], json!(logs[0].id));
    let (deliveries, count) = webhooks::deliveries(&app.db, webhook.id, 10, 0).await.unwrap();
    assert_eq!(count, 1, "one attendance_logged delivery: {deliveries:?}");
    let filter = audit::AuditFilter { action: Some("face_verification".into()), ..Default::default() };
    assert_eq!(audit::list(&app.db, &filter, 10, 0).await.unwrap().1, 1, "one audit entry");
}

#[tokio::test]
async fn erasing_a_person_ends_their_enrollments_in_flight() {
    let (app, _dir) = bare_app(30).await;
    let runner = app.face_tasks();
    let obama = add_person(&app, "OBAMA").await;
    let payload = enrollment("OBAMA", &["obama.jpg", "obama2.jpg"]);
    let queued = app.queue.submit(TaskKind::Enroll, "test", Some(obama), &payload).await.unwrap();
    let running = app.queue.submit(TaskKind::Enroll, "test", Some(obama), &payload).await.unwrap();
    let claimed = claim(&app).await;
    assert_eq!(claimed.id, queued, "the oldest first");

    face::erase(&app.db, &app.face, obama).await.unwrap();
    // The running enrollment finishes after the erasure: it stores nothing.
    let refused = runner.run(&claimed).await.expect_err("an erased person's enrollment is refused");
    assert!(refused.lease_lost, "{}", refused.message);
    assert!(app.queue.claim().await.unwrap().is_none(), "the queued enrollment was ended too");
    for id in [&queued, &running] {
        let status = app.queue.status(id).await.unwrap().unwrap();
        assert_eq!(status.state, TaskState::Failed, "{id}");
        assert!(status.error.unwrap().contains("erased"));
        let row = tasks::find(&app.db, id).await.unwrap().unwrap();
        assert!(row.payload.is_empty(), "the queued photos are erased");
    }
    assert!(rollcall_server::store::templates::find(&app.db, obama).await.unwrap().is_none());
    assert_eq!(app.face.enrolled_count(), 0, "nobody is recognised as the erased person");
}

#[tokio::test]
async fn tasks_claimed_at_once_go_to_one_worker_each() {
    let (app, _dir) = bare_app(30).await;
    let app = Arc::new(app);
    let payload = serde_json::to_vec(&json!({})).unwrap();
    for _ in 0..20 {
        app.queue.submit(TaskKind::Verify, "test", None, &payload).await.unwrap();
    }
    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(task) = app.queue.claim().await.unwrap() {
                    mine.push(task.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!((before, claimed.len()), (20, 20), "every task claimed exactly once");
}

//! Unknown visitors: faces a camera's worker sends that match nobody are grouped by
//! likeness — the same person one visitor, another person another — and an admin lists,
//! enrolls and deletes them. Faces from uploads, or with tracking off, make no visitor;
//! visitors past their retention period are purged.

use std::time::Duration;

use reqwest::StatusCode;
use rollcall_server::crypto::Sealer;
use rollcall_server::queue::TaskKind;
use rollcall_server::queue::TaskQueue as _;
use rollcall_server::queue::embedded::EmbeddedQueue;
use rollcall_server::store::Db;
use serde_json::{Value, json};

use crate::face::{enroll, verify};
use crate::helpers::*;
use crate::maintenance::{execute, maintain};

/// Queues what a camera's worker sends for a face it followed, as the worker does.
async fn sighting(app: &TestApp, camera_id: &str, photo_name: &str) -> String {
    let db = Db::connect(&app.database_url).await.unwrap();
    let key = std::fs::read_to_string(app.data_dir.path().join("data_key")).unwrap();
    let queue = EmbeddedQueue::new(db.clone(), Sealer::from_key_ring(&key).unwrap(), Duration::from_secs(30), 3, 100);
    let request = json!({"image": photo(photo_name), "camera_id": camera_id, "location": null,
        "captured_at": chrono::Utc::now(), "from_camera_worker": true});
    let owner = format!("camera:{camera_id}");
    let task_id = queue.submit(TaskKind::Verify, &owner, None, &serde_json::to_vec(&request).unwrap()).await.unwrap();
    db.close().await;
    task_id
}

/// Waits for a verification task; its result.
async fn result_of(app: &TestApp, task_id: &str) -> Value {
    for _ in 0..600 {
        let body: Value =
            app.get(&format!("/face/verify/status/{task_id}/"), &app.admin_token).await.json().await.unwrap();
        if body["status"] == "completed" {
            return body["result"].clone();
        }
        assert_ne!(body["status"], "failed", "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {task_id} did not finish");
}

async fn seen(app: &TestApp, camera_id: &str, photo_name: &str) -> Value {
    let task_id = sighting(app, camera_id, photo_name).await;
    result_of(app, &task_id).await
}

async fn visitors(app: &TestApp) -> Value {
    let response = app.get("/visitors/", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn strangers_at_cameras_become_one_visitor_each_and_an_admin_enrolls_or_deletes_them() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;

    // Nobody is enrolled: two people, three sightings at two cameras.
    let first = seen(&app, "CAM001", "obama.jpg").await;
    assert_eq!((first["recognized"].clone(), first["visitor_id"].clone()), (json!(false), json!("V-0001")), "{first}");
    assert_eq!(seen(&app, "CAM001", "biden.jpg").await["visitor_id"], "V-0002", "another face, another visitor");
    assert_eq!(seen(&app, "CAM002", "obama2.jpg").await["visitor_id"], "V-0001", "the same face, the same visitor");
    let listed = visitors(&app).await;
    assert_eq!(listed["count"], 2, "{listed}");
    let obama = listed["results"].as_array().unwrap().iter().find(|v| v["visitor_id"] == "V-0001").unwrap();
    assert_eq!(obama["sightings"], 2);
    let cameras: Vec<(&str, u64)> = obama["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|at| (at["camera_id"].as_str().unwrap(), at["sightings"].as_u64().unwrap()))
        .collect();
    assert_eq!(cameras, [("CAM001", 1), ("CAM002", 1)]);
    assert!(obama["first_seen"].as_str() <= obama["last_seen"].as_str(), "{obama}");
    let crop = app.get("/visitors/V-0001/crop/", &app.admin_token).await;
    assert_eq!(crop.status(), StatusCode::OK);
    assert_eq!(crop.headers()["content-type"], "image/jpeg");
    assert!(image::load_from_memory(&crop.bytes().await.unwrap()).is_ok());
    assert_eq!(app.audit_entries("visitor_crop_viewed").await[0]["details"]["visitor_id"], "V-0001");

    // A photo uploaded to /face/verify/ is a verification, not a sighting.
    assert_eq!(verify(&app, &app.admin_token, "obama3.jpg").await.get("visitor_id"), None);
    let listed = visitors(&app).await;
    let obama = listed["results"].as_array().unwrap().iter().find(|v| v["visitor_id"] == "V-0001").unwrap();
    assert_eq!(obama["sightings"], 2, "no upload counted: {obama}");

    // Enrolled from the sightings, the person is recognised and no longer a visitor.
    let enrolled = app.post("/visitors/V-0001/enroll/", Some(&app.admin_token), json!({"employee_id": "OBAMA"})).await;
    assert_eq!(enrolled.status(), StatusCode::CREATED);
    let enrolled: Value = enrolled.json().await.unwrap();
    assert_eq!(enrolled["sightings_used"], 2, "{enrolled}");
    assert_eq!(app.get("/visitors/V-0001/", &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    let recognised = verify(&app, &app.admin_token, "obama3.jpg").await;
    assert_eq!(recognised["employee_id"], "OBAMA", "{recognised}");
    assert_eq!(app.audit_entries("visitor_enroll").await[0]["details"]["employee_id"], "OBAMA");
    let again = seen(&app, "CAM001", "obama2.jpg").await;
    assert_eq!((again["employee_id"].clone(), again.get("visitor_id")), (json!("OBAMA"), None), "{again}");

    // Enrolling needs a person without a template; deleting forgets the visitor.
    let twice = app.post("/visitors/V-0002/enroll/", Some(&app.admin_token), json!({"employee_id": "OBAMA"})).await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    let nobody = app.post("/visitors/V-0002/enroll/", Some(&app.admin_token), json!({"employee_id": "NOBODY"})).await;
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
    let deleted = app.request(reqwest::Method::DELETE, "/visitors/V-0002/", Some(&app.admin_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.request(reqwest::Method::DELETE, "/visitors/V-0002/", Some(&app.admin_token), None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(visitors(&app).await["count"], 0);
    assert_eq!(seen(&app, "CAM001", "biden.jpg").await["visitor_id"], "V-0003", "numbers are never reused");
    for bad in ["V-1", "0003", "V-00x3", "visitor"] {
        let response = app.get(&format!("/visitors/{bad}/"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}

#[tokio::test]
async fn visitors_not_seen_within_the_retention_period_are_purged() {
    let app = spawn_face_app().await;
    assert_eq!(seen(&app, "CAM001", "biden.jpg").await["visitor_id"], "V-0001");
    let purged = maintain(&app, "purge_evidence", json!({})).await;
    assert_eq!(purged["deleted"]["unknown_visitors"], 0, "{purged}");
    assert_eq!(purged["unknown_visitor_retention_days"], 14);
    let long_ago = "'2020-01-01T00:00:00+00:00'";
    execute(&app, &format!("UPDATE visitor_sightings SET seen_at = {long_ago}")).await;
    execute(&app, &format!("UPDATE visitors SET first_seen = {long_ago}, last_seen = {long_ago}")).await;
    let purged = maintain(&app, "purge_evidence", json!({})).await;
    assert_eq!(purged["deleted"]["unknown_visitors"], 1, "{purged}");
    assert_eq!(visitors(&app).await["count"], 0);
    assert_eq!(seen(&app, "CAM001", "biden.jpg").await["visitor_id"], "V-0002", "a forgotten face starts again");
}

#[tokio::test]
async fn with_tracking_off_strangers_are_verified_and_forgotten() {
    let app = spawn_face_app_with(|config| config.track_unknown_visitors = false).await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg"]).await;
    let stranger = seen(&app, "CAM001", "biden.jpg").await;
    assert_eq!((stranger["recognized"].clone(), stranger.get("visitor_id")), (json!(false), None), "{stranger}");
    assert_eq!(visitors(&app).await["count"], 0);
    let student = app.create_user("S1", "student", "Physics").await;
    assert_eq!(app.get("/visitors/", &student.token).await.status(), StatusCode::FORBIDDEN);
}

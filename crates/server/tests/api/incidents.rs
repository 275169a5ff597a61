//! Security incidents: opened by failed liveness checks (repeated ones at a camera counted
//! on one), reported with a photo, and followed up from open to resolved, audited.

use reqwest::StatusCode;
use rollcall_server::store::{Db, sealed};
use serde_json::{Value, json};

use crate::helpers::*;

async fn verify_at(app: &TestApp, camera: &str) -> Value {
    let body = json!({"image": photo("obama3.jpg"), "camera_id": camera, "location": "Main Building Entrance"});
    run_task(app, "/face/verify/", &app.admin_token, body).await
}

async fn incidents(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/security/incidents/{query}"), &app.admin_token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

async fn step(app: &TestApp, id: i64, step: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/security/incidents/{id}/{step}/"), Some(&app.admin_token), body).await
}

#[tokio::test]
async fn failed_liveness_checks_at_a_camera_count_on_one_incident_followed_up_to_resolved() {
    let app = spawn_app_refusing_every_face(|config| config.spoof_incident_min_failures = 1).await;
    let mut first_task = String::new();
    for attempt in 0..3 {
        let task = verify_at(&app, "CAM001").await;
        assert_eq!(task["result"]["reason"], "spoof", "{task}");
        assert_eq!(task["result"]["attendance_logged"], false);
        if attempt == 0 {
            first_task = task["task_id"].as_str().unwrap().to_owned();
        }
    }
    verify_at(&app, "CAM002").await;

    let listed = incidents(&app, "").await;
    assert_eq!(listed["count"], 2, "one incident per camera: {listed}");
    let cam1 = incidents(&app, "?camera_id=CAM001").await;
    let incident = &cam1["results"][0];
    assert_eq!(cam1["count"], 1);
    assert_eq!(incident["type"], "spoofing_attempt");
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["occurrences"], 3, "three attempts counted on one incident: {incident}");
    assert_eq!(incident["task_id"], first_task);
    assert!(incident["details"]["anti_spoof_score"].as_f64().is_some(), "{incident}");
    assert!(incident["last_seen_at"].as_str() >= incident["occurred_at"].as_str());
    let id = incident["id"].as_i64().unwrap();

    let acknowledged = step(&app, id, "acknowledge", json!({"note": "guard sent to the entrance"})).await;
    assert_eq!(acknowledged.status(), StatusCode::OK);
    let acknowledged: Value = acknowledged.json().await.unwrap();
    assert_eq!(acknowledged["status"], "acknowledged");
    assert_eq!(acknowledged["acknowledged"]["note"], "guard sent to the entrance");
    assert_eq!(step(&app, id, "acknowledge", json!({})).await.status(), StatusCode::CONFLICT);
    assert_eq!(step(&app, id, "resolve", json!({})).await.status(), StatusCode::BAD_REQUEST, "a note is required");
    let resolved: Value =
        step(&app, id, "resolve", json!({"note": "a printed photo; confiscated"})).await.json().await.unwrap();
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["resolved"]["note"], "a printed photo; confiscated");
    assert_eq!(step(&app, id, "resolve", json!({"note": "again"})).await.status(), StatusCode::CONFLICT);
    assert_eq!(step(&app, 999_999, "acknowledge", json!({})).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.audit_entries("incident_acknowledged").await.len(), 1);
    let audited = app.audit_entries("incident_resolved").await;
    assert_eq!(audited[0]["details"]["incident_id"], id);

    // After the resolution, a new attempt at the camera opens a new incident.
    verify_at(&app, "CAM001").await;
    let cam1 = incidents(&app, "?camera_id=CAM001").await;
    assert_eq!(cam1["count"], 2, "{cam1}");
    assert_eq!(cam1["results"][0]["occurrences"], 1);
    assert_eq!(incidents(&app, "?status=resolved").await["count"], 1);
    assert_eq!(incidents(&app, "?status=open&type=spoofing_attempt").await["count"], 2);
    for bad in ["?status=closed", "?severity=urgent", "?type=burglary", "?date_from=2024-03-02&date_to=2024-03-01"] {
        let response = app.get(&format!("/security/incidents/{bad}"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let student = app.create_user("STU001", "student", "Maths").await;
    assert_eq!(app.get("/security/incidents/", &student.token).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn one_failed_check_is_a_retry_and_the_third_at_a_camera_opens_an_incident_counting_all() {
    let app = spawn_app_refusing_every_face(|_| {}).await;
    for _ in 0..2 {
        let task = verify_at(&app, "CAM001").await;
        assert_eq!(task["result"]["reason"], "spoof", "every failure is refused: {task}");
    }
    verify_at(&app, "CAM002").await;
    assert_eq!(incidents(&app, "").await["count"], 0, "two failures at a camera are no alarm yet");
    assert_eq!(app.audit_entries("face_verification").await.len(), 3, "each failure is audited");
    let third = verify_at(&app, "CAM001").await;
    let listed = incidents(&app, "").await;
    assert_eq!(listed["count"], 1, "{listed}");
    let incident = &listed["results"][0];
    assert_eq!((incident["camera_id"].clone(), incident["occurrences"].clone()), (json!("CAM001"), json!(3)));
    assert_eq!(incident["task_id"], third["task_id"]);
    verify_at(&app, "CAM001").await;
    assert_eq!(incidents(&app, "").await["results"][0]["occurrences"], 4, "an open incident counts every failure");
}

#[tokio::test]
async fn attempts_further_apart_than_the_window_open_separate_incidents() {
    let app = spawn_app_refusing_every_face(|config| {
        config.incident_window_secs = 0;
        config.spoof_incident_min_failures = 1;
    })
    .await;
    verify_at(&app, "CAM001").await;
    verify_at(&app, "CAM001").await;
    let cam1 = incidents(&app, "?camera_id=CAM001").await;
    assert_eq!(cam1["count"], 2, "{cam1}");
}

#[tokio::test]
async fn a_reported_incident_keeps_its_photo_sealed_for_admins() {
    let app = spawn_app().await;
    let kiosk = app.create_api_key("Gate kiosk", "student").await;
    let report = json!({
        "type": "spoofing_attempt",
        "camera_id": "CAM001",
        "timestamp": "2024-03-15T08:45:23Z",
        "description": "Multiple failed liveness checks",
        "severity": "high",
        "image": photo("obama.jpg"),
    });
    let response = app
        .client
        .post(app.url("/security/report-incident/"))
        .header("X-API-Key", &kiosk)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let incident: Value = response.json().await.unwrap();
    assert_eq!(incident["occurred_at"], "2024-03-15T08:45:23Z");
    assert_eq!(incident["severity"], "high");
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["reported_by"], "api_key:Gate kiosk");
    let id = incident["id"].as_i64().unwrap();

    let detail: Value = app.get(&format!("/security/incidents/{id}/"), &app.admin_token).await.json().await.unwrap();
    assert_eq!(detail["image_url"], format!("/api/v1/security/incidents/{id}/image/"), "{detail}");
    let image = app.get(&format!("/security/incidents/{id}/image/"), &app.admin_token).await;
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    assert_eq!(image.bytes().await.unwrap().as_ref(), fixture("obama.jpg").as_slice(), "the photo as sent");
    assert_eq!(app.audit_entries("incident_image_viewed").await.len(), 1);
    assert_eq!(app.audit_entries("incident_reported").await[0]["details"]["incident_id"], id);
    let db = Db::connect(&app.database_url).await.unwrap();
    let stored = sealed::page(&db, &sealed::INCIDENT_IMAGES, None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].sealed.starts_with(&[0xFF, 0xD8]), "stored as plain JPEG");
    db.close().await;

    let minimal = app
        .post(
            "/security/report-incident/",
            Some(&app.admin_token),
            json!({"type": "tailgating",
        "description": "two people on one badge"}),
        )
        .await;
    assert_eq!(minimal.status(), StatusCode::CREATED);
    let minimal: Value = minimal.json().await.unwrap();
    assert_eq!(minimal["severity"], "medium");
    let detail: Value =
        app.get(&format!("/security/incidents/{}/", minimal["id"]), &app.admin_token).await.json().await.unwrap();
    assert_eq!(detail["image_url"], Value::Null);

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let bad_reports = [
        json!({"type": "burglary", "description": "x"}),
        json!({"type": "other", "description": "x", "severity": "urgent"}),
        json!({"type": "other", "description": "  "}),
        json!({"type": "other", "description": "x".repeat(2001)}),
        json!({"type": "other", "description": "x", "image": "not base64 at all!"}),
        json!({"type": "other", "description": "x", "image": data_uri(b"these bytes are no image", "image/jpeg")}),
        json!({"type": "other", "description": "x", "timestamp": future}),
        json!({"type": "other", "description": "x", "camera": "CAM001"}),
    ];
    for body in bad_reports {
        let response = app.post("/security/report-incident/", Some(&app.admin_token), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(!error_code(response).await.is_empty());
    }
    assert_eq!(incidents(&app, "").await["count"], 2, "nothing stored from refused reports");
}

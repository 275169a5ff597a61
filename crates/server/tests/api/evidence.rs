//! Arrival evidence: the face crop a face log was decided on, kept sealed for admins,
//! erased with the person's face data, and purged after its retention period.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use rollcall_server::domain::evidence::Retention;
use rollcall_server::store::Db;
use rollcall_server::store::sealed;
use serde_json::Value;

use crate::attendance::report;
use crate::face::{enroll, verify};
use crate::helpers::*;

async fn detail(app: &TestApp, id: i64) -> Value {
    let response = app.get(&format!("/attendance/logs/{id}/"), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn face_crop(app: &TestApp, id: i64, token: &str) -> reqwest::Response {
    app.get(&format!("/attendance/logs/{id}/face/"), token).await
}

/// Enrolls OBAMA and logs one face arrival of his; the log's id.
async fn face_arrival(app: &TestApp) -> i64 {
    app.create_user("OBAMA", "faculty", "Government").await;
    let enrolled = enroll(app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    assert_eq!(enrolled["success"], true, "{enrolled}");
    let verified = verify(app, &app.admin_token, "obama3.jpg").await;
    assert_eq!(verified["attendance_logged"], true, "{verified}");
    verified["attendance_id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_face_arrival_keeps_its_crop_sealed_for_admins_until_the_face_data_is_erased() {
    let app = spawn_face_app().await;
    let id = face_arrival(&app).await;
    let student = app.create_user("STU001", "student", "Government").await;

    let log = detail(&app, id).await;
    assert_eq!(log["face_crop"]["url"], format!("/api/v1/attendance/logs/{id}/face/"), "{log}");
    let kept_until: chrono::DateTime<Utc> = log["face_crop"]["kept_until"].as_str().unwrap().parse().unwrap();
    let expected = Utc::now() + Duration::days(30);
    assert!((kept_until - expected).num_seconds().abs() < 120, "kept 30 days by default: {kept_until}");

    let response = face_crop(&app, id, &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let crop = image::load_from_memory(&response.bytes().await.unwrap()).expect("a JPEG");
    assert!(crop.width().max(crop.height()) <= 224, "{}×{}", crop.width(), crop.height());
    assert!(crop.width().min(crop.height()) >= 64, "the face, not a sliver: {}×{}", crop.width(), crop.height());
    let viewed = app.audit_entries("arrival_evidence_viewed").await;
    assert_eq!(viewed.len(), 1, "{viewed:?}");
    assert_eq!(viewed[0]["details"]["attendance_id"], id);
    assert_eq!(face_crop(&app, id, &student.token).await.status(), StatusCode::FORBIDDEN);

    // At rest the crop is sealed, not a JPEG.
    let db = Db::connect(&app.database_url).await.unwrap();
    let stored = sealed::page(&db, &sealed::ARRIVAL_EVIDENCE, None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].sealed.starts_with(&[0xFF, 0xD8]), "stored as plain JPEG");
    db.close().await;

    // Logs that no face decided have no crop.
    let reported = report(&app, "OBAMA", "2024-03-11T08:00:00Z", None).await;
    assert_eq!(detail(&app, reported).await["face_crop"], Value::Null);
    assert_eq!(face_crop(&app, reported, &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(face_crop(&app, 999_999, &app.admin_token).await.status(), StatusCode::NOT_FOUND);

    let erase = app.request(Method::DELETE, "/face/templates/OBAMA/", Some(&app.admin_token), None).await;
    assert_eq!(erase.status(), StatusCode::NO_CONTENT);
    assert_eq!(face_crop(&app, id, &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    let log = detail(&app, id).await;
    assert_eq!(log["face_crop"], Value::Null, "erased with the face data: {log}");
    assert_eq!(log["evidence"]["decision"], "recognised", "the log and its scores stay: {log}");
}

#[tokio::test]
async fn crops_are_purged_after_their_retention_period() {
    let app = spawn_face_app_with(|config| config.evidence_retention_days = 7).await;
    let id = face_arrival(&app).await;
    assert!(detail(&app, id).await["face_crop"]["kept_until"].is_string());

    let db = Db::connect(&app.database_url).await.unwrap();
    let retention = Retention { days: 7 };
    assert_eq!(retention.purge_expired(&db, Utc::now() + Duration::days(6)).await.unwrap(), 0);
    assert_eq!(face_crop(&app, id, &app.admin_token).await.status(), StatusCode::OK, "kept within the period");
    assert_eq!(retention.purge_expired(&db, Utc::now() + Duration::days(8)).await.unwrap(), 1);
    db.close().await;
    assert_eq!(face_crop(&app, id, &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(detail(&app, id).await["face_crop"], Value::Null);
    let logs: Value = app.get("/attendance/logs/?source=face", &app.admin_token).await.json().await.unwrap();
    assert_eq!(logs["count"], 1, "the log itself stays: {logs}");
}

#[tokio::test]
async fn no_crop_is_kept_when_arrival_evidence_is_off() {
    let app = spawn_face_app_with(|config| config.keep_arrival_evidence = false).await;
    let id = face_arrival(&app).await;
    let log = detail(&app, id).await;
    assert_eq!(log["face_crop"], Value::Null, "{log}");
    assert_eq!(log["evidence"]["decision"], "recognised", "the scores are kept all the same: {log}");
    assert_eq!(face_crop(&app, id, &app.admin_token).await.status(), StatusCode::NOT_FOUND);
}

//! Data sealed at rest: bound to its row, readable in the format older versions wrote, and
//! re-sealed by a key rotation that the server survives.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key};
use base64::Engine as _;
use reqwest::StatusCode;
use rollcall_server::crypto::Sealer;
use rollcall_server::queue::TaskKind;
use rollcall_server::queue::TaskQueue as _;
use rollcall_server::queue::embedded::EmbeddedQueue;
use rollcall_server::store::sealed::{self, RowKey, SealedValue};
use rollcall_server::store::{Db, users};
use serde_json::{Value, json};

use crate::face::{enroll, verify};
use crate::helpers::*;
use crate::webhooks::{Receiver, allow_private_networks, assert_signed, create_webhook};

/// What versions before key ids wrote: `nonce || ciphertext`, with no associated data.
fn legacy_seal(key: &str, plaintext: &[u8]) -> Vec<u8> {
    let key = base64::engine::general_purpose::STANDARD.decode(key.trim()).unwrap();
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    [nonce.to_vec(), cipher.encrypt(&nonce, plaintext).unwrap()].concat()
}

async fn sealed_values(db: &Db, column: &'static sealed::SealedColumn) -> Vec<SealedValue> {
    sealed::page(db, column, None, 1000).await.unwrap()
}

fn key_file(app: &StoppedApp) -> std::path::PathBuf {
    app.data_dir.path().join("data_key")
}

#[tokio::test]
async fn a_template_copied_to_another_persons_row_does_not_open() {
    let app = spawn_face_app().await;
    let obama = app.create_user("OBAMA", "faculty", "Government").await;
    let biden = app.create_user("BIDEN", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    enroll(&app, "BIDEN", &["biden.jpg"]).await;
    let stopped = app.stop().await;

    // Someone with write access to the database puts Obama's template in Biden's row.
    let db = Db::connect(&stopped.config.database_url()).await.unwrap();
    let templates = sealed_values(&db, &sealed::FACE_TEMPLATES).await;
    let of = |id: i64| templates.iter().find(|value| value.key == RowKey::Int(id)).unwrap();
    assert!(sealed::replace(&db, of(biden.id), of(obama.id).sealed.clone()).await.unwrap());
    db.close().await;

    // The server refuses to start, naming the row, rather than recognise Obama as Biden.
    let error = rollcall_server::App::build_with_engine(stopped.config.clone(), Some(face_engine()))
        .await
        .err()
        .expect("a server started with a template that belongs to someone else");
    let message = format!("{error:#}");
    assert!(message.contains(&format!("template of face_templates row {}", biden.id)), "{message}");
    assert!(message.contains("sealed for another row"), "{message}");
}

#[tokio::test]
async fn rotating_the_data_key_reseals_everything_and_old_format_data_still_opens() {
    let app = spawn_face_app_with(|config| {
        allow_private_networks(config);
        config.keep_enrollment_images = true;
        config.attendance_cooldown_secs = 0;
    })
    .await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    let receiver = Receiver::start(0).await;
    let secret = "a-secret-that-outlives-its-key";
    create_webhook(&app, json!({"url": receiver.url, "events": ["attendance_logged"], "secret": secret})).await;
    let report = json!({"type": "other", "description": "a photo to re-seal", "image": photo("biden.jpg")});
    let reported = app.post("/security/report-incident/", Some(&app.admin_token), report).await;
    assert_eq!(reported.status(), StatusCode::CREATED);
    let camera = json!({"id": "CAM001", "name": "Gate", "rtsp_url": "rtsp://admin:cam-secret@10.0.0.7/stream",
        "is_active": false});
    assert_eq!(app.post("/cameras/", Some(&app.admin_token), camera).await.status(), StatusCode::CREATED);
    let stopped = app.stop().await;

    // The template and the webhook secret as an older version stored them.
    let old_key = std::fs::read_to_string(key_file(&stopped)).unwrap();
    let old = Sealer::from_key_ring(&old_key).unwrap();
    let db = Db::connect(&stopped.config.database_url()).await.unwrap();
    for column in [&sealed::FACE_TEMPLATES, &sealed::WEBHOOK_SECRETS] {
        for value in sealed_values(&db, column).await {
            let plaintext = old.open(&value.sealed, &value.binding).unwrap();
            assert!(sealed::replace(&db, &value, legacy_seal(&old_key, &plaintext)).await.unwrap());
        }
    }
    // A stranger at a camera, to become an unknown visitor with a sealed likeness and crop.
    let queue = EmbeddedQueue::new(db.clone(), old.clone(), Duration::from_secs(30), 3, 100);
    let sighting = json!({"image": photo("biden.jpg"), "camera_id": "CAM001", "location": null,
        "captured_at": chrono::Utc::now(), "from_camera_worker": true});
    let sighting = serde_json::to_vec(&sighting).unwrap();
    let stranger_task = queue.submit(TaskKind::Verify, "camera:CAM001", None, &sighting).await.unwrap();
    db.close().await;

    let app = stopped.start_with(|_| {}).await;
    let recognised = verify(&app, &app.admin_token, "obama3.jpg").await;
    assert_eq!(recognised["employee_id"], "OBAMA", "a template in the old format opens: {recognised}");
    let stranger = wait_for_task(&app, &stranger_task).await;
    assert_eq!(stranger["result"]["visitor_id"], "V-0001", "{stranger}");
    assert_signed(&receiver.wait_for(1).await[0], secret);
    let stopped = app.stop().await;

    // A verification still queued while the key is rotated.
    let db = Db::connect(&stopped.config.database_url()).await.unwrap();
    let admin = users::find_by_email(&db, ADMIN_EMAIL).await.unwrap().unwrap();
    let queue = EmbeddedQueue::new(db.clone(), old.clone(), Duration::from_secs(30), 3, 100);
    let request = json!({"image": photo("obama2.jpg"), "camera_id": "CAM002", "location": null,
        "captured_at": chrono::Utc::now()});
    let owner = format!("user:{}", admin.id);
    let task_id = queue.submit(TaskKind::Verify, &owner, None, &serde_json::to_vec(&request).unwrap()).await.unwrap();
    db.close().await;

    let rotation = rollcall_server::key_rotation::rotate_data_key(&stopped.config).await.unwrap();
    let new_key = std::fs::read_to_string(key_file(&stopped)).unwrap();
    assert_eq!(new_key.split_whitespace().count(), 1, "the previous key is retired: {new_key:?}");
    assert_ne!(new_key.trim(), old_key.trim());
    assert_eq!(rotation.retired_keys, 1);
    let current = Sealer::from_key_ring(&new_key).unwrap();
    assert_eq!(rotation.key_id, current.current_key_id().to_string());

    let db = Db::connect(&stopped.config.database_url()).await.unwrap();
    let mut total = 0;
    for column in sealed::ALL {
        let values = sealed_values(&db, column).await;
        let expected = if column.table == "enrollment_images" { 2 } else { 1 };
        assert_eq!(values.len(), expected, "{}", column.table);
        for value in &values {
            assert!(current.is_current(&value.sealed), "{} not re-sealed", value.binding);
            assert!(current.open(&value.sealed, &value.binding).is_ok(), "{}", value.binding);
            assert!(old.open(&value.sealed, &value.binding).is_err(), "{} opens with the retired key", value.binding);
        }
        total += values.len() as u64;
    }
    assert_eq!(rotation.resealed, total);
    db.close().await;

    let app = stopped.start_with(|_| {}).await;
    let queued = wait_for_task(&app, &task_id).await;
    assert_eq!(queued["result"]["employee_id"], "OBAMA", "the re-sealed photo opens: {queued}");
    let requests = receiver.wait_for(2).await;
    assert_signed(&requests[1], secret);
    let after = verify(&app, &app.admin_token, "obama3.jpg").await;
    assert_eq!(after["employee_id"], "OBAMA", "the re-sealed template opens: {after}");
    let stream: Value = app.get("/cameras/CAM001/stream/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(stream["rtsp_url"], "rtsp://admin:***@10.0.0.7/stream", "the re-sealed camera URL opens: {stream}");
}

#[tokio::test]
async fn rotation_stops_before_retiring_a_key_when_a_value_opens_with_none() {
    let app = spawn_app().await;
    create_webhook(&app, json!({"url": "https://hooks.example.com/a", "events": ["attendance_logged"]})).await;
    let second =
        create_webhook(&app, json!({"url": "https://hooks.example.com/b", "events": ["attendance_logged"]})).await;
    let stopped = app.stop().await;
    let db = Db::connect(&stopped.config.database_url()).await.unwrap();
    let secrets = sealed_values(&db, &sealed::WEBHOOK_SECRETS).await;
    // The first webhook's secret copied into the second's row.
    assert!(sealed::replace(&db, &secrets[1], secrets[0].sealed.clone()).await.unwrap());
    db.close().await;

    let error = rollcall_server::key_rotation::rotate_data_key(&stopped.config).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains(&format!("secret of webhooks row {}", second["id"])), "{message}");
    assert!(message.contains("previous key is kept"), "{message}");
    let ring = std::fs::read_to_string(key_file(&stopped)).unwrap();
    assert_eq!(ring.split_whitespace().count(), 2, "the ring keeps the previous key");

    // The server starts on the ring; the untouched webhook still works.
    let app = stopped.start_with(|_| {}).await;
    let listed: Value = app.get("/webhooks/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(listed["results"].as_array().unwrap().len(), 2);
}

/// Polls a verification task until it has ended.
async fn wait_for_task(app: &TestApp, task_id: &str) -> Value {
    for _ in 0..300 {
        let response = app.get(&format!("/face/verify/status/{task_id}/"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        if body["status"] == "completed" || body["status"] == "failed" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {task_id} did not finish");
}

//! Enrollment and verification end to end: real photos, real models, real HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

pub async fn enroll(app: &TestApp, employee_id: &str, photos: &[&str]) -> Value {
    let images: Vec<String> = photos.iter().map(|name| photo(name)).collect();
    run_task(app, "/face/enroll/", &app.admin_token, json!({"employee_id": employee_id, "images": images})).await["result"]
        .clone()
}

pub async fn verify(app: &TestApp, token: &str, name: &str) -> Value {
    let body = json!({"image": photo(name), "camera_id": "CAM001", "location": "Main Building Entrance"});
    run_task(app, "/face/verify/", token, body).await["result"].clone()
}

#[tokio::test]
async fn enroll_then_verify_logs_attendance_once_per_cooldown() {
    let app = spawn_face_app().await;
    let obama = app.create_user("OBAMA", "faculty", "Government").await;
    let kiosk = app.create_api_key("Main entrance kiosk", "student").await;

    let enrolled = enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    assert_eq!(enrolled["success"], true, "{enrolled}");
    assert_eq!(enrolled["template_created"], true);
    assert_eq!(enrolled["faces_detected"], 2);
    assert_eq!(enrolled["quality_scores"].as_array().unwrap().len(), 2);
    let users: Value = app.get("/users/?search=OBAMA", &app.admin_token).await.json().await.unwrap();
    assert_eq!(users["results"][0]["face_enrolled"], true);

    let first = verify_with_key(&app, &kiosk, "obama3.jpg").await;
    assert_eq!(first["recognized"], true, "{first}");
    assert_eq!(first["employee_id"], "OBAMA");
    assert_eq!(first["name"], "Test OBAMA");
    assert_eq!(first["is_live"], true);
    assert_eq!(first["attendance_logged"], true);
    let similarity = first["similarity_score"].as_f64().unwrap();
    assert!(similarity > 0.363 && similarity <= 1.0, "{first}");
    assert!((0.0..=1.0).contains(&first["confidence"].as_f64().unwrap()));
    assert!(first["anti_spoof_score"].as_f64().unwrap() > 0.5);
    // The log keeps why it was made.
    let log_id = first["attendance_id"].as_i64().unwrap();
    let log: Value = app.get(&format!("/attendance/logs/{log_id}/"), &app.admin_token).await.json().await.unwrap();
    assert_eq!(log["employee"]["employee_id"], "OBAMA");
    assert_eq!(log["evidence"]["decision"], "recognised", "{log}");
    assert_eq!(log["evidence"]["similarity_score"], first["similarity_score"]);
    assert_eq!(log["evidence"]["is_live"], true);
    assert!(log["evidence"]["quality_score"].as_f64().unwrap() > 0.0, "{log}");
    assert!(log["evidence"]["face_box"]["width"].as_f64().unwrap() > 0.0, "{log}");
    assert!(log["task_id"].as_str().unwrap().starts_with("verify"), "{log}");
    let own = app.get(&format!("/attendance/logs/{log_id}/"), &obama.token).await;
    assert_eq!(own.status(), reqwest::StatusCode::FORBIDDEN, "evidence is for admins");

    let again = verify_with_key(&app, &kiosk, "obama3.jpg").await;
    assert_eq!(again["recognized"], true);
    assert_eq!(again["attendance_logged"], false, "inside the cooldown: {again}");
    assert_eq!(again["reason"], "cooldown");

    let stranger = verify(&app, &app.admin_token, "biden.jpg").await;
    assert_eq!(stranger["recognized"], false, "{stranger}");
    assert_eq!(stranger["employee_id"], Value::Null);
    assert_eq!(stranger["attendance_logged"], false);
}

async fn verify_with_key(app: &TestApp, key: &str, name: &str) -> Value {
    let response = app
        .client
        .post(app.url("/face/verify/?wait=true"))
        .header("X-API-Key", key)
        .json(&json!({"image": photo(name), "camera_id": "CAM001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["result"].clone()
}

/// Two faces side by side, and a flat image with none.
fn two_faces_and_no_face() -> (String, String) {
    let left = image::load_from_memory(&fixture("obama.jpg")).unwrap().to_rgb8();
    let right = image::load_from_memory(&fixture("biden.jpg")).unwrap().to_rgb8();
    let height = left.height().max(right.height());
    let mut both = image::RgbImage::from_pixel(left.width() + right.width(), height, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut both, &left, 0, 0);
    image::imageops::overlay(&mut both, &right, i64::from(left.width()), 0);
    let nobody = image::RgbImage::from_pixel(400, 300, image::Rgb([90, 120, 150]));
    (png_uri(&both), png_uri(&nobody))
}

fn png_uri(image: &image::RgbImage) -> String {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    data_uri(bytes.get_ref(), "image/png")
}

#[tokio::test]
async fn photos_with_two_faces_or_none_are_rejected_with_a_reason() {
    let app = spawn_face_app().await;
    app.create_user("FAC001", "faculty", "Maths").await;
    let (two, none) = two_faces_and_no_face();
    let body = json!({"employee_id": "FAC001", "images": [two, photo("obama.jpg"), none]});
    let result = run_task(&app, "/face/enroll/", &app.admin_token, body).await["result"].clone();
    let images = result["images"].as_array().unwrap();
    assert_eq!(images[0]["accepted"], false);
    assert_eq!(images[0]["reason"], "multiple_faces", "{result}");
    assert_eq!(images[1]["accepted"], true, "{result}");
    assert_eq!(images[2]["accepted"], false);
    assert_eq!(images[2]["reason"], "no_face");
    assert_eq!(result["template_created"], true, "one good photo is enough");

    let (two, none) = two_faces_and_no_face();
    let body = json!({"employee_id": "FAC001", "images": [two, none]});
    let result = run_task(&app, "/face/enroll/", &app.admin_token, body).await["result"].clone();
    assert_eq!(result["success"], false);
    assert_eq!(result["template_created"], false);
}

/// With `keep_enrollment_images`, the photos kept (sealed) are those the current template
/// was made from: refused photos are not kept, a re-enrollment replaces them, and erasing
/// the template erases them.
#[tokio::test]
async fn kept_enrollment_photos_follow_the_template() {
    let app = spawn_face_app_with(|config| config.keep_enrollment_images = true).await;
    let user = app.create_user("OBAMA", "faculty", "Government").await;
    let db = rollcall_server::store::Db::connect(&app.database_url).await.unwrap();
    let kept = || rollcall_server::store::templates::kept_images(&db, user.id);

    let (_, none) = two_faces_and_no_face();
    let body = json!({"employee_id": "OBAMA", "images": [photo("obama.jpg"), none, photo("obama2.jpg")]});
    let result = run_task(&app, "/face/enroll/", &app.admin_token, body).await["result"].clone();
    assert_eq!(result["template_created"], true, "{result}");
    assert_eq!(kept().await.unwrap(), 2, "the photo without a face is not kept");

    enroll(&app, "OBAMA", &["obama3.jpg"]).await;
    assert_eq!(kept().await.unwrap(), 1, "a re-enrollment replaces the kept photos");

    let erase = app.request(Method::DELETE, "/face/templates/OBAMA/", Some(&app.admin_token), None).await;
    assert_eq!(erase.status(), StatusCode::NO_CONTENT);
    assert_eq!(kept().await.unwrap(), 0);
}

#[tokio::test]
async fn erased_and_deactivated_people_are_no_longer_recognised() {
    let app = spawn_face_app().await;
    let obama = app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    assert_eq!(verify(&app, &app.admin_token, "obama3.jpg").await["recognized"], true);

    let erase = app.request(Method::DELETE, "/face/templates/OBAMA/", Some(&app.admin_token), None).await;
    assert_eq!(erase.status(), StatusCode::NO_CONTENT);
    assert_eq!(verify(&app, &app.admin_token, "obama3.jpg").await["recognized"], false);
    let user: Value = app.get(&format!("/users/{}/", obama.id), &app.admin_token).await.json().await.unwrap();
    assert_eq!(user["face_enrolled"], false);
    let again = app.request(Method::DELETE, "/face/templates/OBAMA/", Some(&app.admin_token), None).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert!(!app.audit_entries("template_erase").await.is_empty());

    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    assert_eq!(verify(&app, &app.admin_token, "obama3.jpg").await["recognized"], true);
    let deactivate = app.request(Method::DELETE, &format!("/users/{}/", obama.id), Some(&app.admin_token), None).await;
    assert_eq!(deactivate.status(), StatusCode::NO_CONTENT);
    let after = verify(&app, &app.admin_token, "obama3.jpg").await;
    assert_eq!(after["recognized"], false, "{after}");
    assert_eq!(after["attendance_logged"], false);
}

#[tokio::test]
async fn bulk_verify_logs_each_person_once_and_reports_every_face() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    let (two, _) = two_faces_and_no_face();
    let body = json!({
        "images": [
            {"id": "frame_001", "image": photo("obama3.jpg"), "camera_id": "CAM001"},
            {"id": "frame_002", "image": two, "camera_id": "CAM001"},
            {"id": "frame_003", "image": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQ", "camera_id": "CAM001"}
        ],
        "options": {"max_faces": 10}
    });
    let result = run_task(&app, "/face/bulk-verify/", &app.admin_token, body).await["result"].clone();
    let frames = result["frames"].as_array().unwrap();
    assert_eq!(frames[0]["faces"][0]["recognized"], true, "{result}");
    assert_eq!(frames[0]["faces"][0]["attendance_logged"], true);
    let second: Vec<&Value> = frames[1]["faces"].as_array().unwrap().iter().collect();
    assert_eq!(second.len(), 2, "both faces of the composed frame: {result}");
    let obama_again = second.iter().find(|f| f["employee_id"] == "OBAMA").expect("obama found in frame 2");
    assert_eq!(obama_again["attendance_logged"], false, "one log per person per task");
    assert!(second.iter().any(|f| f["recognized"] == false), "biden is nobody here");
    assert!(second.iter().all(|f| f["face_box"]["width"].as_f64().unwrap() > 10.0));
    assert!(frames[2]["error"].as_str().unwrap().contains("invalid image"), "{result}");
    assert_eq!(result["attendance_logged"], 1);

    // A stricter threshold than any real match recognises nobody.
    let strict =
        json!({"images": [{"id": "f", "image": photo("obama3.jpg")}], "options": {"similarity_threshold": 0.99}});
    let result = run_task(&app, "/face/bulk-verify/", &app.admin_token, strict).await["result"].clone();
    assert_eq!(result["frames"][0]["faces"][0]["recognized"], false, "{result}");
}

#[tokio::test]
async fn task_status_is_private_to_its_owner_and_admins() {
    let app = spawn_face_app().await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let other = app.create_user("STU2", "student", "Maths").await;
    let submitted = app.post("/face/verify/", Some(&student.token), json!({"image": photo("biden.jpg")})).await;
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
    let submitted: Value = submitted.json().await.unwrap();
    let task_id = submitted["task_id"].as_str().unwrap();
    assert!(task_id.starts_with("verify_"));
    assert_eq!(submitted["status"], "queued");
    assert!(submitted["estimated_time"].as_f64().unwrap() > 0.0);

    let path = format!("/face/verify/status/{task_id}/");
    let mut finished = Value::Null;
    for _ in 0..200 {
        let body: Value = app.get(&path, &student.token).await.json().await.unwrap();
        if body["status"] == "completed" {
            finished = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(finished["result"]["recognized"], false, "{finished}");
    assert!(finished["processing_time"].as_f64().unwrap() > 0.0);
    assert_eq!(app.get(&path, &app.admin_token).await.status(), StatusCode::OK);
    assert_eq!(app.get(&path, &other.token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/face/enroll/status/{task_id}/"), &app.admin_token).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/face/verify/status/verify_nope/", &app.admin_token).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_face_requests_get_clear_4xx() {
    let app = spawn_face_app().await;
    app.create_user("FAC1", "faculty", "Maths").await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let cases = [
        ("/face/enroll/", json!({"employee_id": "FAC1", "images": []}), StatusCode::BAD_REQUEST),
        (
            "/face/enroll/",
            json!({"employee_id": "FAC1", "images": vec![photo("obama.jpg"); 11]}),
            StatusCode::BAD_REQUEST,
        ),
        ("/face/enroll/", json!({"employee_id": "FAC1", "images": ["not base64 at all!"]}), StatusCode::BAD_REQUEST),
        ("/face/enroll/", json!({"employee_id": "NOBODY", "images": [photo("obama.jpg")]}), StatusCode::NOT_FOUND),
        ("/face/verify/", json!({"image": ""}), StatusCode::BAD_REQUEST),
        ("/face/verify/", json!({"image": 42}), StatusCode::BAD_REQUEST),
        ("/face/bulk-verify/", json!({"images": []}), StatusCode::BAD_REQUEST),
        (
            "/face/bulk-verify/",
            json!({"images": [{"id": "a", "image": photo("obama.jpg")}], "options": {"max_faces": 0}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/face/bulk-verify/",
            json!({"images": [{"id": "a", "image": photo("obama.jpg")}], "options": {"similarity_threshold": 3}}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, expected) in cases {
        let response = app.post(path, Some(&app.admin_token), body.clone()).await;
        assert_eq!(response.status(), expected, "{path} {}", &body.to_string()[..body.to_string().len().min(120)]);
        error_code(response).await;
    }
    let forbidden = app
        .post("/face/enroll/", Some(&student.token), json!({"employee_id": "FAC1", "images": [photo("obama.jpg")]}))
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let anonymous = app.post("/face/verify/", None, json!({"image": photo("obama.jpg")})).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A truncated JPEG passes the cheap checks, then fails in the task with the reason.
    let truncated = data_uri(&fixture("obama.jpg")[..2000], "image/jpeg");
    let response = app.post("/face/verify/?wait=true", Some(&app.admin_token), json!({"image": truncated})).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body["error"].as_str().unwrap().contains("invalid image"), "{body}");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = spawn_face_app_with(|config| config.task_max_queue_depth = 0).await;
    let response = app.post("/face/verify/", Some(&app.admin_token), json!({"image": photo("obama.jpg")})).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(error_code(response).await, "service_unavailable");
}

#[tokio::test]
async fn templates_are_encrypted_at_rest() {
    let app = spawn_face_app().await;
    let user = app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg"]).await;
    let db = rollcall_server::store::Db::connect(&app.database_url).await.unwrap();
    let stored = rollcall_server::store::templates::find(&db, user.id).await.unwrap().expect("template stored");
    assert!(
        rollcall_face::Template::from_bytes(&stored.template).is_err(),
        "the stored bytes are not a readable template"
    );
    let key = std::fs::read_to_string(app.data_dir.path().join("data_key")).unwrap();
    let sealer = rollcall_server::crypto::Sealer::from_key_ring(&key).unwrap();
    let binding = rollcall_server::store::sealed::template_binding(user.id);
    let opened = rollcall_face::Template::from_bytes(&sealer.open(&stored.template, &binding).unwrap()).unwrap();
    assert_eq!(opened.embeddings().len(), 1);
    let tasks = app.audit_entries("enrollment").await;
    assert!(!json!(tasks).to_string().contains("base64"), "photos never reach the audit log");
}

/// A calibration curve measured on the deployer's photos (`calibration_curve`) sets the
/// operating point: here one where strangers score higher, so the threshold rises.
#[tokio::test]
async fn a_configured_calibration_curve_sets_the_threshold() {
    use rollcall_face::{CalibrationCurve, OpenSetPolicy};

    let mut looser = CalibrationCurve::shipped().clone();
    looser.impostor_far.iter_mut().for_each(|f| *f = (*f * 20.0).min(1.0));
    looser.tail[0] += 20f64.ln();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curve.json");
    std::fs::write(&path, serde_json::to_string(&looser).unwrap()).unwrap();
    let app = spawn_face_app_with(|config| config.calibration_curve = Some(path.clone())).await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;

    let result = verify(&app, &app.admin_token, "obama3.jpg").await;
    let threshold = result["similarity_threshold"].as_f64().unwrap();
    let curve: &'static CalibrationCurve = Box::leak(Box::new(looser));
    let own = OpenSetPolicy { curve, ..OpenSetPolicy::default() }.rule_for_gallery(1).threshold.get();
    let shipped = OpenSetPolicy::default().rule_for_gallery(1).threshold.get();
    assert!(own > shipped + 0.01, "the measured curve is stricter: {own} vs {shipped}");
    assert!((threshold - f64::from(own)).abs() < 1e-3, "{result}");
    assert_eq!(result["recognized"], true, "{result}");
}

/// Verify and bulk-verify decide exactly as the engine's identify path (what
/// `rollcall eval --identify` runs) with the same gallery-aware rule.
#[tokio::test]
async fn http_decisions_match_the_engines_identify_path() {
    use rollcall_face::{ExactIndex, FaceIndex, Fusion, OpenSetPolicy};

    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;

    let engine = face_engine();
    let decode = |name: &str| engine.decode(&fixture(name)).unwrap();
    let enrollment = engine.enroll(&[decode("obama.jpg"), decode("obama2.jpg")]).unwrap();
    // The server's fusion (see docs/ACCURACY.md).
    let mut index = ExactIndex::new(Fusion::Mean);
    index.upsert("OBAMA", enrollment.template.as_ref().unwrap());
    let rule = OpenSetPolicy::default().rule_for_gallery(index.len());

    for name in ["obama3.jpg", "biden.jpg"] {
        let expected = engine.identify_with(&decode(name), &index, &rule, rollcall_face::SpoofGate::Refuse).unwrap();
        let rollcall_face::Identification::Searched { decision, .. } = &expected else {
            panic!("{name}: no usable face: {expected:?}");
        };
        let (similarity, confidence) = match decision {
            rollcall_face::Decision::Recognised { similarity, confidence, .. } => (*similarity, *confidence),
            rollcall_face::Decision::NotRecognised { similarity, confidence, .. } => (similarity.unwrap(), *confidence),
        };
        let recognised = expected.identity() == Some("OBAMA");
        assert_eq!(recognised, name == "obama3.jpg", "{name}: {expected:?}");

        let single = verify(&app, &app.admin_token, name).await;
        let body = json!({"images": [{"id": "f", "image": photo(name)}]});
        let bulk = run_task(&app, "/face/bulk-verify/", &app.admin_token, body).await["result"].clone();
        for threshold in [&bulk["similarity_threshold"], &single["similarity_threshold"]] {
            let threshold = threshold.as_f64().unwrap();
            assert!((threshold - f64::from(rule.threshold.get())).abs() < 1e-3, "{bulk} {single}");
        }
        for got in [&single, &bulk["frames"][0]["faces"][0]] {
            assert_eq!(got["recognized"], recognised, "{name}: {got}");
            assert_eq!(got["employee_id"], if recognised { json!("OBAMA") } else { Value::Null }, "{got}");
            let s = got["similarity_score"].as_f64().unwrap();
            assert!((s - f64::from(similarity)).abs() < 1e-3, "{name}: {s} vs {similarity}");
            let c = got["confidence"].as_f64().unwrap();
            assert!((c - f64::from(confidence)).abs() < 1e-3, "{name}: {c} vs {confidence}");
        }
    }
}

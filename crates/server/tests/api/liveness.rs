//! Active liveness over HTTP: a challenge issued, answered once with frames, and judged —
//! real photos of one person at different poses pass; flat pictures (a print tilted, a
//! screen at an angle), steps out of order, another person mid-sequence, and expired,
//! reused or foreign challenges are refused and log nothing.

use image::RgbImage;
use reqwest::StatusCode;
use rollcall_face::challenge::ChallengeStep;
use rollcall_face::liveness_eval::{Presentation, planar_attack};
use serde_json::{Value, json};

use crate::face::enroll;
use crate::helpers::*;

/// Head turns only: the fixture photos turn left and right, none looks up or down.
/// Obama enrolled from two photos.
async fn spawn_liveness_app(customise: impl FnOnce(&mut rollcall_server::config::Config)) -> TestApp {
    let app = spawn_face_app_with(|config| {
        config.liveness_challenge_directions = vec![ChallengeStep::TurnLeft, ChallengeStep::TurnRight];
        customise(config);
    })
    .await;
    app.create_user("OBAMA", "faculty", "Government").await;
    let enrolled = enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    assert_eq!(enrolled["template_created"], true, "{enrolled}");
    app
}

async fn challenge(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let response = app.post("/face/liveness/challenges/", Some(token), json!({})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], app.config.liveness_challenge_ttl_secs, "{body}");
    assert_eq!((body["min_frames"].as_u64(), body["max_frames"].as_u64()), (Some(4), Some(12)));
    let steps: Vec<String> = body["steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    assert_eq!(steps.len(), 2, "{body}");
    assert_eq!(body["instructions"].as_array().unwrap().len(), 2);
    (body["challenge_id"].as_str().unwrap().to_owned(), steps)
}

fn jpeg(image: &RgbImage) -> String {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(image).unwrap();
    data_uri(&bytes, "image/jpeg")
}

fn decoded(name: &str) -> RgbImage {
    image::load_from_memory(&fixture(name)).unwrap().to_rgb8()
}

/// Obama looking at the camera, then turning as `steps` ask: obama2.jpg is turned to his
/// right (about 25°); the same photo mirrored is the same head turned to his left.
fn real_frames(steps: &[String]) -> Vec<String> {
    let right = decoded("obama2.jpg");
    let left = image::imageops::flip_horizontal(&right);
    let mut frames = vec![photo("obama.jpg"), photo("obama.jpg")];
    for step in steps {
        frames.push(jpeg(if step == "turn_left" { &left } else { &right }));
    }
    frames
}

async fn answer(app: &TestApp, token: &str, challenge_id: &str, frames: Vec<String>) -> Value {
    let body = json!({"image": photo("obama.jpg"), "liveness": {"challenge_id": challenge_id, "frames": frames}});
    run_task(app, "/face/verify/", token, body).await["result"].clone()
}

fn assert_refused(result: &Value, failure: &str) {
    assert_eq!(result["liveness"]["failure"], failure, "{result}");
    assert_eq!(result["liveness"]["passed"], false, "{result}");
    assert_eq!(result["is_live"], false, "{result}");
    assert_eq!(result["reason"], "liveness_failed", "{result}");
    assert_eq!(result["attendance_logged"], false, "{result}");
    assert!(result["anti_spoof_score"].as_f64().is_some(), "the passive score is kept: {result}");
}

#[tokio::test]
async fn real_head_turns_pass_and_log_attendance_once() {
    let app = spawn_liveness_app(|_| {}).await;
    let (id, steps) = challenge(&app, &app.admin_token).await;
    let result = answer(&app, &app.admin_token, &id, real_frames(&steps)).await;
    assert_eq!(result["liveness"]["passed"], true, "{result}");
    assert_eq!(result["is_live"], true);
    assert_eq!(result["employee_id"], "OBAMA", "{result}");
    assert_eq!(result["attendance_logged"], true, "{result}");
    let liveness = &result["liveness"];
    let residual = liveness["planar_residual"].as_f64().unwrap();
    assert!(residual >= f64::from(app.config.liveness_min_planar_residual), "{liveness}");
    assert_eq!(liveness["steps_followed"], 2);

    // The same answer again: the challenge is spent.
    let again = answer(&app, &app.admin_token, &id, real_frames(&steps)).await;
    assert_refused(&again, "challenge_used");
    let logs: Value = app.get("/attendance/logs/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(logs["count"], 1, "{logs}");
}

/// A print tilted and turned, or a screen at an angle, with camera noise: refused as flat
/// (`planar_motion`, whatever the landmarks make of the warped face) and nothing logged.
#[tokio::test]
async fn flat_pictures_are_refused_as_planar_motion() {
    let app = spawn_liveness_app(|_| {}).await;
    for (presentation, seed) in [(Presentation::Print, 1), (Presentation::Screen, 2), (Presentation::Print, 3)] {
        let (id, _) = challenge(&app, &app.admin_token).await;
        let frames: Vec<String> =
            planar_attack(&decoded("obama.jpg"), presentation, 6, seed).iter().map(jpeg).collect();
        let result = answer(&app, &app.admin_token, &id, frames).await;
        assert_refused(&result, "planar_motion");
        let residual = result["liveness"]["planar_residual"].as_f64().unwrap();
        assert!(residual < f64::from(app.config.liveness_min_planar_residual), "{presentation:?}: {result}");
    }
    let logs: Value = app.get("/attendance/logs/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(logs["count"], 0);
}

#[tokio::test]
async fn steps_out_of_order_and_another_face_are_refused() {
    let app = spawn_liveness_app(|_| {}).await;

    let (id, mut steps) = challenge(&app, &app.admin_token).await;
    steps.reverse();
    let result = answer(&app, &app.admin_token, &id, real_frames(&steps)).await;
    assert_refused(&result, "motion_not_followed");
    assert_eq!(result["liveness"]["steps_followed"], 1, "{result}");

    let (id, steps) = challenge(&app, &app.admin_token).await;
    let mut frames = real_frames(&steps);
    frames[2] = photo("biden.jpg");
    assert_refused(&answer(&app, &app.admin_token, &id, frames).await, "identity_changed");

    let (id, _) = challenge(&app, &app.admin_token).await;
    let mut frames = vec![photo("obama.jpg"); 4];
    frames[3] = jpeg(&RgbImage::from_pixel(320, 240, image::Rgb([90, 90, 90])));
    let result = answer(&app, &app.admin_token, &id, frames).await;
    assert_refused(&result, "face_missing");
    assert_eq!(result["liveness"]["frame"], 3);
}

#[tokio::test]
async fn expired_foreign_and_malformed_answers_are_refused() {
    let app = spawn_liveness_app(|config| config.liveness_challenge_ttl_secs = 1).await;
    let (id, steps) = challenge(&app, &app.admin_token).await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_refused(&answer(&app, &app.admin_token, &id, real_frames(&steps)).await, "challenge_expired");

    // Another caller cannot answer the admin's challenge.
    let (id, steps) = challenge(&app, &app.admin_token).await;
    let kiosk = app.create_api_key("kiosk", "student").await;
    let body = json!({"image": photo("obama.jpg"), "liveness": {"challenge_id": id, "frames": real_frames(&steps)}});
    let response = app
        .client
        .post(app.url("/face/verify/?wait=true"))
        .header("X-API-Key", &kiosk)
        .json(&body)
        .send()
        .await
        .unwrap();
    let task: Value = response.json().await.unwrap();
    assert_refused(&task["result"], "challenge_unknown");

    for frames in [vec![photo("obama.jpg"); 3], vec![photo("obama.jpg"); 13]] {
        let body = json!({"image": photo("obama.jpg"), "liveness": {"challenge_id": id, "frames": frames}});
        let response = app.post("/face/verify/", Some(&app.admin_token), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(response).await, "validation_error");
    }
}

#[tokio::test]
async fn a_key_in_active_mode_must_answer_a_challenge() {
    let app = spawn_liveness_app(|_| {}).await;
    let created = app
        .post(
            "/auth/api-keys/",
            Some(&app.admin_token),
            json!({"name": "door kiosk", "role": "student", "liveness_mode": "active"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["liveness_mode"], "active");
    let key = created["key"].as_str().unwrap();
    let send =
        |path: &'static str, body: Value| app.client.post(app.url(path)).header("X-API-Key", key).json(&body).send();

    let plain = send("/face/verify/", json!({"image": photo("obama.jpg")})).await.unwrap();
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(error_message(plain).await.contains("invalid value for liveness"));
    let bulk =
        send("/face/bulk-verify/", json!({"images": [{"id": "f1", "image": photo("obama.jpg")}]})).await.unwrap();
    assert_eq!(bulk.status(), StatusCode::FORBIDDEN, "bulk verification cannot answer a challenge");

    let issued: Value = send("/face/liveness/challenges/", json!({})).await.unwrap().json().await.unwrap();
    let steps: Vec<String> =
        issued["steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    let body = json!({"image": photo("obama.jpg"),
        "liveness": {"challenge_id": issued["challenge_id"], "frames": real_frames(&steps)}});
    let task: Value = send("/face/verify/?wait=true", body).await.unwrap().json().await.unwrap();
    assert_eq!(task["result"]["attendance_logged"], true, "{task}");
}

//! Back-pressure on the face endpoints: the queue's estimated wait bounds what is
//! accepted, a kiosk's `?wait=true` ends at its bound, and photo uploads past the budget
//! of bodies in flight wait, then get 503.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

fn verification() -> Value {
    json!({"image": photo("obama3.jpg"), "camera_id": "CAM001"})
}

/// A server with one worker, which `occupy_the_worker` keeps busy for seconds: the tasks
/// submitted meanwhile stay queued, so the queue holds exactly what the test submitted.
async fn spawn_one_worker_app(customise: impl FnOnce(&mut rollcall_server::Config)) -> TestApp {
    spawn_face_app_with(|config| {
        config.task_workers = 1;
        config.max_body_bytes = 32 * 1024 * 1024;
        customise(config);
    })
    .await
}

/// Submits a bulk verification of 50 frames and waits until the worker runs it.
async fn occupy_the_worker(app: &TestApp) {
    let frames: Vec<Value> = (0..50).map(|n| json!({"id": format!("f{n}"), "image": photo("obama.jpg")})).collect();
    let response = app.post("/face/bulk-verify/", Some(&app.admin_token), json!({"images": frames})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let task_id = response.json::<Value>().await.unwrap()["task_id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        let status: Value =
            app.get(&format!("/face/bulk-verify/status/{task_id}/"), &app.admin_token).await.json().await.unwrap();
        if status["status"] == "running" {
            return;
        }
        assert_eq!(status["status"], "queued", "the long task ended before the test could use it: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the worker did not take the long task");
}

#[tokio::test]
async fn past_the_queue_wait_limit_new_tasks_get_503_with_retry_after() {
    let app = spawn_one_worker_app(|config| config.max_queue_wait_secs = 2).await;
    occupy_the_worker(&app).await;
    // No verification has run yet, so each counts as 1 s: 2 queued are 2 s of wait.
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let response = app.post("/face/verify/", Some(&app.admin_token), verification()).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted.push(response.json::<Value>().await.unwrap());
    }
    let estimates: Vec<f64> = accepted.iter().map(|body| body["estimated_time"].as_f64().unwrap()).collect();
    assert_eq!(estimates, [1.0, 2.0, 3.0], "finished after its place in line");

    let refused = app.post("/face/verify/", Some(&app.admin_token), verification()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1", "3 s queued against a 2 s limit");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("the limit is 2 s"), "{body}");
    let bulk = json!({"images": [{"id": "f1", "image": photo("obama3.jpg")}]});
    let refused = app.post("/face/bulk-verify/", Some(&app.admin_token), bulk).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "every kind of task joins the same queue");
    let task_id = accepted[0]["task_id"].as_str().unwrap();
    let status = app.get(&format!("/face/verify/status/{task_id}/"), &app.admin_token).await;
    assert_eq!(status.status(), StatusCode::OK, "reading a task's status is never refused for load");
}

#[tokio::test]
async fn a_kiosk_waits_no_longer_than_task_wait_timeout_secs() {
    let app = spawn_one_worker_app(|config| config.task_wait_timeout_secs = 1).await;
    occupy_the_worker(&app).await;
    let started = Instant::now();
    let response = app.post("/face/verify/?wait=true", Some(&app.admin_token), verification()).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "not finished in time: the task id to poll");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued", "{body}");
    assert!(body["task_id"].as_str().unwrap().starts_with("verify_"), "{body}");
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_millis(2500), "answered after {waited:?}");
}

/// A client that has sent its headers and half its body, and sends the rest when told:
/// a slow upload, holding its share of the budget of bodies in flight meanwhile.
struct SlowUpload {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowUpload {
    async fn start(app: &TestApp, path: &str, body: &Value) -> SlowUpload {
        let body = body.to_string().into_bytes();
        let address = app.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST /api/v1{path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            app.admin_token,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(first).await.unwrap();
        SlowUpload { stream, rest: rest.to_vec() }
    }

    /// Sends the rest of the body and returns the response's status line.
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut response = Vec::new();
        self.stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn uploads_past_the_bodies_in_flight_budget_wait_then_get_503() {
    // Room for one 800 kB photo body at a time.
    let app = spawn_face_app_with(|config| {
        config.max_body_bytes = 1024 * 1024;
        config.max_inflight_body_bytes = 1024 * 1024;
    })
    .await;
    let slow = SlowUpload::start(&app, "/face/verify/", &verification()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let refused = app.post("/face/verify/", Some(&app.admin_token), verification()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= Duration::from_secs(2), "waited for room first");
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(error_code(refused).await, "service_unavailable");
    // Small bodies on other routes are not held up.
    assert_eq!(app.get("/users/", &app.admin_token).await.status(), StatusCode::OK);

    assert_eq!(slow.finish().await, "HTTP/1.1 202 Accepted", "the slow upload completes");
    let accepted = app.post("/face/verify/", Some(&app.admin_token), verification()).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED, "room again once the first was queued");
    let oversized = json!({"image": format!("{}{}", photo("obama3.jpg"), "A".repeat(300 * 1024))});
    let refused = app.post("/face/verify/", Some(&app.admin_token), oversized).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE, "refused from its Content-Length alone");
    assert_eq!(error_code(refused).await, "payload_too_large");
}

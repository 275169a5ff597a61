//! `/events/`: the live Server-Sent Events stream.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Reads the stream until an SSE message of `kind` arrives; returns its `id` and data.
pub async fn next_message(response: &mut reqwest::Response, kind: &str) -> (String, Value) {
    let mut buffer = String::new();
    let read = async {
        loop {
            let chunk = response.chunk().await.expect("stream readable").expect("stream still open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    message.lines().find_map(|line| line.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned()))
                };
                if field("event").as_deref() == Some(kind) {
                    return (field("id").unwrap_or_default(), serde_json::from_str(&field("data").unwrap()).unwrap());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.unwrap_or_else(|_| panic!("no {kind} event"))
}

pub async fn report_arrival(app: &TestApp, employee_id: &str) {
    let body = json!({"event": "attendance_logged", "data": {"employee_id": employee_id, "camera_id": "CAM9"}});
    let response = app.post("/webhooks/attendance/", Some(&app.admin_token), body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn admins_see_attendance_live() {
    let app = spawn_app().await;
    app.create_user("FAC030", "faculty", "Physics").await;
    let mut stream = app.client.get(app.url("/events/")).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));

    report_arrival(&app, "FAC030").await;
    let (id, data) = next_message(&mut stream, "attendance_logged").await;
    assert_eq!(data["event"], "attendance_logged");
    assert_eq!(data["data"]["employee_id"], "FAC030");
    assert_eq!(data["data"]["camera_id"], "CAM9");
    assert!(data["timestamp"].is_string());
    assert_eq!(id, format!("attendance:{}", data["data"]["attendance_id"]));
}

#[tokio::test]
async fn faculty_may_connect_with_an_access_token_in_the_query() {
    let app = spawn_app().await;
    let faculty = app.create_user("FAC031", "faculty", "Physics").await;
    let url = format!("{}?access_token={}", app.url("/events/"), faculty.token);
    let mut stream = app.client.get(url).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    report_arrival(&app, "FAC031").await;
    let (_, data) = next_message(&mut stream, "attendance_logged").await;
    assert_eq!(data["data"]["employee_id"], "FAC031");
}

#[tokio::test]
async fn students_and_strangers_are_refused() {
    let app = spawn_app().await;
    let student = app.create_user("STU030", "student", "Physics").await;
    let as_student = app.get("/events/", &student.token).await;
    assert_eq!(as_student.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(as_student).await, "forbidden");
    let student_query = app.client.get(format!("{}?access_token={}", app.url("/events/"), student.token)).send().await;
    assert_eq!(student_query.unwrap().status(), StatusCode::FORBIDDEN);
    let anonymous = app.client.get(app.url("/events/")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(anonymous).await, "unauthorized");
    let forged = app.client.get(format!("{}?access_token=not.a.jwt", app.url("/events/"))).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let student_key = app.create_api_key("kiosk", "student").await;
    let key = app.client.get(app.url("/events/")).header("X-API-Key", student_key).send().await.unwrap();
    assert_eq!(key.status(), StatusCode::FORBIDDEN);
}

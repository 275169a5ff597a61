//! `GET /attendance/logs/`: the logs that face verifications and integrations wrote, as
//! each kind of caller may see them, filtered and paged exactly.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::face::enroll;
use crate::helpers::*;
use crate::webhooks::{Receiver, allow_private_networks, create_webhook};

/// Logs an arrival through the incoming attendance webhook (source `webhook`).
pub async fn report(app: &TestApp, employee_id: &str, timestamp: &str, camera_id: Option<&str>) -> i64 {
    let data = match camera_id {
        Some(camera) => {
            json!({"employee_id": employee_id, "camera_id": camera, "location": "Building A", "confidence": 0.9})
        }
        None => json!({"employee_id": employee_id}),
    };
    let body = json!({"event": "attendance_logged", "timestamp": timestamp, "data": data});
    let response = app.post("/webhooks/attendance/", Some(&app.admin_token), body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let logged: Value = response.json().await.unwrap();
    assert_eq!(logged["attendance_logged"], true, "{logged}");
    logged["attendance_id"].as_i64().unwrap()
}

pub async fn logs(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(&format!("/attendance/logs/{query}"), token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

pub fn ids(page: &Value) -> Vec<i64> {
    page["results"].as_array().unwrap().iter().map(|log| log["id"].as_i64().unwrap()).collect()
}

/// Two departments, three people, six logs over three days.
struct Week {
    faculty: TestUser,
    student: TestUser,
    /// Ids in the listing's order: newest first.
    newest_first: Vec<i64>,
    /// (id, employee, day, camera) of each log.
    logs: Vec<(i64, &'static str, &'static str, Option<&'static str>)>,
}

async fn a_week_of_logs(app: &TestApp) -> Week {
    let faculty = app.create_user("FAC1", "faculty", "Maths").await;
    let student = app.create_user("STU1", "student", "Maths").await;
    app.create_user("PHY1", "faculty", "Physics").await;
    let plan: [(&str, &str, Option<&str>); 6] = [
        ("STU1", "2024-03-11T08:00:00Z", Some("CAM1")),
        ("PHY1", "2024-03-11T23:59:59Z", Some("CAM2")),
        ("FAC1", "2024-03-12T00:00:00Z", None),
        // Same instant for two people: the later log is listed first.
        ("STU1", "2024-03-12T09:30:00Z", Some("CAM1")),
        ("PHY1", "2024-03-12T09:30:00Z", Some("CAM1")),
        ("FAC1", "2024-03-13T07:15:00Z", Some("CAM2")),
    ];
    let mut logs = Vec::new();
    for (employee, timestamp, camera) in plan {
        let id = report(app, employee, timestamp, camera).await;
        logs.push((id, employee, &timestamp[..10], camera));
    }
    let newest_first = vec![logs[5].0, logs[4].0, logs[3].0, logs[2].0, logs[1].0, logs[0].0];
    Week { faculty, student, newest_first, logs }
}

impl Week {
    fn ids_where(&self, keep: impl Fn(&str, &str, Option<&str>) -> bool) -> Vec<i64> {
        let mut matching: Vec<i64> = self.newest_first.clone();
        matching.retain(|id| {
            let (_, employee, day, camera) = self.logs.iter().find(|log| log.0 == *id).unwrap();
            keep(employee, day, *camera)
        });
        matching
    }
}

#[tokio::test]
async fn reported_logs_are_listed_newest_first_with_the_spec_fields() {
    let app = spawn_app().await;
    let week = a_week_of_logs(&app).await;
    let page = logs(&app, &app.admin_token, "").await;
    assert_eq!(page["count"], 6);
    assert_eq!(ids(&page), week.newest_first);
    assert_eq!(page["next"], Value::Null);

    let latest = &page["results"][0];
    assert_eq!(latest["employee"]["employee_id"], "FAC1");
    assert_eq!(latest["employee"]["id"], week.faculty.id);
    assert_eq!(latest["employee"]["name"], "Test FAC1");
    assert_eq!(latest["employee"]["department"], "Maths");
    assert_eq!(latest["timestamp"], "2024-03-13T07:15:00Z");
    assert_eq!(latest["camera"], json!({"id": "CAM2", "location": "Building A"}));
    assert_eq!(latest["confidence"], 0.9);
    assert_eq!(latest["verification_time"], Value::Null);
    assert_eq!(latest["source"], "webhook");
    assert!(latest.get("similarity_score").is_none() && latest.get("anti_spoof_score").is_none(), "{latest}");
    let without_camera = &page["results"][3];
    assert_eq!(without_camera["timestamp"], "2024-03-12T00:00:00Z");
    assert_eq!(without_camera["camera"], Value::Null);
    assert_eq!(without_camera["confidence"], Value::Null);
}

#[tokio::test]
async fn filters_and_pages_return_exactly_the_matching_logs() {
    let app = spawn_app().await;
    let week = a_week_of_logs(&app).await;
    let token = &app.admin_token;
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("?employee_id=STU1", week.ids_where(|employee, _, _| employee == "STU1")),
        // Inclusive days: 23:59:59 on date_to is in, 00:00:00 the next day is out.
        ("?date_to=2024-03-11", week.ids_where(|_, day, _| day == "2024-03-11")),
        ("?date_from=2024-03-12&date_to=2024-03-12", week.ids_where(|_, day, _| day == "2024-03-12")),
        ("?date_from=2024-03-13", week.ids_where(|_, day, _| day == "2024-03-13")),
        ("?camera_id=CAM1", week.ids_where(|_, _, camera| camera == Some("CAM1"))),
        ("?department=Physics", week.ids_where(|employee, _, _| employee == "PHY1")),
        (
            "?department=Maths&camera_id=CAM1&date_from=2024-03-12",
            week.ids_where(|employee, day, camera| employee != "PHY1" && day >= "2024-03-12" && camera == Some("CAM1")),
        ),
        ("?source=webhook", week.newest_first.clone()),
        ("?source=face", vec![]),
        ("?source=manual", vec![]),
        ("?employee_id=NOBODY", vec![]),
    ];
    for (query, expected) in cases {
        let page = logs(&app, token, query).await;
        assert_eq!(ids(&page), expected, "{query}");
        assert_eq!(page["count"], expected.len(), "{query}");
    }

    let second = logs(&app, token, "?page_size=4&page=2").await;
    assert_eq!(second["count"], 6);
    assert_eq!(ids(&second), week.newest_first[4..]);
    assert_eq!(second["next"], Value::Null);
    assert!(second["previous"].as_str().unwrap().contains("page=1"), "{second}");
    let first = logs(&app, token, "?page_size=4").await;
    assert_eq!(ids(&first), week.newest_first[..4]);
    assert!(first["next"].as_str().unwrap().contains("page=2"), "{first}");
    let filtered = logs(&app, token, "?camera_id=CAM1&page_size=2&page=2").await;
    assert_eq!(ids(&filtered), week.ids_where(|_, _, camera| camera == Some("CAM1"))[2..]);
    let beyond = logs(&app, token, "?page=5&page_size=4").await;
    assert_eq!(beyond["count"], 6);
    assert_eq!(ids(&beyond), Vec::<i64>::new());
}

#[tokio::test]
async fn keyset_pages_follow_next_through_every_log_once_ties_included() {
    let app = spawn_app().await;
    let week = a_week_of_logs(&app).await;
    let token = &app.admin_token;
    // From the first page's last log, following `next` links.
    let first = logs(&app, token, "?page_size=2").await;
    let mut seen = ids(&first);
    let mut query = format!("?page_size=2&before={}", seen[1]);
    loop {
        let page = logs(&app, token, &query).await;
        assert_eq!(page["count"], 6, "the count is of every matching log: {page}");
        assert_eq!(page["previous"], Value::Null);
        seen.extend(ids(&page));
        let Some(next) = page["next"].as_str() else { break };
        assert!(next.contains("before=") && !next.contains("page=2"), "{next}");
        query = format!("?{}", next.split_once('?').unwrap().1);
    }
    assert_eq!(seen, week.newest_first, "the two logs of one instant each once, in order");

    // With a filter: the filter holds on every page.
    let cam1 = week.ids_where(|_, _, camera| camera == Some("CAM1"));
    let after_first = logs(&app, token, &format!("?camera_id=CAM1&before={}", cam1[0])).await;
    assert_eq!(ids(&after_first), cam1[1..]);
    assert_eq!(after_first["next"], Value::Null);

    for bad in ["?before=999999", "?before=abc", &format!("?before={}&page=2", cam1[0])] {
        let response = app.get(&format!("/attendance/logs/{bad}"), token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn faculty_see_their_department_and_students_their_own_logs() {
    let app = spawn_app().await;
    let week = a_week_of_logs(&app).await;
    let maths = week.ids_where(|employee, _, _| employee != "PHY1");
    assert_eq!(ids(&logs(&app, &week.faculty.token, "").await), maths);
    assert_eq!(logs(&app, &week.faculty.token, "").await["count"], maths.len());
    assert_eq!(ids(&logs(&app, &week.faculty.token, "?department=Physics").await), Vec::<i64>::new());
    assert_eq!(ids(&logs(&app, &week.faculty.token, "?employee_id=PHY1").await), Vec::<i64>::new());
    assert_eq!(
        ids(&logs(&app, &week.faculty.token, "?employee_id=STU1").await),
        week.ids_where(|employee, _, _| employee == "STU1")
    );

    let own = week.ids_where(|employee, _, _| employee == "STU1");
    assert_eq!(ids(&logs(&app, &week.student.token, "").await), own);
    assert_eq!(ids(&logs(&app, &week.student.token, "?employee_id=FAC1").await), Vec::<i64>::new());
    assert_eq!(ids(&logs(&app, &week.student.token, "?department=Maths&date_from=2024-03-12").await), own[..1]);

    let admin_key = app.create_api_key("reporting", "admin").await;
    let response = app.client.get(app.url("/attendance/logs/")).header("X-API-Key", &admin_key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let everything: Value = response.json().await.unwrap();
    assert_eq!(ids(&everything), week.newest_first);

    let kiosk = app.create_api_key("kiosk", "faculty").await;
    let response = app.client.get(app.url("/attendance/logs/")).header("X-API-Key", &kiosk).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "forbidden");
    let anonymous = app.client.get(app.url("/attendance/logs/")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(anonymous).await, "unauthorized");
}

#[tokio::test]
async fn bad_filters_are_refused_with_400_in_the_error_shape() {
    let app = spawn_app().await;
    for (query, field) in [
        ("?date_from=2024-13-01", None),
        ("?date_to=yesterday", None),
        ("?date_from=2024-03-12&date_to=2024-03-11", Some("date_from")),
        ("?source=carrier-pigeon", Some("source")),
        ("?employee_id=", Some("employee_id")),
        ("?page=0", Some("page")),
        ("?page_size=101", Some("page_size")),
        ("?page_size=many", None),
    ] {
        let response = app.get(&format!("/attendance/logs/{query}"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "validation_error", "{query}: {body}");
        if let Some(field) = field {
            assert!(body["error"]["fields"][field].is_string(), "{query}: {body}");
        }
    }
    let long_camera = format!("?camera_id={}", "C".repeat(201));
    let response = app.get(&format!("/attendance/logs/{long_camera}"), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_face_verification_is_listed_with_its_scores() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    let kiosk = app.create_api_key("Main entrance kiosk", "admin").await;
    let enrolled = enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    assert_eq!(enrolled["success"], true, "{enrolled}");
    report(&app, "OBAMA", "2024-03-11T08:00:00Z", None).await;
    let body = json!({"image": photo("obama3.jpg"), "camera_id": "CAM001", "location": "Main Building Entrance"});
    let response = app
        .client
        .post(app.url("/face/verify/?wait=true"))
        .header("X-API-Key", &kiosk)
        .json(&body)
        .send()
        .await
        .unwrap();
    let verified: Value = response.json().await.unwrap();
    let result = &verified["result"];
    assert_eq!(result["attendance_logged"], true, "{verified}");

    let page = logs(&app, &app.admin_token, "?source=face").await;
    assert_eq!(page["count"], 1, "{page}");
    let log = &page["results"][0];
    assert_eq!(log["source"], "face");
    assert_eq!(log["employee"]["employee_id"], "OBAMA");
    assert_eq!(log["employee"]["department"], "Government");
    assert_eq!(log["camera"], json!({"id": "CAM001", "location": "Main Building Entrance"}));
    let close = |field: &str, expected: &Value| {
        let (got, want) = (log[field].as_f64().unwrap(), expected.as_f64().unwrap());
        assert!((got - want).abs() < 1e-6, "{field}: {got} vs {want}");
    };
    close("similarity_score", &result["similarity_score"]);
    close("anti_spoof_score", &result["anti_spoof_score"]);
    close("confidence", &result["confidence"]);
    assert!(log["verification_time"].as_f64().is_some_and(|seconds| seconds >= 0.0), "{log}");
    assert_eq!(logs(&app, &app.admin_token, "").await["count"], 2);
    assert_eq!(logs(&app, &app.admin_token, "?source=webhook&employee_id=OBAMA").await["count"], 1);
}

async fn mark(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/attendance/mark/", Some(token), body).await
}

#[tokio::test]
async fn a_manual_mark_is_listed_audited_and_delivered_as_the_admins() {
    let app = spawn_app_with(allow_private_networks).await;
    let receiver = Receiver::start(0).await;
    create_webhook(&app, json!({"url": receiver.url, "events": ["attendance_logged"]})).await;
    let admin_id = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await["user"]["id"].clone();
    let admin: Value = app.get(&format!("/users/{admin_id}/"), &app.admin_token).await.json().await.unwrap();
    let admin_employee_id = admin["employee_id"].clone();
    assert!(admin_employee_id.is_string(), "{admin}");
    app.create_user("FAC001", "faculty", "Computer Science").await;

    let body = json!({
        "employee_id": "FAC001", "timestamp": "2024-03-15T08:45:00Z",
        "reason": "Manual entry due to system issue", "marked_by": "someone.else@college.edu",
    });
    let response = mark(&app, &app.admin_token, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let marked: Value = response.json().await.unwrap();
    assert_eq!(marked["source"], "manual");
    assert_eq!(marked["marked_by"], admin_employee_id, "the authenticated admin, whatever the body said");
    assert_eq!(marked["reason"], "Manual entry due to system issue");
    assert_eq!(marked["timestamp"], "2024-03-15T08:45:00Z");
    let id = marked["id"].as_i64().unwrap();

    let page = logs(&app, &app.admin_token, "?source=manual").await;
    assert_eq!(ids(&page), [id]);
    let listed = &page["results"][0];
    assert_eq!(listed["employee"]["employee_id"], "FAC001");
    assert_eq!(listed["employee"]["department"], "Computer Science");
    assert_eq!(listed["timestamp"], "2024-03-15T08:45:00Z");
    assert_eq!(listed["camera"], Value::Null);
    assert_eq!(listed["source"], "manual");

    let audited = app.audit_entries("attendance_mark").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["user_id"], admin_employee_id);
    assert_eq!(audited[0]["success"], true);
    assert_eq!(audited[0]["details"]["attendance_id"], id);
    assert_eq!(audited[0]["details"]["employee_id"], "FAC001");
    assert_eq!(audited[0]["details"]["reason"], "Manual entry due to system issue");

    let delivered = receiver.wait_for(1).await;
    let event: Value = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(event["event"], "attendance_logged");
    assert_eq!(event["data"]["attendance_id"], id);
    assert_eq!(event["data"]["employee_id"], "FAC001");
    assert_eq!(event["data"]["source"], "manual");
}

#[tokio::test]
async fn manual_marks_are_refused_for_strangers_the_deactivated_the_future_and_inside_the_cooldown() {
    let app = spawn_app().await;
    let faculty = app.create_user("FAC1", "faculty", "Maths").await;
    let leaver = app.create_user("LEFT1", "student", "Maths").await;
    let gone =
        app.request(reqwest::Method::DELETE, &format!("/users/{}/", leaver.id), Some(&app.admin_token), None).await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let at = |timestamp: &str| json!({"employee_id": "FAC1", "timestamp": timestamp, "reason": "forgot badge"});
    let first = mark(&app, &app.admin_token, at("2024-03-15T08:45:00Z")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_id = first.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "unknown",
            json!({"employee_id": "NOBODY", "timestamp": "2024-03-15T08:45:00Z", "reason": "r"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "deactivated",
            json!({"employee_id": "LEFT1", "timestamp": "2024-03-15T08:45:00Z", "reason": "r"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        ("future", at(&future), StatusCode::BAD_REQUEST, "validation_error"),
        (
            "no reason",
            json!({"employee_id": "FAC1", "timestamp": "2024-03-14T08:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "blank reason",
            json!({"employee_id": "FAC1", "timestamp": "2024-03-14T08:00:00Z", "reason": "  "}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "long reason",
            json!({"employee_id": "FAC1", "timestamp": "2024-03-14T08:00:00Z", "reason": "r".repeat(501)}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "bad timestamp",
            json!({"employee_id": "FAC1", "timestamp": "yesterday", "reason": "r"}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "unknown field",
            json!({"employee_id": "FAC1", "timestamp": "2024-03-14T08:00:00Z", "reason": "r", "camera": "X"}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
    ];
    for (what, body, status, code) in cases {
        let response = mark(&app, &app.admin_token, body).await;
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(error_code(response).await, code, "{what}");
    }
    // The default cooldown is 300 s, on either side of an existing log.
    for timestamp in ["2024-03-15T08:49:00Z", "2024-03-15T08:41:00Z"] {
        let response = mark(&app, &app.admin_token, at(timestamp)).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{timestamp}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "conflict");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("log {first_id} ")) && message.contains("2024-03-15T08:45:00Z"), "{message}");
    }
    let response = mark(&app, &faculty.token, at("2024-03-16T08:00:00Z")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "forbidden");

    // Outside the cooldown on both sides, and earlier than the existing log: logged.
    let earlier = mark(&app, &app.admin_token, at("2024-03-15T08:39:59Z")).await;
    assert_eq!(earlier.status(), StatusCode::CREATED);
    let earlier_id = earlier.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let stored = logs(&app, &app.admin_token, "").await;
    assert_eq!(ids(&stored), [first_id, earlier_id], "nothing refused was stored");
    assert_eq!(app.audit_entries("attendance_mark").await.len(), 2);
}

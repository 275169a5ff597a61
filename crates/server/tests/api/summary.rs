//! `GET /attendance/summary/` and voiding: counts of a hand-built set of logs in the
//! institution's time zone, across a daylight-saving change, with voided logs counting
//! nowhere.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attendance::{ids, logs, report};
use crate::helpers::*;
use crate::webhooks::{Receiver, allow_private_networks, create_webhook};

async fn summary(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(&format!("/attendance/summary/{query}"), token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

async fn void(app: &TestApp, token: &str, id: i64, body: Value) -> reqwest::Response {
    app.post(&format!("/attendance/logs/{id}/void/"), Some(token), body).await
}

fn berlin(config: &mut rollcall_server::Config) {
    config.timezone = chrono_tz::Europe::Berlin;
    config.attendance_cooldown_secs = 0;
}

/// Logs around Berlin's spring change (2024-03-31, 02:00 CET became 03:00 CEST, at
/// 01:00 UTC), one of them voided.
struct SpringChange {
    physics: TestUser,
    student: TestUser,
}

async fn logs_around_the_spring_change(app: &TestApp) -> SpringChange {
    app.create_user("MATHS1", "faculty", "Maths").await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let physics = app.create_user("PHY1", "faculty", "Physics").await;
    // (employee, UTC instant): local day and hour in the comments.
    let plan = [
        ("MATHS1", "2024-03-30T07:30:00Z"), // 03-30 08:30 CET
        ("MATHS1", "2024-03-30T23:30:00Z"), // 03-31 00:30 CET
        ("STU1", "2024-03-31T01:30:00Z"),   // 03-31 03:30 CEST
        ("MATHS1", "2024-03-31T06:15:00Z"), // 03-31 08:15 CEST
        ("MATHS1", "2024-03-31T22:30:00Z"), // 04-01 00:30 CEST
        ("PHY1", "2024-04-01T07:00:00Z"),   // 04-01 09:00 CEST
    ];
    for (employee, timestamp) in plan {
        report(app, employee, timestamp, None).await;
    }
    let voided = report(app, "PHY1", "2024-03-31T07:00:00Z", Some("CAM1")).await;
    let response = void(app, &app.admin_token, voided, json!({"reason": "a visitor recognised as PHY1"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    SpringChange { physics, student }
}

#[tokio::test]
async fn a_day_is_summarised_in_the_institutions_time_zone_across_a_daylight_saving_change() {
    let app = spawn_app_with(berlin).await;
    logs_around_the_spring_change(&app).await;
    let day = summary(&app, &app.admin_token, "?date_from=2024-03-31&date_to=2024-03-31").await;
    assert_eq!(day["period"], "daily");
    assert_eq!(day["date"], "2024-03-31");
    assert_eq!(day["timezone"], "Europe/Berlin");
    assert_eq!(day["total_attendances"], 3);
    assert_eq!(day["unique_persons"], 2);
    assert_eq!(day["departments"], json!({"Maths": 3}));
    assert_eq!(day["hourly_distribution"], json!({"00:00": 1, "03:00": 1, "08:00": 1}));

    let week = summary(&app, &app.admin_token, "?period=weekly&date_from=2024-03-25").await;
    assert_eq!((week["date_from"].as_str(), week["date_to"].as_str()), (Some("2024-03-25"), Some("2024-03-31")));
    assert_eq!(week["total_attendances"], 4);
    assert_eq!(week["unique_persons"], 2);
    assert_eq!(week["hourly_distribution"], json!({"00:00": 1, "03:00": 1, "08:00": 2}));

    let april = summary(&app, &app.admin_token, "?period=monthly&date_from=2024-04-01").await;
    assert_eq!(april["date_to"], "2024-04-30");
    assert_eq!(april["total_attendances"], 2);
    assert_eq!(april["departments"], json!({"Maths": 1, "Physics": 1}));
    assert_eq!(april["hourly_distribution"], json!({"00:00": 1, "09:00": 1}));
    let maths = summary(&app, &app.admin_token, "?period=yearly&date_from=2024-01-01&department=Maths").await;
    assert_eq!(maths["total_attendances"], 5);
    assert_eq!(maths["unique_persons"], 2);

    // The logs listing's dates are the same local days.
    let listed = logs(&app, &app.admin_token, "?date_from=2024-03-31&date_to=2024-03-31").await;
    assert_eq!(listed["count"], 4, "the voided log is listed: {listed}");
    assert_eq!(logs(&app, &app.admin_token, "?date_from=2024-03-31&date_to=2024-03-31&status=valid").await["count"], 3);
}

#[tokio::test]
async fn the_same_logs_in_utc_fall_on_other_days_and_hours() {
    let app = spawn_app_with(|config| config.attendance_cooldown_secs = 0).await;
    logs_around_the_spring_change(&app).await;
    let day = summary(&app, &app.admin_token, "?date_from=2024-03-31&date_to=2024-03-31").await;
    assert_eq!(day["timezone"], "UTC");
    assert_eq!(day["total_attendances"], 3);
    assert_eq!(day["hourly_distribution"], json!({"01:00": 1, "06:00": 1, "22:00": 1}));
}

#[tokio::test]
async fn faculty_summarise_their_department_and_students_themselves() {
    let app = spawn_app_with(berlin).await;
    let logs = logs_around_the_spring_change(&app).await;
    let year = "?period=yearly&date_from=2024-01-01";
    let physics = summary(&app, &logs.physics.token, year).await;
    assert_eq!(physics["total_attendances"], 1);
    assert_eq!(physics["departments"], json!({"Physics": 1}));
    assert_eq!(summary(&app, &logs.physics.token, &format!("{year}&department=Maths")).await["total_attendances"], 0);
    let own = summary(&app, &logs.student.token, year).await;
    assert_eq!((own["total_attendances"].as_i64(), own["unique_persons"].as_i64()), (Some(1), Some(1)));
    let kiosk = app.create_api_key("kiosk", "faculty").await;
    let response = app.client.get(app.url("/attendance/summary/")).header("X-API-Key", &kiosk).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_summary_queries_are_refused_with_400() {
    let app = spawn_app().await;
    for query in [
        "?period=hourly",
        "?date_from=2024-03-02&date_to=2024-03-01",
        "?date_from=2024-13-01",
        "?date_from=2000-01-01&date_to=2024-01-01",
    ] {
        let response = app.get(&format!("/attendance/summary/{query}"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error_code(response).await, "validation_error", "{query}");
    }
    let today = summary(&app, &app.admin_token, "").await;
    assert_eq!(today["date_from"], today["date_to"]);
    assert_eq!(today["total_attendances"], 0);
    assert_eq!(today["hourly_distribution"], json!({}));
}

#[tokio::test]
async fn a_voided_log_stays_listed_counts_nowhere_and_is_audited_and_delivered() {
    let app = spawn_app_with(allow_private_networks).await;
    let receiver = Receiver::start(0).await;
    create_webhook(&app, json!({"url": receiver.url, "events": ["attendance_voided"]})).await;
    let faculty = app.create_user("FAC1", "faculty", "Maths").await;
    let id = report(&app, "FAC1", "2024-03-11T08:00:00Z", None).await;

    for (body, status) in [
        (json!({"reason": "  "}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"reason": "x".repeat(501)}), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(void(&app, &app.admin_token, id, body.clone()).await.status(), status, "{body}");
    }
    let response = void(&app, &faculty.token, id, json!({"reason": "not me"})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(void(&app, &app.admin_token, id + 100, json!({"reason": "?"})).await.status(), StatusCode::NOT_FOUND);

    let response = void(&app, &app.admin_token, id, json!({"reason": "recognised the wrong person"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let voided: Value = response.json().await.unwrap();
    assert_eq!(voided["status"], "voided");
    assert_eq!(voided["voided"]["reason"], "recognised the wrong person");
    let again = void(&app, &app.admin_token, id, json!({"reason": "twice"})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let listed = logs(&app, &app.admin_token, "").await;
    assert_eq!(ids(&listed), [id]);
    assert_eq!(listed["results"][0]["status"], "voided");
    assert_eq!(logs(&app, &app.admin_token, "?status=valid").await["count"], 0);
    let day = summary(&app, &app.admin_token, "?date_from=2024-03-11").await;
    assert_eq!((day["total_attendances"].as_i64(), day["unique_persons"].as_i64()), (Some(0), Some(0)));
    // The cooldown no longer holds next to a voided log: the person's real arrival counts.
    let real = report(&app, "FAC1", "2024-03-11T08:01:00Z", None).await;
    assert_eq!(summary(&app, &app.admin_token, "?date_from=2024-03-11").await["total_attendances"], 1);
    assert_ne!(real, id);

    let audited = app.audit_entries("attendance_void").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["details"]["attendance_id"], id);
    assert_eq!(audited[0]["details"]["reason"], "recognised the wrong person");
    let delivered = receiver.wait_for(1).await;
    let event: Value = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(event["event"], "attendance_voided");
    assert_eq!(event["data"]["attendance_id"], id);
    assert_eq!(event["data"]["employee_id"], "FAC1");
    assert_eq!(event["data"]["reason"], "recognised the wrong person");
}

//! `/attendance/disputes/`: a person disputes a log ("not me") or reports a missed
//! arrival; an admin accepts (the log is voided, or a mark is made) or rejects, once;
//! every step audited and the resolutions delivered to webhooks.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attendance::{logs, report};
use crate::helpers::*;
use crate::webhooks::{Receiver, create_webhook};

async fn file(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/attendance/disputes/", Some(token), body).await
}

async fn resolve(app: &TestApp, id: i64, action: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/attendance/disputes/{id}/{action}/"), Some(&app.admin_token), body).await
}

fn private_networks_with_cooldown(config: &mut rollcall_server::Config) {
    config.webhook_allow_private_networks = true;
    config.attendance_cooldown_secs = 300;
}

#[tokio::test]
async fn a_not_me_dispute_accepted_voids_the_log_is_audited_and_delivered() {
    let app = spawn_app_with(private_networks_with_cooldown).await;
    let receiver = Receiver::start(0).await;
    let events = json!(["dispute_resolved", "attendance_voided"]);
    create_webhook(&app, json!({"url": receiver.url, "events": events})).await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let other = app.create_user("STU2", "student", "Maths").await;
    let log = report(&app, "STU1", "2024-03-11T08:00:00Z", Some("CAM1")).await;

    // Only the person the log names may dispute it, and only once while it is open.
    let response = file(&app, &other.token, json!({"kind": "not_me", "attendance_id": log, "reason": "x"})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = json!({"kind": "not_me", "attendance_id": log, "reason": "I was at home that day"});
    let response = file(&app, &student.token, body.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let dispute: Value = response.json().await.unwrap();
    assert_eq!((dispute["status"].as_str(), dispute["employee"]["employee_id"].as_str()), (Some("open"), Some("STU1")));
    let id = dispute["id"].as_i64().unwrap();
    assert_eq!(file(&app, &student.token, body).await.status(), StatusCode::CONFLICT);

    // People see their own disputes, admins every one.
    let own = app.get("/attendance/disputes/", &student.token).await.json::<Value>().await.unwrap();
    assert_eq!(own["count"], 1);
    let others = app.get("/attendance/disputes/", &other.token).await.json::<Value>().await.unwrap();
    assert_eq!(others["count"], 0);
    let open = app.get("/attendance/disputes/?status=open", &app.admin_token).await.json::<Value>().await.unwrap();
    assert_eq!(open["results"][0]["id"], id);

    let response = app.post(&format!("/attendance/disputes/{id}/accept/"), Some(&student.token), json!({})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a student resolves nothing");
    let response = resolve(&app, id, "accept", json!({"note": "camera 1 footage shows someone else"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["resolution_note"], "camera 1 footage shows someone else");
    let again = resolve(&app, id, "reject", json!({"note": "changed my mind"})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "a dispute is resolved once");

    let listed = logs(&app, &app.admin_token, "").await;
    assert_eq!(listed["results"][0]["status"], "voided");
    assert!(listed["results"][0]["voided"]["reason"].as_str().unwrap().contains(&format!("dispute {id}")));
    let report = app.get("/attendance/summary/?date_from=2024-03-11", &app.admin_token).await;
    assert_eq!(report.json::<Value>().await.unwrap()["total_attendances"], 0);

    let filed = app.audit_entries("dispute_filed").await;
    assert_eq!((filed.len(), filed[0]["details"]["dispute_id"].as_i64()), (1, Some(id)));
    let accepts = app.audit_entries("dispute_accept").await;
    assert_eq!((accepts.len(), accepts[0]["details"]["attendance_id"].as_i64()), (1, Some(log)));

    let delivered = receiver.wait_for(2).await;
    let bodies: Vec<Value> = delivered.iter().map(|request| serde_json::from_str(&request.body).unwrap()).collect();
    let voided = bodies.iter().find(|body| body["event"] == "attendance_voided").expect("attendance_voided delivered");
    assert_eq!(voided["data"]["attendance_id"], log);
    let resolved = bodies.iter().find(|body| body["event"] == "dispute_resolved").expect("dispute_resolved delivered");
    assert_eq!(resolved["data"]["dispute_id"], id);
    assert_eq!(
        (resolved["data"]["status"].as_str(), resolved["data"]["kind"].as_str()),
        (Some("accepted"), Some("not_me"))
    );
    assert_eq!(resolved["data"]["employee_id"], "STU1");
}

#[tokio::test]
async fn a_missed_arrival_accepted_becomes_a_manual_mark_and_one_rejected_changes_nothing() {
    let app = spawn_app_with(private_networks_with_cooldown).await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let missed = json!({"kind": "missed_arrival", "timestamp": "2024-03-12T08:05:00Z", "reason": "the kiosk was down"});
    let dispute: Value = file(&app, &student.token, missed).await.json().await.unwrap();
    let id = dispute["id"].as_i64().unwrap();
    assert_eq!(dispute["timestamp"], "2024-03-12T08:05:00Z");

    let accepted: Value = resolve(&app, id, "accept", json!({})).await.json().await.unwrap();
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let mark = accepted["resulting_attendance_id"].as_i64().expect("the mark made");
    let listed = logs(&app, &app.admin_token, "?source=manual").await;
    assert_eq!(listed["results"][0]["id"], mark);
    assert_eq!(listed["results"][0]["timestamp"], "2024-03-12T08:05:00Z");
    assert_eq!(listed["results"][0]["employee"]["employee_id"], "STU1");

    // A second report of that arrival lies within the cooldown of the mark: accepting it
    // would log the person twice, so it is refused naming the mark; rejected, nothing changes.
    let again = json!({"kind": "missed_arrival", "timestamp": "2024-03-12T08:06:00Z", "reason": "once more"});
    let second: Value = file(&app, &student.token, again).await.json().await.unwrap();
    let second = second["id"].as_i64().unwrap();
    let refused = resolve(&app, second, "accept", json!({})).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(error_message(refused).await.contains(&format!("log {mark}")));
    assert_eq!(resolve(&app, second, "reject", json!({})).await.status(), StatusCode::BAD_REQUEST, "a note says why");
    let rejected: Value =
        resolve(&app, second, "reject", json!({"note": "logged already"})).await.json().await.unwrap();
    assert_eq!((rejected["status"].as_str(), rejected["resulting_attendance_id"].as_i64()), (Some("rejected"), None));
    assert_eq!(logs(&app, &app.admin_token, "").await["count"], 1);
    assert_eq!(app.audit_entries("dispute_reject").await.len(), 1);
}

#[tokio::test]
async fn bad_disputes_get_400_and_api_keys_file_none() {
    let app = spawn_app().await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let log = report(&app, "STU1", "2024-03-11T08:00:00Z", None).await;
    let cases = [
        json!({"kind": "mistake", "attendance_id": log, "reason": "x"}),
        json!({"kind": "not_me", "reason": "x"}),
        json!({"kind": "not_me", "attendance_id": log, "timestamp": "2024-03-11T08:00:00Z", "reason": "x"}),
        json!({"kind": "not_me", "attendance_id": log, "reason": " "}),
        json!({"kind": "not_me", "attendance_id": log, "reason": "x".repeat(501)}),
        json!({"kind": "missed_arrival", "reason": "x"}),
        json!({"kind": "missed_arrival", "timestamp": "2999-01-01T00:00:00Z", "reason": "x"}),
        json!({"kind": "not_me", "attendance_id": log, "reason": "x", "extra": 1}),
    ];
    for body in cases {
        let response = file(&app, &student.token, body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let key = app.create_api_key("integration", "admin").await;
    let response = app
        .client
        .post(app.url("/attendance/disputes/"))
        .header("X-API-Key", key)
        .json(&json!({"kind": "not_me", "attendance_id": log, "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(resolve(&app, 999, "accept", json!({})).await.status(), StatusCode::NOT_FOUND);
    let voided =
        app.post(&format!("/attendance/logs/{log}/void/"), Some(&app.admin_token), json!({"reason": "test"})).await;
    assert_eq!(voided.status(), StatusCode::OK);
    let response = file(&app, &student.token, json!({"kind": "not_me", "attendance_id": log, "reason": "x"})).await;
    assert_eq!(response.status(), StatusCode::CONFLICT, "a voided log counts nowhere already");
}

//! `POST /system/maintenance/`: each task deletes or rebuilds what it says, counted before
//! and after, as a durable task an admin follows.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attendance::{logs, report};
use crate::face::{enroll, verify};
use crate::helpers::*;

/// Runs `sql` on the test's database, as another process (or time) would change it.
pub async fn execute(app: &TestApp, sql: &str) -> u64 {
    if backend() == "postgres" {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        let done = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        done
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        let done = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        done
    }
}

/// Long ago, in the form both databases compare correctly with what they store.
const LONG_AGO: &str = "2020-01-01T00:00:00+00:00";

/// Starts `task` and waits for it to end; its status body.
pub async fn maintain(app: &TestApp, task: &str, parameters: Value) -> Value {
    let response =
        app.post("/system/maintenance/", Some(&app.admin_token), json!({"task": task, "parameters": parameters})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let started: Value = response.json().await.unwrap();
    let task_id = started["task_id"].as_str().unwrap().to_owned();
    assert!(task_id.starts_with("maintenance_"), "{started}");
    for _ in 0..300 {
        let status: Value =
            app.get(&format!("/system/maintenance/{task_id}/"), &app.admin_token).await.json().await.unwrap();
        if status["status"] == "completed" || status["status"] == "failed" {
            assert_eq!(status["status"], "completed", "{status}");
            return status["result"]["result"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{task} did not end");
}

#[tokio::test]
async fn cleanup_deletes_old_logs_audit_entries_and_tasks_and_nothing_newer() {
    let app = spawn_face_app().await;
    let person = app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    let old = report(&app, "OBAMA", "2020-06-01T08:00:00Z", None).await;
    let disputed = app
        .post(
            "/attendance/disputes/",
            Some(&person.token),
            json!({"kind": "not_me",
        "attendance_id": old, "reason": "I was abroad"}),
        )
        .await;
    assert_eq!(disputed.status(), StatusCode::CREATED);
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    report(&app, "OBAMA", &yesterday, None).await;
    assert_eq!(verify(&app, &app.admin_token, "obama3.jpg").await["attendance_logged"], true);
    let old_audit =
        execute(&app, &format!("UPDATE audit_logs SET timestamp = '{LONG_AGO}' WHERE action = 'user_create'")).await;
    assert!(old_audit >= 1);
    assert_eq!(execute(&app, &format!("UPDATE tasks SET finished_at = '{LONG_AGO}' WHERE kind = 'enroll'")).await, 1);

    let result = maintain(&app, "cleanup_old_logs", json!({"days_to_keep": 30})).await;
    assert_eq!(result["deleted"], json!({"attendance_logs": 1, "audit_logs": old_audit, "tasks": 1}), "{result}");
    let remaining = logs(&app, &app.admin_token, "").await;
    assert_eq!(remaining["count"], 2, "yesterday's report and today's face log stay: {remaining}");
    assert!(!crate::attendance::ids(&remaining).contains(&old));
    let disputes: Value = app.get("/attendance/disputes/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(disputes["count"], 0, "the dispute about the deleted log went with it: {disputes}");
    assert!(app.audit_entries("user_create").await.is_empty());
    let audited = app.audit_entries("maintenance_started").await;
    assert_eq!(audited[0]["details"]["task"], "cleanup_old_logs");

    let again = maintain(&app, "cleanup_old_logs", json!({"days_to_keep": 30})).await;
    assert_eq!(again["deleted"], json!({"attendance_logs": 0, "audit_logs": 0, "tasks": 0}));
}

#[tokio::test]
async fn purges_rebuild_and_vacuum_do_what_they_say() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    let face_log = verify(&app, &app.admin_token, "obama3.jpg").await["attendance_id"].as_i64().unwrap();

    // Evidence past its retention period.
    assert_eq!(maintain(&app, "purge_evidence", json!({})).await["deleted"]["face_crops"], 0);
    execute(&app, &format!("UPDATE arrival_evidence SET created_at = '{LONG_AGO}'")).await;
    let purged = maintain(&app, "purge_evidence", json!({})).await;
    assert_eq!(purged["deleted"]["face_crops"], 1, "{purged}");
    assert_eq!(
        app.get(&format!("/attendance/logs/{face_log}/face/"), &app.admin_token).await.status(),
        StatusCode::NOT_FOUND
    );

    // Expired refresh tokens.
    let expired = execute(&app, &format!("UPDATE refresh_tokens SET expires_at = '{LONG_AGO}'")).await;
    assert!(expired >= 1);
    let tokens = maintain(&app, "purge_expired_tokens", json!({})).await;
    assert_eq!(tokens["deleted"]["refresh_tokens"], expired, "{tokens}");

    // A template removed behind the server's back (as another process would): the index in
    // memory still recognises the person until it is rebuilt.
    execute(&app, "DELETE FROM face_templates").await;
    let stale = verify(&app, &app.admin_token, "obama2.jpg").await;
    assert_eq!(stale["recognized"], true, "{stale}");
    assert_eq!(maintain(&app, "rebuild_face_index", json!({})).await["enrolled"], 0);
    let rebuilt = verify(&app, &app.admin_token, "obama2.jpg").await;
    assert_eq!(rebuilt["recognized"], false, "{rebuilt}");
    assert_eq!(rebuilt["reason"], "nobody_enrolled");

    assert_eq!(maintain(&app, "vacuum_database", json!({})).await["database"], backend());
}

#[tokio::test]
async fn unknown_tasks_and_bad_parameters_are_refused_naming_what_is_valid() {
    let app = spawn_app().await;
    let cases = [
        (json!({"task": "defragment"}), "task"),
        (json!({"task": "cleanup_old_logs"}), "parameters.days_to_keep"),
        (json!({"task": "cleanup_old_logs", "parameters": {"days_to_keep": 0}}), "parameters.days_to_keep"),
        (json!({"task": "cleanup_old_logs", "parameters": {"days_to_keep": "30"}}), "parameters.days_to_keep"),
        (json!({"task": "cleanup_old_logs", "parameters": {"days_to_keep": 30, "tables": "all"}}), "parameters"),
        (json!({"task": "vacuum_database", "parameters": {"full": true}}), "parameters"),
    ];
    for (body, field) in cases {
        let response = app.post("/system/maintenance/", Some(&app.admin_token), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["fields"][field].is_string(), "{body}: {error}");
    }
    let unknown: Value = app
        .post("/system/maintenance/", Some(&app.admin_token), json!({"task": "defragment"}))
        .await
        .json()
        .await
        .unwrap();
    let message = unknown["error"]["fields"]["task"].as_str().unwrap();
    for name in ["cleanup_old_logs", "vacuum_database", "rebuild_face_index", "purge_expired_tokens", "purge_evidence"]
    {
        assert!(message.contains(name), "{message}");
    }
    let extra = app
        .post("/system/maintenance/", Some(&app.admin_token), json!({"task": "vacuum_database", "when": "now"}))
        .await;
    assert_eq!(extra.status(), StatusCode::BAD_REQUEST);
    let faculty = app.create_user("FAC001", "faculty", "Maths").await;
    let refused = app.post("/system/maintenance/", Some(&faculty.token), json!({"task": "vacuum_database"})).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/system/maintenance/maintenance_nope/", &app.admin_token).await.status(),
        StatusCode::NOT_FOUND
    );
}

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn audited_actions_are_written_with_actor_ip_and_agent() {
    let app = spawn_app().await;
    let failed = app.post("/auth/login/", None, json!({"email": ADMIN_EMAIL, "password": "not-it-at-all"})).await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let student = app.create_user("STU7", "student", "Chemistry").await;
    let login = app.login(&student.email, PASSWORD).await;
    app.post("/auth/logout/", None, json!({"refresh": login["refresh"]})).await;
    app.request(
        Method::PATCH,
        &format!("/users/{}/", student.id),
        Some(&app.admin_token),
        Some(json!({"department": "Biology"})),
    )
    .await;
    app.request(Method::DELETE, &format!("/users/{}/", student.id), Some(&app.admin_token), None).await;
    let key = app.create_api_key("door", "student").await;
    assert!(!key.is_empty());

    let logins = app.audit_entries("login").await;
    let failure = logins.iter().find(|e| e["success"] == false).expect("failed login audited");
    assert!(failure["user_id"].as_str().unwrap().starts_with("ADMIN-"));
    assert_eq!(failure["ip_address"], "127.0.0.1");
    assert_eq!(failure["user_agent"], "rollcall-tests/1.0");
    assert_eq!(failure["severity"], "warning");
    assert!(!failure.to_string().contains("not-it-at-all"), "passwords never reach the log");
    assert!(logins.iter().any(|e| e["success"] == true && e["user_id"] == "STU7"));

    let logout = app.audit_entries("logout").await;
    assert_eq!(logout[0]["user_id"], "STU7");
    let created = app.audit_entries("user_create").await;
    assert_eq!(created[0]["details"]["employee_id"], "STU7");
    assert!(created[0]["user_id"].as_str().unwrap().starts_with("ADMIN-"), "the actor is the admin");
    let updated = app.audit_entries("user_update").await;
    assert_eq!(updated[0]["details"]["fields"], json!(["department"]));
    let deactivated = app.audit_entries("user_deactivate").await;
    assert_eq!(deactivated[0]["details"]["employee_id"], "STU7");
    let keys = app.audit_entries("api_key_create").await;
    assert_eq!(keys[0]["details"]["name"], "door");
    assert!(!keys[0].to_string().contains(&key), "keys never reach the log");
}

#[tokio::test]
async fn audit_log_filters_and_paginates() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.post("/auth/login/", None, json!({"email": "nobody@college.edu", "password": "whatever-1"})).await;
    }
    let warnings: Value =
        app.get("/security/audit-logs/?severity=warning&page_size=2", &app.admin_token).await.json().await.unwrap();
    assert_eq!(warnings["count"], 3);
    assert_eq!(warnings["results"].as_array().unwrap().len(), 2);
    assert!(warnings["next"].as_str().unwrap().contains("severity=warning"));
    let today = chrono::Utc::now().date_naive();
    let ranged: Value = app
        .get(&format!("/security/audit-logs/?date_from={today}&date_to={today}&success=false"), &app.admin_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ranged["count"], 3);
    let tomorrow = today.succ_opt().unwrap();
    let future: Value =
        app.get(&format!("/security/audit-logs/?date_from={tomorrow}"), &app.admin_token).await.json().await.unwrap();
    assert_eq!(future["count"], 0);
    for bad in ["severity=loud", "date_from=yesterday", "date_from=2024-02-02&date_to=2024-01-01"] {
        let response = app.get(&format!("/security/audit-logs/?{bad}"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn create_read_update_and_list_users() {
    let app = spawn_app().await;
    let body = json!({
        "employee_id": "STU1234", "email": "Jane.Smith@Student.College.edu", "first_name": "Jane",
        "last_name": "Smith", "role": "student", "department": "Computer Science", "password": "secure_password123"
    });
    let created = app.post("/users/", Some(&app.admin_token), body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["email"], "jane.smith@student.college.edu");
    assert_eq!(created["is_active"], true);
    assert_eq!(created["face_enrolled"], false);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    let id = created["id"].as_i64().unwrap();

    let updated = app
        .request(Method::PUT, &format!("/users/{id}/"), Some(&app.admin_token), Some(json!({"department": "Physics"})))
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["department"], "Physics");
    assert_eq!(updated["first_name"], "Jane", "a partial PUT leaves other fields alone");

    let fetched: Value = app.get(&format!("/users/{id}/"), &app.admin_token).await.json().await.unwrap();
    assert_eq!(fetched["department"], "Physics");
    assert_eq!(app.get("/users/99999/", &app.admin_token).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicates_get_409_with_a_clear_message() {
    let app = spawn_app().await;
    app.create_user("FAC001", "faculty", "Maths").await;
    let same_id =
        json!({"employee_id": "FAC001", "email": "other@college.edu", "role": "faculty", "password": PASSWORD});
    let response = app.post("/users/", Some(&app.admin_token), same_id).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");
    assert!(body["error"]["message"].as_str().unwrap().contains("employee_id"), "{body}");

    // E-mail uniqueness ignores case.
    let same_email =
        json!({"employee_id": "FAC002", "email": "FAC001@College.edu", "role": "faculty", "password": PASSWORD});
    let response = app.post("/users/", Some(&app.admin_token), same_email).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("email"), "{body}");

    // Updating into a duplicate is a conflict too.
    let other = app.create_user("FAC003", "faculty", "Maths").await;
    let response = app
        .request(
            Method::PATCH,
            &format!("/users/{}/", other.id),
            Some(&app.admin_token),
            Some(json!({"employee_id": "FAC001"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn listing_paginates_with_absolute_links() {
    let app = spawn_app().await;
    for n in 0..5 {
        app.create_user(&format!("STU{n}"), "student", "Biology").await;
    }
    // 6 users in all (the admin too).
    let page1: Value = app.get("/users/?page_size=4&role=student", &app.admin_token).await.json().await.unwrap();
    assert_eq!(page1["count"], 5);
    assert_eq!(page1["results"].as_array().unwrap().len(), 4);
    assert_eq!(page1["previous"], Value::Null);
    let next = page1["next"].as_str().unwrap();
    assert!(next.starts_with(&app.address), "{next} is absolute");
    assert!(next.contains("page=2") && next.contains("role=student") && next.contains("page_size=4"));

    let page2: Value = app.client.get(next).bearer_auth(&app.admin_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(page2["results"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], Value::Null);
    assert!(page2["previous"].as_str().unwrap().contains("page=1"));

    let default_page: Value = app.get("/users/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(default_page["results"].as_array().unwrap().len(), 6);

    for bad in ["page=0", "page_size=101", "page_size=0", "page=abc"] {
        let response = app.get(&format!("/users/?{bad}"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(response).await, "validation_error");
    }
}

#[tokio::test]
async fn search_and_filters_narrow_the_list() {
    let app = spawn_app().await;
    app.create_user("FAC10", "faculty", "Computer Science").await;
    app.create_user("FAC11", "faculty", "Mathematics").await;
    app.create_user("STU10", "student", "Computer Science").await;
    let ids = |body: Value| -> Vec<String> {
        body["results"].as_array().unwrap().iter().map(|u| u["employee_id"].as_str().unwrap().to_owned()).collect()
    };
    let by_role = app.get("/users/?role=faculty", &app.admin_token).await.json().await.unwrap();
    assert_eq!(ids(by_role), ["FAC10", "FAC11"]);
    let by_department = app.get("/users/?department=computer%20science", &app.admin_token).await.json().await.unwrap();
    assert_eq!(ids(by_department), ["FAC10", "STU10"]);
    // Search matches e-mail or name, case-insensitively.
    let by_email = app.get("/users/?search=STU10%40COLLEGE", &app.admin_token).await.json().await.unwrap();
    assert_eq!(ids(by_email), ["STU10"]);
    let by_name = app.get("/users/?search=test%20fac1", &app.admin_token).await.json().await.unwrap();
    assert_eq!(ids(by_name), ["FAC10", "FAC11"]);
    let combined = app.get("/users/?search=fac&department=Mathematics", &app.admin_token).await.json().await.unwrap();
    assert_eq!(ids(combined), ["FAC11"]);
    // LIKE wildcards in the search are taken literally.
    let wildcard: Value = app.get("/users/?search=%25", &app.admin_token).await.json().await.unwrap();
    assert_eq!(wildcard["count"], 0);
    let bad_role = app.get("/users/?role=janitor", &app.admin_token).await;
    assert_eq!(bad_role.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invalid_fields_are_all_reported_at_once() {
    let app = spawn_app().await;
    let body = json!({"employee_id": "has space", "email": "not-an-email", "role": "student", "password": "short"});
    let response = app.post("/users/", Some(&app.admin_token), body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_error");
    let fields = body["error"]["fields"].as_object().unwrap();
    for field in ["employee_id", "email", "password"] {
        assert!(fields.contains_key(field), "{field} missing from {body}");
    }
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed() {
    let app = spawn_app().await;
    let me: Value = app.get("/users/?role=admin", &app.admin_token).await.json().await.unwrap();
    let id = me["results"][0]["id"].as_i64().unwrap();
    let response = app.request(Method::DELETE, &format!("/users/{id}/"), Some(&app.admin_token), None).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let demote = app
        .request(Method::PATCH, &format!("/users/{id}/"), Some(&app.admin_token), Some(json!({"role": "student"})))
        .await;
    assert_eq!(demote.status(), StatusCode::CONFLICT);
}

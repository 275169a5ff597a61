//! Bad input gets a 4xx in the one error shape, never a 500 or a dropped connection.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn raw_post(app: &TestApp, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&app.admin_token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_enums_are_400() {
    let app = spawn_app().await;
    let malformed = raw_post(&app, "/users/", "application/json", "{\"employee_id\": ").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(malformed).await, "malformed_json");

    let wrong_type = app
        .post(
            "/users/",
            Some(&app.admin_token),
            json!({"employee_id": 5, "email": "a@b.co", "role": "student", "password": PASSWORD}),
        )
        .await;
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong_type.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("employee_id"), "{body}");

    let unknown_role = app
        .post(
            "/users/",
            Some(&app.admin_token),
            json!({"employee_id": "X1", "email": "a@b.co", "role": "janitor", "password": PASSWORD}),
        )
        .await;
    assert_eq!(unknown_role.status(), StatusCode::BAD_REQUEST);
    let body: Value = unknown_role.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("janitor"), "{body}");

    let missing = app.post("/users/", Some(&app.admin_token), json!({"employee_id": "X1"})).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    let not_json = raw_post(&app, "/users/", "text/plain", "hello").await;
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(not_json).await, "unsupported_media_type");

    let login_garbage = app
        .client
        .post(app.url("/auth/login/"))
        .header("content-type", "application/json")
        .body("[1,2")
        .send()
        .await
        .unwrap();
    assert_eq!(login_garbage.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app_with(|config| config.max_body_bytes = 64 * 1024).await;
    let big = format!("{{\"employee_id\": \"{}\"}}", "x".repeat(100 * 1024));
    let response = raw_post(&app, "/users/", "application/json", big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let missing = app.get("/nothing-here/", &app.admin_token).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "not_found");
    let wrong_method = app.request(Method::DELETE, "/users/", Some(&app.admin_token), None).await;
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(wrong_method).await, "method_not_allowed");
    let bad_id = app.get("/users/not-a-number/", &app.admin_token).await;
    assert_eq!(bad_id.status(), StatusCode::NOT_FOUND);
    let huge_id = app.get("/users/99999999999999999999999/", &app.admin_token).await;
    assert_eq!(huge_id.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_authorization_headers_are_401_not_500() {
    let app = spawn_app().await;
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Api-Key", "Api-Key nope", "Token abc"] {
        let response = app.client.get(app.url("/users/")).header("Authorization", header).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(error_code(response).await, "unauthorized");
    }
    let anonymous = app.client.get(app.url("/users/")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_probes_answer_without_authentication() {
    let app = spawn_app().await;
    let health = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let app = spawn_app().await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/login/", "post"),
        ("/api/v1/auth/refresh/", "post"),
        ("/api/v1/auth/logout/", "post"),
        ("/api/v1/auth/api-keys/", "post"),
        ("/api/v1/auth/api-keys/{id}/", "delete"),
        ("/api/v1/users/", "get"),
        ("/api/v1/users/", "post"),
        ("/api/v1/users/{id}/", "get"),
        ("/api/v1/users/{id}/", "put"),
        ("/api/v1/users/{id}/", "delete"),
        ("/api/v1/security/audit-logs/", "get"),
        ("/api/v1/webhooks/", "get"),
        ("/api/v1/webhooks/", "post"),
        ("/api/v1/webhooks/{id}/", "get"),
        ("/api/v1/webhooks/{id}/", "put"),
        ("/api/v1/webhooks/{id}/", "patch"),
        ("/api/v1/webhooks/{id}/", "delete"),
        ("/api/v1/webhooks/{id}/deliveries/", "get"),
        ("/api/v1/webhooks/attendance/", "post"),
        ("/api/v1/events/", "get"),
        ("/api/v1/face/enroll/", "post"),
        ("/api/v1/face/enroll/status/{task_id}/", "get"),
        ("/api/v1/face/verify/", "post"),
        ("/api/v1/face/verify/status/{task_id}/", "get"),
        ("/api/v1/face/bulk-verify/", "post"),
        ("/api/v1/face/bulk-verify/status/{task_id}/", "get"),
        ("/api/v1/face/templates/{employee_id}/", "delete"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_openapi_document_says_who_may_call_each_operation() {
    let app = spawn_app().await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let methods = ["get", "put", "post", "delete", "patch"];
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(key, _)| methods.contains(&key.as_str())) {
            let description = operation["description"].as_str().unwrap_or_default();
            assert!(description.contains("**Who may call:**"), "{method} {path}: {description:?}");
        }
    }
    let login = &spec["paths"]["/api/v1/auth/login/"]["post"];
    assert!(login["description"].as_str().unwrap().contains("anyone; no credentials needed"));
    assert_eq!(login["security"], serde_json::json!([]), "signing in needs no credentials");
    let list_users = &spec["paths"]["/api/v1/users/"]["get"];
    assert!(list_users["description"].as_str().unwrap().contains("with the role admin"));
    assert!(list_users.get("security").is_none(), "the document-wide bearer or API key applies");
    let events = &spec["paths"]["/api/v1/events/"]["get"];
    assert!(events["description"].as_str().unwrap().contains("with the role admin or faculty"));
}

#[tokio::test]
async fn interactive_docs_are_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app.client.get(format!("{}/api/docs", app.address)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "run `make web` first");
    assert!(page.text().await.unwrap().contains("swagger-ui-bundle.js"));
    let init = app.client.get(format!("{}/api/docs/init.js", app.address)).send().await.unwrap();
    assert!(init.text().await.unwrap().contains("/api/v1/openapi.json"));
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"] {
        let response = app.client.get(format!("{}/api/docs/{asset}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let missing = app.client.get(format!("{}/api/docs/nope.js", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

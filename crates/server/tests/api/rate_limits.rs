use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn login_is_limited_per_ip_and_email_then_recovers() {
    let app = spawn_app_with(|config| {
        config.rate_limit_auth_requests = 3;
        config.rate_limit_auth_per_secs = 3;
    })
    .await;
    // spawn_app logged in once already.
    let attempt = || app.post("/auth/login/", None, json!({"email": ADMIN_EMAIL, "password": "wrong-password"}));
    for _ in 0..2 {
        let response = attempt().await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
    }
    let limited = attempt().await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(limited.headers()["x-ratelimit-limit"], "3");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(error_code(limited).await, "rate_limited");

    // Another e-mail from the same IP is counted separately.
    let other = app.post("/auth/login/", None, json!({"email": "someone@college.edu", "password": "x-password"})).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    let recovered = app.post("/auth/login/", None, json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).await;
    assert_eq!(recovered.status(), StatusCode::OK);
}

#[tokio::test]
async fn general_requests_are_limited_per_caller() {
    let app = spawn_app_with(|config| {
        config.rate_limit_general_requests = 5;
        config.rate_limit_general_per_secs = 2;
    })
    .await;
    let student = app.create_user("STU1", "student", "Maths").await; // one admin request
    let me = format!("/users/{}/", student.id);
    for n in 0..5 {
        let response = app.get(&me, &student.token).await;
        assert_eq!(response.status(), StatusCode::OK, "request {n}");
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
    }
    let limited = app.get(&me, &student.token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    // The admin has a budget of their own.
    assert_eq!(app.get(&me, &app.admin_token).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(app.get(&me, &student.token).await.status(), StatusCode::OK);
}

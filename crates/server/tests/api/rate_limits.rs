use std::time::Duration;

use reqwest::{Response, StatusCode};
use rollcall_server::Config;
use serde_json::{Value, json};

use crate::helpers::*;

fn shipped() -> Config {
    Config::with_data_dir("./data")
}

/// A failed login for `email`, sent with `X-Forwarded-For: <forwarded>` when given.
async fn guess(app: &TestApp, email: &str, forwarded: Option<&str>) -> Response {
    let mut request = app.client.post(app.url("/auth/login/")).json(&json!({"email": email, "password": "guess-1234"}));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    request.send().await.unwrap()
}

/// The addresses recorded by failed logins.
async fn failed_login_ips(app: &TestApp) -> Vec<String> {
    let entries = app.audit_entries("login").await;
    entries.iter().filter(|e| e["success"] == false).map(|e| e["ip_address"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn login_is_limited_per_ip_and_email_then_recovers() {
    let app = spawn_app_with(|config| {
        config.rate_limit_auth_requests = 3;
        config.rate_limit_auth_per_secs = 3;
    })
    .await;
    // spawn_app logged in once already.
    let attempt = || app.post("/auth/login/", None, json!({"email": ADMIN_EMAIL, "password": "wrong-password"}));
    // Two attempts are left, and more when the quota refills while slow attempts run.
    let mut attempts = 0;
    let limited = loop {
        let response = attempt().await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
        attempts += 1;
        assert!(attempts <= 6, "no 429 after {attempts} attempts");
    };
    assert!(attempts >= 2, "refused after {attempts} attempts");
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

#[tokio::test]
async fn forty_accounts_tried_from_one_address_meet_a_429() {
    let app = spawn_app_with(default_quotas).await;
    let mut statuses = Vec::new();
    for n in 0..40 {
        statuses.push(guess(&app, &format!("person{n}@college.edu"), None).await.status());
    }
    let first_limited =
        statuses.iter().position(|s| *s == StatusCode::TOO_MANY_REQUESTS).expect("no 429 in 40 accounts");
    // The whole quota was there (spawn_app's own login counted too), plus what refilled
    // while the attempts ran.
    assert!(first_limited >= shipped().rate_limit_auth_ip_requests as usize - 1, "{statuses:?}");
    assert!(statuses[..first_limited].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(statuses[first_limited..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    // The limit is the address's, across accounts: the right password waits too.
    let right = app.post("/auth/login/", None, json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(right.headers().contains_key("retry-after"));
    assert_eq!(failed_login_ips(&app).await.len(), first_limited, "refused attempts do no work and write nothing");
}

/// A per-IP login quota of 10 that does not refill while a test runs.
fn ten_logins_per_ip(config: &mut rollcall_server::Config) {
    default_quotas(config);
    config.rate_limit_auth_ip_requests = 10;
    config.rate_limit_auth_ip_per_secs = 3600;
}

#[tokio::test]
async fn a_forged_x_forwarded_for_changes_nothing_without_trusted_proxies() {
    let app = spawn_app_with(ten_logins_per_ip).await;
    let mut limited_at = None;
    for n in 0..20 {
        let response = guess(&app, &format!("person{n}@college.edu"), Some(&format!("198.51.100.{n}"))).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited_at = Some(n);
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // spawn_app's own login counted too.
    assert_eq!(limited_at, Some(9), "the per-IP limit still applies");
    let ips = failed_login_ips(&app).await;
    assert!(!ips.is_empty() && ips.iter().all(|ip| ip == "127.0.0.1"), "the real peer is audited: {ips:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_and_audited() {
    let app = spawn_app_with(|config| {
        ten_logins_per_ip(config);
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let quota = 10;
    for n in 0..quota {
        let response = guess(&app, &format!("person{n}@college.edu"), Some("203.0.113.7")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let over = guess(&app, "one-more@college.edu", Some("203.0.113.7")).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    // Entries left of the right-most untrusted one are the client's own: still 203.0.113.7.
    let forged = guess(&app, "one-more@college.edu", Some("192.0.2.1, 203.0.113.7")).await;
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy has a quota of its own.
    let other = guess(&app, "someone@college.edu", Some("203.0.113.8")).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    let ips = failed_login_ips(&app).await;
    assert_eq!(ips[0], "203.0.113.8");
    assert_eq!(ips.iter().filter(|ip| *ip == "203.0.113.7").count(), quota);
    assert!(!ips.iter().any(|ip| ip == "127.0.0.1" || ip == "192.0.2.1"), "{ips:?}");
}

#[tokio::test]
async fn refresh_and_logout_share_a_quota_per_address() {
    let app = spawn_app_with(default_quotas).await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let quota = shipped().rate_limit_session_requests;
    // Someone trying refresh tokens at random.
    for n in 0..quota {
        let path = if n % 2 == 0 { "/auth/refresh/" } else { "/auth/logout/" };
        let response = app.post(path, None, json!({"refresh": format!("rt_guess-{n}")})).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} {n}");
    }
    for path in ["/auth/refresh/", "/auth/logout/"] {
        let response = app.post(path, None, json!({"refresh": login["refresh"]})).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(response.headers()["x-ratelimit-limit"], quota.to_string().as_str());
        assert!(response.headers().contains_key("retry-after"));
    }
}

#[tokio::test]
async fn polling_ones_own_task_1100_times_meets_no_429_and_leaves_the_general_budget() {
    let app = spawn_face_app_with(default_quotas).await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let submitted = app.post("/face/verify/", Some(&student.token), json!({"image": photo("obama.jpg")})).await;
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
    let task_id = submitted.json::<Value>().await.unwrap()["task_id"].as_str().unwrap().to_owned();
    let path = format!("/face/verify/status/{task_id}/");
    let started = std::time::Instant::now();
    let mut last = None;
    for n in 0..1_100 {
        let response = app.get(&path, &student.token).await;
        assert_eq!(response.status(), StatusCode::OK, "poll {n}");
        last = Some(response);
    }
    assert!(started.elapsed() < Duration::from_secs(180), "the polls took {:?}", started.elapsed());
    let last = last.unwrap();
    assert_eq!(last.headers()["x-ratelimit-limit"], shipped().rate_limit_task_status_requests.to_string().as_str());
    assert_eq!(last.json::<Value>().await.unwrap()["task_id"], task_id.as_str());
    let me = app.get(&format!("/users/{}/", student.id), &student.token).await;
    assert_eq!(me.status(), StatusCode::OK);
    let general = shipped().rate_limit_general_requests;
    assert_eq!(me.headers()["x-ratelimit-limit"], general.to_string().as_str());
    assert_eq!(me.headers()["x-ratelimit-remaining"], (general - 1).to_string().as_str(), "no poll spent it");
}

#[tokio::test]
async fn status_polls_have_a_bucket_of_their_own() {
    let app = spawn_app_with(|config| {
        config.rate_limit_task_status_requests = 3;
        config.rate_limit_general_requests = 3;
    })
    .await;
    let student = app.create_user("STU1", "student", "Maths").await;
    for n in 0..3 {
        let response = app.get("/face/verify/status/verify_nope/", &student.token).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "poll {n}");
    }
    // (Enrollment status is for admins, who alone enroll: a student's poll is refused first.)
    let limited = app.get("/face/bulk-verify/status/bulk_nope/", &student.token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "every status route shares the bucket");
    let me = app.get(&format!("/users/{}/", student.id), &student.token).await;
    assert_eq!(me.status(), StatusCode::OK, "the general budget is separate");
}

#[tokio::test]
async fn reports_have_the_specs_quota_of_ten_a_minute() {
    let app = spawn_app_with(default_quotas).await;
    assert_eq!((shipped().rate_limit_reports_requests, shipped().rate_limit_reports_per_secs), (10, 60));
    for n in 0..10 {
        let response = app.get("/reports/attendance/", &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::OK, "report {n}");
    }
    let limited = app.get("/reports/attendance/", &app.admin_token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.get("/attendance/summary/", &app.admin_token).await.status(),
        StatusCode::OK,
        "other routes unaffected"
    );
}

//! System health, machine and processing figures, and Prometheus metrics, moving with
//! real work.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::face::{enroll, verify};
use crate::helpers::*;

async fn health(app: &TestApp) -> Value {
    let response = app.get("/system/health/", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn system_metrics(app: &TestApp) -> Value {
    let response = app.get("/system/metrics/", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn task_status(app: &TestApp, task_id: &str) -> Value {
    app.get(&format!("/face/bulk-verify/status/{task_id}/"), &app.admin_token).await.json().await.unwrap()
}

#[tokio::test]
async fn health_follows_the_queue_and_the_workers() {
    let app = spawn_face_app_with(|config| config.task_workers = 1).await;
    let idle = health(&app).await;
    assert_eq!(idle["status"], "healthy", "{idle}");
    let services = &idle["services"];
    assert_eq!(services["database"]["status"], "healthy");
    assert!(services["database"]["response_time"].as_f64().unwrap() >= 0.0);
    assert_eq!(services["database"]["backend"], backend());
    assert_eq!(services["redis"]["status"], "not_configured");
    assert_eq!(services["rabbitmq"]["status"], "not_configured");
    assert_eq!(services["ai_workers"]["active_workers"], 1, "{idle}");
    assert_eq!(services["ai_workers"]["configured_workers"], 1);
    assert_eq!(services["ai_workers"]["engine"]["status"], "loaded");
    assert!(services["ai_workers"]["heartbeat_age"].as_f64().unwrap() < 10.0, "{idle}");
    assert_eq!(services["task_queue"]["queue_size"], 0);

    // Three bulk verifications of eight photos each for one worker: two wait.
    let frames: Vec<Value> = (0..8)
        .map(|n| json!({"id": format!("frame_{n}"), "image": photo("obama3.jpg"), "camera_id": "CAM001"}))
        .collect();
    let mut task_ids = Vec::new();
    for _ in 0..3 {
        let response = app.post("/face/bulk-verify/", Some(&app.admin_token), json!({"images": frames})).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        task_ids.push(body["task_id"].as_str().unwrap().to_owned());
    }
    let busy = health(&app).await;
    let queue = &busy["services"]["task_queue"];
    assert!(queue["queue_size"].as_i64().unwrap() >= 1, "tasks wait for the one worker: {busy}");
    assert_eq!(queue["queued"]["bulk_verify"], queue["queue_size"], "{busy}");
    assert!(queue["oldest_wait"].as_f64().is_some(), "{busy}");

    for task_id in &task_ids {
        let mut status = task_status(&app, task_id).await;
        for _ in 0..600 {
            if status["status"] == "completed" || status["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = task_status(&app, task_id).await;
        }
        assert_eq!(status["status"], "completed", "{status}");
    }
    let drained = health(&app).await;
    assert_eq!(drained["services"]["task_queue"]["queue_size"], 0, "{drained}");
    assert_eq!(drained["services"]["task_queue"]["oldest_wait"], Value::Null);
    assert!(drained["performance"]["requests_per_minute"].as_f64().unwrap() > 0.0, "{drained}");
    assert!(drained["performance"]["avg_api_response_time"].as_f64().unwrap() > 0.0);

    let student = app.create_user("STU001", "student", "Maths").await;
    assert_eq!(app.get("/system/health/", &student.token).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/system/metrics/", &student.token).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn processing_figures_come_from_the_task_table_and_survive_a_restart() {
    let app = spawn_face_app().await;
    let before = system_metrics(&app).await;
    for share in ["cpu_usage", "memory_usage", "disk_usage"] {
        let value = before[share].as_f64().unwrap_or_else(|| panic!("{share}: {before}"));
        assert!((0.0..=1.0).contains(&value), "{share}: {value}");
    }
    assert!(before["memory_usage"].as_f64().unwrap() > 0.0);
    assert!(before["network_io"]["bytes_received"].as_u64().is_some(), "{before}");
    assert_eq!(before["face_processing"]["total_processed"], 0);
    assert_eq!(before["face_processing"]["success_rate"], Value::Null);

    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    verify(&app, &app.admin_token, "obama3.jpg").await;
    let bad = json!({"image": data_uri(b"not a photo at all", "image/jpeg")});
    let refused = app.post("/face/verify/?wait=true", Some(&app.admin_token), bad).await;
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["status"], "failed", "an undecodable photo fails its task: {refused}");

    let after = system_metrics(&app).await;
    let processing = &after["face_processing"];
    assert_eq!(processing["total_processed"], 3, "{after}");
    assert_eq!(processing["by_kind"]["enroll"]["completed"], 1);
    assert_eq!(
        processing["by_kind"]["verify"],
        json!({"completed": 1, "failed": 1,
        "avg_processing_time": processing["by_kind"]["verify"]["avg_processing_time"]})
    );
    assert!((processing["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-3, "{after}");
    assert!(processing["avg_processing_time"].as_f64().unwrap() > 0.0);

    let app = app.restart_with(|_| {}).await;
    assert_eq!(system_metrics(&app).await["face_processing"], after["face_processing"], "the task table remembers");
}

/// The value of the sample `name` whose labels include `labels`; 0 when there is none.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| labels.iter().all(|(key, value)| sample.labels.get(key) == Some(*value)))
        .map(|sample| match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn scrape(app: &TestApp, token: Option<&str>) -> prometheus_parse::Scrape {
    let mut request = app.client.get(format!("{}/metrics", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text")
}

#[tokio::test]
async fn prometheus_metrics_count_requests_tasks_and_recognitions() {
    let app = spawn_face_app().await;
    app.create_user("OBAMA", "faculty", "Government").await;
    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    let before = scrape(&app, None).await;
    assert_eq!(sample(&before, "rollcall_build_info", &[]), 1.0);
    assert_eq!(sample(&before, "rollcall_task_queue_depth", &[("kind", "verify")]), 0.0);
    // (prometheus-parse cannot read label values with braces, such as `/users/{id}/`.)
    let users = [("method", "GET"), ("route", "/api/v1/users/"), ("status", "200")];
    let listed = sample(&before, "rollcall_http_requests_total", &users);

    app.get("/users/?search=OBAMA", &app.admin_token).await;
    app.get("/no/such/path", &app.admin_token).await;
    let recognised = verify(&app, &app.admin_token, "obama3.jpg").await;
    assert_eq!(recognised["recognized"], true);
    let stranger = verify(&app, &app.admin_token, "biden.jpg").await;
    assert_eq!(stranger["recognized"], false);

    let after = scrape(&app, None).await;
    assert_eq!(sample(&after, "rollcall_http_requests_total", &users), listed + 1.0, "one series per route template");
    assert!(sample(&after, "rollcall_http_requests_total", &[("route", "unmatched"), ("status", "404")]) >= 1.0);
    let outcome = |scrape: &prometheus_parse::Scrape, outcome| {
        sample(scrape, "rollcall_recognitions_total", &[("outcome", outcome)])
    };
    assert_eq!(outcome(&after, "recognised"), outcome(&before, "recognised") + 1.0);
    assert_eq!(outcome(&after, "not_recognised"), outcome(&before, "not_recognised") + 1.0);
    let verify_runs = [("kind", "verify"), ("outcome", "completed")];
    assert_eq!(sample(&after, "rollcall_task_duration_seconds_count", &verify_runs), 2.0);
    assert!(sample(&after, "rollcall_task_duration_seconds_sum", &verify_runs) > 0.0);
    assert!(
        !after.samples.iter().any(|sample| sample.labels.get("route").is_some_and(|route| route.contains("/no/such"))),
        "no raw paths as labels"
    );
}

#[tokio::test]
async fn a_metrics_token_closes_the_endpoint_to_scrapers_without_it() {
    let app = spawn_app_with(|config| config.metrics_token = Some("scrape-secret-1".to_owned().into())).await;
    for token in [None, Some("wrong"), Some(app.admin_token.as_str())] {
        let mut request = app.client.get(format!("{}/metrics", app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(error_code(response).await, "unauthorized");
    }
    assert_eq!(sample(&scrape(&app, Some("scrape-secret-1")).await, "rollcall_build_info", &[]), 1.0);
}

//! A scale-out instance whose RabbitMQ and Redis cannot be reached: it starts anyway,
//! `/readyz` says what is missing, photos are refused with 503 and `Retry-After` (never
//! accepted and lost), health names the engines that are down, and what needs neither
//! keeps working — with rate limits counted locally (`rate_limit_on_redis_error =
//! "open"`, the default), or refused with 503 (`"closed"`).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, admin, fixture, jpeg_data_uri};

/// Nothing listens on port 1.
const UNREACHABLE: [(&str, &str); 2] =
    [("ROLLCALL_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"), ("ROLLCALL_REDIS_URL", "redis://127.0.0.1:1")];

async fn status_and_body(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rabbitmq_and_redis_photos_get_503_and_the_rest_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_alive(dir.path(), &UNREACHABLE).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    let (status, retry_after, body) =
        status_and_body(http.get(format!("{}/readyz", server.base)).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("service_unavailable")), "{body}");
    assert!(retry_after.is_some(), "a load balancer is told when to ask again");

    // Logging in needs neither engine; its rate limit is counted in this process.
    let session = admin(&server, &http).await;
    let health = session.get("/system/health/").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["services"]["database"]["status"], "healthy", "{health}");
    assert_eq!(health["services"]["rabbitmq"]["status"], "unhealthy", "{health}");
    assert_eq!(health["services"]["redis"]["status"], "unhealthy", "{health}");

    let photo = jpeg_data_uri(&fixture("obama3.jpg"));
    for _ in 0..3 {
        let (status, submitted) = session.post_json("/face/verify/", &json!({"image": photo})).await;
        assert_eq!((status, submitted["error"]["code"].as_str()), (503, Some("service_unavailable")), "{submitted}");
    }
    let response = http
        .post(format!("{}/api/v1/face/verify/", server.base))
        .header("authorization", &session.authorization)
        .json(&json!({"image": photo}))
        .send()
        .await
        .unwrap();
    let (status, retry_after, _) = status_and_body(response).await;
    assert_eq!(status, 503);
    assert!(
        retry_after.as_deref().is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|s| s >= 1)),
        "{retry_after:?}"
    );
    let tasks = session.get("/system/health/").await;
    assert_eq!(tasks["services"]["task_queue"]["queue_size"], 0, "a refused photo left no task behind: {tasks}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_that_fail_closed_refuse_while_redis_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let env = [UNREACHABLE[1], ("ROLLCALL_RATE_LIMIT_ON_REDIS_ERROR", "closed")];
    let server = Server::start_alive(dir.path(), &env).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let login = json!({"email": support::ADMIN_EMAIL, "password": support::ADMIN_PASSWORD});
    let response = http.post(format!("{}/api/v1/auth/login/", server.base)).json(&login).send().await.unwrap();
    let (status, retry_after, body) = status_and_body(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("service_unavailable")), "{body}");
    assert!(retry_after.is_some());
    let alive = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(alive.status(), 200, "the process itself is fine");
}

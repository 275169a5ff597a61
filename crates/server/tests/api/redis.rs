//! Two API instances sharing one Redis (`ROLLCALL_TEST_REDIS_URL`): live events and rate
//! limits hold across them. Skipped when the variable is unset.

use reqwest::StatusCode;

use crate::events::{next_message, report_arrival};
use crate::helpers::*;

fn test_redis_url() -> Option<String> {
    let url = std::env::var("ROLLCALL_TEST_REDIS_URL").ok().filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!("note: ROLLCALL_TEST_REDIS_URL is unset: the two-instance Redis tests are skipped");
    }
    url
}

#[tokio::test]
async fn redis_two_instances_share_live_events_and_rate_limits() {
    let Some(url) = test_redis_url() else {
        return;
    };
    let prefix = format!("rollcall-test:{}:", uuid::Uuid::new_v4().simple());
    let shared = |config: &mut rollcall_server::Config| {
        config.redis_url = Some(url.clone().into());
        config.redis_key_prefix = prefix.clone();
        config.rate_limit_general_requests = 6;
    };
    let a = spawn_app_with(shared).await;
    let b = spawn_face_app_beside(&a, shared).await;
    b.create_user("FAC040", "faculty", "Physics").await;

    let mut stream = a.client.get(a.url("/events/")).bearer_auth(&a.admin_token).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    // A's subscription to the other instances is made in the background.
    let mut seen = None;
    for _ in 0..20 {
        report_arrival(&b, "FAC040").await;
        if let Ok(message) =
            tokio::time::timeout(std::time::Duration::from_millis(500), next_message(&mut stream, "attendance_logged"))
                .await
        {
            seen = Some(message);
            break;
        }
    }
    let (_, data) = seen.expect("an arrival reported on B reaches an SSE client on A");
    assert_eq!(data["data"]["employee_id"], "FAC040");

    let health = a.get("/system/health/", &a.admin_token).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(health["services"]["redis"]["status"], "healthy", "{health}");
    assert!(health["services"]["redis"]["memory_usage"].as_str().unwrap().ends_with('%'));

    // One caller's general budget is spent across both instances.
    let remaining =
        |response: &reqwest::Response| response.headers()["x-ratelimit-remaining"].to_str().unwrap().to_owned();
    let first = a.get("/users/", &a.admin_token).await;
    assert_eq!(first.status(), StatusCode::OK);
    let mut left: u32 = remaining(&first).parse().unwrap();
    for app in [&b, &a].into_iter().cycle().take(left as usize) {
        let response = app.get("/users/", &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        left -= 1;
        assert_eq!(remaining(&response), left.to_string());
    }
    assert_eq!(b.get("/users/", &b.admin_token).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.get("/users/", &a.admin_token).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

//! Health counts the task workers of every process on the database: an API-only
//! instance sees those of the others, and a process that stopped beating drops out.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;
use rollcall_server::config::ProcessRole;
use rollcall_server::store::Db;
use rollcall_server::store::worker_processes::{self, WorkerProcessBeat};
use serde_json::Value;

use crate::helpers::*;

async fn health(app: &TestApp) -> Value {
    let response = app.get("/system/health/", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Asks `app` for its health until `ai_workers.status` is `status`; fails after 10 s.
async fn wait_for_worker_status(app: &TestApp, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let found = health(app).await;
        if found["services"]["ai_workers"]["status"] == status {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "ai_workers never became {status}: {found}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spawn_api_only(config: &mut rollcall_server::Config) {
    config.role = ProcessRole::Api;
}

/// A process's beat, `age` ago.
fn beat(instance_id: &str, alive: i64, configured: i64, age: chrono::Duration) -> WorkerProcessBeat {
    let now = Utc::now();
    WorkerProcessBeat {
        instance_id: instance_id.to_owned(),
        hostname: "worker-host".to_owned(),
        pid: 4242,
        role: "worker".to_owned(),
        workers_configured: configured,
        workers_alive: alive,
        workers_busy: 0,
        started_at: now - chrono::Duration::hours(1),
        beat_at: now - age,
    }
}

#[tokio::test]
async fn an_api_only_instance_counts_the_workers_of_another_process() {
    let api = spawn_face_app_with(spawn_api_only).await;
    let alone = health(&api).await;
    let workers = &alone["services"]["ai_workers"];
    assert_eq!(workers["status"], "degraded", "no process runs workers: {alone}");
    assert_eq!(alone["status"], "degraded");
    assert_eq!((workers["active_workers"].as_u64(), workers["configured_workers"].as_u64()), (Some(0), Some(0)));
    assert_eq!(workers["processes"], serde_json::json!([]));
    assert_eq!(workers["heartbeat_age"], Value::Null);

    let other = spawn_face_app_beside(&api, |config| config.task_workers = 3).await;
    let seen = wait_for_worker_status(&api, "healthy").await;
    assert_eq!(seen["status"], "healthy", "{seen}");
    let workers = &seen["services"]["ai_workers"];
    assert_eq!(workers["active_workers"], 3, "{seen}");
    assert_eq!(workers["configured_workers"], 3);
    assert_eq!(workers["busy_workers"], 0);
    assert!(workers["heartbeat_age"].as_f64().unwrap() < 10.0, "{seen}");
    let process = &workers["processes"][0];
    assert_eq!(workers["processes"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!((process["role"].as_str(), process["pid"].as_u64()), (Some("all"), Some(u64::from(std::process::id()))));
    assert!(!process["hostname"].as_str().unwrap().is_empty());
    assert_eq!(process["active_workers"], 3);

    // The worker process counts itself once, though its own row is in the table too.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let itself = health(&other).await;
    assert_eq!(itself["services"]["ai_workers"]["active_workers"], 3, "{itself}");
    assert_eq!(itself["services"]["ai_workers"]["processes"].as_array().unwrap().len(), 1);

    // A graceful stop deletes the row: the API instance is alone again at once.
    other.stop().await;
    let left = health(&api).await;
    assert_eq!(left["services"]["ai_workers"]["status"], "degraded", "{left}");
    assert_eq!(left["services"]["ai_workers"]["active_workers"], 0);
}

#[tokio::test]
async fn a_process_that_stopped_beating_is_not_counted_and_one_short_of_workers_degrades() {
    let api = spawn_app_with(spawn_api_only).await;
    let db = Db::connect(&api.database_url).await.unwrap();
    worker_processes::beat(&db, &beat("stale", 4, 4, chrono::Duration::seconds(60))).await.unwrap();
    let stale = health(&api).await;
    let workers = &stale["services"]["ai_workers"];
    assert_eq!(workers["status"], "degraded", "{stale}");
    assert_eq!(workers["active_workers"], 0, "a row beaten 60 s ago is not counted: {stale}");
    assert_eq!(workers["processes"], serde_json::json!([]));

    worker_processes::beat(&db, &beat("short", 1, 2, chrono::Duration::zero())).await.unwrap();
    let short = health(&api).await;
    let workers = &short["services"]["ai_workers"];
    assert_eq!(workers["status"], "degraded", "one of two workers runs: {short}");
    assert_eq!((workers["active_workers"].as_u64(), workers["configured_workers"].as_u64()), (Some(1), Some(2)));

    worker_processes::beat(&db, &beat("short", 2, 2, chrono::Duration::zero())).await.unwrap();
    let whole = health(&api).await;
    let workers = &whole["services"]["ai_workers"];
    assert_eq!(workers["status"], "healthy", "{whole}");
    assert_eq!(workers["processes"][0]["hostname"], "worker-host");
    assert_eq!(workers["processes"][0]["pid"], 4242);
    assert_eq!(workers["processes"][0]["role"], "worker");
    db.close().await;
}

#[tokio::test]
async fn worker_process_rows_are_replaced_listed_by_beat_removed_and_purged() {
    let app = spawn_app_with(spawn_api_only).await;
    let db = Db::connect(&app.database_url).await.unwrap();
    let minute = chrono::Duration::minutes(1);
    let old = beat("old", 2, 2, minute * 20);
    worker_processes::beat(&db, &old).await.unwrap();
    let first = beat("fresh", 1, 2, chrono::Duration::zero());
    worker_processes::beat(&db, &first).await.unwrap();
    let mut second = beat("fresh", 2, 2, chrono::Duration::zero());
    second.started_at = Utc::now();
    worker_processes::beat(&db, &second).await.unwrap();

    let recent = worker_processes::beaten_since(&db, Utc::now() - minute).await.unwrap();
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0].workers_alive, 2, "the second beat replaced the first");
    assert_eq!(recent[0].beat_at.timestamp_micros(), second.beat_at.timestamp_micros());
    assert_eq!(recent[0].started_at.timestamp_micros(), first.started_at.timestamp_micros(), "a beat keeps the start");
    let all = worker_processes::beaten_since(&db, Utc::now() - minute * 60).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|row| row.instance_id.as_str()).collect();
    assert_eq!(ids, ["fresh", "old"], "freshest first");

    let purged = worker_processes::delete_not_beaten_since(&db, Utc::now() - minute * 10).await.unwrap();
    assert_eq!(purged, 1);
    assert!(worker_processes::remove(&db, "fresh").await.unwrap());
    assert!(!worker_processes::remove(&db, "fresh").await.unwrap(), "already gone");
    assert!(worker_processes::beaten_since(&db, Utc::now() - minute * 60).await.unwrap().is_empty());
    db.close().await;
}

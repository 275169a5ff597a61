//! The crash test: 200 verifications are queued, the server is SIGKILLed while it works
//! through them, and restarted on the same data dir. Every task must end `completed` or
//! `failed` with a reason, none may be lost, and with no cooldown every task that reports
//! `attendance_logged` has exactly one attendance log, and no other task has one.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollcall_server::store::{Db, attendance};
use serde_json::{Value, json};
use support::{ADMIN_EMAIL, ADMIN_PASSWORD, Server, fixture, jpeg_data_uri};

const TASKS: usize = 200;
/// Completed tasks to wait for before the SIGKILL.
const KILL_AFTER_COMPLETED: usize = 20;
/// The whole test, both runs of the server included.
const TEST_DEADLINE: Duration = Duration::from_secs(300);
/// Status requests in flight at once while polling.
const POLL_CONCURRENCY: usize = 8;

fn photo(name: &str) -> String {
    jpeg_data_uri(&fixture(name))
}

/// The server as this test runs it.
async fn start(dir: &Path) -> Server {
    let env = [
        // A task whose worker was killed runs again 3 s after the restart.
        ("ROLLCALL_TASK_LEASE_SECS", "3"),
        // Every recognised arrival is logged: a task logged twice, or a log without
        // the task that reports it, would show.
        ("ROLLCALL_ATTENDANCE_COOLDOWN_SECS", "0"),
        // All 200 tasks are queued at once, past the default bound on the queue's wait.
        ("ROLLCALL_MAX_QUEUE_WAIT_SECS", "3600"),
        ("ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS", "100000"),
        ("ROLLCALL_RATE_LIMIT_GENERAL_REQUESTS", "1000000"),
        ("ROLLCALL_RATE_LIMIT_TASK_STATUS_REQUESTS", "1000000"),
        ("ROLLCALL_RATE_LIMIT_AUTH_REQUESTS", "10000"),
    ];
    Server::start(dir, &env).await
}

/// An admin session on one server.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(server: &Server) -> Api {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let response = client
            .post(format!("{}/api/v1/auth/login/", server.base))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "admin login");
        let body: Value = response.json().await.unwrap();
        Api { client, base: server.base.clone(), token: body["access"].as_str().unwrap().to_owned() }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response =
            self.client.post(format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token).json(body).send().await;
        let response = response.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self, task_id: &str) -> Value {
        let path = format!("/face/verify/status/{task_id}/");
        let response = self.client.get(format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token).send().await;
        let response = response.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status(), 200, "{path}: the task is known");
        response.json().await.unwrap()
    }

    /// The status of every task, `POLL_CONCURRENCY` requests at a time.
    async fn statuses(&self, ids: &[String]) -> Vec<Value> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(POLL_CONCURRENCY) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|id| {
                    let (api, id) = (self.clone(), id.clone());
                    tokio::spawn(async move { api.status(&id).await })
                })
                .collect();
            for handle in handles {
                out.push(handle.await.expect("status request"));
            }
        }
        out
    }
}

fn is_finished(status: &Value) -> bool {
    matches!(status["status"].as_str(), Some("completed" | "failed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tasks_survive_a_sigkill_and_each_logs_its_arrival_once() {
    let (obama3, biden) = (photo("obama3.jpg"), photo("biden.jpg"));
    let enrollment = json!({"employee_id": "OBAMA", "images": [photo("obama.jpg"), photo("obama2.jpg")]});
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + TEST_DEADLINE;

    // First run: enroll, queue 200 verifications, kill the server while it works on them.
    let mut server = start(dir.path()).await;
    let api = Api::login(&server).await;
    let user = json!({
        "employee_id": "OBAMA", "email": "obama@college.edu", "first_name": "Barack", "last_name": "Obama",
        "role": "faculty", "department": "Government", "password": "obama-password-1",
    });
    let (status, created) = api.post("/users/", &user).await;
    assert_eq!(status, 201, "creating the user: {created}");
    let obama_id = created["id"].as_i64().expect("user id");
    let (status, enrolled) = api.post("/face/enroll/?wait=true", &enrollment).await;
    assert!(status == 200 || status == 202, "enrolling: {status} {enrolled}");
    let enroll_id = enrolled["task_id"].as_str().expect("enroll task id").to_owned();
    let enrolled = loop {
        let path = format!("{}/api/v1/face/enroll/status/{enroll_id}/", api.base);
        let body: Value = api.client.get(path).bearer_auth(&api.token).send().await.unwrap().json().await.unwrap();
        if is_finished(&body) {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "enrollment did not finish: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(enrolled["status"], "completed", "{enrolled}");
    assert_eq!(enrolled["result"]["template_created"], true, "{enrolled}");

    let (obama3, biden) = (Arc::new(obama3), Arc::new(biden));
    let submissions = Arc::new(tokio::sync::Semaphore::new(16));
    let handles: Vec<_> = (0..TASKS)
        .map(|n| {
            let (api, submissions) = (api.clone(), submissions.clone());
            let image = if n % 2 == 0 { obama3.clone() } else { biden.clone() };
            tokio::spawn(async move {
                let _permit = submissions.acquire().await.unwrap();
                let body = json!({"image": *image, "camera_id": "CAM001", "location": "Main Building Entrance"});
                let (status, submitted) = api.post("/face/verify/", &body).await;
                assert_eq!(status, 202, "submitting verification {n}: {submitted}");
                submitted["task_id"].as_str().expect("task id").to_owned()
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(TASKS);
    for handle in handles {
        ids.push(handle.await.expect("submission"));
    }
    let obama_tasks: std::collections::HashSet<&str> = ids.iter().step_by(2).map(String::as_str).collect();
    println!("{TASKS} tasks queued after {:.1} s", started.elapsed().as_secs_f64());

    let completed_at_kill = loop {
        let statuses = api.statuses(&ids).await;
        let completed = statuses.iter().filter(|s| is_finished(s)).count();
        let running = statuses.iter().filter(|s| s["status"] == "running").count();
        if completed >= KILL_AFTER_COMPLETED && running > 0 {
            server.kill();
            break completed;
        }
        assert!(completed < TASKS, "every task finished before the kill: the test proves nothing");
        assert!(tokio::time::Instant::now() < deadline, "only {completed} tasks finished before the deadline");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("SIGKILL with {completed_at_kill} tasks finished, after {:.1} s", started.elapsed().as_secs_f64());

    // Second run on the same data dir: every task ends, once.
    let mut server = start(dir.path()).await;
    let api = Api::login(&server).await;
    let statuses = loop {
        let statuses = api.statuses(&ids).await;
        let finished = statuses.iter().filter(|s| is_finished(s)).count();
        if finished == TASKS {
            break statuses;
        }
        let stuck: Vec<_> = statuses.iter().filter(|s| !is_finished(s)).take(3).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks still queued or running at the deadline, e.g. {stuck:?}",
            TASKS - finished
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("all {TASKS} tasks finished after {:.1} s", started.elapsed().as_secs_f64());
    server.kill();

    let mut logged_by = std::collections::HashMap::new();
    let mut rerun = 0;
    for (id, status) in ids.iter().zip(&statuses) {
        assert_eq!(status["task_id"], json!(id));
        rerun += usize::from(status["attempts"].as_u64().unwrap_or(0) > 1);
        if status["status"] == "failed" {
            let error = status["error"].as_str().unwrap_or("");
            assert!(!error.is_empty(), "a failed task carries its error: {status}");
            continue;
        }
        let result = &status["result"];
        let is_obama = obama_tasks.contains(id.as_str());
        assert_eq!(result["recognized"], json!(is_obama), "{id}: {result}");
        if is_obama {
            assert_eq!(result["employee_id"], "OBAMA", "{result}");
        } else {
            assert_eq!(result["attendance_logged"], false, "a stranger is never logged: {result}");
        }
        if is_obama {
            assert_eq!(result["attendance_logged"], true, "no cooldown: every arrival is logged: {result}");
            logged_by.insert(id.clone(), result["attendance_id"].as_i64().expect("attendance_id"));
        }
    }
    assert!(rerun > 0, "no task was interrupted by the kill and run again");

    let db = Db::connect(&format!("sqlite://{}/rollcall.db", dir.path().join("data").display())).await.unwrap();
    let logs = attendance::for_user(&db, obama_id).await.unwrap();
    db.close().await;
    assert_eq!(logs.len(), logged_by.len(), "one attendance log per task that reported one");
    for log in &logs {
        let task = log.task_id.as_deref().expect("a face log names its task");
        assert_eq!(logged_by.get(task), Some(&log.id), "log {} belongs to the task that reported it", log.id);
    }
    println!(
        "done in {:.1} s: {rerun} task(s) re-run after the restart, {} failed",
        started.elapsed().as_secs_f64(),
        statuses.iter().filter(|s| s["status"] == "failed").count()
    );
}

//! Scale-out on real engines: two API instances (`rollcall serve --no-workers`) and two
//! workers (`rollcall worker`) as separate processes of one deployment — one database
//! (PostgreSQL when `ROLLCALL_TEST_POSTGRES_URL` is set), one RabbitMQ under a queue
//! prefix of the test's own, one Redis under a key prefix of its own. Tasks submitted
//! through either instance run on the workers exactly once, through a worker killed
//! mid-burst and the broker closing every connection mid-burst; arrivals verified through
//! one instance reach a live-event client of the other; one caller's rate limit is shared.
//!
//! Needs `ROLLCALL_TEST_AMQP_URL` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `ROLLCALL_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`) and `rabbitmqctl` on the
//! machine (to close connections and remove the test's queues); without the URLs it says
//! so and passes (`make test` needs neither; `.ci/run` sets them).

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;
use rollcall_server::store::{Db, attendance};
use serde_json::{Value, json};
use support::{Client, Server, admin, enroll_obama, fixture, jpeg_data_uri, shared_database};

const PHOTOS: usize = 100;
const BURST: usize = 30;
/// Submissions in flight at once.
const IN_FLIGHT: usize = 8;

fn test_engines() -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|url| !url.is_empty());
    let engines = var("ROLLCALL_TEST_AMQP_URL").zip(var("ROLLCALL_TEST_REDIS_URL"));
    if engines.is_none() {
        eprintln!(
            "skipped: set ROLLCALL_TEST_AMQP_URL (amqp://guest:guest@127.0.0.1:5672/%2f) and ROLLCALL_TEST_REDIS_URL (redis://127.0.0.1:6379)"
        );
    }
    engines
}

/// The `data` of the next `count` events of `kind` on a Server-Sent Events stream.
async fn next_events(stream: &mut reqwest::Response, kind: &str, count: usize) -> Vec<Value> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let mut lagged = Vec::new();
    let read = async {
        while events.len() < count {
            let chunk = stream.chunk().await.expect("stream readable").expect("stream still open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    message.lines().find_map(|line| line.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned()))
                };
                match field("event") {
                    Some(event) if event == kind => events.push(serde_json::from_str(&field("data").unwrap()).unwrap()),
                    Some(event) if event == "lagged" => lagged.push(field("data").unwrap()),
                    _ => {}
                }
            }
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(30), read).await;
    assert!(done.is_ok(), "{} of {count} {kind} events arrived (lagged: {lagged:?})", events.len());
    events
}

fn rabbitmqctl(args: &[&str]) -> String {
    let output = std::process::Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl runs");
    assert!(output.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Closes, from the broker's side, every connection of the deployment named `prefix`.
fn close_connections(prefix: &str) -> usize {
    let listed = rabbitmqctl(&["list_connections", "--no-table-headers", "--quiet", "pid", "client_properties"]);
    let ours: Vec<&str> =
        listed.lines().filter(|line| line.contains(prefix)).filter_map(|line| line.split_whitespace().next()).collect();
    for pid in &ours {
        rabbitmqctl(&["close_connection", pid, "scale-out test: broker restart"]);
    }
    ours.len()
}

/// The broker's queues of the deployment named by the prefix, deleted when dropped (also
/// when the test fails).
struct TestQueues(String);

impl Drop for TestQueues {
    fn drop(&mut self) {
        let listed = rabbitmqctl(&["list_queues", "--no-table-headers", "--quiet", "name"]);
        for name in listed.lines().map(str::trim).filter(|name| name.starts_with(&self.0)) {
            rabbitmqctl(&["delete_queue", name]);
        }
    }
}

/// Submits one verification, retrying while the service answers 503 (the broker is
/// away, or the queue is full), as a kiosk would; returns the task id and the 503s seen.
async fn submit(session: &Client, photo: &str) -> (String, usize) {
    let body = json!({"image": photo, "camera_id": "CAM001"});
    for refused in 0.. {
        let (status, submitted) = session.post_json("/face/verify/", &body).await;
        match status {
            202 => return (submitted["task_id"].as_str().unwrap().to_owned(), refused),
            503 => tokio::time::sleep(Duration::from_millis(300)).await,
            _ => panic!("submitting a verification: {status} {submitted}"),
        }
    }
    unreachable!()
}

async fn finished(session: &Client, task_id: &str) -> Value {
    let path = format!("/face/verify/status/{task_id}/");
    tokio::time::timeout(Duration::from_secs(180), session.wait_until_finished(&path))
        .await
        .unwrap_or_else(|_| panic!("task {task_id} did not finish"))
}

/// Submits `photos` through `session`, `IN_FLIGHT` at a time; returns the task ids as
/// they were accepted, and the 503s clients saw.
async fn submit_all(session: &Client, photos: Vec<&'static str>) -> (Vec<String>, usize) {
    let accepted: Vec<(String, usize)> =
        futures::stream::iter(photos).map(|photo| submit(session, photo)).buffer_unordered(IN_FLIGHT).collect().await;
    let refused = accepted.iter().map(|(_, refused)| refused).sum();
    (accepted.into_iter().map(|(id, _)| id).collect(), refused)
}

async fn all_finished(session: &Client, ids: &[String]) -> Vec<Value> {
    futures::stream::iter(ids).map(|id| finished(session, id)).buffer_unordered(IN_FLIGHT).collect().await
}

/// Every task completed, on its first attempt unless `retried_allowed`, and recognised
/// Obama exactly when the photo was his.
fn assert_completed(statuses: &[Value], retried_allowed: bool) {
    for status in statuses {
        assert_eq!(status["status"], "completed", "{status}");
        if !retried_allowed {
            assert_eq!(status["attempts"], 1, "ran once: {status}");
        }
    }
}

/// Each task that logged an arrival logged it once: one row per task, and no row of a
/// task that says it logged none.
async fn assert_logged_once_per_arrival(database_url: &str, statuses: &[Value]) {
    let db = Db::connect(database_url).await.unwrap();
    let obama = rollcall_server::store::users::find_by_employee_id(&db, "OBAMA").await.unwrap().unwrap();
    let logs = attendance::for_user(&db, obama.id).await.unwrap();
    db.close().await;
    let mut per_task = std::collections::HashMap::<String, usize>::new();
    for log in &logs {
        *per_task.entry(log.task_id.clone().expect("a verification's log names its task")).or_default() += 1;
    }
    assert!(per_task.values().all(|&rows| rows == 1), "an arrival was logged twice: {per_task:?}");
    let logged: HashSet<String> = statuses
        .iter()
        .filter(|status| status["result"]["attendance_logged"] == true)
        .map(|status| status["task_id"].as_str().unwrap().to_owned())
        .collect();
    let stored: HashSet<String> = per_task.keys().cloned().collect();
    assert_eq!(stored, logged, "the stored arrivals are the ones the tasks reported");
}

async fn start(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    Server::start_as_logging_to(&home, args, env, &dir.join(format!("{name}.log"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_instances_and_workers_on_rabbitmq_run_every_task_exactly_once() {
    let Some((amqp_url, redis_url)) = test_engines() else { return };
    let dir = tempfile::tempdir().unwrap();
    let database_url = shared_database(dir.path()).await;
    let prefix = format!("test-{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let _queues = TestQueues(prefix.clone());
    let redis_prefix = format!("rollcall-test:{prefix}");
    let data_key = rollcall_server::crypto::Sealer::generate_key();
    let env = [
        ("ROLLCALL_DATABASE_URL", database_url.as_str()),
        ("ROLLCALL_DATA_KEY", data_key.as_str()),
        ("ROLLCALL_AMQP_URL", amqp_url.as_str()),
        ("ROLLCALL_AMQP_QUEUE_PREFIX", prefix.as_str()),
        ("ROLLCALL_REDIS_URL", redis_url.as_str()),
        ("ROLLCALL_REDIS_KEY_PREFIX", redis_prefix.as_str()),
        ("ROLLCALL_TASK_WORKERS", "2"),
        // A killed worker's tasks are taken over once their lease expires.
        ("ROLLCALL_TASK_LEASE_SECS", "3"),
        // Every recognised photo is an arrival of its own, so a task run twice would show.
        ("ROLLCALL_ATTENDANCE_COOLDOWN_SECS", "0"),
        ("ROLLCALL_MAX_QUEUE_WAIT_SECS", "600"),
        ("ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS", "100000"),
        ("ROLLCALL_RATE_LIMIT_TASK_STATUS_REQUESTS", "100000"),
        ("ROLLCALL_RATE_LIMIT_GENERAL_REQUESTS", "100000"),
        // Small enough to spend from the test, counted across both instances.
        ("ROLLCALL_RATE_LIMIT_REPORTS_REQUESTS", "6"),
        ("ROLLCALL_RATE_LIMIT_REPORTS_PER_SECS", "3600"),
    ];
    let api_a = start(dir.path(), "api-a", &["serve", "--no-workers"], &env).await;
    let api_b = start(dir.path(), "api-b", &["serve", "--no-workers"], &env).await;
    let mut worker_1 = start(dir.path(), "worker-1", &["worker"], &env).await;
    let _worker_2 = start(dir.path(), "worker-2", &["worker"], &env).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let (session_a, session_b) = (admin(&api_a, &http).await, admin(&api_b, &http).await);

    let health = session_a.get("/system/health/").await;
    assert_eq!(health["services"]["task_queue"]["backend"], "rabbitmq", "{health}");
    assert_eq!(health["services"]["rabbitmq"]["status"], "healthy", "{health}");
    assert_eq!(health["services"]["rabbitmq"]["consumers"]["verify"], 2, "one consumer per worker process: {health}");
    assert_eq!(health["services"]["redis"]["status"], "healthy", "{health}");

    // Enrolled through A: the enrollment runs on a worker, and both workers know him.
    enroll_obama(&session_a).await;
    let obama: &'static str = jpeg_data_uri(&fixture("obama3.jpg")).leak();
    let stranger: &'static str = jpeg_data_uri(&fixture("biden.jpg")).leak();
    let photos = (0..PHOTOS).map(|n| if n % 5 == 4 { stranger } else { obama }).collect();
    let mut live_on_a = http
        .get(format!("{}/api/v1/events/", api_a.base))
        .header("authorization", &session_a.authorization)
        .send()
        .await
        .unwrap();
    assert_eq!(live_on_a.status(), 200);
    let (ids, _) = submit_all(&session_b, photos).await;
    let mut statuses = all_finished(&session_b, &ids).await;
    assert_completed(&statuses, false);
    let recognised = statuses.iter().filter(|status| status["result"]["employee_id"] == "OBAMA").count();
    assert_eq!(recognised, PHOTOS * 4 / 5, "Obama's photos are his, Biden's are nobody's");
    assert!(
        statuses
            .iter()
            .all(|status| status["result"]["employee_id"] != "OBAMA" || status["result"]["attendance_logged"] == true),
        "each of Obama's photos is an arrival (no cooldown)"
    );
    // Verified through B on the workers, seen live on A, each once.
    let seen: Vec<i64> = next_events(&mut live_on_a, "attendance_logged", recognised)
        .await
        .iter()
        .map(|event| event["data"]["attendance_id"].as_i64().unwrap())
        .collect();
    let logged: HashSet<i64> =
        statuses.iter().filter_map(|status| status["result"]["attendance_id"].as_i64()).collect();
    assert_eq!(seen.len(), logged.len(), "no arrival announced twice");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), logged, "A's live clients saw every arrival B verified");
    drop(live_on_a);

    // One caller's report quota (6 an hour) is spent across both instances.
    let report = |session: &Client| {
        let (http, base, authorization) = (session.http.clone(), session.base.clone(), session.authorization.clone());
        async move {
            let url = format!("{base}/api/v1/reports/attendance/");
            http.get(url).header("authorization", authorization).send().await.unwrap().status().as_u16()
        }
    };
    let mut answers = Vec::new();
    for session in [&session_a, &session_b, &session_a, &session_b, &session_a, &session_b, &session_a, &session_b] {
        answers.push(report(session).await);
    }
    assert_eq!(answers, [200, 200, 200, 200, 200, 200, 429, 429], "the quota holds across both instances");

    // An API key revoked through A is refused by B on its next request.
    let (status, key) = session_a.post_json("/auth/api-keys/", &json!({"name": "Door panel", "role": "admin"})).await;
    assert_eq!(status, 201, "{key}");
    let panel_on_b = Client { authorization: format!("Api-Key {}", key["key"].as_str().unwrap()), ..session_b.clone() };
    assert_eq!(panel_on_b.send(reqwest::Method::GET, "/auth/api-keys/", None).await.0, 200);
    let revoke = format!("/auth/api-keys/{}/", key["id"]);
    assert_eq!(session_a.send(reqwest::Method::DELETE, &revoke, None).await.0, 204);
    assert_eq!(
        panel_on_b.send(reqwest::Method::GET, "/auth/api-keys/", None).await.0,
        401,
        "revoked everywhere at once"
    );

    // A worker killed mid-burst: the other takes its tasks over, each still runs to
    // visible effect once.
    let (burst, _) = submit_all(&session_a, vec![obama; BURST]).await;
    let first = finished(&session_a, &burst[0]).await;
    assert_eq!(first["status"], "completed");
    worker_1.kill();
    let after_kill = all_finished(&session_a, &burst).await;
    assert_completed(&after_kill, true);
    statuses.extend(after_kill);

    // The broker closes every connection of the deployment mid-burst (the first task
    // done, the others queued or running); submissions while the instances reconnect get
    // 503 and are retried; every task that was accepted completes once.
    let (mut accepted, _) = submit_all(&session_b, vec![obama; BURST]).await;
    finished(&session_b, &accepted[0]).await;
    let closed = tokio::task::block_in_place(|| close_connections(&prefix));
    assert_eq!(closed, 3, "the connections of both API instances and the surviving worker were closed");
    let (during_reconnect, refused) = submit_all(&session_a, vec![obama; IN_FLIGHT]).await;
    eprintln!("{refused} submissions refused with 503 while the instances reconnected");
    accepted.extend(during_reconnect);
    let after_broker_restart = all_finished(&session_b, &accepted).await;
    assert_completed(&after_broker_restart, true);
    statuses.extend(after_broker_restart);
    let health = session_a.get("/system/health/").await;
    assert_eq!(health["services"]["rabbitmq"]["status"], "healthy", "reconnected: {health}");

    assert_logged_once_per_arrival(&database_url, &statuses).await;
    drop((api_a, api_b, worker_1));
}

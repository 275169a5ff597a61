//! Two `rollcall serve` processes of one deployment — one database (PostgreSQL when
//! `ROLLCALL_TEST_POSTGRES_URL` is set, else one SQLite file), one data key — verify the
//! same person at the same moment: one arrival is logged per cooldown, whichever process
//! and worker takes each task; and an enrollment, deactivation, reactivation or erasure
//! through one process reaches the other's matching index within a second or two.

mod support;

use std::time::Duration;

use rollcall_server::store::{Db, attendance};
use serde_json::{Value, json};
use support::{Server, admin, enroll_obama, fixture, jpeg_data_uri, shared_database};

const ARRIVALS_PER_PROCESS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_log_one_arrival_per_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = shared_database(dir.path()).await;
    let data_key = rollcall_server::crypto::Sealer::generate_key();
    let env = [
        ("ROLLCALL_DATABASE_URL", database_url.as_str()),
        ("ROLLCALL_DATA_KEY", data_key.as_str()),
        ("ROLLCALL_TASK_WORKERS", "2"),
    ];
    let (first_dir, second_dir) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir_all(&first_dir).unwrap();
    std::fs::create_dir_all(&second_dir).unwrap();
    let first = Server::start(&first_dir, &env).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let first_admin = admin(&first, &http).await;
    enroll_obama(&first_admin).await;
    // Started after the enrollment, the second process loads Obama's template at start.
    let second = Server::start(&second_dir, &env).await;
    let second_admin = admin(&second, &http).await;

    let photo: &'static str = jpeg_data_uri(&fixture("obama3.jpg")).leak();
    let arrivals: Vec<_> = (0..ARRIVALS_PER_PROCESS)
        .flat_map(|_| [first_admin.clone(), second_admin.clone()])
        .map(|session| {
            tokio::spawn(async move {
                let body = json!({"image": photo, "camera_id": "CAM001"});
                let (status, submitted) = session.post_json("/face/verify/", &body).await;
                assert_eq!(status, 202, "{submitted}");
                let path = format!("/face/verify/status/{}/", submitted["task_id"].as_str().unwrap());
                tokio::time::timeout(Duration::from_secs(120), session.wait_until_finished(&path)).await.unwrap()
            })
        })
        .collect();
    let mut logged = Vec::new();
    for arrival in arrivals {
        let status: Value = arrival.await.unwrap();
        assert_eq!(status["status"], "completed", "{status}");
        assert_eq!(status["result"]["employee_id"], "OBAMA", "{status}");
        if status["result"]["attendance_logged"] == true {
            logged.push(status["result"]["attendance_id"].clone());
        }
    }
    assert_eq!(logged.len(), 1, "one of {} simultaneous arrivals is logged: {logged:?}", 2 * ARRIVALS_PER_PROCESS);

    let db = Db::connect(&database_url).await.unwrap();
    let obama = rollcall_server::store::users::find_by_employee_id(&db, "OBAMA").await.unwrap().unwrap();
    let logs = attendance::for_user(&db, obama.id).await.unwrap();
    db.close().await;
    assert_eq!(logs.len(), 1, "one attendance log inside the cooldown: {logs:?}");
    assert_eq!(json!(logs[0].id), logged[0]);
    drop((first, second));
}

/// How long after a change through one process the other may still act on its old index:
/// the follower polls every 250 ms by default.
const INDEX_SYNC_DEADLINE: Duration = Duration::from_secs(2);

/// Verifies `photo` through `session` until it is `recognised` (or not), and fails when a
/// verification submitted [`INDEX_SYNC_DEADLINE`] after the start still says otherwise.
/// Verifications take their own time on a busy machine, so what is bounded is when the
/// last wrong answer was asked for, not when it came.
async fn wait_until_recognised(session: &support::Client, photo: &str, recognised: bool, change: &str) {
    let started = std::time::Instant::now();
    loop {
        let asked_after = started.elapsed();
        let body = json!({"image": photo, "camera_id": "CAM001"});
        let (status, submitted) = session.post_json("/face/verify/", &body).await;
        assert_eq!(status, 202, "{submitted}");
        let path = format!("/face/verify/status/{}/", submitted["task_id"].as_str().unwrap());
        let verified = tokio::time::timeout(Duration::from_secs(60), session.wait_until_finished(&path)).await.unwrap();
        assert_eq!(verified["status"], "completed", "{verified}");
        if verified["result"]["recognized"] == recognised {
            return;
        }
        assert!(
            asked_after < INDEX_SYNC_DEADLINE,
            "{change} through the first process had not reached the second after {asked_after:?}: {verified}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_the_enrolled_faces_reach_the_other_process_within_a_second_or_two() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = shared_database(dir.path()).await;
    let data_key = rollcall_server::crypto::Sealer::generate_key();
    let env = [
        ("ROLLCALL_DATABASE_URL", database_url.as_str()),
        ("ROLLCALL_DATA_KEY", data_key.as_str()),
        ("ROLLCALL_TASK_WORKERS", "1"),
    ];
    let (first_dir, second_dir) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir_all(&first_dir).unwrap();
    std::fs::create_dir_all(&second_dir).unwrap();
    let first = Server::start(&first_dir, &env).await;
    let second = Server::start(&second_dir, &env).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let (first_admin, second_admin) = (admin(&first, &http).await, admin(&second, &http).await);
    let photo = jpeg_data_uri(&fixture("obama3.jpg"));

    // Both processes loaded an empty index at start.
    enroll_obama(&first_admin).await;
    wait_until_recognised(&second_admin, &photo, true, "the enrollment").await;

    let db = Db::connect(&database_url).await.unwrap();
    let obama = rollcall_server::store::users::find_by_employee_id(&db, "OBAMA").await.unwrap().unwrap();
    db.close().await;
    let user = format!("/users/{}/", obama.id);
    let (status, body) = first_admin.send(reqwest::Method::DELETE, &user, None).await;
    assert_eq!(status, 204, "deactivating: {body}");
    wait_until_recognised(&second_admin, &photo, false, "the deactivation").await;

    let (status, body) = first_admin.send(reqwest::Method::PATCH, &user, Some(&json!({"is_active": true}))).await;
    assert_eq!(status, 200, "reactivating: {body}");
    wait_until_recognised(&second_admin, &photo, true, "the reactivation").await;

    let (status, body) = first_admin.send(reqwest::Method::DELETE, "/face/templates/OBAMA/", None).await;
    assert_eq!(status, 204, "erasing: {body}");
    wait_until_recognised(&second_admin, &photo, false, "the erasure").await;
    drop((first, second));
}

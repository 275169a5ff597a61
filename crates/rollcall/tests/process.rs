//! The `rollcall` binary as users run it: start, SIGKILL, restart, SIGTERM, and the
//! admin and migrate commands.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const ADMIN_EMAIL: &str = "admin@college.edu";
const ADMIN_PASSWORD: &str = "admin-password-1";

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rollcall(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .current_dir(data_dir)
        .env_remove("ROLLCALL_DATABASE_URL")
        .env("ROLLCALL_DATA_DIR", data_dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

async fn start(data_dir: &std::path::Path) -> Server {
    let port = free_port();
    let mut child = rollcall(data_dir)
        .arg("serve")
        .env("ROLLCALL_BIND", format!("127.0.0.1:{port}"))
        .env("ROLLCALL_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ROLLCALL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .spawn()
        .expect("rollcall starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Server { child, base };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("rollcall did not become ready on {base}");
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(format!("{base}/api/v1{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn login(base: &str, email: &str, password: &str) -> reqwest::Response {
    post(base, "/auth/login/", None, json!({"email": email, "password": password})).await
}

#[tokio::test]
async fn users_and_revocations_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path()).await;
    let admin: Value = login(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD).await.json().await.unwrap();
    let token = admin["access"].as_str().unwrap();
    let created = post(
        &server.base,
        "/users/",
        Some(token),
        json!({"employee_id": "STU1", "email": "stu1@college.edu", "role": "student", "password": "student-pass-1"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let session: Value = login(&server.base, "stu1@college.edu", "student-pass-1").await.json().await.unwrap();
    let revoked = session["refresh"].as_str().unwrap().to_owned();
    assert_eq!(post(&server.base, "/auth/logout/", None, json!({"refresh": revoked})).await.status(), 204);
    let live: Value = login(&server.base, "stu1@college.edu", "student-pass-1").await.json().await.unwrap();

    server.child.kill().unwrap(); // SIGKILL: no chance to flush anything
    server.child.wait().unwrap();

    let mut server = start(dir.path()).await;
    assert_eq!(
        login(&server.base, "stu1@college.edu", "student-pass-1").await.status(),
        200,
        "the user is still there"
    );
    let refused = post(&server.base, "/auth/refresh/", None, json!({"refresh": revoked})).await;
    assert_eq!(refused.status(), 401, "the revocation is still there");
    let rotated = post(&server.base, "/auth/refresh/", None, json!({"refresh": live["refresh"]})).await;
    assert_eq!(rotated.status(), 200, "the live session survives: the JWT secret was kept");
    let admins = reqwest::Client::new()
        .get(format!("{}/api/v1/users/?role=admin", server.base))
        .bearer_auth(admin["access"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let admins: Value = admins.json().await.unwrap();
    assert_eq!(admins["count"], 1, "the bootstrap admin is created once");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path()).await;
    let status = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "rollcall exited with {exit}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.child.kill().unwrap();
    panic!("rollcall did not stop within 10 s of SIGTERM");
}

#[test]
fn admin_create_and_migrate_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = rollcall(dir.path()).arg("migrate").status().unwrap();
    assert!(migrate.success());
    let create = |email: &str| {
        rollcall(dir.path())
            .args(["admin", "create", "--email", email, "--first-name", "Ada"])
            .env("ROLLCALL_NEW_ADMIN_PASSWORD", "a-long-password")
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    assert!(create("ada@college.edu").status.success());
    let duplicate = create("ADA@college.edu");
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let short = rollcall(dir.path())
        .args(["admin", "create", "--email", "x@college.edu", "--password", "short"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
}

#[test]
fn serve_refuses_a_bad_recognition_setting_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("curve.json"), r#"{"start": 0}"#).unwrap();
    let serve = |key: &str, value: &str| {
        let output = rollcall(dir.path())
            .arg("serve")
            .env("ROLLCALL_BIND", format!("127.0.0.1:{}", free_port()))
            .env(key, value)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{key}={value} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = serve("ROLLCALL_CALIBRATION_CURVE", "no-such-curve.json");
    assert!(missing.contains("calibration curve no-such-curve.json"), "{missing}");
    let invalid = serve("ROLLCALL_CALIBRATION_CURVE", "curve.json");
    assert!(invalid.contains("not a calibration curve"), "{invalid}");
    let rate = serve("ROLLCALL_MAX_FALSE_ACCEPT_RATE", "1.5");
    assert!(rate.contains("max_false_accept_rate must be in (0, 1)"), "{rate}");
}

#[tokio::test]
async fn rotate_data_key_replaces_the_key_and_the_server_starts_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path()).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let key_file = dir.path().join("data").join("data_key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    let rotated = rollcall(dir.path()).arg("rotate-data-key").stdout(Stdio::piped()).output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stdout));
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("data key rotated"));
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(new_key.split_whitespace().count(), 1);
    assert_ne!(new_key.trim(), old_key.trim());

    let configured = rollcall(dir.path())
        .arg("rotate-data-key")
        .env("ROLLCALL_DATA_KEY", new_key.trim())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!configured.status.success());
    assert!(String::from_utf8_lossy(&configured.stderr).contains("ROLLCALL_DATA_KEY"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), new_key, "a refused rotation changes nothing");

    let mut server = start(dir.path()).await;
    let login = login(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(login.status(), 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

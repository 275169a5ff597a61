//! What the binary's integration tests share: the workspace's models and test photos,
//! a `rollcall serve` process of their own, and an API session on it.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@college.edu";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

fn workspace_path(env: &str, relative: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative))
}

/// A test photo's bytes (fetched by `make fixtures`).
pub fn fixture(name: &str) -> Vec<u8> {
    let dir = workspace_path("ROLLCALL_FIXTURES_DIR", "fixtures").join("images");
    std::fs::read(dir.join(name))
        .unwrap_or_else(|e| panic!("{name} missing in {} ({e}): run `make fixtures`", dir.display()))
}

pub fn jpeg_data_uri(jpeg: &[u8]) -> String {
    format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg))
}

/// A database for several processes of one deployment: a fresh PostgreSQL schema when
/// `ROLLCALL_TEST_POSTGRES_URL` is set, else a SQLite file in `dir`.
pub async fn shared_database(dir: &Path) -> String {
    let Some(base) = std::env::var("ROLLCALL_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty()) else {
        return format!("sqlite://{}/shared.db", dir.display());
    };
    let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base).await.expect("cannot reach ROLLCALL_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.expect("create schema");
    pool.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

fn models_dir() -> PathBuf {
    let dir = workspace_path("ROLLCALL_MODELS_DIR", "data/models");
    for model in [rollcall_face::detect::YUNET_FILE, rollcall_face::embed::SFACE_FILE] {
        assert!(dir.join(model).is_file(), "{model} missing in {}: run `make models`", dir.display());
    }
    dir
}

/// A running `rollcall serve`; SIGKILLed when dropped, so a failing test leaves no process.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts on a free port with its data in `dir`, the real models, the bootstrap admin,
    /// and `env` on top; returns once it is ready.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_with_output(dir, &["serve"], env, Stdio::null(), Stdio::null(), "/readyz").await
    }

    /// [`Server::start`] that returns once it answers `/healthz`, ready or not (an engine
    /// it needs may be down).
    pub async fn start_alive(dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_with_output(dir, &["serve"], env, Stdio::null(), Stdio::null(), "/healthz").await
    }

    /// [`Server::start`], with everything the server prints (its log) written to `log`.
    pub async fn start_logging_to(dir: &Path, env: &[(&str, &str)], log: &Path) -> Server {
        Self::start_as_logging_to(dir, &["serve"], env, log).await
    }

    /// [`Server::start_logging_to`] with another command line, e.g. `["worker"]` or
    /// `["serve", "--no-workers"]`.
    pub async fn start_as_logging_to(dir: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).unwrap();
        let copy = file.try_clone().unwrap();
        Self::start_with_output(dir, args, env, Stdio::from(file), Stdio::from(copy), "/readyz").await
    }

    async fn start_with_output(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
        stderr: Stdio,
        probe: &str,
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args(args)
            .current_dir(dir)
            .env_remove("ROLLCALL_DATABASE_URL")
            .env("ROLLCALL_DATA_DIR", dir.join("data"))
            .env("ROLLCALL_MODELS_DIR", models_dir())
            .env("ROLLCALL_BIND", format!("127.0.0.1:{port}"))
            .env("ROLLCALL_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ROLLCALL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("rollcall starts");
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let ready = client.get(format!("{}{probe}", server.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            if let Some(exit) = server.child.try_wait().unwrap() {
                panic!("rollcall serve exited with {exit} before it was ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rollcall did not answer {probe} on {} within 30 s", server.base);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no graceful shutdown, no flushing
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One caller's session: the admin's bearer token or a kiosk's API key.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub authorization: String,
}

impl Client {
    pub async fn post(&self, path: &str, body: reqwest::Body) -> reqwest::Response {
        let request =
            self.http.post(format!("{}/api/v1{path}", self.base)).header("authorization", &self.authorization);
        let request = request.header("content-type", "application/json").body(body);
        request.send().await.unwrap_or_else(|e| panic!("POST {path}: {e:?}"))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.post(path, body.to_string().into()).await;
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Sends `method` with a JSON body (or none); the status and the body, if JSON.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .header("authorization", &self.authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let response =
            self.http.get(format!("{}/api/v1{path}", self.base)).header("authorization", &self.authorization);
        let response = response.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn wait_until_finished(&self, path: &str) -> Value {
        loop {
            let status = self.get(path).await;
            if matches!(status["status"].as_str(), Some("completed" | "failed")) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub async fn admin(server: &Server, http: &reqwest::Client) -> Client {
    let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    let response = http.post(format!("{}/api/v1/auth/login/", server.base)).json(&login).send().await.unwrap();
    assert_eq!(response.status(), 200, "admin login");
    let token = response.json::<Value>().await.unwrap()["access"].as_str().unwrap().to_owned();
    Client { http: http.clone(), base: server.base.clone(), authorization: format!("Bearer {token}") }
}

/// Creates Obama and enrolls him from two photos.
pub async fn enroll_obama(admin: &Client) {
    let user = json!({
        "employee_id": "OBAMA", "email": "obama@college.edu", "first_name": "Barack", "last_name": "Obama",
        "role": "faculty", "department": "Government", "password": "obama-password-1",
    });
    let (status, created) = admin.post_json("/users/", &user).await;
    assert_eq!(status, 201, "creating the user: {created}");
    let photos = [jpeg_data_uri(&fixture("obama.jpg")), jpeg_data_uri(&fixture("obama2.jpg"))];
    let (status, submitted) =
        admin.post_json("/face/enroll/", &json!({"employee_id": "OBAMA", "images": photos})).await;
    assert_eq!(status, 202, "enrolling: {submitted}");
    let path = format!("/face/enroll/status/{}/", submitted["task_id"].as_str().unwrap());
    let enrolled = tokio::time::timeout(Duration::from_secs(120), admin.wait_until_finished(&path)).await;
    let enrolled = enrolled.expect("the enrollment finishes");
    assert_eq!(enrolled["result"]["template_created"], true, "{enrolled}");
}

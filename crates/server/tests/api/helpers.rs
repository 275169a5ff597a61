//! `spawn_app()`: the real server on a free port against a fresh database — SQLite in a
//! temporary directory, or a new PostgreSQL schema when `ROLLCALL_TEST_POSTGRES_URL` is set.

use std::sync::Once;

use reqwest::{Client, Method, Response, StatusCode};
use rollcall_server::Config;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "admin@college.edu";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "user-password-1";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub admin_token: String,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    /// What the server was started with (see [`TestApp::restart_with`]).
    pub config: Config,
    engine: Option<std::sync::Arc<rollcall_face::FaceEngine>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Dropping the app drops this sender, which shuts the server down.
    shutdown: oneshot::Sender<()>,
}

/// A person created through the API, logged in.
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub token: String,
}

static SKIP_NOTICE: Once = Once::new();

pub fn backend() -> &'static str {
    if std::env::var("ROLLCALL_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        "postgres"
    } else {
        SKIP_NOTICE.call_once(|| {
            eprintln!("note: ROLLCALL_TEST_POSTGRES_URL is unset: PostgreSQL runs are skipped; testing on SQLite");
        });
        "sqlite"
    }
}

/// A database URL of its own for one test.
pub async fn fresh_database_url(data_dir: &std::path::Path) -> String {
    match std::env::var("ROLLCALL_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty()) {
        Some(base) => {
            let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&base).await.expect("cannot reach ROLLCALL_TEST_POSTGRES_URL");
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.expect("create schema");
            pool.close().await;
            let separator = if base.contains('?') { '&' } else { '?' };
            format!("{base}{separator}options=-c%20search_path%3D{schema}")
        }
        None => {
            backend();
            format!("sqlite://{}/rollcall.db", data_dir.display())
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn(customise, None, None).await
}

/// `spawn_app_with`, with the real face engine (loaded once per test binary).
pub async fn spawn_face_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn(customise, Some(face_engine()), None).await
}

/// A second server of the same deployment as `other`: its own process state (pools,
/// index, workers), the same database and data key.
pub async fn spawn_face_app_beside(other: &TestApp, customise: impl FnOnce(&mut Config)) -> TestApp {
    let key = std::fs::read_to_string(other.data_dir.path().join("data_key")).expect("the first server's data key");
    let shared = |config: &mut Config| {
        config.data_key = Some(key.trim().to_owned().into());
        customise(config);
    };
    spawn(shared, Some(face_engine()), Some(other.database_url.clone())).await
}

/// A database (fresh unless given), the bootstrap admin, and quotas no test reaches unless
/// it lowers them.
async fn spawn(
    customise: impl FnOnce(&mut Config),
    engine: Option<std::sync::Arc<rollcall_face::FaceEngine>>,
    database_url: Option<String>,
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database_url = match database_url {
        Some(url) => url,
        None => fresh_database_url(data_dir.path()).await,
    };
    let mut config = test_config(data_dir.path(), database_url);
    customise(&mut config);
    start(config, data_dir, engine).await
}

/// The configuration every test server starts from: the bootstrap admin, two workers, and
/// quotas no test reaches unless it lowers them.
pub fn test_config(data_dir: &std::path::Path, database_url: String) -> Config {
    let mut config = Config::with_data_dir(data_dir);
    config.database_url = Some(database_url);
    config.admin_email = Some(ADMIN_EMAIL.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.rate_limit_general_requests = 100_000;
    config.rate_limit_auth_requests = 10_000;
    config.rate_limit_auth_ip_requests = 10_000;
    config.rate_limit_session_requests = 10_000;
    config.rate_limit_face_verification_requests = 100_000;
    config.rate_limit_task_status_requests = 100_000;
    config.rate_limit_reports_requests = 100_000;
    config.task_workers = 2;
    config
}

/// Puts every rate-limit quota back to the shipped defaults (`spawn_app` raises them).
pub fn default_quotas(config: &mut Config) {
    let defaults = Config::with_data_dir(&config.data_dir);
    config.rate_limit_enabled = defaults.rate_limit_enabled;
    config.rate_limit_auth_requests = defaults.rate_limit_auth_requests;
    config.rate_limit_auth_per_secs = defaults.rate_limit_auth_per_secs;
    config.rate_limit_auth_ip_requests = defaults.rate_limit_auth_ip_requests;
    config.rate_limit_auth_ip_per_secs = defaults.rate_limit_auth_ip_per_secs;
    config.rate_limit_session_requests = defaults.rate_limit_session_requests;
    config.rate_limit_session_per_secs = defaults.rate_limit_session_per_secs;
    config.rate_limit_face_verification_requests = defaults.rate_limit_face_verification_requests;
    config.rate_limit_face_verification_per_secs = defaults.rate_limit_face_verification_per_secs;
    config.rate_limit_task_status_requests = defaults.rate_limit_task_status_requests;
    config.rate_limit_task_status_per_secs = defaults.rate_limit_task_status_per_secs;
    config.rate_limit_reports_requests = defaults.rate_limit_reports_requests;
    config.rate_limit_reports_per_secs = defaults.rate_limit_reports_per_secs;
    config.rate_limit_general_requests = defaults.rate_limit_general_requests;
    config.rate_limit_general_per_secs = defaults.rate_limit_general_per_secs;
}

pub async fn spawn_face_app() -> TestApp {
    spawn_face_app_with(|_| {}).await
}

fn workspace_dir(env: &str, relative: &str) -> std::path::PathBuf {
    std::env::var_os(env)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative))
}

/// The engine with the real models, shared by every test of this binary.
pub fn face_engine() -> std::sync::Arc<rollcall_face::FaceEngine> {
    static ENGINE: std::sync::OnceLock<std::sync::Arc<rollcall_face::FaceEngine>> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let models = workspace_dir("ROLLCALL_MODELS_DIR", "data/models");
            let config = rollcall_face::EngineConfig::new(&models);
            let engine = rollcall_face::FaceEngine::load(&config)
                .unwrap_or_else(|e| panic!("face models missing in {} ({e}): run `make models`", models.display()));
            std::sync::Arc::new(engine)
        })
        .clone()
}

/// A server whose engine judges every face a spoof (liveness threshold 1): how tests
/// see what a presentation attack sets off.
pub async fn spawn_app_refusing_every_face(customise: impl FnOnce(&mut Config)) -> TestApp {
    static ENGINE: std::sync::OnceLock<std::sync::Arc<rollcall_face::FaceEngine>> = std::sync::OnceLock::new();
    let engine = ENGINE
        .get_or_init(|| {
            let mut config = rollcall_face::EngineConfig::new(workspace_dir("ROLLCALL_MODELS_DIR", "data/models"));
            config.anti_spoof_threshold = Some(1.0);
            std::sync::Arc::new(rollcall_face::FaceEngine::load(&config).expect("the face models load"))
        })
        .clone();
    spawn(customise, Some(engine), None).await
}

/// A test photo's bytes (face_recognition 1.3.0's test images, fetched by `make fixtures`).
pub fn fixture(name: &str) -> Vec<u8> {
    let dir = workspace_dir("ROLLCALL_FIXTURES_DIR", "fixtures").join("images");
    std::fs::read(dir.join(name))
        .unwrap_or_else(|e| panic!("{name} missing in {} ({e}): run `make fixtures`", dir.display()))
}

pub fn data_uri(bytes: &[u8], mime: &str) -> String {
    use base64::Engine as _;
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

pub fn photo(name: &str) -> String {
    data_uri(&fixture(name), if name.ends_with(".png") { "image/png" } else { "image/jpeg" })
}

async fn start(
    config: Config,
    data_dir: tempfile::TempDir,
    engine: Option<std::sync::Arc<rollcall_face::FaceEngine>>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let database_url = config.database_url.clone().unwrap_or_default();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(rollcall_server::run_with_engine(
        config.clone(),
        listener,
        async move {
            let _ = shutdown_rx.await;
        },
        engine.clone(),
    ));
    let client = Client::builder().user_agent("rollcall-tests/1.0").build().unwrap();
    wait_until_ready(&client, &address, &server).await;
    let mut app = TestApp {
        address,
        client,
        admin_token: String::new(),
        data_dir,
        database_url,
        config,
        engine,
        server,
        shutdown: shutdown_tx,
    };
    app.admin_token = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await["access"].as_str().unwrap().to_owned();
    app
}

async fn wait_until_ready(client: &Client, address: &str, server: &tokio::task::JoinHandle<anyhow::Result<()>>) {
    for _ in 0..200 {
        if server.is_finished() {
            panic!("the server stopped during start-up");
        }
        if client.get(format!("{address}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

/// A server that was stopped, with its data kept for the next start.
pub struct StoppedApp {
    pub data_dir: tempfile::TempDir,
    pub config: Config,
    engine: Option<std::sync::Arc<rollcall_face::FaceEngine>>,
}

impl StoppedApp {
    /// Starts a server again on the same data directory and database.
    pub async fn start_with(self, customise: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config;
        customise(&mut config);
        start(config, self.data_dir, self.engine).await
    }
}

impl TestApp {
    /// Shuts the server down and waits until it has stopped.
    pub async fn stop(self) -> StoppedApp {
        let TestApp { data_dir, config, engine, server, shutdown, .. } = self;
        drop(shutdown);
        server.await.expect("the server task").expect("the server stopped cleanly");
        StoppedApp { data_dir, config, engine }
    }

    /// Stops the server and starts it again on the same data, with `customise`d settings.
    pub async fn restart_with(self, customise: impl FnOnce(&mut Config)) -> TestApp {
        self.stop().await.start_with(customise).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.address, path)
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Logs in and returns the response body; panics unless 200.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self.post("/auth/login/", None, json!({"email": email, "password": password})).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {email} failed");
        response.json().await.unwrap()
    }

    pub async fn create_user(&self, employee_id: &str, role: &str, department: &str) -> TestUser {
        let email = format!("{}@college.edu", employee_id.to_lowercase());
        let body = json!({
            "employee_id": employee_id, "email": email, "first_name": "Test", "last_name": employee_id,
            "role": role, "department": department, "password": PASSWORD,
        });
        let response = self.post("/users/", Some(&self.admin_token), body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "creating {employee_id}: {}",
            response.text().await.unwrap()
        );
        let user: Value = response.json().await.unwrap();
        let token = self.login(&email, PASSWORD).await["access"].as_str().unwrap().to_owned();
        TestUser { id: user["id"].as_i64().unwrap(), email, token }
    }

    /// Creates an API key with `role` and returns the key.
    pub async fn create_api_key(&self, name: &str, role: &str) -> String {
        let response = self.post("/auth/api-keys/", Some(&self.admin_token), json!({"name": name, "role": role})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// Audit entries for `action`, newest first.
    pub async fn audit_entries(&self, action: &str) -> Vec<Value> {
        let response =
            self.get(&format!("/security/audit-logs/?action={action}&page_size=100"), &self.admin_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["results"].as_array().unwrap().clone()
    }
}

/// Submits and waits for the task's result (`?wait=true`), failing on anything but 200.
pub async fn run_task(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let response = app.post(&format!("{path}?wait=true"), Some(token), body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(body["status"], "completed", "{path}: {body}");
    body
}

/// Asserts the API's error shape and returns its code.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body.get("error").unwrap_or_else(|| panic!("no error object in {body}"));
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    error["code"].as_str().expect("error code").to_owned()
}

/// The message of an error response.
pub async fn error_message(response: Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error message in {body}")).to_owned()
}

//! What the binary's integration tests share: the workspace's models and test photos, and
//! a `rollcall serve` process of their own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

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
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("serve")
            .current_dir(dir)
            .env_remove("ROLLCALL_DATABASE_URL")
            .env("ROLLCALL_DATA_DIR", dir.join("data"))
            .env("ROLLCALL_MODELS_DIR", models_dir())
            .env("ROLLCALL_BIND", format!("127.0.0.1:{port}"))
            .env("ROLLCALL_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ROLLCALL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rollcall starts");
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let ready = client.get(format!("{}/readyz", server.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            if let Some(exit) = server.child.try_wait().unwrap() {
                panic!("rollcall serve exited with {exit} before it was ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rollcall did not become ready on {} within 30 s", server.base);
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

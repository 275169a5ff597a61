//! An RTSP camera watched by a real `rollcall serve`: GStreamer's RTSP server on
//! 127.0.0.1 plays an H.264 scene made from test photos, over and over — an empty doorway,
//! an enrolled person for three seconds, the doorway, a stranger for three seconds. The
//! person is logged exactly once from the camera (their second walk-past falls within the
//! cooldown), the stranger never: they become one unknown visitor, the same id on both
//! passes; stopping the stream marks the camera offline and
//! starting it again brings it back online.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, Server, admin, enroll_obama, fixture};

const FPS: u32 = 5;
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

/// `photo` fitted into the camera's frame on a grey background (an empty doorway when `None`).
fn camera_frame(photo: Option<&[u8]>) -> image::RgbImage {
    let mut frame = image::RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([96, 100, 104]));
    if let Some(photo) = photo {
        let photo = image::load_from_memory(photo).unwrap().to_rgb8();
        let fitted = image::imageops::resize(
            &photo,
            (photo.width() * HEIGHT / photo.height()).min(WIDTH),
            HEIGHT.min(photo.height() * WIDTH / photo.width()),
            image::imageops::FilterType::Triangle,
        );
        let x = (WIDTH - fitted.width()) / 2;
        let y = (HEIGHT - fitted.height()) / 2;
        image::imageops::overlay(&mut frame, &fitted, i64::from(x), i64::from(y));
    }
    frame
}

/// Writes the scene's frames; returns how long one pass lasts.
fn write_scene(dir: &Path) -> Duration {
    let doorway = camera_frame(None);
    let person = camera_frame(Some(&fixture("obama.jpg")));
    let stranger = camera_frame(Some(&fixture("biden.jpg")));
    let seconds: [(&image::RgbImage, u32); 5] =
        [(&doorway, 2), (&person, 3), (&doorway, 3), (&stranger, 3), (&doorway, 3)];
    let mut n = 0;
    for (frame, secs) in seconds {
        for _ in 0..secs * FPS {
            frame.save(dir.join(format!("frame-{n:05}.jpg"))).unwrap();
            n += 1;
        }
    }
    Duration::from_secs(u64::from(n / FPS))
}

/// GStreamer's RTSP server playing the scene; killed when dropped.
struct RtspCamera(Child);

impl RtspCamera {
    async fn start(port: u16, frames: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rtsp-test-camera.py");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(frames)
            .arg(FPS.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("the RTSP camera needs Debian's python3-gi and GStreamer: run `make test-tools`");
        let mut camera = Self(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return camera;
            }
            if let Some(exit) = camera.0.try_wait().unwrap() {
                panic!("the RTSP camera exited with {exit}: run `make test-tools`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the RTSP camera did not listen on {port}");
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn health(admin: &Client) -> Value {
    admin.get("/cameras/CAM-RTSP/health/").await
}

async fn wait_for(what: &str, admin: &Client, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..240 {
        let health = health(admin).await;
        if check(&health) {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: not within a minute: {}", health(admin).await);
}

#[tokio::test]
async fn an_rtsp_camera_logs_the_person_once_the_stranger_never_and_follows_the_stream() {
    let frames = tempfile::tempdir().unwrap();
    let pass = write_scene(frames.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let camera = RtspCamera::start(port, frames.path()).await;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("ROLLCALL_ATTENDANCE_COOLDOWN_SECS", "600"), ("ROLLCALL_CAMERA_RECONNECT_MAX_SECS", "2")],
    )
    .await;
    let http = reqwest::Client::new();
    let admin = admin(&server, &http).await;
    enroll_obama(&admin).await;
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let body = json!({"id": "CAM-RTSP", "name": "North door", "rtsp_url": url, "sample_fps": 4});
    let (status, created) = admin.post_json("/cameras/", &body).await;
    assert_eq!(status, 201, "{created}");

    let online = wait_for("the camera comes online", &admin, |h| {
        h["status"] == "online" && h["frames_sampled"].as_u64() > Some(4)
    })
    .await;
    assert_eq!(online["codec"], "h264");
    assert_eq!(online["resolution"], format!("{WIDTH}x{HEIGHT}"));
    let (_, test) = admin.post_json("/cameras/CAM-RTSP/test/", &json!({})).await;
    assert_eq!(test["success"], true, "{test}");
    assert_eq!((test["codec"].as_str(), test["resolution"].as_str()), (Some("h264"), Some("640x480")));

    // Two passes of the scene: the person walks past twice, the stranger twice.
    wait_for("two passes are verified", &admin, |h| h["verifications"].as_u64() >= Some(4)).await;
    tokio::time::sleep(pass / 2).await;
    let logs = admin.get("/attendance/logs/").await;
    assert_eq!(logs["count"], 1, "one log, the enrolled person's: {logs}");
    assert_eq!(logs["results"][0]["employee"]["employee_id"], "OBAMA");
    assert_eq!(logs["results"][0]["camera"]["id"], "CAM-RTSP");
    let audit = admin.get("/security/audit-logs/?action=face_verification&page_size=100").await;
    let outcomes: Vec<&Value> =
        audit["results"].as_array().unwrap().iter().map(|e| &e["details"]["employee_id"]).collect();
    assert!(outcomes.iter().any(|id| id.is_null()), "the stranger was verified as nobody: {audit}");
    assert!(outcomes.iter().all(|id| id.is_null() || *id == "OBAMA"), "{audit}");
    // The stranger passed twice: one unknown visitor, seen at least twice at this camera.
    let visitors = admin.get("/visitors/").await;
    assert_eq!(visitors["count"], 1, "one stranger, one visitor id: {visitors}");
    let visitor = &visitors["results"][0];
    assert_eq!(visitor["visitor_id"], "V-0001", "{visitor}");
    assert!(visitor["sightings"].as_u64() >= Some(2), "seen on both passes: {visitor}");
    assert_eq!(visitor["cameras"][0]["camera_id"], "CAM-RTSP", "{visitor}");
    let visitor_ids: Vec<&Value> =
        audit["results"].as_array().unwrap().iter().map(|e| &e["details"]["visitor_id"]).collect();
    assert!(visitor_ids.iter().all(|id| id.is_null() || *id == "V-0001"), "{audit}");

    drop(camera);
    let offline = wait_for("the camera goes offline", &admin, |h| h["status"] == "offline").await;
    assert!(offline["last_error"].is_string(), "{offline}");
    let _camera = RtspCamera::start(port, frames.path()).await;
    let back = wait_for("the camera comes back", &admin, |h| h["status"] == "online").await;
    assert!(back["error_count"].as_u64() >= Some(1), "{back}");
    drop(server);
}

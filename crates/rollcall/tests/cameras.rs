//! Cameras watched by a real `rollcall serve`: an HTTP snapshot camera and an MJPEG
//! camera on 127.0.0.1, both behind a password, showing a scene made from test photos
//! (an empty doorway, a person, the doorway again, a stranger). The enrolled person is
//! logged once from the camera, the stranger never: they become one unknown visitor, the
//! same one when seen again, and once enrolled from their sightings they are recognised;
//! health follows the stream; a camera
//! moved to a new URL reconnects there; and the camera password appears in no response
//! and no line of the server's log.

mod support;

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Server, admin, enroll_obama, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CAMERA_USER: &str = "door-admin";
const CAMERA_PASSWORD: &str = "Cam-Pass-4417";

/// An IP camera: `/snapshot.jpg` answers the current frame, `/video.mjpeg` streams it
/// (ten parts a second); both need HTTP basic auth.
struct FakeCamera {
    url: String,
    frame: Arc<Mutex<Vec<u8>>>,
    served: Arc<AtomicU64>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl FakeCamera {
    async fn start(first_frame: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let frame = Arc::new(Mutex::new(first_frame));
        let served = Arc::new(AtomicU64::new(0));
        let (shared, count) = (frame.clone(), served.clone());
        let accept_loop = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                connections.spawn(answer(stream, shared.clone(), count.clone()));
            }
        });
        Self { url, frame, served, accept_loop }
    }

    fn show(&self, jpeg: &[u8]) {
        *self.frame.lock().unwrap() = jpeg.to_vec();
    }

    /// Stops listening and drops every open connection, as a camera that loses power.
    fn unplug(&self) {
        self.accept_loop.abort();
    }
}

async fn answer(mut stream: TcpStream, frame: Arc<Mutex<Vec<u8>>>, served: Arc<AtomicU64>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request).to_lowercase();
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{CAMERA_USER}:{CAMERA_PASSWORD}"));
    if !request.contains(&format!("authorization: basic {}", expected.to_lowercase())) {
        let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        return;
    }
    let current = || frame.lock().unwrap().clone();
    if request.starts_with("get /snapshot.jpg") {
        let jpeg = current();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            jpeg.len()
        );
        served.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&jpeg).await;
    } else if request.starts_with("get /video.mjpeg") {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let jpeg = current();
            let part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len());
            served.fetch_add(1, Ordering::Relaxed);
            let sent = async {
                stream.write_all(part.as_bytes()).await?;
                stream.write_all(&jpeg).await?;
                stream.write_all(b"\r\n").await
            };
            if sent.await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    }
}

/// An empty doorway: a grey frame the size of a small camera picture.
fn doorway() -> Vec<u8> {
    let image = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([90 + (x % 40) as u8, 95 + (y % 30) as u8, 100]));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    jpeg
}

/// The same photo, smaller and mirrored: another sighting of one person.
fn changed_look(photo: &[u8]) -> Vec<u8> {
    let photo = image::load_from_memory(photo).unwrap().to_rgb8();
    let (w, h) = (photo.width() * 4 / 5, photo.height() * 4 / 5);
    let frame =
        image::imageops::flip_horizontal(&image::imageops::resize(&photo, w, h, image::imageops::FilterType::Triangle));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(frame).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    jpeg
}

/// A browser watching a camera's preview: for each JPEG part, its width and how many
/// pixels are the green of a recognised face's box and name.
struct Preview {
    frames: Arc<Mutex<Vec<(u32, usize)>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Preview {
    /// Opens the preview and waits for its first frame.
    async fn open(http: &reqwest::Client, url: &str) -> Self {
        let mut response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("multipart/x-mixed-replace; boundary="), "{content_type}");
        let frames = Arc::new(Mutex::new(Vec::new()));
        let found = frames.clone();
        let reader = tokio::spawn(async move {
            let mut buffer = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.extend_from_slice(&chunk);
                while let Some(jpeg) = take_part(&mut buffer) {
                    let frame = image::load_from_memory(&jpeg).unwrap().to_rgb8();
                    let green = frame.pixels().filter(|p| p[1] > 170 && p[0] < 90 && p[2] < 120).count();
                    found.lock().unwrap().push((frame.width(), green));
                }
            }
        });
        let preview = Self { frames, reader };
        poll_until("the first preview frame", Duration::from_secs(15), async || {
            (!preview.frames.lock().unwrap().is_empty()).then_some(json!(null))
        })
        .await;
        preview
    }
}

impl Drop for Preview {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The first whole JPEG part of a `multipart/x-mixed-replace` body, taken off `buffer`.
fn take_part(buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(buffer);
    let header_end = text.find("\r\n\r\n")?;
    let length: usize =
        text[..header_end].lines().find_map(|line| line.strip_prefix("Content-Length: "))?.trim().parse().ok()?;
    let start = header_end + 4;
    if buffer.len() < start + length {
        return None;
    }
    let jpeg = buffer[start..start + length].to_vec();
    buffer.drain(..start + length);
    Some(jpeg)
}

/// Every body the test read, to check none shows the password.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Seen {
    fn keep(&self, body: &Value) -> Value {
        self.0.lock().unwrap().push(body.to_string());
        body.clone()
    }
}

async fn poll_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn cameras_log_a_person_walking_past_once_and_a_stranger_never() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let mut server = Server::start_logging_to(
        dir.path(),
        &[
            ("RUST_LOG", "debug"),
            ("ROLLCALL_ATTENDANCE_COOLDOWN_SECS", "600"),
            ("ROLLCALL_CAMERA_RECONNECT_MAX_SECS", "2"),
        ],
        &log_path,
    )
    .await;
    let http = reqwest::Client::new();
    let admin = admin(&server, &http).await;
    enroll_obama(&admin).await;
    let seen = Seen::default();

    let camera = FakeCamera::start(doorway()).await;
    let body = json!({"id": "CAM001", "name": "Main Entrance", "location": "Building A",
        "rtsp_url": format!("{}/snapshot.jpg", camera.url), "username": CAMERA_USER, "password": CAMERA_PASSWORD,
        "sample_fps": 4});
    let (status, created) = admin.post_json("/cameras/", &body).await;
    assert_eq!(status, 201, "{created}");
    seen.keep(&created);
    assert_eq!(
        created["rtsp_url"],
        format!("{}/snapshot.jpg", camera.url).replace("http://", "http://door-admin:***@")
    );

    let online = poll_until("the camera comes online", Duration::from_secs(30), async || {
        let health = seen.keep(&admin.get("/cameras/CAM001/health/").await);
        (health["status"] == "online" && health["frames_sampled"].as_u64() > Some(2)).then_some(health)
    })
    .await;
    assert_eq!(online["codec"], "jpeg");
    assert_eq!(online["resolution"], "640x480");
    assert!(online["fps"].as_f64().unwrap() > 0.5, "{online}");
    assert!(online["bandwidth_bps"].as_f64().unwrap() > 0.0, "{online}");
    assert!((0.0..=1.0).contains(&online["quality_score"].as_f64().unwrap()), "{online}");
    let frames_before = online["frames_received"].as_u64().unwrap();

    // An admin's browser watches the server's preview, never the camera itself.
    let stream = seen.keep(&admin.get("/cameras/CAM001/stream/").await);
    let preview_url = format!("{}{}", server.base, stream["preview_url"].as_str().unwrap());
    let preview = Preview::open(&http, &preview_url).await;
    let (first_width, first_green) = preview.frames.lock().unwrap()[0];
    assert_eq!(first_width, 640, "the preview is the camera's frame");
    assert!(first_green < 50, "nobody is boxed on the empty doorway ({first_green} green pixels)");
    let tampered = http.get(format!("{preview_url}x")).send().await.unwrap();
    assert_eq!(tampered.status(), 401);
    let elsewhere = preview_url.replace("/CAM001/", "/CAM002/");
    assert_eq!(http.get(&elsewhere).send().await.unwrap().status(), 401, "a token opens its own camera only");
    let no_token = http.get(format!("{}/api/v1/cameras/CAM001/preview.mjpeg", server.base)).send().await.unwrap();
    assert_eq!(no_token.status(), 400);

    // A person walks in and stands at the door for three seconds, then leaves.
    camera.show(&fixture("obama.jpg"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    camera.show(&doorway());
    let boxed = preview.frames.lock().unwrap().iter().map(|(_, green)| *green).max().unwrap();
    assert!(boxed > 300, "the recognised person is boxed and named in green on the preview ({boxed} pixels)");
    drop(preview);
    let logs = poll_until("the arrival is logged", Duration::from_secs(60), async || {
        let logs = seen.keep(&admin.get("/attendance/logs/?camera_id=CAM001").await);
        (logs["count"] == 1).then_some(logs)
    })
    .await;
    let log = &logs["results"][0];
    assert_eq!(log["employee"]["employee_id"], "OBAMA", "{log}");
    assert_eq!(log["camera"]["id"], "CAM001");
    assert_eq!(log["source"], "face");

    // A stranger does the same: verified, and logged as nobody.
    camera.show(&fixture("biden.jpg"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    camera.show(&doorway());
    poll_until("the stranger's face is verified", Duration::from_secs(60), async || {
        let health = seen.keep(&admin.get("/cameras/CAM001/health/").await);
        (health["verifications"].as_u64() >= Some(2)).then_some(health)
    })
    .await;
    poll_until("both verifications are audited", Duration::from_secs(30), async || {
        let audit = seen.keep(&admin.get("/security/audit-logs/?action=face_verification").await);
        (audit["count"].as_u64() >= Some(2)).then_some(audit)
    })
    .await;
    let logs = seen.keep(&admin.get("/attendance/logs/").await);
    assert_eq!(logs["count"], 1, "only the enrolled person is logged: {logs}");
    let health = seen.keep(&admin.get("/cameras/CAM001/health/").await);
    assert!(health["frames_received"].as_u64().unwrap() > frames_before + 8, "frames kept coming: {health}");
    assert!(health["faces_tracked"].as_u64().unwrap() >= 2, "{health}");

    // The stranger is now an unknown visitor; seen again, smaller and mirrored, the same one.
    let first = poll_until("the stranger becomes a visitor", Duration::from_secs(30), async || {
        let visitors = seen.keep(&admin.get("/visitors/").await);
        (visitors["count"] == 1).then_some(visitors)
    })
    .await;
    let visitor = &first["results"][0];
    let visitor_id = visitor["visitor_id"].as_str().unwrap().to_owned();
    assert_eq!(visitor_id, "V-0001", "{visitor}");
    assert_eq!(visitor["sightings"], 1, "{visitor}");
    assert_eq!(visitor["cameras"], json!([{"camera_id": "CAM001", "sightings": 1, "last_seen": visitor["last_seen"]}]));
    let crop = admin
        .http
        .get(format!("{}{}", server.base, visitor["crop_url"].as_str().unwrap()))
        .header("authorization", &admin.authorization)
        .send()
        .await
        .unwrap();
    assert_eq!(crop.headers()["content-type"], "image/jpeg");
    assert!(image::load_from_memory(&crop.bytes().await.unwrap()).is_ok(), "the crop is a picture");
    camera.show(&changed_look(&fixture("biden.jpg")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    camera.show(&doorway());
    let again = poll_until("the second sighting is counted", Duration::from_secs(60), async || {
        let visitors = seen.keep(&admin.get("/visitors/").await);
        (visitors["results"][0]["sightings"] == 2).then_some(visitors)
    })
    .await;
    assert_eq!(again["count"], 1, "one stranger, one visitor: {again}");
    assert_eq!(again["results"][0]["visitor_id"], visitor_id.as_str());

    // Enrolled from the sightings, the stranger is recognised at the next walk-past.
    let person = json!({"employee_id": "BIDEN", "email": "biden@college.edu", "first_name": "Joe",
        "last_name": "Biden", "role": "faculty", "department": "Government", "password": "biden-password-1"});
    assert_eq!(admin.post_json("/users/", &person).await.0, 201);
    let (status, enrolled) =
        admin.post_json(&format!("/visitors/{visitor_id}/enroll/"), &json!({"employee_id": "BIDEN"})).await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["sightings_used"], 2, "{enrolled}");
    assert_eq!(seen.keep(&admin.get("/visitors/").await)["count"], 0, "an enrolled visitor is no visitor");
    camera.show(&fixture("biden.jpg"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    camera.show(&doorway());
    poll_until("the enrolled visitor is logged", Duration::from_secs(60), async || {
        let logs = seen.keep(&admin.get("/attendance/logs/?camera_id=CAM001").await);
        (logs["count"] == 2).then_some(logs)
    })
    .await;
    let logs = seen.keep(&admin.get("/attendance/logs/?employee_id=BIDEN").await);
    assert_eq!(logs["count"], 1, "{logs}");

    // Unplugged: offline, in plain words, within seconds.
    camera.unplug();
    let offline = poll_until("the camera goes offline", Duration::from_secs(30), async || {
        let health = seen.keep(&admin.get("/cameras/CAM001/health/").await);
        (health["status"] == "offline").then_some(health)
    })
    .await;
    assert!(offline["last_error"].as_str().unwrap().contains("camera"), "{offline}");

    // Moved to another camera's MJPEG stream (same credentials): it reconnects there.
    let mjpeg = FakeCamera::start(doorway()).await;
    let change = json!({"rtsp_url": format!("{}/video.mjpeg", mjpeg.url)});
    let response = admin
        .http
        .put(format!("{}/api/v1/cameras/CAM001/", admin.base))
        .header("authorization", &admin.authorization)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    seen.keep(&response.json().await.unwrap());
    let moved = poll_until("the camera reconnects to its new URL", Duration::from_secs(30), async || {
        let health = seen.keep(&admin.get("/cameras/CAM001/health/").await);
        let streaming = health["frames_received"].as_u64() >= Some(20);
        (health["status"] == "online" && health["codec"] == "mjpeg" && streaming).then_some(health)
    })
    .await;
    assert!(mjpeg.served.load(Ordering::Relaxed) > 0, "{moved}");
    assert!(moved["fps"].as_f64().unwrap() > 2.0, "ten parts a second arrive: {moved}");

    // A camera with the wrong password is an error, said plainly.
    let (status, wrong) = admin
        .post_json(
            "/cameras/",
            &json!({"id": "CAM002", "name": "Side door", "username": CAMERA_USER, "password": "wrong-password",
                "rtsp_url": format!("{}/snapshot.jpg", mjpeg.url)}),
        )
        .await;
    assert_eq!(status, 201, "{wrong}");
    let refused = poll_until("the wrong password is reported", Duration::from_secs(30), async || {
        let health = seen.keep(&admin.get("/cameras/CAM002/health/").await);
        (health["status"] == "error").then_some(health)
    })
    .await;
    assert!(refused["last_error"].as_str().unwrap().contains("refused the credentials"), "{refused}");
    let listed = seen.keep(&admin.get("/cameras/").await);
    assert_eq!(listed["results"].as_array().unwrap().len(), 2);

    server.kill();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("CAM001") && log.contains("camera stream failed"), "the log speaks of the cameras");
    for secret in [CAMERA_PASSWORD, "wrong-password"] {
        assert!(!log.contains(secret), "the server log shows a camera password");
        let bodies = seen.0.lock().unwrap();
        assert!(bodies.iter().all(|body| !body.contains(secret)), "a response shows a camera password");
    }
}

/// Two `rollcall serve` of one deployment, on one database: the camera is watched by one
/// of them, both report its figures and who watches it, and when the watcher is
/// SIGKILLed the other takes the camera over once its lease has run out.
#[tokio::test]
async fn a_camera_whose_watcher_is_killed_is_taken_over_by_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = support::shared_database(dir.path()).await;
    let data_key = rollcall_server::crypto::Sealer::generate_key();
    let env = [("ROLLCALL_DATABASE_URL", database_url.as_str()), ("ROLLCALL_DATA_KEY", data_key.as_str())];
    let dirs = ["a", "b"].map(|name| dir.path().join(name));
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut servers = [Server::start(&dirs[0], &env).await, Server::start(&dirs[1], &env).await];
    let http = reqwest::Client::new();
    let sessions = [admin(&servers[0], &http).await, admin(&servers[1], &http).await];
    let camera = FakeCamera::start(doorway()).await;
    let body = json!({"id": "CAM001", "name": "Main Entrance", "rtsp_url": format!("{}/snapshot.jpg", camera.url),
        "username": CAMERA_USER, "password": CAMERA_PASSWORD, "sample_fps": 4});
    let (status, created) = sessions[0].post_json("/cameras/", &body).await;
    assert_eq!(status, 201, "{created}");

    let online = |session: &support::Client| {
        let session = session.clone();
        async move {
            let health = session.get("/cameras/CAM001/health/").await;
            (health["status"] == "online" && health["watched_by"].is_object()).then_some(health)
        }
    };
    let first_view =
        poll_until("online, seen from A", Duration::from_secs(30), async || online(&sessions[0]).await).await;
    let watcher = first_view["watched_by"].clone();
    let second_view = poll_until("the same watcher, seen from B", Duration::from_secs(15), async || {
        online(&sessions[1]).await.filter(|health| health["watched_by"]["instance_id"] == watcher["instance_id"])
    })
    .await;
    assert_ne!(first_view["watched_by"]["this_instance"], second_view["watched_by"]["this_instance"]);
    assert!(second_view["frames_received"].as_u64() > Some(0), "B reports A's figures or its own: {second_view}");

    let killed = servers.iter().position(|server| i64::from(server.child.id()) == watcher["pid"]).expect("a watcher");
    servers[killed].kill();
    let survivor = &sessions[1 - killed];
    let served_before = camera.served.load(Ordering::Relaxed);
    let taken = poll_until("the survivor watches the camera", Duration::from_secs(40), async || {
        online(survivor).await.filter(|health| health["watched_by"]["this_instance"] == true)
    })
    .await;
    assert_ne!(taken["watched_by"]["instance_id"], watcher["instance_id"], "{taken}");
    poll_until("frames flow to the survivor", Duration::from_secs(15), async || {
        (camera.served.load(Ordering::Relaxed) > served_before + 4).then_some(json!(null))
    })
    .await;
}

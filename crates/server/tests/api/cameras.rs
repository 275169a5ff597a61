//! Camera management: what is stored, what is shown (never a credential), who may do what,
//! and the error for each bad field. Ingestion from live streams is tested against the
//! binary (`crates/rollcall/tests/cameras.rs`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const PASSWORD: &str = "cam-pass-7731";

async fn create(app: &TestApp, body: Value) -> Value {
    let response = app.post("/cameras/", Some(&app.admin_token), body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(!text.contains(PASSWORD), "a response shows the camera password: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn cameras_are_stored_with_their_credentials_sealed_and_shown_masked() {
    let app = spawn_app().await;
    // Nothing listens here: the camera is watched, and reported offline.
    let camera = create(
        &app,
        json!({"id": "CAM002", "name": "Library Entrance", "location": "Library Building",
            "rtsp_url": "http://127.0.0.1:9/snapshot.jpg", "username": "admin", "password": PASSWORD}),
    )
    .await;
    assert_eq!(camera["id"], "CAM002");
    assert_eq!(camera["rtsp_url"], "http://admin:***@127.0.0.1:9/snapshot.jpg");
    assert_eq!(camera["ip_address"], "127.0.0.1", "taken from the URL");
    assert_eq!((camera["direction"].as_str(), camera["sample_fps"].as_f64()), (Some("entry"), Some(2.0)));
    assert_eq!(camera["is_active"], true);
    let secret_in_query = create(
        &app,
        json!({"id": "CAM003", "name": "Gate", "rtsp_url": format!("http://10.1.2.3/cgi-bin/snap.jpg?user=admin&pwd={PASSWORD}"),
            "direction": "both", "sample_fps": 1.0, "is_active": false}),
    )
    .await;
    assert_eq!(secret_in_query["rtsp_url"], "http://10.1.2.3/cgi-bin/snap.jpg?user=admin&pwd=***");
    assert_eq!(secret_in_query["status"], "inactive");

    let listed: Value = app.get("/cameras/", &app.admin_token).await.json().await.unwrap();
    let ids: Vec<&str> = listed["results"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["CAM002", "CAM003"]);
    assert!(!listed.to_string().contains(PASSWORD));

    // The worker found nothing listening, and says so in plain words.
    let mut health = Value::Null;
    for _ in 0..100 {
        health = app.get("/cameras/CAM002/health/", &app.admin_token).await.json().await.unwrap();
        if health["status"] == "offline" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(health["status"], "offline", "{health}");
    assert!(health["last_error"].as_str().unwrap().contains("cannot connect to the camera"), "{health}");
    assert!(health["error_count"].as_u64().unwrap() >= 1);
    assert!(!health.to_string().contains(PASSWORD));

    let stream: Value = app.get("/cameras/CAM002/stream/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(stream["rtsp_url"], "http://admin:***@127.0.0.1:9/snapshot.jpg");
    let test = app.post("/cameras/CAM002/test/", Some(&app.admin_token), json!({})).await;
    assert_eq!(test.status(), StatusCode::OK);
    let test: Value = test.json().await.unwrap();
    assert_eq!(test["success"], false, "{test}");
    assert!(test["error"].as_str().unwrap().starts_with("cannot connect to the camera"), "{test}");

    // At rest: neither the password nor the full URL is stored in the clear.
    let db = rollcall_server::store::Db::connect(&app.database_url).await.unwrap();
    let stored = rollcall_server::store::cameras::all(&db).await.unwrap();
    for record in &stored {
        assert!(!record.masked_url.contains(PASSWORD));
        assert!(!String::from_utf8_lossy(&record.url).contains(PASSWORD), "{} sealed", record.id);
    }
    db.close().await;

    // A change keeps what it leaves out; the audit names the masked URL only.
    let response = app
        .request(Method::PUT, "/cameras/CAM002/", Some(&app.admin_token), Some(json!({"name": "Library, north door"})))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["name"], "Library, north door");
    assert_eq!(changed["rtsp_url"], "http://admin:***@127.0.0.1:9/snapshot.jpg");
    let audit = app.audit_entries("camera_create").await;
    assert_eq!(audit.len(), 2);
    assert_eq!(app.audit_entries("camera_update").await.len(), 1);
    assert!(!format!("{audit:?}").contains(PASSWORD));

    let deleted = app.request(Method::DELETE, "/cameras/CAM003/", Some(&app.admin_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/cameras/CAM003/", &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.audit_entries("camera_delete").await.len(), 1);
}

#[tokio::test]
async fn bad_camera_settings_get_400_naming_the_field_and_a_taken_id_409() {
    let app = spawn_app().await;
    let base = json!({"id": "CAM001", "name": "Main Entrance", "rtsp_url": "rtsp://192.168.1.100:554/stream"});
    create(&app, base.clone()).await;
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body["id"] = json!("CAM009");
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("id", json!("CAM 9")), "id"),
        (with("rtsp_url", json!("ftp://192.168.1.100/stream")), "rtsp_url"),
        (with("rtsp_url", json!("not a url")), "rtsp_url"),
        (with("rtsp_url", json!(format!("rtsp://cam/{}", "x".repeat(5_000)))), "rtsp_url"),
        (with("ip_address", json!("192.168.1.300")), "ip_address"),
        (with("direction", json!("in")), "direction"),
        (with("sample_fps", json!(60)), "sample_fps"),
        (with("name", json!("")), "name"),
    ] {
        let response = app.post("/cameras/", Some(&app.admin_token), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["fields"][field].is_string(), "{field}: {error}");
    }
    let unknown = app.post("/cameras/", Some(&app.admin_token), with("colour", json!("red"))).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let taken = app.post("/cameras/", Some(&app.admin_token), base).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let missing =
        app.request(Method::PUT, "/cameras/CAM404/", Some(&app.admin_token), Some(json!({"name": "x"}))).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Nothing serves RTSP there: the test says so in plain words, within its time.
    let moved = json!({"rtsp_url": "rtsp://127.0.0.1:9/stream"});
    let put = app.request(Method::PUT, "/cameras/CAM001/", Some(&app.admin_token), Some(moved)).await;
    assert_eq!(put.status(), StatusCode::OK);
    let test: Value = app.post("/cameras/CAM001/test/", Some(&app.admin_token), json!({})).await.json().await.unwrap();
    assert_eq!(test["success"], false);
    assert!(test["error"].as_str().unwrap().contains("connect"), "{test}");
}

#[tokio::test]
async fn faculty_read_cameras_and_only_admins_change_or_test_them() {
    let app = spawn_app().await;
    create(&app, json!({"id": "CAM001", "name": "Main Entrance", "rtsp_url": "rtsp://10.0.0.1/s", "is_active": false}))
        .await;
    let faculty = app.create_user("FAC1", "faculty", "Physics").await;
    let student = app.create_user("STU1", "student", "Physics").await;
    assert_eq!(app.get("/cameras/", &faculty.token).await.status(), StatusCode::OK);
    assert_eq!(app.get("/cameras/CAM001/health/", &faculty.token).await.status(), StatusCode::OK);
    assert_eq!(app.get("/cameras/CAM001/stream/", &faculty.token).await.status(), StatusCode::FORBIDDEN);
    let change = json!({"name": "Hijacked"});
    let put = app.request(Method::PUT, "/cameras/CAM001/", Some(&faculty.token), Some(change)).await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.post("/cameras/CAM001/test/", Some(&faculty.token), json!({})).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get("/cameras/", &student.token).await.status(), StatusCode::FORBIDDEN);
}

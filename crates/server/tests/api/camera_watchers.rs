//! Each camera is watched by one instance of a deployment at a time, under a lease in the
//! database; every instance reports who watches it, and another instance takes it over
//! when its watcher stops.

use std::time::{Duration, Instant};

use chrono::{SubsecRound as _, Utc};
use reqwest::StatusCode;
use rollcall_server::store::Db;
use rollcall_server::store::camera_watchers::{self, CameraWatcher};
use serde_json::{Value, json};

use crate::helpers::*;

fn hold_by(instance: &str, at: chrono::DateTime<Utc>) -> CameraWatcher {
    CameraWatcher {
        camera_id: "CAM001".into(),
        instance_id: instance.into(),
        hostname: format!("{instance}-host"),
        pid: 7,
        watching_since: at,
        lease_until: at + chrono::Duration::seconds(15),
        figures: Some(format!(r#"{{"by":"{instance}"}}"#)),
    }
}

#[tokio::test]
async fn a_camera_lease_is_held_by_one_process_until_it_runs_out() {
    let app = spawn_app().await;
    let db = Db::connect(&app.database_url).await.unwrap();
    // Microseconds: what PostgreSQL keeps.
    let start = Utc::now().trunc_subsecs(6);
    let seconds = |n| start + chrono::Duration::seconds(n);

    assert!(camera_watchers::hold(&db, &hold_by("a", start), start).await.unwrap(), "a free camera is taken");
    assert!(!camera_watchers::hold(&db, &hold_by("b", seconds(1)), seconds(1)).await.unwrap(), "a live lease holds");
    assert!(camera_watchers::hold(&db, &hold_by("a", seconds(10)), seconds(10)).await.unwrap(), "renewed");
    let rows = camera_watchers::all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].instance_id.as_str(), rows[0].lease_until), ("a", seconds(25)));
    assert_eq!(rows[0].watching_since, start, "a renewal keeps when the watch began");

    // a stops renewing: once its lease has run out, b takes the camera over.
    assert!(!camera_watchers::hold(&db, &hold_by("b", seconds(24)), seconds(24)).await.unwrap());
    assert!(camera_watchers::hold(&db, &hold_by("b", seconds(26)), seconds(26)).await.unwrap());
    assert!(!camera_watchers::hold(&db, &hold_by("a", seconds(27)), seconds(27)).await.unwrap(), "a lost it");
    let rows = camera_watchers::all(&db).await.unwrap();
    assert_eq!((rows[0].instance_id.as_str(), rows[0].watching_since), ("b", seconds(26)));
    assert_eq!(rows[0].figures.as_deref(), Some(r#"{"by":"b"}"#));

    assert!(!camera_watchers::release(&db, "a", "CAM001").await.unwrap(), "only the holder releases");
    assert_eq!(camera_watchers::release_all(&db, "b").await.unwrap(), 1);
    assert!(camera_watchers::all(&db).await.unwrap().is_empty());
}

async fn health(app: &TestApp) -> Value {
    let response = app.get("/cameras/CAM001/health/", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Asks `app` for the camera's health until `check` holds; fails after 15 s.
async fn health_until(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let found = health(app).await;
        if check(&found) {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: {found}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn one_instance_watches_a_camera_and_another_takes_it_over_when_it_stops() {
    let first = spawn_face_app_with(|_| {}).await;
    let second = spawn_face_app_beside(&first, |_| {}).await;
    // Nothing listens on port 9: the camera is offline, which is still watched.
    let body = json!({"id": "CAM001", "name": "Main Entrance", "rtsp_url": "http://127.0.0.1:9/snapshot.jpg"});
    let response = first.post("/cameras/", Some(&first.admin_token), body).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let watched = |health: &Value| health["watched_by"].is_object();
    let on_first = health_until(&first, "the first instance reports a watcher", watched).await;
    let on_second = health_until(&second, "the second instance reports the same watcher", |health| {
        health["watched_by"]["instance_id"] == on_first["watched_by"]["instance_id"]
    })
    .await;
    let mine = [&on_first, &on_second].map(|health| health["watched_by"]["this_instance"] == true);
    assert_eq!(mine.iter().filter(|&&mine| mine).count(), 1, "one instance watches: {on_first} {on_second}");
    // Figures shared by the watcher are up to one renewal old.
    for app in [&first, &second] {
        let offline = health_until(app, "the camera is seen offline", |health| health["status"] == "offline").await;
        assert!(offline["last_error"].is_string(), "the watcher's error is reported: {offline}");
    }

    // The watcher stops gracefully: it leaves the camera, and the other takes it at once.
    let (watcher, other) = if mine[0] { (first, second) } else { (second, first) };
    let gone = watcher.stop().await;
    let taken = health_until(&other, "the other instance takes the camera over", |health| {
        health["watched_by"]["this_instance"] == true
    })
    .await;
    assert_ne!(taken["watched_by"]["instance_id"], on_first["watched_by"]["instance_id"]);
    drop(gone);
}

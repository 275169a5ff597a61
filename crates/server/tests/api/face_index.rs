//! The feed of face index changes: how it numbers changes, and a second server following
//! what the first one enrolls and erases.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rollcall_server::store::{Db, face_index_changes, templates};

use crate::face::{enroll, verify};
use crate::helpers::*;

#[tokio::test]
async fn changes_are_numbered_in_commit_order_and_rolled_back_ones_leave_no_trace() {
    let app = spawn_app().await;
    let person = app.create_user("FAC001", "faculty", "Physics").await;
    let db = Db::connect(&app.database_url).await.unwrap();
    let before = face_index_changes::latest(&db).await.unwrap();

    let committed = db.begin().await.unwrap();
    let first = face_index_changes::record(&committed, person.id).await.unwrap();
    committed.commit().await.unwrap();
    let rolled_back = db.begin().await.unwrap();
    face_index_changes::record(&rolled_back, person.id).await.unwrap();
    drop(rolled_back);
    let committed = db.begin().await.unwrap();
    let second = face_index_changes::record(&committed, person.id).await.unwrap();
    committed.commit().await.unwrap();

    assert_eq!((first, second), (before + 1, before + 2), "the rolled-back change's number is taken again");
    let changes = face_index_changes::after(&db, before, 10).await.unwrap();
    let seqs: Vec<i64> = changes.iter().map(|change| change.seq).collect();
    assert_eq!(seqs, [first, second]);
    assert!(changes.iter().all(|change| change.user_id == person.id));
    assert_eq!(face_index_changes::after(&db, first, 10).await.unwrap().len(), 1);
    assert_eq!(face_index_changes::latest(&db).await.unwrap(), second);
    let entry = templates::index_entry(&db, person.id).await.unwrap();
    assert_eq!((entry.version, entry.template), (second, None), "the person was never enrolled");

    let purged = face_index_changes::delete_before(&db, chrono::Utc::now() + chrono::Duration::minutes(1)).await;
    assert!(purged.unwrap() >= 2);
    assert!(face_index_changes::after(&db, 0, 10).await.unwrap().is_empty());
    assert_eq!(face_index_changes::latest(&db).await.unwrap(), second, "purging keeps the numbering");
    db.close().await;
}

/// Verifies through `app` until the result is `recognised` (or not); a verification asked
/// for two seconds after the start that still says otherwise fails the test.
async fn wait_until_recognised(app: &TestApp, recognised: bool, change: &str) {
    let started = Instant::now();
    loop {
        let asked_after = started.elapsed();
        let result = verify(app, &app.admin_token, "obama3.jpg").await;
        if result["recognized"] == recognised {
            return;
        }
        assert!(asked_after < Duration::from_secs(2), "{change} had not reached the second server: {result}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_second_server_follows_the_enrollments_and_erasures_of_the_first() {
    let first = spawn_face_app().await;
    let second = spawn_face_app_beside(&first, |_| {}).await;
    first.create_user("OBAMA", "faculty", "Government").await;

    assert_eq!(enroll(&first, "OBAMA", &["obama.jpg", "obama2.jpg"]).await["success"], true);
    wait_until_recognised(&second, true, "the enrollment").await;

    let erase = first.request(Method::DELETE, "/face/templates/OBAMA/", Some(&first.admin_token), None).await;
    assert_eq!(erase.status(), StatusCode::NO_CONTENT);
    wait_until_recognised(&second, false, "the erasure").await;
}

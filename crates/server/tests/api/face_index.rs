//! The feed of face index changes: how it numbers changes.

use rollcall_server::store::{Db, face_index_changes, templates};

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

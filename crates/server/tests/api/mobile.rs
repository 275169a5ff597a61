//! Phone check-in (the person's own face, live, at a site, on time) and the mobile profile,
//! with real photos and the real models; and the sites admins configure.

use chrono::{Datelike, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attendance::logs;
use crate::face::enroll;
use crate::helpers::*;

/// New York City Hall, 200 m around it.
async fn campus(app: &TestApp) -> Value {
    let site = json!({"name": "Main campus", "latitude": 40.7128, "longitude": -74.0060, "radius_m": 200.0});
    let response = app.post("/sites/", Some(&app.admin_token), site).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn check_in(app: &TestApp, token: &str, photo_name: &str, location: Value, timestamp: String) -> Value {
    let body = json!({"image": photo(photo_name), "location": location, "timestamp": timestamp});
    let response = app.post("/mobile/check-in/", Some(token), body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn now() -> String {
    Utc::now().to_rfc3339()
}

/// About 15 m from the site's centre.
fn inside() -> Value {
    json!({"latitude": 40.7129, "longitude": -74.0061, "accuracy_m": 8.0})
}

#[tokio::test]
async fn a_check_in_logs_the_person_at_the_site_once_and_refuses_everything_else_with_a_reason() {
    let app = spawn_face_app_with(|config| config.attendance_cooldown_secs = 300).await;
    let site = campus(&app).await;
    let obama = app.create_user("OBAMA", "faculty", "Government").await;
    let biden = app.create_user("BIDEN", "student", "Law").await;
    assert_eq!(enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await["success"], true);

    let logged = check_in(&app, &obama.token, "obama3.jpg", inside(), now()).await;
    assert_eq!(logged["attendance_logged"], true, "{logged}");
    assert_eq!(logged["site"]["name"], "Main campus");
    assert_eq!(logged["site"]["id"], site["id"]);
    assert!(logged["site"]["distance_m"].as_f64().unwrap() < 20.0, "{logged}");
    assert!(logged["timestamp"].is_string());
    let page = logs(&app, &app.admin_token, "?source=mobile").await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["results"][0]["employee"]["employee_id"], "OBAMA");
    assert_eq!(page["results"][0]["source"], "mobile");
    let detail: Value = app
        .get(&format!("/attendance/logs/{}/", logged["attendance_id"]), &app.admin_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["location"], "Main campus");
    assert_eq!(detail["evidence"]["decision"], "matched_own_template", "{detail}");

    let again = check_in(&app, &obama.token, "obama3.jpg", inside(), now()).await;
    assert_eq!(
        (again["attendance_logged"].clone(), again["reason"].clone()),
        (json!(false), json!("cooldown")),
        "{again}"
    );

    let refusals = [
        (&obama, "obama3.jpg", json!({"latitude": 40.7484, "longitude": -73.9857}), now(), "outside_geofence"),
        (
            &obama,
            "obama3.jpg",
            json!({"latitude": 40.7129, "longitude": -74.0061, "accuracy_m": 500.0}),
            now(),
            "outside_geofence",
        ),
        (&obama, "obama3.jpg", inside(), (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(), "clock_skew"),
        (&obama, "biden.jpg", inside(), now(), "face_mismatch"),
        (&biden, "biden.jpg", inside(), now(), "not_enrolled"),
    ];
    for (person, photo_name, location, timestamp, reason) in refusals {
        let refused = check_in(&app, &person.token, photo_name, location.clone(), timestamp).await;
        assert_eq!(refused["attendance_logged"], false, "{refused}");
        assert_eq!(refused["reason"], reason, "{location}: {refused}");
        assert!(refused["message"].as_str().is_some_and(|m| !m.is_empty()), "{refused}");
    }
    // Another person's face never logs them, whoever is enrolled.
    assert_eq!(enroll(&app, "BIDEN", &["biden.jpg"]).await["success"], true);
    let impostor = check_in(&app, &biden.token, "obama3.jpg", inside(), now()).await;
    assert_eq!(impostor["reason"], "face_mismatch", "{impostor}");
    assert_eq!(logs(&app, &app.admin_token, "?source=mobile").await["count"], 1, "nothing else was logged");

    let audited = app.audit_entries("mobile_check_in").await;
    assert_eq!(audited.len(), 8, "every attempt: {audited:?}");
    let logged_ones: Vec<&Value> = audited.iter().filter(|entry| entry["success"] == true).collect();
    assert_eq!(logged_ones.len(), 1, "only the check-in that logged succeeded: {audited:?}");
    assert_eq!(logged_ones[0]["details"]["site"], "Main campus");

    let kiosk = app.create_api_key("Kiosk", "student").await;
    let by_key = app
        .client
        .post(app.url("/mobile/check-in/"))
        .header("X-API-Key", &kiosk)
        .json(&json!({"image": photo("obama3.jpg"), "location": inside(), "timestamp": now()}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), StatusCode::FORBIDDEN, "an API key is nobody's phone");
    for bad in [
        json!({"image": photo("obama3.jpg"), "location": {"latitude": 91.0, "longitude": 0.0}, "timestamp": now()}),
        json!({"image": photo("obama3.jpg"), "location": {"latitude": 40.0, "longitude": 0.0, "accuracy_m": -1.0}, "timestamp": now()}),
        json!({"image": photo("obama3.jpg"), "location": inside()}),
        json!({"image": "", "location": inside(), "timestamp": now()}),
    ] {
        let response = app.post("/mobile/check-in/", Some(&obama.token), bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn the_profile_shows_todays_arrival_this_weeks_days_and_the_months_rate() {
    let app = spawn_face_app_with(|config| {
        config.working_days = rollcall_server::domain::calendar::WorkingDays::new(&[
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
            chrono::Weekday::Sat,
            chrono::Weekday::Sun,
        ]);
    })
    .await;
    campus(&app).await;
    let obama = app.create_user("OBAMA", "faculty", "Government").await;
    let before: Value = app.get("/mobile/profile/", &obama.token).await.json().await.unwrap();
    assert_eq!(before["employee_id"], "OBAMA");
    assert_eq!(before["name"], "Test OBAMA");
    assert_eq!(before["department"], "Government");
    assert_eq!(before["face_enrolled"], false);
    assert_eq!(before["today_attendance"], Value::Null);
    assert_eq!(before["this_week_days"], 0);
    assert_eq!(before["attendance_rate"], 0.0);

    enroll(&app, "OBAMA", &["obama.jpg", "obama2.jpg"]).await;
    let logged = check_in(&app, &obama.token, "obama3.jpg", inside(), now()).await;
    assert_eq!(logged["attendance_logged"], true, "{logged}");
    let at: chrono::DateTime<Utc> = logged["timestamp"].as_str().unwrap().parse().unwrap();
    let profile: Value = app.get("/mobile/profile/", &obama.token).await.json().await.unwrap();
    assert_eq!(profile["face_enrolled"], true);
    assert_eq!(profile["today_attendance"], at.format("%H:%M").to_string(), "{profile}");
    assert_eq!(profile["this_week_days"], 1);
    let days_so_far = f64::from(Utc::now().day());
    assert!((profile["attendance_rate"].as_f64().unwrap() - 1.0 / days_so_far).abs() < 1e-3, "{profile}");

    let kiosk = app.create_api_key("Kiosk", "faculty").await;
    let by_key = app.client.get(app.url("/mobile/profile/")).header("X-API-Key", &kiosk).send().await.unwrap();
    assert_eq!(by_key.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admins_manage_sites_and_everyone_signed_in_can_see_them() {
    let app = spawn_app().await;
    let site = campus(&app).await;
    let id = site["id"].as_i64().unwrap();
    assert_eq!(site["radius_m"], 200.0);
    let student = app.create_user("STU001", "student", "Maths").await;
    let listed: Value = app.get("/sites/", &student.token).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "Main campus");
    let by_student = app
        .post(
            "/sites/",
            Some(&student.token),
            json!({"name": "Annex", "latitude": 0.0,
        "longitude": 0.0, "radius_m": 50.0}),
        )
        .await;
    assert_eq!(by_student.status(), StatusCode::FORBIDDEN);

    let bad = [
        json!({"name": "Annex", "latitude": 91.0, "longitude": 0.0, "radius_m": 50.0}),
        json!({"name": "Annex", "latitude": 0.0, "longitude": 181.0, "radius_m": 50.0}),
        json!({"name": "Annex", "latitude": 0.0, "longitude": 0.0, "radius_m": 5.0}),
        json!({"name": "Annex", "latitude": 0.0, "longitude": 0.0, "radius_m": 20_000.0}),
        json!({"name": " ", "latitude": 0.0, "longitude": 0.0, "radius_m": 50.0}),
        json!({"name": "Annex", "latitude": 0.0, "longitude": 0.0}),
    ];
    for body in bad {
        let response = app.post("/sites/", Some(&app.admin_token), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let duplicate = app
        .post(
            "/sites/",
            Some(&app.admin_token),
            json!({"name": "Main campus", "latitude": 1.0,
        "longitude": 1.0, "radius_m": 50.0}),
        )
        .await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);

    let moved = json!({"name": "Main campus", "latitude": 40.7130, "longitude": -74.0070, "radius_m": 300.0});
    let response =
        app.request(reqwest::Method::PUT, &format!("/sites/{id}/"), Some(&app.admin_token), Some(moved)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = app.get(&format!("/sites/{id}/"), &student.token).await.json().await.unwrap();
    assert_eq!(updated["radius_m"], 300.0);
    assert_eq!(updated["longitude"], -74.0070);
    let deleted = app.request(reqwest::Method::DELETE, &format!("/sites/{id}/"), Some(&app.admin_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/sites/{id}/"), &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.audit_entries("site_create").await.len(), 1);
    assert_eq!(app.audit_entries("site_delete").await.len(), 1);
}

//! The attendance counts kept as logs are written: after logging, voiding, marking, moving
//! a person to another department, deactivating one and deleting old logs, every tally
//! the counts answer equals the same tally counted from the logs; a restart in another
//! time zone counts the days again.

use chrono::NaiveDate;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use rollcall_server::domain::calendar::{Calendar, DateRange, WorkingDays};
use rollcall_server::store::Db;
use rollcall_server::store::attendance::{self as attendance_store, AttendanceFilter, Counting, Grouping};

use crate::attendance::report;
use crate::helpers::*;
use crate::maintenance::maintain;

fn berlin(config: &mut rollcall_server::Config) {
    config.timezone = chrono_tz::Europe::Berlin;
    config.attendance_cooldown_secs = 0;
}

async fn summary(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/attendance/summary/{query}"), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn patch_user(app: &TestApp, user: &TestUser, body: Value) {
    let path = format!("/users/{}/", user.id);
    let response = app.request(Method::PATCH, &path, Some(&app.admin_token), Some(body)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// What a tally says, without the first and last timestamps (the counts do not keep them).
type Said = (Option<i64>, Option<i64>, Option<String>, i64, i64, i64);

async fn said(
    db: &Db,
    from_counts: bool,
    filter: &AttendanceFilter,
    calendar: &Calendar,
    counting: Counting<'_>,
    groups: &[Grouping],
) -> Vec<Said> {
    let offsets = calendar.offsets(filter.from.unwrap(), filter.to.unwrap());
    let tallies = if from_counts {
        attendance_store::tally(db, filter, &offsets, counting, groups).await
    } else {
        attendance_store::tally_from_logs(db, filter, &offsets, counting, groups).await
    };
    let mut said: Vec<Said> = tallies
        .unwrap()
        .into_iter()
        .map(|t| (t.day, t.hour, t.department, t.attendances, t.persons, t.person_days))
        .filter(|said| groups.is_empty() || said.3 > 0)
        .collect();
    said.sort();
    said
}

/// Every tally of `range` the counts can answer, against the same tally from the logs.
async fn assert_counts_match_logs(app: &TestApp, calendar: &Calendar, range: DateRange) {
    let db = Db::connect(&app.database_url).await.unwrap();
    let (from, to) = calendar.instants(range);
    let working = calendar.working_days().numbers();
    let countings = [
        Counting::default(),
        Counting::persons(),
        Counting { weekdays: Some(&working), person_days: true, persons: false },
    ];
    let groupings: [&[Grouping]; 6] = [
        &[],
        &[Grouping::Day],
        &[Grouping::Hour],
        &[Grouping::Department],
        &[Grouping::Day, Grouping::Hour],
        &[Grouping::Day, Grouping::Department],
    ];
    for expected_attendees in [false, true] {
        for department in [None, Some("Maths".to_owned())] {
            let filter = AttendanceFilter {
                from: Some(from),
                to: Some(to),
                expected_attendees,
                department: department.clone(),
                ..AttendanceFilter::default()
            };
            for counting in countings {
                for groups in groupings {
                    let counted = said(&db, true, &filter, calendar, counting, groups).await;
                    let from_logs = said(&db, false, &filter, calendar, counting, groups).await;
                    assert_eq!(
                        counted, from_logs,
                        "attendees only: {expected_attendees}, department {department:?}, {counting:?}, {groups:?}"
                    );
                }
            }
        }
    }
    db.close().await;
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

#[tokio::test]
async fn the_counts_follow_logs_voids_marks_moves_deactivations_and_deletions() {
    let app = spawn_app_with(berlin).await;
    let calendar = Calendar::new(chrono_tz::Europe::Berlin, WorkingDays::default());
    let range = DateRange { from: date("2024-03-25"), to: date("2024-04-07") };
    app.create_user("MATHS1", "faculty", "Maths").await;
    let student = app.create_user("STU1", "student", "Maths").await;
    let physics = app.create_user("PHY1", "faculty", "Physics").await;
    let mut ids = Vec::new();
    for (employee, timestamp) in [
        ("MATHS1", "2024-03-29T07:30:00Z"),
        ("MATHS1", "2024-03-30T23:30:00Z"), // 03-31 00:30 CET
        ("STU1", "2024-03-31T01:30:00Z"),   // 03-31 03:30 CEST, after the change
        ("STU1", "2024-03-31T06:00:00Z"),   // the same person twice that day
        ("PHY1", "2024-03-31T07:00:00Z"),
        ("PHY1", "2024-04-02T07:00:00Z"),
        ("MATHS1", "2024-04-02T08:00:00Z"),
    ] {
        ids.push(report(&app, employee, timestamp, None).await);
    }
    assert_counts_match_logs(&app, &calendar, range).await;

    // One of a person's two logs of a day voided: one log less, the person still present.
    let response = app
        .post(&format!("/attendance/logs/{}/void/", ids[3]), Some(&app.admin_token), json!({"reason": "twice"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let marked = json!({"employee_id": "STU1", "timestamp": "2024-04-03T07:00:00Z", "reason": "card reader down"});
    assert_eq!(app.post("/attendance/mark/", Some(&app.admin_token), marked).await.status(), StatusCode::CREATED);
    assert_counts_match_logs(&app, &calendar, range).await;

    // PHY1 moves to Maths: their past attendance counts there now, as the listing's
    // department filter shows it.
    patch_user(&app, &physics, json!({"department": "Maths"})).await;
    let week = summary(&app, "?date_from=2024-03-25&date_to=2024-04-07").await;
    assert_eq!(week["departments"], json!({"Maths": 7}));
    assert_eq!(week["unique_persons"], 3);
    // The student leaves: no longer expected, their logs still count in the summary.
    patch_user(&app, &student, json!({"is_active": false})).await;
    assert_counts_match_logs(&app, &calendar, range).await;
    assert_eq!(summary(&app, "?date_from=2024-03-25&date_to=2024-04-07").await["total_attendances"], 7);

    // Deleting the logs older than a cutoff forgets their days.
    maintain(&app, "cleanup_old_logs", json!({"days_to_keep": 1})).await;
    let week = summary(&app, "?date_from=2024-03-25&date_to=2024-04-07").await;
    assert_eq!((week["total_attendances"].as_i64(), week["unique_persons"].as_i64()), (Some(0), Some(0)), "{week}");
    assert_counts_match_logs(&app, &calendar, range).await;
}

#[tokio::test]
async fn a_restart_in_another_time_zone_counts_the_days_again() {
    let app = spawn_app_with(|config| config.attendance_cooldown_secs = 0).await;
    app.create_user("MATHS1", "faculty", "Maths").await;
    for timestamp in ["2024-03-30T23:30:00Z", "2024-03-31T06:15:00Z"] {
        report(&app, "MATHS1", timestamp, None).await;
    }
    let utc = summary(&app, "?date_from=2024-03-30&date_to=2024-03-30").await;
    assert_eq!(utc["hourly_distribution"], json!({"23:00": 1}));

    let app = app.restart_with(berlin).await;
    // 23:30 UTC on the 30th is 00:30 on the 31st in Berlin.
    assert_eq!(summary(&app, "?date_from=2024-03-30&date_to=2024-03-30").await["total_attendances"], 0);
    let day = summary(&app, "?date_from=2024-03-31&date_to=2024-03-31").await;
    assert_eq!(day["hourly_distribution"], json!({"00:00": 1, "08:00": 1}));
    assert_eq!(day["unique_persons"], 1);
    let calendar = Calendar::new(chrono_tz::Europe::Berlin, WorkingDays::default());
    assert_counts_match_logs(&app, &calendar, DateRange { from: date("2024-03-25"), to: date("2024-04-07") }).await;
}

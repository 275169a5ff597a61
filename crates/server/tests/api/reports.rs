//! `GET /reports/attendance/`: the numbers of a hand-built week (rates over people ×
//! working days, voided logs and days off counting nowhere), who may see which
//! departments, and the PDF and Excel files read back by other programs.

use std::io::Cursor;
use std::process::Command;

use calamine::{Data, DataType, Reader, Xlsx, open_workbook_from_rs};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attendance::report;
use crate::helpers::*;

const WEEK: &str = "?date_from=2024-03-04&date_to=2024-03-10";

/// Mon 4 – Sun 10 March 2024 in UTC (five working days). Maths: FAC1 every working day,
/// STU1 three days (twice on Monday), STU2 Monday and Saturday; Physics: PHY1 Tuesday,
/// and a voided log on Wednesday. GONE (Maths) came on Monday and was deactivated.
async fn a_week_of_attendance(app: &TestApp) -> TestUser {
    let faculty = app.create_user("FAC1", "faculty", "Maths").await;
    app.create_user("STU1", "student", "Maths").await;
    app.create_user("STU2", "student", "Maths").await;
    app.create_user("PHY1", "faculty", "Physics").await;
    let gone = app.create_user("GONE", "student", "Maths").await;
    let mut plan = vec![
        ("STU1", "2024-03-04T08:00:00Z"),
        ("STU1", "2024-03-04T12:00:00Z"),
        ("STU1", "2024-03-05T08:10:00Z"),
        ("STU1", "2024-03-06T08:20:00Z"),
        ("STU2", "2024-03-04T09:00:00Z"),
        ("STU2", "2024-03-09T10:00:00Z"),
        ("PHY1", "2024-03-05T07:45:00Z"),
        ("GONE", "2024-03-04T08:30:00Z"),
    ];
    let weekdays = ["04", "05", "06", "07", "08"];
    let faculty_days: Vec<String> = weekdays.iter().map(|day| format!("2024-03-{day}T07:30:00Z")).collect();
    plan.extend(faculty_days.iter().map(|timestamp| ("FAC1", timestamp.as_str())));
    for (employee, timestamp) in plan {
        report(app, employee, timestamp, Some("CAM-MAIN")).await;
    }
    let voided = report(app, "PHY1", "2024-03-06T07:45:00Z", None).await;
    let response = app
        .post(&format!("/attendance/logs/{voided}/void/"), Some(&app.admin_token), json!({"reason": "not PHY1"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response =
        app.request(reqwest::Method::DELETE, &format!("/users/{}/", gone.id), Some(&app.admin_token), None).await;
    assert!(response.status().is_success(), "deactivating GONE: {}", response.status());
    faculty
}

async fn json_report(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(&format!("/reports/attendance/{query}"), token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn no_quotas(config: &mut rollcall_server::Config) {
    config.attendance_cooldown_secs = 0;
}

#[tokio::test]
async fn a_week_is_reported_as_present_person_days_over_people_times_working_days() {
    let app = spawn_app_with(no_quotas).await;
    a_week_of_attendance(&app).await;
    let body = json_report(&app, &app.admin_token, WEEK).await;

    assert!(body["report_id"].as_str().unwrap().starts_with("RPT_"), "{body}");
    assert_eq!(body["date_range"], "2024-03-04 to 2024-03-10");
    assert_eq!(body["period"], "monthly");
    assert_eq!(body["working_days"], 5);
    // FAC1, STU1, STU2, PHY1: admins run the service and GONE is deactivated.
    assert_eq!(body["total_employees"], 4);
    assert_eq!(body["expected_person_days"], 20);
    // FAC1 5 + STU1 3 + STU2 1 (Saturday is no working day) + PHY1 1 (Wednesday voided).
    assert_eq!(body["present_person_days"], 10);
    assert_eq!(body["attendance_rate"], 0.5);
    // Valid logs of the people expected: STU1 4, STU2 2, PHY1 1, FAC1 5.
    assert_eq!(body["total_attendances"], 12);
    let maths = &body["department_stats"]["Maths"];
    assert_eq!(maths["total_employees"], 3);
    assert_eq!(maths["present_person_days"], 9);
    assert_eq!(maths["attendance_rate"], 0.6);
    assert_eq!(maths["avg_daily_attendance"], 1.8);
    let physics = &body["department_stats"]["Physics"];
    assert_eq!((physics["total_employees"].as_i64(), physics["attendance_rate"].as_f64()), (Some(1), Some(0.2)));
    let daily: Vec<(String, bool, i64)> = body["daily_attendance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| {
            (
                day["date"].as_str().unwrap().to_owned(),
                day["working_day"].as_bool().unwrap(),
                day["present"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("2024-03-04", true, 3),
        ("2024-03-05", true, 3),
        ("2024-03-06", true, 2),
        ("2024-03-07", true, 1),
        ("2024-03-08", true, 1),
        ("2024-03-09", false, 1),
        ("2024-03-10", false, 0),
    ];
    let expected: Vec<(String, bool, i64)> =
        expected.iter().map(|(date, working, present)| (date.to_string(), *working, *present)).collect();
    assert_eq!(daily, expected);

    let audited = app.audit_entries("report_generated").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["details"]["report_id"], body["report_id"]);
    assert_eq!(audited[0]["details"]["format"], "json");
}

#[tokio::test]
async fn filters_narrow_the_people_counted_and_faculty_see_only_their_department() {
    let app = spawn_app_with(no_quotas).await;
    let faculty = a_week_of_attendance(&app).await;

    let students = json_report(&app, &app.admin_token, &format!("{WEEK}&employee_ids=STU1,%20STU2")).await;
    assert_eq!((students["total_employees"].as_i64(), students["present_person_days"].as_i64()), (Some(2), Some(4)));
    assert_eq!(students["attendance_rate"], 0.4);
    let physics = json_report(&app, &app.admin_token, &format!("{WEEK}&department=Physics")).await;
    assert_eq!(physics["total_employees"], 1);
    assert_eq!(physics["department_stats"].as_object().unwrap().len(), 1);

    // Faculty get their own department's report, whatever department they ask for.
    let own = json_report(&app, &faculty.token, WEEK).await;
    assert_eq!(own["total_employees"], 3);
    assert_eq!(own["attendance_rate"], 0.6);
    assert_eq!(own["department_stats"].as_object().unwrap().keys().collect::<Vec<_>>(), ["Maths"]);
    let other = json_report(&app, &faculty.token, &format!("{WEEK}&department=Physics")).await;
    assert_eq!(other["total_employees"], 0);
    assert_eq!(other["attendance_rate"], 0.0);

    let student = app.create_user("STU9", "student", "Maths").await;
    let response = app.get(&format!("/reports/attendance/{WEEK}"), &student.token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_report_requests_get_400_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        ("?format=doc", "format"),
        ("?period=hourly", "period"),
        ("?date_from=2024-03-10&date_to=2024-03-01", "date_from"),
        ("?date_from=2000-01-01&date_to=2024-01-01", "date_to"),
        ("?employee_ids=STU1,no%20such%20id!", "employee_ids"),
        ("?employee_ids=,", "employee_ids"),
    ];
    for (query, field) in cases {
        let response = app.get(&format!("/reports/attendance/{query}"), &app.admin_token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["fields"][field].is_string(), "{query}: {body}");
    }
    let many: Vec<String> = (0..501).map(|n| format!("P{n}")).collect();
    let response = app.get(&format!("/reports/attendance/?employee_ids={}", many.join(",")), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Where reviewers find rendered pages: `target/screenshots/` of the workspace.
fn screenshots_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} is needed (Debian: apt-get install poppler-utils): {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_pdf_report_opens_with_its_title_totals_and_departments() {
    let app = spawn_app_with(no_quotas).await;
    a_week_of_attendance(&app).await;
    let response = app.get(&format!("/reports/attendance/{WEEK}&format=pdf"), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"attendance_2024-03-04_2024-03-10.pdf\""
    );
    let bytes = response.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();

    let text = run("pdftotext", &["-layout", file, "-"]);
    for expected in ["Attendance report", "2024-03-04 to 2024-03-10", "Attendance rate", "50.0 %", "10 of 20 expected"]
    {
        assert!(text.contains(expected), "{expected:?} not in the PDF's text:\n{text}");
    }
    let maths = text.lines().find(|line| line.contains("Maths")).unwrap_or_default();
    assert!(maths.contains("60.0 %") && maths.contains("1.8"), "Maths row: {maths:?}\n{text}");
    let page = screenshots_dir().join("attendance-report");
    run("pdftoppm", &["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", file, page.to_str().unwrap()]);
    assert!(std::fs::metadata(page.with_extension("png")).unwrap().len() > 10_000);
}

#[tokio::test]
async fn the_excel_report_holds_summary_daily_people_and_log_sheets_with_date_cells() {
    let app = spawn_app_with(no_quotas).await;
    a_week_of_attendance(&app).await;
    let response = app.get(&format!("/reports/attendance/{WEEK}&format=excel"), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert!(response.headers()["content-disposition"].to_str().unwrap().ends_with(".xlsx\""));
    let bytes = response.bytes().await.unwrap().to_vec();
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(workbook.sheet_names(), ["Summary", "Daily", "People", "Logs"]);

    let summary = workbook.worksheet_range("Summary").unwrap();
    let value_of = |label: &str| {
        let row = summary.rows().find(|row| row[0].get_string() == Some(label)).unwrap_or_else(|| panic!("{label}"));
        row[1].clone()
    };
    assert_eq!(value_of("Attendance rate").as_f64(), Some(0.5));
    assert_eq!(value_of("People expected").as_f64(), Some(4.0));
    assert_eq!(value_of("From").as_date(), Some("2024-03-04".parse().unwrap()));
    let maths = summary.rows().find(|row| row[0].get_string() == Some("Maths")).unwrap();
    assert_eq!((maths[1].as_f64(), maths[3].as_f64()), (Some(3.0), Some(0.6)));

    let daily = workbook.worksheet_range("Daily").unwrap();
    let monday = daily.rows().nth(1).unwrap();
    assert!(matches!(monday[0], Data::DateTime(_)), "{:?}", monday[0]);
    assert_eq!((monday[0].as_date(), monday[2].as_f64()), (Some("2024-03-04".parse().unwrap()), Some(3.0)));

    let people = workbook.worksheet_range("People").unwrap();
    let stu1 = people.rows().find(|row| row[0].get_string() == Some("STU1")).unwrap();
    assert_eq!((stu1[4].as_f64(), stu1[5].as_f64()), (Some(3.0), Some(0.6)));
    assert_eq!(stu1[6].as_datetime(), Some("2024-03-04T08:00:00".parse().unwrap()));
    assert_eq!(stu1[7].as_datetime(), Some("2024-03-06T08:20:00".parse().unwrap()));
    assert_eq!(people.height(), 5, "a header and the four people expected");

    let logs = workbook.worksheet_range("Logs").unwrap();
    // Every log of the people expected, the voided one included and marked.
    assert_eq!(logs.height(), 1 + 13);
    let statuses: Vec<&str> = logs.rows().skip(1).filter_map(|row| row[8].get_string()).collect();
    assert_eq!(statuses.iter().filter(|status| **status == "voided").count(), 1);
    let first = logs.rows().nth(1).unwrap();
    assert!(matches!(first[1], Data::DateTime(_)));
    assert_eq!(first[1].as_datetime(), Some("2024-03-04T07:30:00".parse().unwrap()));
    assert_eq!(first[2].get_string(), Some("FAC1"));
}

async fn patterns(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/reports/patterns/{query}"), &app.admin_token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// People present per weekday (Monday first) of the periodic history.
const PER_WEEKDAY: [u32; 7] = [3, 2, 3, 1, 2, 0, 0];

#[tokio::test]
async fn a_periodic_history_gives_exact_weekday_patterns_and_next_weeks_forecast() {
    use chrono::{Datelike, Days, Weekday};
    let app = spawn_app_with(no_quotas).await;
    for n in 1..=3 {
        app.create_user(&format!("P{n}"), "student", "Maths").await;
    }
    let today = chrono::Utc::now().date_naive();
    let history: Vec<chrono::NaiveDate> = (1..=21).map(|back| today - Days::new(back)).collect();
    for date in &history {
        let hour = if date.weekday() == Weekday::Mon { 8 } else { 9 };
        for n in 1..=PER_WEEKDAY[date.weekday().num_days_from_monday() as usize] {
            report(&app, &format!("P{n}"), &format!("{date}T{hour:02}:15:00Z"), None).await;
        }
    }
    let body = patterns(&app, "").await;

    let predictions = &body["predictions"];
    assert_eq!(predictions["next_week_attendance"], 11, "{predictions}");
    assert_eq!(predictions["confidence"], 1.0, "{predictions}");
    assert!(predictions["backtest_weeks"].as_u64().unwrap() >= 1);
    let next_monday = predictions["week_from"].as_str().unwrap().parse::<chrono::NaiveDate>().unwrap();
    assert_eq!(next_monday.weekday(), Weekday::Mon);
    assert!(next_monday > today && next_monday <= today + Days::new(7));
    assert_eq!(predictions["daily"][0]["attendance"], 3.0);

    let monday = &body["daily_patterns"]["monday"];
    assert_eq!((monday["avg_attendance"].as_f64(), monday["peak_hour"].as_str()), (Some(3.0), Some("08:00")));
    let thursday = &body["daily_patterns"]["thursday"];
    assert_eq!((thursday["avg_attendance"].as_f64(), thursday["peak_hour"].as_str()), (Some(1.0), Some("09:00")));
    assert_eq!(body["daily_patterns"]["sunday"]["avg_attendance"], 0.0);
    assert!(body["daily_patterns"]["sunday"]["peak_hour"].is_null());

    // Rates per season: present person-days on working days over 3 people × working days.
    let first: chrono::NaiveDate = body["date_from"].as_str().unwrap().parse().unwrap();
    assert!(first >= today - Days::new(21), "the range starts with the first attendance: {body}");
    let mut per_season: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for date in history.iter().filter(|date| **date >= first && date.weekday().num_days_from_monday() < 5) {
        let season = match date.month() {
            3..=5 => "spring",
            6..=8 => "summer",
            9..=11 => "fall",
            _ => "winter",
        };
        let entry = per_season.entry(season).or_default();
        entry.0 += PER_WEEKDAY[date.weekday().num_days_from_monday() as usize];
        entry.1 += 3;
    }
    for season in ["spring", "summer", "fall", "winter"] {
        let reported = body["seasonal_trends"][season].as_f64();
        let expected = per_season.get(season).map(|(present, expected)| *present as f64 / *expected as f64);
        match (reported, expected) {
            (Some(reported), Some(expected)) => assert!((reported - expected).abs() < 1e-4, "{season}: {reported}"),
            (None, None) => {}
            other => panic!("{season}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn under_two_weeks_of_history_the_forecast_is_null_with_the_reason() {
    use chrono::Days;
    let app = spawn_app_with(no_quotas).await;
    app.create_user("P1", "student", "Maths").await;
    let today = chrono::Utc::now().date_naive();
    for back in 1..=5 {
        report(&app, "P1", &format!("{}T09:00:00Z", today - Days::new(back)), None).await;
    }
    let predictions = patterns(&app, "").await["predictions"].clone();
    assert!(predictions["next_week_attendance"].is_null() && predictions["confidence"].is_null(), "{predictions}");
    assert!(predictions["reason"].as_str().unwrap().contains("14 days"), "{predictions}");
}

#[tokio::test]
async fn real_time_analytics_count_today_and_the_services_own_requests() {
    use chrono::Timelike;
    let app = spawn_app_with(no_quotas).await;
    let faculty = app.create_user("FAC1", "faculty", "Maths").await;
    app.create_user("STU1", "student", "Maths").await;
    app.create_user("STU2", "student", "Maths").await;
    let now = chrono::Utc::now();
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for employee in ["FAC1", "STU1", "FAC1"] {
        report(&app, employee, &stamp, None).await;
    }
    let yesterday = (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    report(&app, "STU2", &yesterday, None).await;

    let response = app.get("/reports/analytics/real-time/", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["date"], now.date_naive().to_string());
    assert_eq!((body["current_occupancy"].as_i64(), body["today_attendance"].as_i64()), (Some(2), Some(2)), "{body}");
    assert_eq!(body["today_arrivals"], 3);
    assert_eq!(body["peak_hour"], format!("{:02}:00", now.hour()));
    assert!(body["avg_processing_time"].is_null(), "no face was verified: {body}");
    let health = &body["system_health"];
    // This test's own requests: users, logins, reports.
    assert!(health["requests_last_5_minutes"].as_u64().unwrap() >= 10, "{health}");
    assert!(health["api_response_time"].as_f64().unwrap() > 0.0, "{health}");
    assert_eq!((health["error_rate"].as_f64(), health["queue_size"].as_i64()), (Some(0.0), Some(0)));
    assert_eq!(health["ai_worker_status"], "healthy");
    let connections =
        health["database_connections"].as_u64().unwrap() + health["database_idle_connections"].as_u64().unwrap();
    assert!(connections >= 1, "{health}");
    assert_eq!(body["camera_status"], json!({"online": 0, "offline": 0, "errors": 0, "connecting": 0}));

    let response = app.get("/reports/analytics/real-time/", &faculty.token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

//! Every endpoint × every kind of caller: admin, faculty, student, anonymous, and API
//! keys with the admin and the student role.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[derive(Clone, Copy, Debug)]
enum Caller {
    Admin,
    Faculty,
    Student,
    Anonymous,
    AdminKey,
    StudentKey,
}

const ALL: [Caller; 6] =
    [Caller::Admin, Caller::Faculty, Caller::Student, Caller::Anonymous, Caller::AdminKey, Caller::StudentKey];

struct Callers {
    admin: String,
    faculty: TestUser,
    student: TestUser,
    admin_key: String,
    student_key: String,
}

impl Callers {
    fn apply(&self, caller: Caller, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match caller {
            Caller::Admin => request.bearer_auth(&self.admin),
            Caller::Faculty => request.bearer_auth(&self.faculty.token),
            Caller::Student => request.bearer_auth(&self.student.token),
            Caller::Anonymous => request,
            Caller::AdminKey => request.header("X-API-Key", &self.admin_key),
            Caller::StudentKey => request.header("Authorization", format!("Api-Key {}", self.student_key)),
        }
    }
}

/// What each caller gets: admin, faculty, student, anonymous, admin key, student key.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    expected: [StatusCode; 6],
}

const OK: StatusCode = StatusCode::OK;
const CREATED: StatusCode = StatusCode::CREATED;
const NO_CONTENT: StatusCode = StatusCode::NO_CONTENT;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;

#[tokio::test]
async fn every_endpoint_answers_every_role_as_documented() {
    let app = spawn_app().await;
    let callers = Callers {
        admin: app.admin_token.clone(),
        faculty: app.create_user("FAC1", "faculty", "Maths").await,
        student: app.create_user("STU1", "student", "Maths").await,
        admin_key: app.create_api_key("integration", "admin").await,
        student_key: app.create_api_key("kiosk", "student").await,
    };
    let student_path = format!("/users/{}/", callers.student.id);
    let faculty_path = format!("/users/{}/", callers.faculty.id);
    let mut unique = 0;
    let mut new_user = || {
        unique += 1;
        json!({"employee_id": format!("NEW{unique}"), "email": format!("new{unique}@college.edu"), "role": "student", "password": PASSWORD})
    };

    let cases = vec![
        Case {
            method: Method::GET,
            path: "/users/".into(),
            body: None,
            expected: [OK, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, OK, FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: student_path.clone(),
            body: None,
            expected: [OK, FORBIDDEN, OK, UNAUTHORIZED, OK, FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: faculty_path.clone(),
            body: None,
            expected: [OK, OK, FORBIDDEN, UNAUTHORIZED, OK, FORBIDDEN],
        },
        Case {
            method: Method::PATCH,
            path: student_path.clone(),
            body: Some(json!({"first_name": "Renamed"})),
            expected: [OK, FORBIDDEN, OK, UNAUTHORIZED, OK, FORBIDDEN],
        },
        Case {
            method: Method::PUT,
            path: student_path.clone(),
            body: Some(json!({"role": "student"})),
            // People may not change their own role.
            expected: [OK, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, OK, FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: "/auth/api-keys/".into(),
            body: None,
            expected: [OK, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, OK, FORBIDDEN],
        },
        Case {
            method: Method::POST,
            path: "/auth/api-keys/".into(),
            body: Some(json!({"name": "k", "role": "student"})),
            expected: [CREATED, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, CREATED, FORBIDDEN],
        },
        Case {
            method: Method::DELETE,
            path: "/auth/api-keys/999/".into(),
            body: None,
            expected: [NOT_FOUND, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, NOT_FOUND, FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: "/security/audit-logs/".into(),
            body: None,
            expected: [OK, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, OK, FORBIDDEN],
        },
    ];
    for case in cases {
        for (caller, expected) in ALL.into_iter().zip(case.expected) {
            let status = send(&app, &callers, caller, &case.method, &case.path, case.body.clone()).await;
            assert_eq!(status, expected, "{} {} as {caller:?}", case.method, case.path);
        }
    }

    // Creating and deactivating users: only admins.
    for (caller, expected) in ALL.into_iter().zip([CREATED, FORBIDDEN, FORBIDDEN, UNAUTHORIZED, CREATED, FORBIDDEN]) {
        let status = send(&app, &callers, caller, &Method::POST, "/users/", Some(new_user())).await;
        assert_eq!(status, expected, "POST /users/ as {caller:?}");
    }
    for (caller, expected) in [
        (Caller::Faculty, FORBIDDEN),
        (Caller::Student, FORBIDDEN),
        (Caller::Anonymous, UNAUTHORIZED),
        (Caller::StudentKey, FORBIDDEN),
        (Caller::AdminKey, NO_CONTENT),
    ] {
        let status = send(&app, &callers, caller, &Method::DELETE, &faculty_path, None).await;
        assert_eq!(status, expected, "DELETE {faculty_path} as {caller:?}");
    }
}

async fn send(
    app: &TestApp,
    callers: &Callers,
    caller: Caller,
    method: &Method,
    path: &str,
    body: Option<Value>,
) -> StatusCode {
    let mut request = callers.apply(caller, app.client.request(method.clone(), app.url(path)));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status()
}

//! Who may call what. Every route the server serves, called by every kind of caller
//! (anonymous, student, faculty, admin, and API keys with the admin and the student
//! role), answers as the access policy table says; and a few operations give each caller
//! the specific outcome the spec documents, row-level rules included.

use reqwest::{Method, StatusCode};
use rollcall_server::api::policy::{self, POLICY, Refusal};
use rollcall_server::domain::auth::Principal;
use rollcall_server::domain::users::Role;
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
    admin: TestUser,
    faculty: TestUser,
    student: TestUser,
    admin_key: String,
    student_key: String,
}

impl Callers {
    async fn create(app: &TestApp) -> Self {
        let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let admin = TestUser {
            id: login["user"]["id"].as_i64().unwrap(),
            email: ADMIN_EMAIL.into(),
            token: login["access"].as_str().unwrap().into(),
        };
        Self {
            admin,
            faculty: app.create_user("FAC1", "faculty", "Maths").await,
            student: app.create_user("STU1", "student", "Maths").await,
            admin_key: app.create_api_key("integration", "admin").await,
            student_key: app.create_api_key("kiosk", "student").await,
        }
    }

    fn apply(&self, caller: Caller, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match caller {
            Caller::Admin => request.bearer_auth(&self.admin.token),
            Caller::Faculty => request.bearer_auth(&self.faculty.token),
            Caller::Student => request.bearer_auth(&self.student.token),
            Caller::Anonymous => request,
            Caller::AdminKey => request.header("X-API-Key", &self.admin_key),
            Caller::StudentKey => request.header("Authorization", format!("Api-Key {}", self.student_key)),
        }
    }

    /// The person behind the caller, if it is one.
    fn person(&self, caller: Caller) -> Option<&TestUser> {
        match caller {
            Caller::Admin => Some(&self.admin),
            Caller::Faculty => Some(&self.faculty),
            Caller::Student => Some(&self.student),
            Caller::Anonymous | Caller::AdminKey | Caller::StudentKey => None,
        }
    }

    /// The caller as the server sees it once authenticated.
    fn principal(&self, caller: Caller) -> Option<Principal> {
        let user = |user: &TestUser, role| Principal::User {
            id: user.id,
            role,
            employee_id: String::new(),
            email: user.email.clone(),
        };
        let key = |role| Principal::ApiKey { id: 0, role, name: String::new(), liveness: Default::default() };
        match caller {
            Caller::Admin => Some(user(&self.admin, Role::Admin)),
            Caller::Faculty => Some(user(&self.faculty, Role::Faculty)),
            Caller::Student => Some(user(&self.student, Role::Student)),
            Caller::Anonymous => None,
            Caller::AdminKey => Some(key(Role::Admin)),
            Caller::StudentKey => Some(key(Role::Student)),
        }
    }
}

/// Every route the server serves: the operations of the OpenAPI document it serves, and
/// the routes the policy table declares the document leaves out.
async fn served_routes(app: &TestApp) -> Vec<(Method, String)> {
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let spec: Value = response.json().await.unwrap();
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys().filter(|key| METHODS.contains(&key.as_str())) {
            routes.push((method.to_uppercase().parse().unwrap(), path.clone()));
        }
    }
    for guard in POLICY {
        let in_document = routes.iter().any(|(method, path)| *method == guard.method && path == guard.path);
        match (guard.documented, in_document) {
            (true, false) => {
                panic!("{} {} is in the policy table but not served (or not documented)", guard.method, guard.path)
            }
            (false, true) => panic!("{} {} is documented: mark it so in the policy table", guard.method, guard.path),
            (false, false) => routes.push((guard.method.clone(), guard.path.to_owned())),
            (true, true) => {}
        }
    }
    routes
}

/// The route's template with plausible values: a person's own id for `/users/{id}/`,
/// an existing docs asset, and ids that match nothing elsewhere (so that nothing is
/// changed or deleted, and an allowed caller gets the handler's 404).
fn plausible_path(template: &str, person: Option<&TestUser>) -> String {
    let mut path = String::new();
    for segment in template.split_inclusive('/') {
        let (segment, slash) = segment.strip_suffix('/').map_or((segment, ""), |s| (s, "/"));
        let value = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            None => segment.to_owned(),
            Some("id") if template.starts_with("/api/v1/users/") => person.map_or(999_999, |p| p.id).to_string(),
            Some("id") => "999999".into(),
            Some("task_id") => "verify_00000000-0000-0000-0000-000000000000".into(),
            Some("employee_id") => "NOBODY999".into(),
            Some("camera_id") => "NOCAM999".into(),
            Some("visitor_id") => "V-99999".into(),
            Some("file") => "init.js".into(),
            Some(other) => panic!("give the path parameter {{{other}}} of {template} a plausible value here"),
        };
        path.push_str(&value);
        path.push_str(slash);
    }
    path
}

#[tokio::test]
async fn every_served_route_answers_every_caller_as_the_policy_table_says() {
    let app = spawn_app().await;
    let callers = Callers::create(&app).await;
    let routes = served_routes(&app).await;
    assert!(routes.len() >= POLICY.len(), "every table entry is walked");
    for (method, template) in &routes {
        let guard = policy::guard(method, template)
            .unwrap_or_else(|| panic!("{method} {template} is served but missing from the policy table"));
        for caller in ALL {
            let path = plausible_path(template, callers.person(caller));
            let mut request =
                callers.apply(caller, app.client.request(method.clone(), format!("{}{path}", app.address)));
            if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
                request = request.json(&json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let what = format!("{method} {path} as {caller:?}");
            match guard.access.decide(callers.principal(caller).as_ref()) {
                Err(Refusal::Unauthenticated) => assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}"),
                Err(Refusal::Forbidden) => assert_eq!(status, StatusCode::FORBIDDEN, "{what}"),
                Ok(()) => {
                    assert!(
                        ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                        "{what}: allowed by the table, refused with {status}"
                    );
                    assert!(status != StatusCode::METHOD_NOT_ALLOWED && !status.is_server_error(), "{what}: {status}");
                    if status == StatusCode::NOT_FOUND {
                        let body: Value = response.json().await.unwrap();
                        let message = body["error"]["message"].as_str().unwrap_or_default();
                        assert!(!message.starts_with("no route for"), "{what}: the router has no such route");
                    }
                }
            }
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
async fn key_operations_give_each_caller_the_documented_outcome() {
    let app = spawn_app().await;
    let callers = Callers::create(&app).await;
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

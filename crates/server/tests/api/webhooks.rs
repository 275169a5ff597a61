//! Webhooks end to end: registrations, the incoming attendance webhook, and signed
//! deliveries to a receiver running inside the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    headers: HeaderMap,
    pub body: String,
}

#[derive(Clone)]
struct ReceiverState {
    requests: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many requests first.
    failures_left: Arc<Mutex<usize>>,
}

/// A webhook receiver on a free local port: on loopback, so the servers that deliver to it
/// need `webhook_allow_private_networks`.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

impl Receiver {
    pub async fn start(failures: usize) -> Self {
        let state =
            ReceiverState { requests: Arc::new(Mutex::new(Vec::new())), failures_left: Arc::new(Mutex::new(failures)) };
        let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, state }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until the receiver has had `count` requests.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..200 {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver got {} requests, expected {count}", self.requests().len());
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: String) -> AxumStatus {
    state.requests.lock().unwrap().push(Received { headers, body });
    let mut failures_left = state.failures_left.lock().unwrap();
    if *failures_left > 0 {
        *failures_left -= 1;
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::NO_CONTENT
    }
}

/// The local receivers live on loopback.
pub fn allow_private_networks(config: &mut rollcall_server::Config) {
    config.webhook_allow_private_networks = true;
}

fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

/// Checks the signature headers the way a receiver would, independently of the server's code.
pub fn assert_signed(request: &Received, secret: &str) {
    let timestamp = header(request, "x-rollcall-timestamp");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60, "timestamp {sent_at} is not now");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", request.body).as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header(request, "x-rollcall-signature"), expected, "signature does not verify");
}

pub async fn create_webhook(app: &TestApp, body: Value) -> Value {
    let response = app.post("/webhooks/", Some(&app.admin_token), body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Reports an arrival through the incoming webhook with an admin API key.
pub async fn report_arrival(app: &TestApp, key: &str, employee_id: &str) -> reqwest::Response {
    let body = json!({
        "event": "attendance_logged",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "data": {"employee_id": employee_id, "name": "Test", "camera_id": "CAM001", "confidence": 0.97},
    });
    app.client.post(app.url("/webhooks/attendance/")).header("X-API-Key", key).json(&body).send().await.unwrap()
}

pub async fn deliveries(app: &TestApp, webhook_id: i64) -> Vec<Value> {
    let response = app.get(&format!("/webhooks/{webhook_id}/deliveries/"), &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["results"].as_array().unwrap().clone()
}

/// Waits until the webhook's newest delivery has `status`.
pub async fn wait_for_delivery_status(app: &TestApp, webhook_id: i64, status: &str) -> Value {
    for _ in 0..200 {
        let log = deliveries(app, webhook_id).await;
        if let Some(delivery) = log.first().filter(|d| d["status"] == status) {
            return delivery.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {status} delivery for webhook {webhook_id}: {:?}", deliveries(app, webhook_id).await);
}

#[tokio::test]
async fn subscribed_active_webhooks_get_the_spec_body_signed() {
    let app = spawn_app_with(allow_private_networks).await;
    let key = app.create_api_key("door integration", "admin").await;
    app.create_user("FAC001", "faculty", "Physics").await;
    let (subscribed, spoofing_only, inactive) =
        (Receiver::start(0).await, Receiver::start(0).await, Receiver::start(0).await);
    let created = create_webhook(&app, json!({"url": subscribed.url, "events": ["attendance_logged"]})).await;
    let secret = created["secret"].as_str().expect("a generated secret is returned on create").to_owned();
    assert!(secret.len() >= 32);
    create_webhook(&app, json!({"url": spoofing_only.url, "events": ["spoofing_detected"]})).await;
    create_webhook(&app, json!({"url": inactive.url, "events": ["attendance_logged"], "is_active": false})).await;

    let response = report_arrival(&app, &key, "FAC001").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let logged: Value = response.json().await.unwrap();
    assert_eq!(logged["attendance_logged"], true);

    let requests = subscribed.wait_for(1).await;
    let request = &requests[0];
    assert_signed(request, &secret);
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(header(request, "x-rollcall-event"), "attendance_logged");
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["event"], "attendance_logged");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(body["data"]["employee_id"], "FAC001");
    assert_eq!(body["data"]["name"], "Test FAC001");
    assert_eq!(body["data"]["camera_id"], "CAM001");
    assert_eq!(body["data"]["confidence"], 0.97);
    assert_eq!(body["data"]["attendance_id"], logged["attendance_id"]);

    let delivery = wait_for_delivery_status(&app, created["id"].as_i64().unwrap(), "delivered").await;
    assert_eq!(header(request, "x-rollcall-delivery"), delivery["id"].to_string());
    assert_eq!(delivery["event"], "attendance_logged");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_status_code"], 204);
    assert!(delivery["delivered_at"].is_string());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(spoofing_only.requests().is_empty(), "a webhook for other events got attendance");
    assert!(inactive.requests().is_empty(), "an inactive webhook got a delivery");
    assert_eq!(subscribed.requests().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_receiver_that_is_down_at_first_gets_the_delivery_on_a_retry() {
    let app = spawn_app_with(|config| {
        allow_private_networks(config);
        config.webhook_retry_base_ms = 200;
    })
    .await;
    let key = app.create_api_key("door integration", "admin").await;
    app.create_user("FAC002", "faculty", "Physics").await;
    let receiver = Receiver::start(2).await;
    let secret = "a-secret-chosen-by-the-admin";
    let webhook =
        create_webhook(&app, json!({"url": receiver.url, "events": ["attendance_logged"], "secret": secret})).await;
    assert!(webhook.get("secret").is_none(), "a chosen secret is not echoed");

    assert_eq!(report_arrival(&app, &key, "FAC002").await.status(), StatusCode::CREATED);
    let requests = receiver.wait_for(3).await;
    for request in &requests {
        assert_signed(request, secret);
        assert_eq!(request.body, requests[0].body, "every attempt sends the same body");
        assert_eq!(header(request, "x-rollcall-delivery"), header(&requests[0], "x-rollcall-delivery"));
    }
    let delivery = wait_for_delivery_status(&app, webhook["id"].as_i64().unwrap(), "delivered").await;
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 204);
    assert!(delivery["last_error"].is_null());
}

#[tokio::test]
async fn a_receiver_that_never_succeeds_ends_failed_with_the_last_error() {
    let app = spawn_app_with(|config| {
        allow_private_networks(config);
        config.webhook_retry_base_ms = 100;
        config.webhook_max_attempts = 3;
    })
    .await;
    let key = app.create_api_key("door integration", "admin").await;
    app.create_user("FAC003", "faculty", "Physics").await;
    let failing = Receiver::start(usize::MAX).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let erroring = create_webhook(&app, json!({"url": failing.url, "events": ["attendance_logged"]})).await;
    let unreachable = create_webhook(
        &app,
        json!({"url": format!("http://127.0.0.1:{closed_port}/hook"), "events": ["attendance_logged"]}),
    )
    .await;

    assert_eq!(report_arrival(&app, &key, "FAC003").await.status(), StatusCode::CREATED);
    let failed = wait_for_delivery_status(&app, erroring["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["last_status_code"], 500);
    assert!(failed["last_error"].as_str().unwrap().contains("500"), "{failed}");
    assert!(failed["delivered_at"].is_null());
    assert_eq!(failing.requests().len(), 3, "no attempt after the last one");

    let failed = wait_for_delivery_status(&app, unreachable["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["attempts"], 3);
    assert!(failed["last_status_code"].is_null());
    assert!(failed["last_error"].as_str().unwrap().contains("connect"), "{failed}");
}

#[tokio::test]
async fn an_event_published_twice_is_delivered_once() {
    let mut database_url = None;
    let app = spawn_app_with(|config| {
        allow_private_networks(config);
        database_url = config.database_url.clone();
    })
    .await;
    let receiver = Receiver::start(0).await;
    let webhook = create_webhook(&app, json!({"url": receiver.url, "events": ["enrollment_completed"]})).await;

    // A second process on the same database, publishing the same occurrence twice (a task re-run after a crash).
    let db = rollcall_server::store::Db::connect(&database_url.unwrap()).await.unwrap();
    let outbox = rollcall_server::webhooks::WebhookOutbox::new(Default::default());
    let event = rollcall_server::events::Event {
        kind: rollcall_server::events::EventKind::EnrollmentCompleted,
        key: "enrollment:enroll_1".into(),
        timestamp: chrono::Utc::now(),
        data: json!({"employee_id": "FAC001"}),
    };
    use rollcall_server::events::EventSink as _;
    for _ in 0..2 {
        let tx = db.begin().await.unwrap();
        outbox.record(&tx, &event).await.unwrap();
        tx.commit().await.unwrap();
    }

    receiver.wait_for(1).await;
    wait_for_delivery_status(&app, webhook["id"].as_i64().unwrap(), "delivered").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(deliveries(&app, webhook["id"].as_i64().unwrap()).await.len(), 1);
    db.close().await;
}

#[tokio::test]
async fn webhooks_are_created_read_updated_deleted_and_audited() {
    let app = spawn_app().await;
    let created = create_webhook(
        &app,
        json!({"url": "https://hooks.example.com/rollcall", "events": ["spoofing_detected", "attendance_logged"]}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["events"], json!(["attendance_logged", "spoofing_detected"]));
    assert_eq!(created["is_active"], true);

    let path = format!("/webhooks/{id}/");
    let fetched: Value = app.get(&path, &app.admin_token).await.json().await.unwrap();
    assert_eq!(fetched["url"], "https://hooks.example.com/rollcall");

    let replaced = app
        .request(
            Method::PUT,
            &path,
            Some(&app.admin_token),
            Some(json!({"url": "https://other.example.com/in", "events": ["enrollment_completed"]})),
        )
        .await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["url"], "https://other.example.com/in");
    assert_eq!(replaced["events"], json!(["enrollment_completed"]));

    let patched = app.request(Method::PATCH, &path, Some(&app.admin_token), Some(json!({"is_active": false}))).await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["is_active"], false);
    assert_eq!(patched["url"], "https://other.example.com/in", "PATCH keeps what it does not name");

    let list: Value = app.get("/webhooks/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    let log: Value = app.get(&format!("/webhooks/{id}/deliveries/"), &app.admin_token).await.json().await.unwrap();
    assert_eq!(log["count"], 0);

    let deleted = app.request(Method::DELETE, &path, Some(&app.admin_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &app.admin_token).await.status(), StatusCode::NOT_FOUND);
    let again = app.request(Method::DELETE, &path, Some(&app.admin_token), None).await;
    assert_eq!(error_code(again).await, "not_found");
    assert_eq!(app.get("/webhooks/999/deliveries/", &app.admin_token).await.status(), StatusCode::NOT_FOUND);

    for action in ["webhook_create", "webhook_update", "webhook_delete"] {
        let entries = app.audit_entries(action).await;
        assert!(!entries.is_empty(), "{action} not audited");
        assert_eq!(entries[0]["details"]["webhook_id"], id);
        assert!(entries[0]["user_id"].as_str().unwrap().starts_with("ADMIN-"));
    }
    assert_eq!(app.audit_entries("webhook_update").await.len(), 2);
}

#[tokio::test]
async fn invalid_registrations_get_400_in_the_error_shape() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"url": "not a url", "events": ["attendance_logged"]}), "url"),
        (json!({"url": "ftp://example.com/x", "events": ["attendance_logged"]}), "url"),
        (json!({"url": "https://", "events": ["attendance_logged"]}), "url"),
        (json!({"url": "https://example.com/x", "events": ["user_deleted"]}), "events"),
        (json!({"url": "https://example.com/x", "events": []}), "events"),
        (json!({"url": "https://example.com/x", "events": ["attendance_logged"], "secret": "short"}), "secret"),
    ] {
        let response = app.post("/webhooks/", Some(&app.admin_token), body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "validation_error");
        assert!(error["error"]["fields"][field].is_string(), "{body} → {error}");
    }
    let both = app.post("/webhooks/", Some(&app.admin_token), json!({"url": "gopher://x", "events": ["nope"]})).await;
    let error: Value = both.json().await.unwrap();
    assert!(error["error"]["fields"]["url"].is_string() && error["error"]["fields"]["events"].is_string());
    let missing = app.post("/webhooks/", Some(&app.admin_token), json!({"url": "https://example.com/x"})).await;
    assert_eq!(error_code(missing).await, "validation_error");

    let id = create_webhook(&app, json!({"url": "https://example.com/x", "events": ["attendance_logged"]})).await["id"]
        .as_i64()
        .unwrap();
    let patch = app
        .request(Method::PATCH, &format!("/webhooks/{id}/"), Some(&app.admin_token), Some(json!({"events": ["x"]})))
        .await;
    assert_eq!(patch.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_admins_manage_webhooks() {
    let app = spawn_app().await;
    let faculty = app.create_user("FAC010", "faculty", "Physics").await;
    let student = app.create_user("STU010", "student", "Physics").await;
    let id = create_webhook(&app, json!({"url": "https://example.com/x", "events": ["attendance_logged"]})).await["id"]
        .as_i64()
        .unwrap();
    let registration = json!({"url": "https://example.com/y", "events": ["attendance_logged"]});
    let cases = [
        (Method::POST, "/webhooks/".to_owned(), Some(registration.clone())),
        (Method::GET, "/webhooks/".to_owned(), None),
        (Method::GET, format!("/webhooks/{id}/"), None),
        (Method::PUT, format!("/webhooks/{id}/"), Some(registration.clone())),
        (Method::PATCH, format!("/webhooks/{id}/"), Some(json!({"is_active": false}))),
        (Method::DELETE, format!("/webhooks/{id}/"), None),
        (Method::GET, format!("/webhooks/{id}/deliveries/"), None),
        (
            Method::POST,
            "/webhooks/attendance/".to_owned(),
            Some(json!({"event": "attendance_logged", "data": {"employee_id": "STU010"}})),
        ),
    ];
    for (method, path, body) in cases {
        for (token, expected) in [
            (Some(&faculty.token), StatusCode::FORBIDDEN),
            (Some(&student.token), StatusCode::FORBIDDEN),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let response = app.request(method.clone(), &path, token.map(String::as_str), body.clone()).await;
            assert_eq!(response.status(), expected, "{method} {path}");
            error_code(response).await;
        }
    }
    let student_key = app.create_api_key("kiosk", "student").await;
    let response = app
        .client
        .post(app.url("/webhooks/attendance/"))
        .header("X-API-Key", student_key)
        .json(&json!({"event": "attendance_logged", "data": {"employee_id": "STU010"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let still_there = app.get(&format!("/webhooks/{id}/"), &app.admin_token).await;
    assert_eq!(still_there.status(), StatusCode::OK);
}

/// The database URL of a test app, for reading raw rows.
async fn raw_webhook_rows(database_url: &str) -> Vec<(Vec<u8>, String)> {
    let sql = "SELECT secret, url || ' ' || events || ' ' || COALESCE(created_by, '') AS text FROM webhooks";
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test]
async fn secrets_are_shown_once_and_stored_encrypted() {
    let mut database_url = None;
    let app = spawn_app_with(|config| database_url = config.database_url.clone()).await;
    let chosen = "chosen-secret-0123456789";
    let generated =
        create_webhook(&app, json!({"url": "https://example.com/a", "events": ["attendance_logged"]})).await;
    let generated_secret = generated["secret"].as_str().unwrap().to_owned();
    let id = generated["id"].as_i64().unwrap();
    create_webhook(&app, json!({"url": "https://example.com/b", "events": ["attendance_logged"], "secret": chosen}))
        .await;
    let rotated = "rotated-secret-0123456789";
    let patched = app
        .request(Method::PATCH, &format!("/webhooks/{id}/"), Some(&app.admin_token), Some(json!({"secret": rotated})))
        .await
        .text()
        .await
        .unwrap();

    let list = app.get("/webhooks/", &app.admin_token).await.text().await.unwrap();
    let one = app.get(&format!("/webhooks/{id}/"), &app.admin_token).await.text().await.unwrap();
    let audit =
        format!("{:?}{:?}", app.audit_entries("webhook_create").await, app.audit_entries("webhook_update").await);
    for secret in [generated_secret.as_str(), chosen, rotated] {
        for (what, text) in [("list", &list), ("get", &one), ("patch", &patched), ("audit log", &audit)] {
            assert!(!text.contains(secret), "the secret appears in the {what}");
        }
        assert!(!text_has_field(&list, "secret"));
    }

    let rows = raw_webhook_rows(&database_url.unwrap()).await;
    assert_eq!(rows.len(), 2);
    for (sealed, text) in &rows {
        for secret in [generated_secret.as_str(), chosen, rotated] {
            assert!(!contains(sealed, secret.as_bytes()), "a secret is stored in the clear");
            assert!(!text.contains(secret));
        }
        assert!(sealed.len() > 28, "nonce, ciphertext and tag");
    }
}

fn text_has_field(json_text: &str, field: &str) -> bool {
    json_text.contains(&format!("\"{field}\""))
}

#[tokio::test]
async fn incoming_attendance_is_validated_and_respects_the_cooldown() {
    let app = spawn_app().await;
    let key = app.create_api_key("door integration", "admin").await;
    app.create_user("FAC020", "faculty", "Physics").await;
    let leaver = app.create_user("FAC021", "faculty", "Physics").await;
    app.request(Method::DELETE, &format!("/users/{}/", leaver.id), Some(&app.admin_token), None).await;

    let first = report_arrival(&app, &key, "FAC020").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["attendance_logged"], true);
    assert!(first["attendance_id"].as_i64().is_some());
    assert!(first.get("reason").is_none());

    let second = report_arrival(&app, &key, "FAC020").await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["attendance_logged"], false);
    assert_eq!(second["reason"], "cooldown");
    assert!(second.get("attendance_id").is_none());

    let unknown = report_arrival(&app, &key, "NOBODY1").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let message: Value = unknown.json().await.unwrap();
    assert!(message["error"]["message"].as_str().unwrap().contains("NOBODY1"));
    let inactive = report_arrival(&app, &key, "FAC021").await;
    assert_eq!(inactive.status(), StatusCode::CONFLICT);
    assert!(error_code(inactive).await == "conflict");

    let send = |body: Value| app.post("/webhooks/attendance/", Some(&app.admin_token), body);
    let wrong_event = send(json!({"event": "spoofing_detected", "data": {"employee_id": "FAC020"}})).await;
    assert_eq!(wrong_event.status(), StatusCode::BAD_REQUEST);
    let bad_confidence =
        send(json!({"event": "attendance_logged", "data": {"employee_id": "FAC020", "confidence": 7}})).await;
    assert_eq!(bad_confidence.status(), StatusCode::BAD_REQUEST);
    let future = chrono::Utc::now() + chrono::Duration::hours(2);
    let from_the_future = send(
        json!({"event": "attendance_logged", "timestamp": future.to_rfc3339(), "data": {"employee_id": "FAC020"}}),
    )
    .await;
    assert_eq!(from_the_future.status(), StatusCode::BAD_REQUEST);
    let no_data = send(json!({"event": "attendance_logged"})).await;
    assert_eq!(error_code(no_data).await, "validation_error");
    // A user token with the admin role works too, and the spec's body without timestamp.
    let by_admin = send(json!({"event": "attendance_logged", "data": {"employee_id": "FAC020"}})).await;
    assert_eq!(by_admin.status(), StatusCode::CREATED);

    let audited = app.audit_entries("attendance_webhook").await;
    assert!(audited.iter().any(|e| e["success"] == true && e["details"]["attendance_logged"] == true));
    assert!(audited.iter().any(|e| e["details"]["reason"] == "cooldown"));
    assert!(audited.iter().any(|e| e["success"] == false && e["details"]["employee_id"] == "NOBODY1"));
    assert!(audited.iter().any(|e| e["user_id"] == "api_key:door integration"));
}

#[tokio::test]
async fn face_verification_events_reach_the_receiver_signed() {
    let app = spawn_face_app_with(allow_private_networks).await;
    let receiver = Receiver::start(1).await;
    let secret = "a-long-enough-shared-secret";
    let events = json!(["attendance_logged", "enrollment_completed"]);
    create_webhook(&app, json!({"url": receiver.url, "events": events, "secret": secret})).await;
    app.create_user("OBAMA", "faculty", "Government").await;

    let enroll = json!({"employee_id": "OBAMA", "images": [photo("obama.jpg"), photo("obama2.jpg")]});
    let enrolled = app.post("/face/enroll/?wait=true", Some(&app.admin_token), enroll).await;
    assert_eq!(enrolled.status(), StatusCode::OK);
    let verified = app
        .post(
            "/face/verify/?wait=true",
            Some(&app.admin_token),
            json!({"image": photo("obama3.jpg"), "camera_id": "CAM001"}),
        )
        .await;
    let verified: Value = verified.json().await.unwrap();
    assert_eq!(verified["result"]["attendance_logged"], true, "{verified}");

    // The first attempt was refused (500): three requests for two events.
    let requests = receiver.wait_for(3).await;
    let mut kinds: Vec<String> = Vec::new();
    for request in requests.iter().skip(1) {
        assert_signed(request, secret);
        let body: Value = serde_json::from_str(&request.body).unwrap();
        kinds.push(body["event"].as_str().unwrap().to_owned());
        if body["event"] == "attendance_logged" {
            assert_eq!(body["data"]["employee_id"], "OBAMA");
            assert_eq!(body["data"]["camera_id"], "CAM001");
            assert!(body["data"]["confidence"].as_f64().unwrap() > 0.0);
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["attendance_logged", "enrollment_completed"]);
}

#[tokio::test]
async fn loopback_private_and_link_local_urls_are_refused_by_default() {
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.7/hook",
        "http://172.16.4.2/hook",
        "http://192.168.1.20/hook",
        "http://[fd00::5]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:8000/hook",
    ] {
        let response =
            app.post("/webhooks/", Some(&app.admin_token), json!({"url": url, "events": ["attendance_logged"]})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url} was accepted");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "validation_error");
        let why = error["error"]["fields"]["url"].as_str().unwrap_or_else(|| panic!("{url}: {error}"));
        assert!(why.contains("webhook_allow_private_networks"), "{url}: {why}");
    }
    let localhost = app
        .post(
            "/webhooks/",
            Some(&app.admin_token),
            json!({"url": "http://localhost/x", "events": ["attendance_logged"]}),
        )
        .await;
    let error: Value = localhost.json().await.unwrap();
    let why = error["error"]["fields"]["url"].as_str().unwrap();
    assert!(why.contains("localhost resolves to") && why.contains("loopback"), "{why}");

    // Nor can a registration be moved there.
    let id = create_webhook(&app, json!({"url": "https://hooks.example.com/x", "events": ["attendance_logged"]})).await
        ["id"]
        .as_i64()
        .unwrap();
    let moved = app
        .request(
            Method::PATCH,
            &format!("/webhooks/{id}/"),
            Some(&app.admin_token),
            Some(json!({"url": "http://127.0.0.1:8000/api/v1/users/"})),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::BAD_REQUEST);
    let list: Value = app.get("/webhooks/", &app.admin_token).await.json().await.unwrap();
    assert_eq!(list["results"].as_array().unwrap().len(), 1, "nothing refused was stored");
    assert_eq!(list["results"][0]["url"], "https://hooks.example.com/x");
}

#[tokio::test]
async fn a_webhook_stored_while_private_networks_were_allowed_is_not_sent_once_they_are_not() {
    let app = spawn_app_with(|config| {
        allow_private_networks(config);
        config.webhook_max_attempts = 1;
    })
    .await;
    let key = app.create_api_key("door integration", "admin").await;
    app.create_user("FAC030", "faculty", "Physics").await;
    let by_address = Receiver::start(0).await;
    let by_name = Receiver::start(0).await;
    let literal = create_webhook(&app, json!({"url": by_address.url, "events": ["attendance_logged"]})).await;
    let named_url = by_name.url.replace("127.0.0.1", "localhost");
    let named = create_webhook(&app, json!({"url": named_url, "events": ["attendance_logged"]})).await;

    let app = app.restart_with(|config| config.webhook_allow_private_networks = false).await;
    let admin_key_still_works = report_arrival(&app, &key, "FAC030").await;
    assert_eq!(admin_key_still_works.status(), StatusCode::CREATED);
    for webhook in [&literal, &named] {
        let failed = wait_for_delivery_status(&app, webhook["id"].as_i64().unwrap(), "failed").await;
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("loopback") && error.contains("webhook_allow_private_networks"), "{error}");
        assert!(failed["last_status_code"].is_null());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(by_address.requests().is_empty(), "a delivery reached a loopback address");
    assert!(by_name.requests().is_empty(), "a delivery reached a name that resolves to loopback");

    // The stored registration can still be turned off without moving it.
    let path = format!("/webhooks/{}/", literal["id"]);
    let off = app.request(Method::PATCH, &path, Some(&app.admin_token), Some(json!({"is_active": false}))).await;
    assert_eq!(off.status(), StatusCode::OK);
}

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn login_returns_tokens_and_the_user_as_in_the_spec() {
    let app = spawn_app().await;
    let body = app.login("  Admin@College.EDU ", ADMIN_PASSWORD).await;
    assert!(body["access"].as_str().unwrap().split('.').count() == 3, "access is a JWT");
    assert!(!body["refresh"].as_str().unwrap().is_empty());
    let user = &body["user"];
    assert_eq!(user["email"], ADMIN_EMAIL);
    assert_eq!(user["role"], "admin");
    assert!(user["id"].is_i64() && user["first_name"].is_string() && user["last_name"].is_string());
}

#[tokio::test]
async fn wrong_password_unknown_email_and_deactivated_accounts_get_the_same_401() {
    let app = spawn_app().await;
    let student = app.create_user("STU1", "student", "Physics").await;
    let wrong = app.post("/auth/login/", None, json!({"email": student.email, "password": "nope-nope"})).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = app.post("/auth/login/", None, json!({"email": "ghost@college.edu", "password": PASSWORD})).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let deleted = app.request(Method::DELETE, &format!("/users/{}/", student.id), Some(&app.admin_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let deactivated = app.post("/auth/login/", None, json!({"email": student.email, "password": PASSWORD})).await;
    assert_eq!(deactivated.status(), StatusCode::UNAUTHORIZED);
    let message = |v: Value| v["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(message(wrong.json().await.unwrap()), message(deactivated.json().await.unwrap()));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let first = login["refresh"].as_str().unwrap();

    let rotated = app.post("/auth/refresh/", None, json!({"refresh": first})).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let second = rotated["refresh"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(app.get("/users/", rotated["access"].as_str().unwrap()).await.status(), StatusCode::OK);

    // The old token was rotated: presenting it again is reuse.
    let reused = app.post("/auth/refresh/", None, json!({"refresh": first})).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    // ... which revoked the family, including the token issued by the rotation.
    let after_reuse = app.post("/auth/refresh/", None, json!({"refresh": second})).await;
    assert_eq!(after_reuse.status(), StatusCode::UNAUTHORIZED);
    let reuse_entries = app.audit_entries("token_reuse").await;
    assert_eq!(reuse_entries.len(), 1);
    assert_eq!(reuse_entries[0]["severity"], "error");

    // Another login is a separate family and still works.
    let other = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let ok = app.post("/auth/refresh/", None, json!({"refresh": other["refresh"]})).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let refresh = login["refresh"].as_str().unwrap();
    let logout = app.post("/auth/logout/", None, json!({"refresh": refresh})).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = app.post("/auth/refresh/", None, json!({"refresh": refresh})).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let unknown = app.post("/auth/logout/", None, json!({"refresh": "rt_not-a-token"})).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forged_expired_and_unsigned_tokens_are_refused() {
    let app = spawn_app().await;
    let valid = app.admin_token.clone();
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();

    // Signature of another secret.
    let forged = format!("{}.{}.{}", parts[0], parts[1], "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // alg: none, no signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    // Expired: sign with the real secret but exp in the past.
    let secret = std::fs::read_to_string(app.data_dir.path().join("jwt_secret")).unwrap();
    let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(chrono::Utc::now().timestamp() - 10);
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap();
    // Tampered claims (role) with the old signature.
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 600);
    claims["role"] = json!("admin");
    claims["sub"] = json!("999");
    parts[1] = b64.encode(claims.to_string());
    let tampered = parts.join(".");

    for token in [forged, unsigned, expired, tampered, "garbage".to_owned()] {
        let response = app.get("/users/", &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "token {token} accepted");
        assert_eq!(error_code(response).await, "unauthorized");
    }
    assert_eq!(app.get("/users/", &valid).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn deactivation_ends_existing_sessions_at_once() {
    let app = spawn_app().await;
    let faculty = app.create_user("FAC1", "faculty", "Maths").await;
    let me = format!("/users/{}/", faculty.id);
    assert_eq!(app.get(&me, &faculty.token).await.status(), StatusCode::OK);
    let deleted = app.request(Method::DELETE, &me, Some(&app.admin_token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&me, &faculty.token).await.status(), StatusCode::UNAUTHORIZED);
    let user: Value = app.get(&me, &app.admin_token).await.json().await.unwrap();
    assert_eq!(user["is_active"], false, "deactivation is soft: the record remains");
}

#[tokio::test]
async fn api_keys_authenticate_with_either_header_and_stop_when_revoked() {
    let app = spawn_app().await;
    let key = app.create_api_key("Kiosk 1", "admin").await;
    let via_authorization =
        app.client.get(app.url("/users/")).header("Authorization", format!("Api-Key {key}")).send().await.unwrap();
    assert_eq!(via_authorization.status(), StatusCode::OK);
    let via_header = app.client.get(app.url("/users/")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(via_header.status(), StatusCode::OK);

    let list: Value = app.get("/auth/api-keys/", &app.admin_token).await.json().await.unwrap();
    let listed = &list["results"][0];
    assert_eq!(listed["name"], "Kiosk 1");
    assert!(listed.get("key").is_none(), "a key is shown only once");
    assert!(!list.to_string().contains(&key), "the key never appears in listings");
    assert!(key.starts_with(listed["prefix"].as_str().unwrap()));

    let id = listed["id"].as_i64().unwrap();
    let revoked = app.request(Method::DELETE, &format!("/auth/api-keys/{id}/"), Some(&app.admin_token), None).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = app.client.get(app.url("/users/")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let again = app.request(Method::DELETE, &format!("/auth/api-keys/{id}/"), Some(&app.admin_token), None).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn people_change_their_own_password_only_with_the_current_one() {
    let app = spawn_app().await;
    let student = app.create_user("STU9", "student", "Art").await;
    let path = format!("/users/{}/", student.id);
    let without =
        app.request(Method::PATCH, &path, Some(&student.token), Some(json!({"password": "a-new-password"}))).await;
    assert_eq!(without.status(), StatusCode::BAD_REQUEST);
    let with = app
        .request(
            Method::PATCH,
            &path,
            Some(&student.token),
            Some(json!({"password": "a-new-password", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(with.status(), StatusCode::OK);
    app.login(&student.email, "a-new-password").await;
    let old = app.post("/auth/login/", None, json!({"email": student.email, "password": PASSWORD})).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
}

/// Every entry of the audit log, newest first.
async fn all_audit_entries(app: &TestApp) -> Vec<Value> {
    let response = app.get("/security/audit-logs/?page_size=100", &app.admin_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_2_mib_email_is_refused_at_once_and_stored_nowhere() {
    // Shipped quotas: had oversized attempts reached the limiter they would meet 429.
    let app = spawn_app_with(default_quotas).await;
    let huge = format!("{}@college.edu", "a".repeat(2 * 1024 * 1024));
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let response = app.post("/auth/login/", None, json!({"email": huge, "password": "guess-1234"})).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error_code(response).await, "payload_too_large");
        assert!(elapsed < std::time::Duration::from_millis(250), "took {elapsed:?}");
    }
    // Over a field's limit but well within the body limit: 400 naming the field.
    let long_email = format!("{}@college.edu", "b".repeat(300));
    let long_password = "p".repeat(2 * 1024);
    for (body, field) in [
        (json!({"email": long_email, "password": "guess-1234"}), "email"),
        (json!({"email": ADMIN_EMAIL, "password": long_password}), "password"),
    ] {
        for _ in 0..10 {
            let response = app.post("/auth/login/", None, body.clone()).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "validation_error");
            assert!(error["error"]["fields"][field].is_string(), "{error}");
        }
    }
    // Nothing of them was audited (only spawn_app's own login is), nor counted: the
    // admin's address and e-mail still have their whole quota.
    let entries = all_audit_entries(&app).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(!entries[0].to_string().contains("bbbbbbbbbb"));
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn oversized_refresh_tokens_and_api_keys_get_400_naming_the_field() {
    let app = spawn_app().await;
    let long_token = format!("rt_{}", "t".repeat(1024));
    for path in ["/auth/refresh/", "/auth/logout/"] {
        let response = app.post(path, None, json!({"refresh": long_token})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["fields"]["refresh"].is_string(), "{error}");
    }
    let long_key = format!("rk_{}", "k".repeat(1024));
    let via_header = app.client.get(app.url("/users/")).header("X-API-Key", &long_key).send().await.unwrap();
    assert_eq!(via_header.status(), StatusCode::BAD_REQUEST);
    let error: Value = via_header.json().await.unwrap();
    assert!(error["error"]["fields"]["X-API-Key"].is_string(), "{error}");
    let via_authorization =
        app.client.get(app.url("/users/")).header("Authorization", format!("Api-Key {long_key}")).send().await.unwrap();
    assert_eq!(via_authorization.status(), StatusCode::BAD_REQUEST);
    let long_jwt = "j".repeat(8 * 1024);
    assert_eq!(app.get("/users/", &long_jwt).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(all_audit_entries(&app).await.len(), 1, "only spawn_app's own login is audited");
}

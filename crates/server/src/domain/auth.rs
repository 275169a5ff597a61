//! Who is calling: password logins, access and refresh tokens, API keys.
//!
//! Access tokens are short-lived HS256 JWTs, checked against the user's record on every
//! request (deactivated or revoked users are refused at once). Refresh tokens and API
//! keys are random strings stored only as SHA-256 hashes. A refresh token is used once:
//! presenting a rotated one again means it leaked, and its whole family is revoked.
//!
//! Credentials are bounded in length ([`within_limit`]) before anything else is done with
//! them, and argon2 runs on a [`PasswordPool`], never on the async runtime.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use tokio::sync::Semaphore;

use super::liveness::LivenessMode;
use super::users::{Invalid, Role};
use crate::store::{self, Db, StoreError, api_keys, refresh_tokens, users::UserRecord};

/// The longest e-mail address there is (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// A stored password has at most 256 characters (`NewPassword`), which is at most 1 KiB.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Refresh tokens (46 bytes) and API keys (43 bytes), with room to change their format.
pub const MAX_TOKEN_BYTES: usize = 128;
/// Access tokens are JWTs of about 300 bytes.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 4096;

/// `value` if it is at most `max_bytes` long. Checked before a credential is hashed,
/// looked up, counted by a rate limit or written to the audit log, so that nothing of an
/// oversized value is stored or kept.
pub fn within_limit<'a>(field: &'static str, value: &'a str, max_bytes: usize) -> Result<&'a str, Invalid> {
    if value.len() <= max_bytes {
        Ok(value)
    } else {
        Err(Invalid::new(field, format!("must be at most {max_bytes} bytes")))
    }
}

/// An e-mail (trimmed, lower-cased) and password as typed at login, within their limits.
pub struct LoginAttempt {
    email: String,
    password: SecretString,
}

impl LoginAttempt {
    pub fn parse(email: &str, password: &str) -> Result<Self, Vec<Invalid>> {
        let email = within_limit("email", email.trim(), MAX_EMAIL_BYTES);
        let password = within_limit("password", password, MAX_PASSWORD_BYTES);
        match (email, password) {
            (Ok(email), Ok(password)) => {
                Ok(Self { email: email.to_lowercase(), password: SecretString::from(password.to_owned()) })
            }
            (email, password) => Err([email.err(), password.err()].into_iter().flatten().collect()),
        }
    }

    pub fn email(&self) -> &str {
        &self.email
    }
}

/// Runs argon2 on tokio's blocking threads, at most one hash per core at a time: a burst
/// of logins waits for a permit instead of stalling the async runtime (and every other
/// request) or starting more CPU-bound work than there are cores.
#[derive(Clone)]
pub struct PasswordPool {
    permits: Arc<Semaphore>,
}

impl Default for PasswordPool {
    /// One permit per CPU core.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
    }
}

impl PasswordPool {
    pub fn new(max_concurrent: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }

    /// An argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = SecretString::from(password.to_owned());
        self.run(move || hash_password(password.expose_secret())).await?
    }

    /// Whether `password` matches `hash`; `false` for a hash that does not parse.
    pub async fn verify(&self, hash: &str, password: &str) -> Result<bool, AuthError> {
        let (hash, password) = (hash.to_owned(), SecretString::from(password.to_owned()));
        self.run(move || verify_password(&hash, password.expose_secret())).await
    }

    /// Cancel safety: dropping the future while it waits for a permit gives up its turn;
    /// once started, the work runs to the end and keeps its permit until then.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, AuthError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| AuthError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Principal {
    User { id: i64, role: Role, employee_id: String, email: String },
    ApiKey { id: i64, role: Role, name: String, liveness: LivenessMode },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Self::User { role, .. } | Self::ApiKey { role, .. } => *role,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Role::Admin
    }

    pub fn user_id(&self) -> Option<i64> {
        match self {
            Self::User { id, .. } => Some(*id),
            Self::ApiKey { .. } => None,
        }
    }

    /// How verifications from this caller check liveness: an API key's own mode; signed-in
    /// people's verifications are passive unless they answer a challenge.
    pub fn liveness_mode(&self) -> LivenessMode {
        match self {
            Self::ApiKey { liveness, .. } => *liveness,
            Self::User { .. } => LivenessMode::Passive,
        }
    }

    /// How the audit log names this caller: the employee id, or `api_key:<name>`.
    pub fn audit_name(&self) -> String {
        match self {
            Self::User { employee_id, .. } => employee_id.clone(),
            Self::ApiKey { name, .. } => format!("api_key:{name}"),
        }
    }

    /// A stable key for per-caller rate limits and task ownership.
    pub fn key(&self) -> String {
        match self {
            Self::User { id, .. } => format!("user:{id}"),
            Self::ApiKey { id, .. } => format!("api_key:{id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid e-mail or password")]
    BadCredentials,
    #[error("this account is deactivated")]
    Deactivated,
    #[error("the token is invalid or expired")]
    InvalidToken,
    #[error("the refresh token was already used; every session of this login is now revoked")]
    RefreshReused,
    #[error("the API key is invalid or revoked")]
    InvalidApiKey,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    role: Role,
    iat: i64,
    exp: i64,
    jti: String,
    typ: String,
}

/// How long a camera preview URL can be opened after it was issued.
pub const PREVIEW_TOKEN_TTL_SECS: i64 = 300;
const PREVIEW_TOKEN_TYPE: &str = "camera_preview";

#[derive(Serialize, Deserialize)]
struct PreviewClaims {
    /// The camera.
    sub: String,
    iat: i64,
    exp: i64,
    typ: String,
}

/// A freshly issued pair of tokens.
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user: UserRecord,
}

/// Issues and checks credentials. Built once at start-up.
pub struct Authenticator {
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    access_ttl: Duration,
    refresh_ttl: Duration,
    passwords: PasswordPool,
    /// Verified against when the e-mail is unknown, so that a wrong e-mail costs as much
    /// time as a wrong password and does not reveal who has an account.
    dummy_hash: String,
}

impl Authenticator {
    pub async fn new(
        secret: &SecretString,
        access_ttl_secs: u64,
        refresh_ttl_secs: u64,
        passwords: PasswordPool,
    ) -> Result<Self, AuthError> {
        let secret = secret.expose_secret().as_bytes();
        Ok(Self {
            encoding_key: EncodingKey::from_secret(secret),
            decoding_key: DecodingKey::from_secret(secret),
            access_ttl: Duration::seconds(access_ttl_secs as i64),
            refresh_ttl: Duration::seconds(refresh_ttl_secs as i64),
            dummy_hash: passwords.hash("not a real password").await?,
            passwords,
        })
    }

    /// Where this authenticator hashes and verifies passwords.
    pub fn passwords(&self) -> &PasswordPool {
        &self.passwords
    }

    /// Checks an e-mail and password; on success the user's `last_login` is updated.
    pub async fn login(&self, db: &Db, attempt: &LoginAttempt) -> Result<Session, AuthError> {
        let user = store::users::find_by_email(db, attempt.email()).await?;
        let hash = user.as_ref().map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let password_ok = self.passwords.verify(hash, attempt.password.expose_secret()).await?;
        let user = match user {
            Some(user) if password_ok => user,
            _ => return Err(AuthError::BadCredentials),
        };
        if !user.is_active {
            return Err(AuthError::Deactivated);
        }
        store::users::record_login(db, user.id).await?;
        let family = random_token(16);
        self.issue(db, user, &family).await
    }

    async fn issue(&self, db: &Db, user: UserRecord, family: &str) -> Result<Session, AuthError> {
        let access = self.access_token(&user)?;
        let refresh = format!("rt_{}", random_token(32));
        let expires = Utc::now() + self.refresh_ttl;
        refresh_tokens::insert(db, &sha256_hex(&refresh), family, user.id, expires).await?;
        Ok(Session { access, refresh, user })
    }

    fn access_token(&self, user: &UserRecord) -> Result<String, AuthError> {
        let now = Utc::now();
        let claims = AccessClaims {
            sub: user.id.to_string(),
            role: user.role,
            // Microsecond precision would be lost in `iat`; tokens_valid_after is compared
            // at second granularity (see `authenticate_access`).
            iat: now.timestamp(),
            exp: (now + self.access_ttl).timestamp(),
            jti: random_token(12),
            typ: "access".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding_key)
            .map_err(|_| AuthError::InvalidToken)
    }

    /// Exchanges a refresh token for a new pair. The old token stops working; presenting
    /// it again revokes every token of its family.
    pub async fn refresh(&self, db: &Db, token: &str) -> Result<Session, AuthError> {
        let record = refresh_tokens::find_by_hash(db, &sha256_hex(token)).await?.ok_or(AuthError::InvalidToken)?;
        if record.rotated_at.is_some() {
            refresh_tokens::revoke_family(db, &record.family_id).await?;
            return Err(AuthError::RefreshReused);
        }
        if record.revoked_at.is_some() || record.expires_at <= Utc::now() {
            return Err(AuthError::InvalidToken);
        }
        if !refresh_tokens::mark_rotated(db, record.id).await? {
            // Lost a race with another refresh of the same token: that is reuse too.
            refresh_tokens::revoke_family(db, &record.family_id).await?;
            return Err(AuthError::RefreshReused);
        }
        let user = store::users::find_by_id(db, record.user_id).await?.ok_or(AuthError::InvalidToken)?;
        if !user.is_active {
            return Err(AuthError::Deactivated);
        }
        if record.created_at < user.tokens_valid_after {
            return Err(AuthError::InvalidToken);
        }
        self.issue(db, user, &record.family_id).await
    }

    /// Revokes the family of a refresh token. Returns the owner, if the token was known.
    pub async fn logout(&self, db: &Db, token: &str) -> Result<Option<i64>, AuthError> {
        let Some(record) = refresh_tokens::find_by_hash(db, &sha256_hex(token)).await? else {
            return Ok(None);
        };
        refresh_tokens::revoke_family(db, &record.family_id).await?;
        Ok(Some(record.user_id))
    }

    /// Checks a bearer token: signature (HS256 only), expiry, and that the user is still
    /// active and was not revoked after the token was issued.
    pub async fn authenticate_access(&self, db: &Db, token: &str) -> Result<Principal, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding_key, &validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        if claims.typ != "access" {
            return Err(AuthError::InvalidToken);
        }
        let id: i64 = claims.sub.parse().map_err(|_| AuthError::InvalidToken)?;
        let user = store::users::find_by_id(db, id).await?.ok_or(AuthError::InvalidToken)?;
        let issued_at = Utc.timestamp_opt(claims.iat, 0).single().ok_or(AuthError::InvalidToken)?;
        if !user.is_active || issued_at < truncate_to_second(user.tokens_valid_after) {
            return Err(AuthError::InvalidToken);
        }
        Ok(Principal::User { id: user.id, role: user.role, employee_id: user.employee_id, email: user.email })
    }

    /// A token that lets a browser open camera `camera_id`'s preview until `expires_at`
    /// (an `<img>` cannot send headers). It is no access token: it opens that one preview
    /// and nothing else.
    pub fn preview_token(&self, camera_id: &str) -> Result<(String, DateTime<Utc>), AuthError> {
        let now = Utc::now();
        let expires_at = now + Duration::seconds(PREVIEW_TOKEN_TTL_SECS);
        let claims = PreviewClaims {
            sub: camera_id.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            typ: PREVIEW_TOKEN_TYPE.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding_key)
            .map_err(|_| AuthError::InvalidToken)?;
        Ok((token, expires_at))
    }

    /// Checks a preview token: signature, expiry and that it was issued for `camera_id`.
    pub fn check_preview_token(&self, token: &str, camera_id: &str) -> Result<(), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        let claims = jsonwebtoken::decode::<PreviewClaims>(token, &self.decoding_key, &validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        if claims.typ != PREVIEW_TOKEN_TYPE || claims.sub != camera_id {
            return Err(AuthError::InvalidToken);
        }
        Ok(())
    }

    pub async fn authenticate_api_key(&self, db: &Db, key: &str) -> Result<Principal, AuthError> {
        let record = api_keys::find_live_by_hash(db, &sha256_hex(key)).await?.ok_or(AuthError::InvalidApiKey)?;
        api_keys::touch(db, record.id).await?;
        Ok(Principal::ApiKey { id: record.id, role: record.role, name: record.name, liveness: record.liveness_mode })
    }
}

fn truncate_to_second(time: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(time.timestamp(), 0).single().unwrap_or(time)
}

/// A new API key: the secret shown once, its display prefix and the hash to store.
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate_api_key() -> NewApiKey {
    let key = format!("rk_{}", random_token(30));
    NewApiKey { prefix: key[..11].to_owned(), hash: sha256_hex(&key), key }
}

/// Blocking: only through [`PasswordPool`].
fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// Blocking: only through [`PasswordPool`].
fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// `bytes` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[tokio::test]
    async fn the_pool_hashes_and_verifies_off_the_runtime() {
        let pool = PasswordPool::new(1);
        let hash = pool.hash("correct horse").await.unwrap();
        let (right, wrong) = tokio::join!(pool.verify(&hash, "correct horse"), pool.verify(&hash, "wrong horse"));
        assert!(right.unwrap());
        assert!(!wrong.unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_async_runtime_free() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let ticks = Arc::new(AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let pool = PasswordPool::new(1);
        for _ in 0..3 {
            pool.hash("correct horse").await.unwrap();
        }
        ticker.abort();
        // Had argon2 run on this single runtime thread, the ticker could only have run
        // between two hashes.
        assert!(ticks.load(Ordering::Relaxed) >= 10, "{} ticks", ticks.load(Ordering::Relaxed));
    }

    #[test]
    fn oversized_login_fields_are_refused_by_name() {
        let attempt = LoginAttempt::parse("  Jane@College.EDU ", "secret").ok().unwrap();
        assert_eq!(attempt.email(), "jane@college.edu");
        let long_email = format!("{}@college.edu", "a".repeat(MAX_EMAIL_BYTES));
        let long_password = "p".repeat(MAX_PASSWORD_BYTES + 1);
        let fields = |result: Result<LoginAttempt, Vec<Invalid>>| -> Vec<&str> {
            result.err().unwrap().iter().map(|invalid| invalid.field).collect()
        };
        assert_eq!(fields(LoginAttempt::parse(&long_email, "secret")), ["email"]);
        assert_eq!(fields(LoginAttempt::parse("a@b.cd", &long_password)), ["password"]);
        assert_eq!(fields(LoginAttempt::parse(&long_email, &long_password)), ["email", "password"]);
        assert!(LoginAttempt::parse(&"a".repeat(MAX_EMAIL_BYTES), &"p".repeat(MAX_PASSWORD_BYTES)).is_ok());
    }

    #[test]
    fn api_keys_are_random_and_hashed() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(a.hash, sha256_hex(&a.key));
        assert!(!a.hash.contains(&a.key));
    }
}

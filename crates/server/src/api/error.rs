//! The one error shape of the API:
//! `{"error": {"code": "validation_error", "message": "...", "fields": {"email": "..."}}}`.
//! Every variant has a stable snake_case code and a status chosen by one exhaustive match.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::auth::AuthError;
use crate::domain::users::Invalid;
use crate::store::StoreError;

/// Field name → what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String, FieldErrors),
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "request body is larger than the server accepts here (max_body_bytes; 16 KiB for login, refresh and logout)"
    )]
    PayloadTooLarge,
    #[error("expected a request body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this HTTP method is not allowed here")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests; retry in {} s", retry_after_secs(.0))]
    RateLimited(Duration),
    #[error("{0}")]
    Unavailable(String, Option<Duration>),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn retry_after_secs(wait: &Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `validation_error`, `not_found`.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldErrors>,
}

impl ApiError {
    pub fn code(&self) -> (&'static str, StatusCode) {
        match self {
            Self::Validation(..) => ("validation_error", StatusCode::BAD_REQUEST),
            Self::MalformedJson(_) => ("malformed_json", StatusCode::BAD_REQUEST),
            Self::BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            Self::PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            Self::UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            Self::Unauthorized(_) => ("unauthorized", StatusCode::UNAUTHORIZED),
            Self::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            Self::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            Self::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            Self::Conflict(_) => ("conflict", StatusCode::CONFLICT),
            Self::RateLimited(_) => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            Self::Unavailable(..) => ("service_unavailable", StatusCode::SERVICE_UNAVAILABLE),
            Self::Internal(_) => ("internal_error", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_owned(), message.into());
        Self::Validation(format!("invalid value for {field}"), fields)
    }

    /// A request without credentials to a route that needs a caller.
    pub fn unauthenticated() -> Self {
        Self::Unauthorized(
            "authentication required: send `Authorization: Bearer <access token>` or `X-API-Key: <key>`".into(),
        )
    }

    pub fn forbidden() -> Self {
        Self::Forbidden("you do not have permission to do this".into())
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::validation(invalid.field, invalid.message)
    }
}

impl From<Vec<Invalid>> for ApiError {
    fn from(invalid: Vec<Invalid>) -> Self {
        let fields: FieldErrors = invalid.iter().map(|i| (i.field.to_owned(), i.message.clone())).collect();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        Self::Validation(format!("invalid value for {}", names.join(", ")), fields)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(field) => Self::Conflict(format!("a user with this {field} already exists")),
            StoreError::Database(sqlx::Error::PoolTimedOut) => Self::Unavailable(
                "the database is not answering; try again shortly".into(),
                Some(Duration::from_secs(5)),
            ),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Store(store) => store.into(),
            AuthError::Hashing(_) => Self::Internal(error.into()),
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

/// Marks a response that carried a 5xx so the edge logs it once, with its cause.
#[derive(Clone)]
pub struct LoggedCause(pub std::sync::Arc<String>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code();
        let fields = match &self {
            Self::Validation(_, fields) => Some(fields.clone()),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code, message: self.to_string(), fields } };
        let mut response = (status, Json(body)).into_response();
        let wait = match &self {
            Self::RateLimited(wait) => Some(*wait),
            Self::Unavailable(_, wait) => *wait,
            _ => None,
        };
        if let Some(wait) = wait {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(&wait).max(1)));
        }
        if status.is_server_error() {
            let cause = match &self {
                Self::Internal(error) => format!("{error:#}"),
                other => other.to_string(),
            };
            response.extensions_mut().insert(LoggedCause(std::sync::Arc::new(cause)));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

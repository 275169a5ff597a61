//! Extractors whose rejections speak the API's error shape, and the caller's identity.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::domain::audit::ClientInfo;
use crate::domain::auth::Principal;

/// `axum::Json`, with malformed JSON, wrong types, unknown enum values and oversized
/// bodies answered in the error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                // serde's message names the field and what was expected.
                Self::Validation(describe_serde_error(&error.body_text()), Default::default())
            }
            JsonRejection::JsonSyntaxError(error) => Self::MalformedJson(describe_serde_error(&error.body_text())),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

/// axum prefixes serde's message with its own wording; keep the useful part.
fn describe_serde_error(text: &str) -> String {
    let detail = text.split_once(": ").map_or(text, |(_, rest)| rest);
    format!("request body is not valid: {detail}")
}

/// `axum::extract::Query` with rejections in the error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
        Self::Validation(format!("query string is not valid: {detail}"), Default::default())
    }
}

/// `axum::extract::Path` with rejections in the error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::NotFound(format!("no such resource: {}", rejection.body_text()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(client_info(parts))
    }
}

pub fn client_info(parts: &Parts) -> ClientInfo {
    let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(512).collect());
    ClientInfo { ip, user_agent }
}

/// The authenticated caller; 401 when the request carried no credentials. Credentials
/// are checked once per request by the authentication middleware.
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().map(Auth).ok_or_else(|| {
            ApiError::Unauthorized(
                "authentication required: send `Authorization: Bearer <access token>` or `X-API-Key: <key>`".into(),
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Auth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned().map(Auth))
    }
}

/// An authenticated admin (a user or an API key with the admin role); 403 otherwise.
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Auth(principal) = <Auth as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if principal.is_admin() { Ok(Admin(principal)) } else { Err(ApiError::forbidden()) }
    }
}

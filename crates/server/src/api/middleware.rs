//! Layers every API request passes through: authentication, rate limiting, the error
//! shape for responses axum makes itself (404, 405, 413), and logging of 5xx causes.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, LoggedCause};
use super::extract::client_ip;
use crate::app::AppState;
use crate::domain::auth::{MAX_ACCESS_TOKEN_BYTES, MAX_TOKEN_BYTES, Principal, within_limit};
use crate::limiter::{self, Category, Decision};

/// Reads `Authorization: Bearer <jwt>`, `Authorization: Api-Key <key>` or `X-API-Key`,
/// and puts the [`Principal`] into the request. Wrong credentials get 401 here; a request
/// without credentials goes on, and the access policy ([`super::policy`]) refuses it on
/// routes that need a caller.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // A scraper's bearer token is the `metrics_token`, no account's: `/metrics` checks it.
    if request.uri().path() == super::system::METRICS_PATH {
        return next.run(request).await;
    }
    match principal_of(&state, request.headers()).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(principal);
        }
        Ok(None) => {}
        Err(error) => return error.into_response(),
    }
    next.run(request).await
}

async fn principal_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key.to_str().map_err(|_| ApiError::Unauthorized("the API key is invalid or revoked".into()))?;
        let key = within_limit("X-API-Key", key.trim(), MAX_TOKEN_BYTES)?;
        return Ok(Some(state.auth.authenticate_api_key(&state.db, key).await?));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = within_limit("Authorization", credential, MAX_ACCESS_TOKEN_BYTES)?;
        Ok(Some(state.auth.authenticate_access(&state.db, token).await?))
    } else if scheme.eq_ignore_ascii_case("api-key") {
        let key = within_limit("Authorization", credential, MAX_TOKEN_BYTES)?;
        Ok(Some(state.auth.authenticate_api_key(&state.db, key).await?))
    } else {
        Err(ApiError::Unauthorized("unsupported Authorization scheme: use `Bearer <token>` or `Api-Key <key>`".into()))
    }
}

/// Counts the request against `category` for its caller (or its client IP when anonymous).
pub async fn rate_limit(
    State((state, category)): State<(AppState, Category)>,
    request: Request,
    next: Next,
) -> Response {
    let key = match request.extensions().get::<Principal>() {
        Some(principal) => principal.key(),
        None => limiter::ip_key(client_ip(request.extensions(), request.headers(), &state.config.trusted_proxies)),
    };
    within_limits(&state, &[(category, key.as_str())], next.run(request)).await
}

/// Runs `work` if each of `checks` allows one more request (see
/// [`crate::limiter::RateLimiter::check_all`]), else answers 429; either way with the
/// `X-RateLimit-*` headers of the tightest quota. When the limits cannot be checked
/// (shared limits, `rate_limit_on_redis_error = "closed"`), 503 with `Retry-After`.
pub async fn within_limits(
    state: &AppState,
    checks: &[(Category, &str)],
    work: impl Future<Output = Response>,
) -> Response {
    if !state.config.rate_limit_enabled {
        return work.await;
    }
    let decision = match state.limiter.check_all(checks).await {
        Ok(decision) => decision,
        Err(unavailable) => {
            let message = "rate limits cannot be checked right now; try again shortly".to_owned();
            tracing::debug!(reason = %unavailable.reason, "request refused: rate limits cannot be checked");
            return ApiError::Unavailable(message, Some(unavailable.retry_after)).into_response();
        }
    };
    let mut response =
        if decision.allowed { work.await } else { ApiError::RateLimited(decision.retry_after).into_response() };
    set_rate_limit_headers(response.headers_mut(), &decision);
    response
}

pub fn set_rate_limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_after.as_secs_f64().ceil() as u64));
}

/// Gives responses that axum produces without a handler (unknown route, wrong method,
/// body over the limit) the API's error shape, and logs the cause of every 5xx once.
pub async fn error_shape(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if let Some(LoggedCause(cause)) = response.extensions().get::<LoggedCause>() {
        tracing::error!(http.method = %method, http.path = %path, http.status = status.as_u16(), cause = %cause, "request failed");
    }
    let has_body = response.headers().get(header::CONTENT_TYPE).is_some();
    if has_body || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound(format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT => ApiError::Unavailable("the request took too long".into(), None),
        other if other.is_server_error() => ApiError::Internal(anyhow::anyhow!("{other} without a body")),
        other => ApiError::BadRequest(other.canonical_reason().unwrap_or("bad request").to_owned()),
    };
    let mut shaped = error.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        shaped.headers_mut().insert(header::ALLOW, allow.clone());
    }
    *shaped.status_mut() = status;
    shaped
}

/// The body of a panic caught by `CatchPanicLayer`, in the error shape.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// Counts every request, its duration and whether it failed, in
/// [`App::requests`](crate::app::App::requests) and, by route template and status, in
/// [`App::metrics`](crate::app::App::metrics).
pub async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    state.requests.record(elapsed, response.status().is_server_error());
    let route = response.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    state.metrics.record_request(method.as_str(), route, response.status().as_u16(), elapsed);
    response
}

/// Hands the route's template to [`measure`], outside the router, with the response
/// (a route layer sees the matched route; outer layers do not).
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

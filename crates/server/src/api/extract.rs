//! Extractors whose rejections speak the API's error shape, and the caller's identity.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::error::ApiError;
use crate::app::AppState;
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

/// The address of the client a request came from: the connection's peer, unless that
/// peer is one of `trusted_proxies`; then the right-most address of `X-Forwarded-For` that
/// is not a trusted proxy (each proxy appends the address it was reached from, so the
/// addresses left of the first untrusted one are the client's to forge). Every rate limit
/// and audit row takes the client IP from here.
pub fn client_ip(extensions: &Extensions, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip().to_canonical();
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|network| network.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // What a trusted proxy wrote but cannot be read ends the walk at that proxy.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// `203.0.113.7`, `2001:db8::1`, or either with a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|address| address.ip()))?;
    Some(ip.to_canonical())
}

/// The client's address as [`client_ip`] sees it (`None` only without connection info).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        Ok(Self(client_ip(&parts.extensions, &parts.headers, &state.config.trusted_proxies)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo
where
    AppState: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(512).collect());
        Ok(ClientInfo { ip: ip.map(|ip| ip.to_string()), user_agent })
    }
}

/// The authenticated caller; 401 when the request carried no credentials. Credentials
/// are checked once per request by the authentication middleware.
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().map(Auth).ok_or_else(ApiError::unauthenticated)
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40_000)));
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|network| network.parse().unwrap()).collect();
        client_ip(&extensions, &headers, &trusted).unwrap().to_string()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_is_forwarded() {
        assert_eq!(client("127.0.0.1", &["203.0.113.7"], &[]), "127.0.0.1");
        assert_eq!(client("198.51.100.1", &["203.0.113.7"], &["10.0.0.0/8"]), "198.51.100.1");
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = ["10.0.0.0/8", "127.0.0.1/32"];
        assert_eq!(client("10.0.0.2", &["203.0.113.7"], &proxies), "203.0.113.7");
        // The client forged the left-most entry; the proxies appended the rest.
        assert_eq!(client("10.0.0.2", &["1.1.1.1, 203.0.113.7, 10.0.0.9"], &proxies), "203.0.113.7");
        assert_eq!(client("10.0.0.2", &["1.1.1.1", "203.0.113.7:5000", "10.0.0.9"], &proxies), "203.0.113.7");
        assert_eq!(client("::ffff:127.0.0.1", &["[2001:db8::7]:443"], &proxies), "2001:db8::7");
    }

    #[test]
    fn a_chain_of_only_proxies_or_garbage_stops_at_the_last_readable_hop() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(client("10.0.0.2", &[], &proxies), "10.0.0.2");
        assert_eq!(client("10.0.0.2", &["10.0.0.5, 10.0.0.3"], &proxies), "10.0.0.5");
        assert_eq!(client("10.0.0.2", &["203.0.113.7, not-an-ip, 10.0.0.3"], &proxies), "10.0.0.3");
    }
}

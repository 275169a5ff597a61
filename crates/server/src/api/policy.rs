//! Who may call each route: one declared table, enforced by one layer on the router.
//!
//! The layer runs after authentication and before any handler. It looks up the route the
//! router matched (its template, e.g. `/api/v1/users/{id}/`) and the method: anonymous
//! callers of a non-public route get 401, callers without the role get 403, and a route
//! that is missing from the table is refused for everyone, so a new handler is closed
//! until someone decides who may call it. Handlers keep their own extractors (`Auth`,
//! `Admin`) as a second line, and row-level rules (one's own record, one's own task) stay
//! in the handlers. The OpenAPI document's operation descriptions are generated from the
//! same table.

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::path::Operation;

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::auth::{MAX_ACCESS_TOKEN_BYTES, Principal, within_limit};
use crate::domain::users::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without credentials.
    Public,
    /// Any authenticated caller: a person or an API key, whatever its role.
    Authenticated,
    /// Callers with one of these roles, people and API keys alike.
    Roles(&'static [Role]),
    /// Admins, and signed-in people for their own record (the handler checks that the
    /// record is theirs). A non-admin API key belongs to no person, so it has no record.
    AdminOrSelf,
    /// Signed-in people of any role, for what is their own (a phone's check-in); no API
    /// key, which is no one.
    People,
    /// Whoever holds a signed, short-lived URL that an admin route issued (a camera
    /// preview for an `<img>`, which sends no headers): the token in the query string is
    /// the credential, checked by the handler against the one resource it was issued for.
    SignedUrl,
}

const ADMIN: Access = Access::Roles(&[Role::Admin]);
const ADMIN_OR_FACULTY: Access = Access::Roles(&[Role::Admin, Role::Faculty]);

/// One route of the router and who may call it.
#[derive(Debug)]
pub struct Guard {
    pub method: Method,
    /// The route's template as the router registers it.
    pub path: &'static str,
    pub access: Access,
    /// False for the few routes the OpenAPI document does not describe.
    pub documented: bool,
    /// The route also takes an access token as `?access_token=`, for browsers'
    /// `EventSource`, which cannot send headers.
    pub query_token: bool,
}

const fn route(method: Method, path: &'static str, access: Access) -> Guard {
    Guard { method, path, access, documented: true, query_token: false }
}

/// A route the OpenAPI document does not describe.
const fn undocumented(method: Method, path: &'static str, access: Access) -> Guard {
    Guard { method, path, access, documented: false, query_token: false }
}

/// Every route the router serves. A route that is not here is refused.
pub static POLICY: &[Guard] = &[
    // Signing in needs no credentials; the tokens in the body are the credentials.
    route(Method::POST, "/api/v1/auth/login/", Access::Public),
    route(Method::POST, "/api/v1/auth/refresh/", Access::Public),
    route(Method::POST, "/api/v1/auth/logout/", Access::Public),
    route(Method::GET, "/api/v1/auth/api-keys/", ADMIN),
    route(Method::POST, "/api/v1/auth/api-keys/", ADMIN),
    route(Method::DELETE, "/api/v1/auth/api-keys/{id}/", ADMIN),
    route(Method::GET, "/api/v1/users/", ADMIN),
    route(Method::POST, "/api/v1/users/", ADMIN),
    route(Method::GET, "/api/v1/users/{id}/", Access::AdminOrSelf),
    route(Method::PUT, "/api/v1/users/{id}/", Access::AdminOrSelf),
    // `PATCH` is `PUT` under another name (both take partial updates).
    undocumented(Method::PATCH, "/api/v1/users/{id}/", Access::AdminOrSelf),
    route(Method::DELETE, "/api/v1/users/{id}/", ADMIN),
    route(Method::GET, "/api/v1/security/audit-logs/", ADMIN),
    route(Method::GET, "/api/v1/system/health/", ADMIN),
    // People on their phones.
    route(Method::GET, "/api/v1/mobile/profile/", Access::People),
    route(Method::POST, "/api/v1/mobile/check-in/", Access::People),
    route(Method::GET, "/api/v1/mobile/check-in/status/{task_id}/", Access::People),
    route(Method::GET, "/api/v1/cameras/", ADMIN_OR_FACULTY),
    route(Method::POST, "/api/v1/cameras/", ADMIN),
    route(Method::GET, "/api/v1/cameras/{camera_id}/", ADMIN_OR_FACULTY),
    route(Method::PUT, "/api/v1/cameras/{camera_id}/", ADMIN),
    route(Method::DELETE, "/api/v1/cameras/{camera_id}/", ADMIN),
    route(Method::GET, "/api/v1/cameras/{camera_id}/stream/", ADMIN),
    // The signed URL that the stream route gives admins.
    route(Method::GET, "/api/v1/cameras/{camera_id}/preview.mjpeg", Access::SignedUrl),
    route(Method::POST, "/api/v1/cameras/{camera_id}/test/", ADMIN),
    route(Method::GET, "/api/v1/cameras/{camera_id}/health/", ADMIN_OR_FACULTY),
    // Strangers' faces: admins only.
    route(Method::GET, "/api/v1/visitors/", ADMIN),
    route(Method::GET, "/api/v1/visitors/{visitor_id}/", ADMIN),
    route(Method::DELETE, "/api/v1/visitors/{visitor_id}/", ADMIN),
    route(Method::GET, "/api/v1/visitors/{visitor_id}/crop/", ADMIN),
    route(Method::POST, "/api/v1/visitors/{visitor_id}/enroll/", ADMIN),
    route(Method::GET, "/api/v1/sites/", Access::Authenticated),
    route(Method::POST, "/api/v1/sites/", ADMIN),
    route(Method::GET, "/api/v1/sites/{id}/", Access::Authenticated),
    route(Method::PUT, "/api/v1/sites/{id}/", ADMIN),
    route(Method::DELETE, "/api/v1/sites/{id}/", ADMIN),
    route(Method::GET, "/api/v1/system/metrics/", ADMIN),
    route(Method::POST, "/api/v1/system/maintenance/", ADMIN),
    route(Method::GET, "/api/v1/system/maintenance/{task_id}/", ADMIN),
    // Kiosks and cameras report incidents with API keys of any role.
    route(Method::POST, "/api/v1/security/report-incident/", Access::Authenticated),
    route(Method::GET, "/api/v1/security/incidents/", ADMIN),
    route(Method::GET, "/api/v1/security/incidents/{id}/", ADMIN),
    route(Method::GET, "/api/v1/security/incidents/{id}/image/", ADMIN),
    route(Method::POST, "/api/v1/security/incidents/{id}/acknowledge/", ADMIN),
    route(Method::POST, "/api/v1/security/incidents/{id}/resolve/", ADMIN),
    route(Method::POST, "/api/v1/face/enroll/", ADMIN),
    // Only admins can enroll, so only admins can own an enrollment task.
    route(Method::GET, "/api/v1/face/enroll/status/{task_id}/", ADMIN),
    // Cameras and kiosks verify with API keys of any role; a task is visible to its
    // submitter and to admins (checked by the handler).
    route(Method::POST, "/api/v1/face/liveness/challenges/", Access::Authenticated),
    route(Method::POST, "/api/v1/face/verify/", Access::Authenticated),
    route(Method::GET, "/api/v1/face/verify/status/{task_id}/", Access::Authenticated),
    route(Method::POST, "/api/v1/face/bulk-verify/", Access::Authenticated),
    route(Method::GET, "/api/v1/face/bulk-verify/status/{task_id}/", Access::Authenticated),
    route(Method::DELETE, "/api/v1/face/templates/{employee_id}/", ADMIN),
    // Admins read every log, faculty their department's, students their own (the handler
    // narrows the list); API keys without the admin role belong to no one and read none.
    route(Method::GET, "/api/v1/attendance/logs/", Access::AdminOrSelf),
    route(Method::POST, "/api/v1/attendance/mark/", ADMIN),
    // Summaries follow the logs' rule: the handler counts only what the caller may read.
    route(Method::GET, "/api/v1/attendance/summary/", Access::AdminOrSelf),
    route(Method::GET, "/api/v1/attendance/logs/{id}/", ADMIN),
    route(Method::GET, "/api/v1/attendance/logs/{id}/face/", ADMIN),
    route(Method::POST, "/api/v1/attendance/logs/{id}/void/", ADMIN),
    // People dispute their own logs and see their own disputes; admins see and resolve all.
    route(Method::POST, "/api/v1/attendance/disputes/", Access::AdminOrSelf),
    route(Method::GET, "/api/v1/attendance/disputes/", Access::AdminOrSelf),
    route(Method::POST, "/api/v1/attendance/disputes/{id}/accept/", ADMIN),
    route(Method::POST, "/api/v1/attendance/disputes/{id}/reject/", ADMIN),
    // Reports cover a department at least: faculty get their own department's.
    route(Method::GET, "/api/v1/reports/attendance/", ADMIN_OR_FACULTY),
    route(Method::GET, "/api/v1/reports/patterns/", ADMIN_OR_FACULTY),
    // Live numbers include the service's own health: for admins.
    route(Method::GET, "/api/v1/reports/analytics/real-time/", ADMIN),
    route(Method::GET, "/api/v1/webhooks/", ADMIN),
    route(Method::POST, "/api/v1/webhooks/", ADMIN),
    route(Method::GET, "/api/v1/webhooks/{id}/", ADMIN),
    route(Method::PUT, "/api/v1/webhooks/{id}/", ADMIN),
    route(Method::PATCH, "/api/v1/webhooks/{id}/", ADMIN),
    route(Method::DELETE, "/api/v1/webhooks/{id}/", ADMIN),
    route(Method::GET, "/api/v1/webhooks/{id}/deliveries/", ADMIN),
    route(Method::POST, "/api/v1/webhooks/attendance/", ADMIN),
    Guard {
        method: Method::GET,
        path: "/api/v1/events/",
        access: ADMIN_OR_FACULTY,
        documented: true,
        query_token: true,
    },
    undocumented(Method::GET, "/healthz", Access::Public),
    undocumented(Method::GET, "/readyz", Access::Public),
    // Prometheus scrapes without an account; `metrics_token` makes the handler ask for one.
    undocumented(Method::GET, "/metrics", Access::Public),
    undocumented(Method::GET, "/api/v1/openapi.json", Access::Public),
    undocumented(Method::GET, "/api/docs", Access::Public),
    undocumented(Method::GET, "/api/docs/", Access::Public),
    undocumented(Method::GET, "/api/docs/{file}", Access::Public),
];

/// The table's entry for a route template and method. `HEAD` is answered by the `GET`
/// handler, so it has `GET`'s rule.
pub fn guard(method: &Method, path: &str) -> Option<&'static Guard> {
    let method = if method == Method::HEAD { &Method::GET } else { method };
    POLICY.iter().find(|guard| guard.method == *method && guard.path == path)
}

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials: 401.
    Unauthenticated,
    /// Authenticated, without the role: 403.
    Forbidden,
}

impl Access {
    /// Whether `caller` (`None`: anonymous) may call a route with this rule.
    pub fn decide(self, caller: Option<&Principal>) -> Result<(), Refusal> {
        let Some(caller) = caller else {
            return if matches!(self, Self::Public | Self::SignedUrl) { Ok(()) } else { Err(Refusal::Unauthenticated) };
        };
        let admitted = match self {
            Self::Public | Self::SignedUrl | Self::Authenticated => true,
            Self::Roles(roles) => roles.contains(&caller.role()),
            Self::AdminOrSelf => caller.is_admin() || caller.user_id().is_some(),
            Self::People => caller.user_id().is_some(),
        };
        if admitted { Ok(()) } else { Err(Refusal::Forbidden) }
    }

    /// The sentence the OpenAPI document shows for this rule.
    fn describe(self) -> String {
        match self {
            Self::Public => "anyone; no credentials needed.".into(),
            Self::Authenticated => "any authenticated caller: a person or an API key, of any role.".into(),
            Self::Roles(roles) => {
                let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
                format!("people and API keys with the role {}.", names.join(" or "))
            }
            Self::AdminOrSelf => "admins (people and API keys), and signed-in people for their own record.".into(),
            Self::People => "signed-in people of any role, for themselves; not API keys.".into(),
            Self::SignedUrl => {
                "whoever holds the signed, short-lived URL an admin route issued; no other credentials.".into()
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => ApiError::unauthenticated(),
            Refusal::Forbidden => ApiError::forbidden(),
        }
    }
}

/// The query string of routes whose guard takes `?access_token=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessTokenQuery {
    /// An access token, for clients that cannot send `Authorization` (browsers'
    /// `EventSource`). Ignored when the request carries credentials in headers.
    pub access_token: Option<String>,
}

/// The layer: applies the table to every request the router matched to a route. It runs
/// inside the authentication layer, which has put the caller (if any) into the request.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let guard = match guard_of(request.method(), matched) {
        Ok(guard) => guard,
        Err(error) => return error.into_response(),
    };
    if guard.query_token && request.extensions().get::<Principal>().is_none() {
        match principal_from_query(&state, request.uri()).await {
            Ok(Some(principal)) => {
                request.extensions_mut().insert(principal);
            }
            Ok(None) => {}
            Err(error) => return error.into_response(),
        }
    }
    match guard.access.decide(request.extensions().get::<Principal>()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => ApiError::from(refusal).into_response(),
    }
}

/// The route's entry, or an internal error (logged at the edge, with the route) when
/// the table has none: the route is refused until it is given a rule.
fn guard_of(method: &Method, matched: Option<&str>) -> Result<&'static Guard, ApiError> {
    let path = matched.unwrap_or("<no matched route>");
    guard(method, path).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("{method} {path} has no entry in the access policy (api/policy.rs)"))
    })
}

async fn principal_from_query(state: &AppState, uri: &Uri) -> Result<Option<Principal>, ApiError> {
    let Ok(Query(query)) = Query::<AccessTokenQuery>::try_from_uri(uri) else {
        return Ok(None);
    };
    let Some(token) = query.access_token else {
        return Ok(None);
    };
    let token = within_limit("access_token", token.trim(), MAX_ACCESS_TOKEN_BYTES)?;
    Ok(Some(state.auth.authenticate_access(&state.db, token).await?))
}

/// Adds to each operation of the OpenAPI document who may call it, from the table, and
/// marks public operations as needing no credentials.
pub fn describe(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
            (Method::HEAD, &mut item.head),
            (Method::OPTIONS, &mut item.options),
            (Method::TRACE, &mut item.trace),
        ];
        for (method, operation) in operations {
            if let (Some(operation), Some(guard)) = (operation.as_mut(), guard(&method, path)) {
                describe_operation(operation, guard);
            }
        }
    }
}

fn describe_operation(operation: &mut Operation, guard: &Guard) {
    let mut who = format!("**Who may call:** {}", guard.access.describe());
    if guard.query_token {
        who.push_str(" The access token may also be sent as `?access_token=`.");
    }
    operation.description = Some(match operation.description.take() {
        Some(description) if !description.is_empty() => format!("{description}\n\n{who}"),
        _ => who,
    });
    if matches!(guard.access, Access::Public | Access::SignedUrl) {
        operation.security = Some(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: Role) -> Principal {
        Principal::User { id: 7, role, employee_id: "P7".into(), email: "p7@college.edu".into() }
    }

    fn key(role: Role) -> Principal {
        Principal::ApiKey { id: 3, role, name: "kiosk".into(), liveness: Default::default() }
    }

    #[test]
    fn anonymous_callers_are_unauthenticated_except_on_public_routes() {
        assert_eq!(Access::Public.decide(None), Ok(()));
        for access in [Access::Authenticated, ADMIN, ADMIN_OR_FACULTY, Access::AdminOrSelf, Access::People] {
            assert_eq!(access.decide(None), Err(Refusal::Unauthenticated), "{access:?}");
        }
    }

    #[test]
    fn roles_admit_people_and_keys_with_the_role_only() {
        for caller in [person(Role::Admin), key(Role::Admin)] {
            assert_eq!(ADMIN.decide(Some(&caller)), Ok(()));
        }
        for caller in [person(Role::Faculty), person(Role::Student), key(Role::Faculty), key(Role::Student)] {
            assert_eq!(ADMIN.decide(Some(&caller)), Err(Refusal::Forbidden), "{caller:?}");
        }
        assert_eq!(ADMIN_OR_FACULTY.decide(Some(&key(Role::Faculty))), Ok(()));
        assert_eq!(ADMIN_OR_FACULTY.decide(Some(&person(Role::Student))), Err(Refusal::Forbidden));
    }

    #[test]
    fn own_records_are_for_admins_and_people_not_for_other_keys() {
        for caller in [person(Role::Admin), key(Role::Admin), person(Role::Faculty), person(Role::Student)] {
            assert_eq!(Access::AdminOrSelf.decide(Some(&caller)), Ok(()), "{caller:?}");
        }
        for caller in [key(Role::Faculty), key(Role::Student)] {
            assert_eq!(Access::AdminOrSelf.decide(Some(&caller)), Err(Refusal::Forbidden), "{caller:?}");
        }
    }

    #[test]
    fn the_phone_routes_are_for_people_of_every_role_and_no_key() {
        for role in [Role::Admin, Role::Faculty, Role::Student] {
            assert_eq!(Access::People.decide(Some(&person(role))), Ok(()), "{role:?}");
            assert_eq!(Access::People.decide(Some(&key(role))), Err(Refusal::Forbidden), "{role:?}");
        }
    }

    #[test]
    fn only_signing_in_health_and_docs_are_public() {
        let public: Vec<&str> =
            POLICY.iter().filter(|guard| guard.access == Access::Public).map(|guard| guard.path).collect();
        assert_eq!(
            public,
            [
                "/api/v1/auth/login/",
                "/api/v1/auth/refresh/",
                "/api/v1/auth/logout/",
                "/healthz",
                "/readyz",
                "/metrics",
                "/api/v1/openapi.json",
                "/api/docs",
                "/api/docs/",
                "/api/docs/{file}",
            ]
        );
        let signed: Vec<&str> =
            POLICY.iter().filter(|guard| guard.access == Access::SignedUrl).map(|guard| guard.path).collect();
        assert_eq!(signed, ["/api/v1/cameras/{camera_id}/preview.mjpeg"]);
    }

    #[test]
    fn a_route_missing_from_the_table_is_refused_with_a_logged_cause() {
        let refused = guard_of(&Method::GET, Some("/api/v1/forgotten/")).unwrap_err();
        assert!(matches!(refused, ApiError::Internal(_)));
        let response = refused.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response.extensions().get::<super::super::error::LoggedCause>().expect("the edge logs it");
        assert!(cause.0.contains("GET /api/v1/forgotten/ has no entry"), "{}", cause.0);
        assert!(guard_of(&Method::POST, Some("/api/v1/users/{id}/")).is_err(), "a method without a rule");
        assert!(guard_of(&Method::GET, None).is_err(), "a request without a matched route");
    }

    #[test]
    fn head_follows_get() {
        assert_eq!(guard(&Method::HEAD, "/healthz").map(|guard| guard.access), Some(Access::Public));
    }

    #[test]
    fn each_route_has_one_entry() {
        for (n, guard) in POLICY.iter().enumerate() {
            let twin = POLICY[n + 1..].iter().find(|other| other.method == guard.method && other.path == guard.path);
            assert!(twin.is_none(), "{} {} is declared twice", guard.method, guard.path);
        }
    }
}

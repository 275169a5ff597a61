//! HTTP: the axum router, extractors, middleware, the error shape and the OpenAPI
//! document. Handlers are thin: parse, call the domain or store, map the result.

pub mod admission;
pub mod api_keys;
pub mod attendance;
pub mod audit;
pub mod auth;
pub mod cameras;
pub mod disputes;
pub mod docs;
pub mod error;
pub mod events;
pub mod extract;
pub mod face;
pub mod health;
pub mod incidents;
pub mod middleware;
pub mod mobile;
pub mod pagination;
pub mod policy;
pub mod reports;
pub mod system;
pub mod users;
pub mod visitors;
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::limiter::Category;

#[derive(OpenApi)]
#[openapi(
    info(title = "Rollcall API", description = "Face-recognition attendance service."),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "auth", description = "Login, tokens and API keys"),
        (name = "users", description = "People and their roles"),
        (name = "security", description = "Audit log and security incidents"),
        (name = "operations", description = "Health probes, system health and metrics"),
        (name = "webhooks", description = "Outgoing webhooks, their delivery log, and incoming attendance"),
        (name = "events", description = "Live events (Server-Sent Events)"),
        (name = "face", description = "Enrollment, verification and biometric erasure"),
        (name = "attendance", description = "Attendance logs, summaries, manual marks, voids and disputes"),
        (name = "reports", description = "Attendance reports (JSON, PDF, Excel) and analytics"),
        (name = "cameras", description = "Cameras the server watches: their settings (credentials never shown), a connection test and live health"),
        (name = "visitors", description = "Unknown visitors: strangers the cameras keep seeing, grouped by face, kept encrypted for a limited time"),
        (name = "mobile", description = "Phone profile and geofenced selfie check-in, and the check-in sites"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// A photo of a person or an incident as a response: its type, and never kept by caches.
fn private_image(mime: &str, bytes: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let headers = [
        (axum::http::header::CONTENT_TYPE, mime.to_owned()),
        (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    (headers, bytes).into_response()
}

/// How long one request may take before it is answered with 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (v1, mut openapi) = OpenApiRouter::new().nest("/api/v1", v1_routes(state.clone())).split_for_parts();
    policy::describe(&mut openapi);
    let openapi_json = serde_json::to_string(&openapi).expect("the OpenAPI document serialises");
    let operations = probes()
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([("content-type", "application/json")], openapi_json) }),
        )
        .route("/api/docs", get(docs::docs_page))
        .route("/api/docs/", get(docs::docs_page))
        .route("/api/docs/{file}", get(docs::docs_asset));
    v1.merge(operations)
        // Every route: who is calling, then whether the access policy lets them in.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), policy::enforce))
        .route_layer(axum::middleware::from_fn(middleware::tag_route))
        // A known path with a method it does not serve is no route: answer 405 without
        // the policy, which would refuse it as a route missing from its table.
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::authenticate))
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(axum::middleware::from_fn(middleware::error_shape))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::measure))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis)),
        )
}

/// What process managers, load balancers and Prometheus ask every process.
fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(system::METRICS_PATH, get(system::prometheus_metrics))
}

/// A worker process's HTTP (`rollcall worker`): the probes and the metrics, nothing else.
pub fn worker_router(state: AppState) -> Router {
    probes()
        .fallback(|| async {
            error::ApiError::NotFound("a worker process serves only /healthz, /readyz and /metrics".into())
        })
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(axum::middleware::from_fn(middleware::error_shape))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
}

/// `/api/v1`: routes and their OpenAPI description, registered together.
fn v1_routes(state: AppState) -> OpenApiRouter<AppState> {
    // Rate limited in their handlers, after the lengths of what they were sent are checked.
    let public = OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .layer(DefaultBodyLimit::max(auth::MAX_BODY_BYTES));
    let general = OpenApiRouter::new()
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::update_user, users::deactivate_user))
        .route("/users/{id}/", axum::routing::patch(users::update_user))
        .routes(routes!(audit::list_audit_logs))
        .routes(routes!(attendance::list_logs))
        .routes(routes!(attendance::mark))
        .routes(routes!(attendance::summary))
        .routes(routes!(attendance::get_log))
        .routes(routes!(attendance::get_face_crop))
        // Dashboards poll the live numbers: the general quota, not the reports' 10 a minute.
        .routes(routes!(reports::real_time))
        .routes(routes!(attendance::void_log))
        .routes(routes!(disputes::file_dispute, disputes::list_disputes))
        .routes(routes!(disputes::accept_dispute))
        .routes(routes!(disputes::reject_dispute))
        .routes(routes!(face::enroll))
        .routes(routes!(face::erase_template))
        .routes(routes!(system::system_health))
        .routes(routes!(system::system_metrics))
        .routes(routes!(system::start_maintenance))
        .routes(routes!(system::maintenance_status))
        .routes(routes!(mobile::profile))
        .routes(routes!(mobile::check_in_status))
        .routes(routes!(mobile::list_sites, mobile::create_site))
        .routes(routes!(mobile::get_site, mobile::update_site, mobile::delete_site))
        .routes(routes!(cameras::list_cameras, cameras::create_camera))
        .routes(routes!(cameras::get_camera, cameras::update_camera, cameras::delete_camera))
        .routes(routes!(cameras::camera_stream))
        .routes(routes!(cameras::camera_preview))
        .routes(routes!(cameras::test_camera))
        .routes(routes!(cameras::camera_health))
        .routes(routes!(visitors::list_visitors))
        .routes(routes!(visitors::get_visitor, visitors::delete_visitor))
        .routes(routes!(visitors::get_visitor_crop))
        .routes(routes!(visitors::enroll_visitor))
        .routes(routes!(face::create_challenge))
        .routes(routes!(incidents::report_incident))
        .routes(routes!(incidents::list_incidents))
        .routes(routes!(incidents::get_incident))
        .routes(routes!(incidents::get_incident_image))
        .routes(routes!(incidents::acknowledge_incident))
        .routes(routes!(incidents::resolve_incident))
        .merge(webhooks::routes())
        .merge(events::routes())
        .layer(axum::middleware::from_fn_with_state((state.clone(), Category::General), middleware::rate_limit));
    // Face verification has a quota of its own (the spec's 100/min per caller).
    let verification = OpenApiRouter::new()
        .routes(routes!(face::verify))
        .routes(routes!(face::bulk_verify))
        .routes(routes!(mobile::check_in))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), Category::FaceVerification),
            middleware::rate_limit,
        ));
    // Polling one's own tasks has a quota of its own: a client polling each of its
    // verifications would otherwise spend the general budget within minutes.
    let task_status = OpenApiRouter::new()
        .routes(routes!(face::enroll_status))
        .routes(routes!(face::verify_status))
        .routes(routes!(face::bulk_status))
        .layer(axum::middleware::from_fn_with_state((state.clone(), Category::TaskStatus), middleware::rate_limit));
    // Reports are costly to compute: the spec's 10 per minute per caller.
    let reports = OpenApiRouter::new()
        .routes(routes!(reports::attendance_report))
        .routes(routes!(reports::patterns))
        .layer(axum::middleware::from_fn_with_state((state.clone(), Category::Reports), middleware::rate_limit));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(general)
        .merge(verification)
        .merge(task_status)
        .merge(reports)
}

//! Unauthenticated probes for process managers and load balancers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::Json;
use crate::app::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve requests: the database answers, and so does RabbitMQ when
/// tasks go through it.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<Health>), ApiError> {
    match tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await {
        Ok(Ok(())) => broker_ready(&state).await.map(|()| (StatusCode::OK, Json(Health { status: "ready" }))),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check: database unreachable");
            Err(ApiError::Unavailable("the database is unreachable".into(), Some(std::time::Duration::from_secs(5))))
        }
        Err(_) => Err(ApiError::Unavailable(
            "the database did not answer in time".into(),
            Some(std::time::Duration::from_secs(5)),
        )),
    }
}

async fn broker_ready(state: &AppState) -> Result<(), ApiError> {
    match state.queue.broker_health().await {
        Some(broker) if !broker.reachable => {
            let reason = broker.error.unwrap_or_else(|| "RabbitMQ is unreachable".into());
            Err(ApiError::Unavailable(reason, Some(std::time::Duration::from_secs(5))))
        }
        _ => Ok(()),
    }
}

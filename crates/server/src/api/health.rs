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

/// The process can serve requests: the database answers, and so do RabbitMQ and Redis
/// when they are configured (`amqp_url`, `redis_url`).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<Health>), ApiError> {
    database_ready(&state).await?;
    broker_ready(&state).await?;
    redis_ready(&state).await?;
    Ok((StatusCode::OK, Json(Health { status: "ready" })))
}

async fn redis_ready(state: &AppState) -> Result<(), ApiError> {
    let Some(link) = &state.redis else {
        return Ok(());
    };
    // The link logs the failure (at most once a minute), so probes do not flood the log.
    link.ping()
        .await
        .map_err(|_| ApiError::Unavailable("Redis is unreachable".into(), Some(std::time::Duration::from_secs(5))))
}

async fn database_ready(state: &AppState) -> Result<(), ApiError> {
    match tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
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

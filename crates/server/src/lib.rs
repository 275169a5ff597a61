//! Rollcall's server: the HTTP API, domain services, storage and background work.
//!
//! Layers, from the edge inwards: [`api`] (axum: routing, auth, errors, OpenAPI) →
//! [`domain`] (use cases and policies) → [`store`] (SQLite or PostgreSQL through one
//! code path). [`limiter`] holds the rate-limit interface and its in-process and Redis
//! implementations; [`redis_link`] is the state API instances share when Redis is
//! configured. The binary and the tests start the same [`run`].

pub mod api;
pub mod app;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod events;
pub mod key_rotation;
pub mod limiter;
pub mod metrics;
pub mod outbound;
pub mod queue;
pub mod redis_link;
pub mod render;
pub mod store;
pub mod telemetry;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use app::{App, AppState};
pub use config::Config;

/// Serves the API on `listener` until `shutdown` completes, then stops accepting
/// connections, lets in-flight requests finish (up to `shutdown_timeout_secs`) and
/// closes the database.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_engine(config, listener, shutdown, None).await
}

/// [`run`] with a face engine that is already loaded (tests share one between servers).
pub async fn run_with_engine(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    engine: Option<Arc<rollcall_face::FaceEngine>>,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(config.shutdown_timeout_secs);
    let app = App::build_with_engine(config, engine).await?;
    let state = AppState(Arc::new(app));
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let address = listener.local_addr().context("listener has no address")?;
    let deliverer = tokio::spawn(webhooks::run_deliverer(state.deliverer_parts(), state.shutdown.clone()));
    let lease = Duration::from_secs(state.config.task_lease_secs.max(1));
    let sweeper = queue::worker::spawn_sweeper(state.queue.clone(), lease, state.shutdown.clone());
    let role = state.config.role;
    let workers = if role.runs_workers() {
        queue::worker::spawn_workers(
            state.queue.clone(),
            Arc::new(state.face_tasks()),
            state.config.task_workers(),
            lease,
            queue::worker::WorkerObservers { stats: state.workers.clone(), metrics: state.metrics.clone() },
            state.shutdown.clone(),
        )
    } else {
        Vec::new()
    };
    let heartbeat = role.runs_workers().then(|| {
        tokio::spawn(queue::heartbeat::beat_until_shutdown(
            state.db.clone(),
            state.identity.clone(),
            state.workers.clone(),
            state.config.task_workers(),
            state.shutdown.clone(),
        ))
    });
    // Cameras submit what they see as tasks: they belong with the API, not with workers.
    // An instance with `watch_cameras = false` only reports the cameras others watch.
    let cameras = role.serves_api().then(|| tokio::spawn(state.cameras.clone().run(state.shutdown.clone())));
    let index_follower = tokio::spawn(domain::face::follow_index_changes(
        state.face.clone(),
        state.db.clone(),
        state.sealer.clone(),
        Duration::from_millis(state.config.index_sync_interval_ms),
        state.shutdown.clone(),
    ));
    let event_relay = state
        .redis
        .clone()
        .map(|link| tokio::spawn(events::relay::run(link, state.events.clone(), state.shutdown.clone())));
    let task_queue = state.config.task_queue_backend();
    tracing::info!(%address, role = role.as_str(), database = state.db.backend_name(), task_queue, "rollcall is listening");
    let router = if role.serves_api() { api::router(state.clone()) } else { api::worker_router(state.clone()) };

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stopping = state.shutdown.clone();
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = stop_tx.send(true);
            stopping.cancel();
        });
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        result = server.into_future() => result.context("HTTP server failed")?,
        () = deadline => tracing::warn!(timeout_secs = timeout.as_secs(), "in-flight requests did not finish in time"),
    }
    housekeeping.abort();
    state.shutdown.cancel();
    // Workers finish the task they hold; one still running at the deadline runs again
    // after the next start, when its lease has expired.
    if tokio::time::timeout(timeout, futures::future::join_all(workers)).await.is_err() {
        tracing::warn!("task workers did not finish in time; their tasks will run again");
    }
    sweeper.abort();
    if let Some(cameras) = cameras {
        let _ = tokio::time::timeout(timeout, cameras).await;
    }
    let _ = tokio::time::timeout(timeout, index_follower).await;
    if let Some(relay) = event_relay
        && tokio::time::timeout(timeout, relay).await.is_err()
    {
        tracing::warn!("the live event relay did not stop in time");
    }
    if tokio::time::timeout(timeout, deliverer).await.is_err() {
        tracing::warn!("the webhook deliverer did not stop in time");
    }
    if let Some(heartbeat) = heartbeat
        && tokio::time::timeout(timeout, heartbeat).await.is_err()
    {
        tracing::warn!("the worker heartbeat did not stop in time; other instances count this process for 10 s");
    }
    state.face.wait_for_loading(timeout).await;
    state.db.close().await;
    tracing::info!("rollcall stopped");
    Ok(())
}

/// Periodic upkeep: memory kept bounded, expired evidence, unknown visitors, liveness
/// challenges, old face index changes and the rows of worker processes that stopped
/// beating purged (at start, then hourly).
async fn housekeeping(state: AppState) {
    const PURGE_EVERY_TICKS: u32 = 60;
    let retention = state.config.evidence_retention();
    let visitors = state.config.visitor_policy();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    for ticks in 0u32.. {
        tick.tick().await;
        state.limiter.forget_idle();
        if ticks % PURGE_EVERY_TICKS == 0 {
            let now = chrono::Utc::now();
            log_purge("expired arrival evidence", retention.purge_expired(&state.db, now).await);
            log_purge("expired unknown visitors", visitors.purge_expired(&state.db, now).await);
            log_purge("expired liveness challenges", domain::liveness::purge_expired(&state.db).await);
            // Every running process applies a change within a second; an hour leaves room
            // for one that stalled, and a process that starts loads the index whole.
            let applied = now - chrono::Duration::hours(1);
            log_purge("old face index changes", store::face_index_changes::delete_before(&state.db, applied).await);
            // Health ignores a row after 10 s; keeping it a while longer costs nothing.
            let gone = now - chrono::Duration::minutes(10);
            log_purge(
                "rows of worker processes that stopped beating",
                store::worker_processes::delete_not_beaten_since(&state.db, gone).await,
            );
        }
    }
}

fn log_purge(what: &str, purged: store::StoreResult<u64>) {
    match purged {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "{what} purged"),
        Err(error) => tracing::warn!(%error, "cannot purge {what}; will try again"),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

//! `/events/`: live domain events as Server-Sent Events, for the dashboard (admin and
//! faculty). Browsers' `EventSource` cannot send headers, so this endpoint also takes
//! the access token as `?access_token=`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Query};
use crate::app::AppState;
use crate::domain::auth::{MAX_ACCESS_TOKEN_BYTES, within_limit};
use crate::domain::users::Role;
use crate::events::Event;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The routes of this module, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// An access token, for clients that cannot send `Authorization` (browsers'
    /// `EventSource`). Ignored when the request carries credentials in headers.
    pub access_token: Option<String>,
}

/// Stream events live (admin and faculty). Each message is `event: <kind>`,
/// `id: <event key>` and `data: <the webhook body as JSON>`; a client that falls behind
/// gets `event: lagged` with `{"missed": n}`. The stream ends when the server stops.
#[utoipa::path(get, path = "/events/", tag = "events", params(EventsQuery),
    responses((status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Option<Auth>,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let principal = match (caller, query.access_token) {
        (Some(Auth(principal)), _) => principal,
        (None, Some(token)) => {
            let token = within_limit("access_token", token.trim(), MAX_ACCESS_TOKEN_BYTES)?;
            state.auth.authenticate_access(&state.db, token).await?
        }
        (None, None) => {
            return Err(ApiError::Unauthorized(
                "authentication required: send `Authorization: Bearer <access token>` or `?access_token=<access token>`"
                    .into(),
            ));
        }
    };
    if !matches!(principal.role(), Role::Admin | Role::Faculty) {
        return Err(ApiError::forbidden());
    }
    let live = BroadcastStream::new(state.events.subscribe()).map(|item| {
        Ok(match item {
            Ok(event) => to_sse(&event),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(serde_json::json!({ "missed": missed }).to_string())
            }
        })
    });
    let stream = futures::stream::once(async { Ok(SseEvent::default().comment("connected")) })
        .chain(live)
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default().event(event.kind.as_str()).id(event.key.clone()).data(event.body().to_string())
}

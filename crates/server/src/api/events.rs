//! `/events/`: live domain events as Server-Sent Events, for the dashboard (admin and
//! faculty). Browsers' `EventSource` cannot send headers, so this endpoint also takes
//! the access token as `?access_token=` (resolved by the access policy's layer).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Auth;
use super::policy::AccessTokenQuery;
use crate::app::AppState;
use crate::domain::users::Role;
use crate::events::Event;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The routes of this module, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// Stream events live (admin and faculty). Each message is `event: <kind>`,
/// `id: <event key>` and `data: <the webhook body as JSON>`; a client that falls behind
/// gets `event: lagged` with `{"missed": n}`. The stream ends when the server stops.
#[utoipa::path(get, path = "/events/", tag = "events", params(AccessTokenQuery),
    responses((status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
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

//! Back-pressure for the face endpoints, decided before a photo's body is read: room in
//! the budget of bodies in flight (`max_inflight_body_bytes`), then room in the queue
//! (`max_queue_wait_secs`). Either one full answers 503 with `Retry-After`, so an
//! overloaded server neither keeps nor parses uploads it could not do in time.

use std::marker::PhantomData;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, EXPECT};
use axum::http::request::Parts;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::extract::Json;
use super::face::queue_error;
use crate::app::AppState;
use crate::limiter::inflight::InflightPermit;
use crate::queue::TaskKind;
use crate::queue::admission::{Estimate, Refusal};

/// How long an upload waits for room among the bodies in flight before it gets 503.
const BODY_PATIENCE: Duration = Duration::from_secs(2);
/// When a client refused for lack of room among the bodies in flight may try again.
const BODY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The kind of task an endpoint submits.
pub trait SubmitsTask {
    const KIND: TaskKind;
}

pub enum EnrollTask {}
pub enum VerifyTask {}
pub enum BulkVerifyTask {}
pub enum CheckInTask {}

impl SubmitsTask for EnrollTask {
    const KIND: TaskKind = TaskKind::Enroll;
}
impl SubmitsTask for VerifyTask {
    const KIND: TaskKind = TaskKind::Verify;
}
impl SubmitsTask for BulkVerifyTask {
    const KIND: TaskKind = TaskKind::BulkVerify;
}
impl SubmitsTask for CheckInTask {
    const KIND: TaskKind = TaskKind::CheckIn;
}

/// The JSON body `T` of a request that submits a task of kind `K`, admitted: before the
/// body was read, it got its share of the budget of bodies in flight and the queue had
/// room. Refused requests get 503 with `Retry-After`.
pub struct Admitted<K, T> {
    pub ticket: Ticket<K>,
    pub body: T,
}

/// The admission of one task: drop it once the task is queued, which gives the body's
/// share of the budget back.
pub struct Ticket<K> {
    /// What the queue looked like when the task was admitted.
    pub estimate: Estimate,
    _body: InflightPermit,
    /// The kind only: a `Ticket` is `Send` whatever `K` is.
    _kind: PhantomData<fn() -> K>,
}

impl<K: SubmitsTask, T: DeserializeOwned> FromRequest<AppState> for Admitted<K, T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let ticket = match Ticket::take(&parts, state).await {
            Ok(ticket) => ticket,
            Err(refusal) => {
                discard_unless_expected(&parts, body, state.config.max_body_bytes).await;
                return Err(refusal);
            }
        };
        let Json(body) = Json::<T>::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self { ticket, body })
    }
}

impl<K: SubmitsTask> Ticket<K> {
    async fn take(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        // The body's share first: requests waiting for it are admitted on the queue as it
        // is when they get in, not as it was when they arrived.
        let bytes = declared_body_bytes(parts, state)?;
        let body = state.inflight_bodies.acquire(bytes, BODY_PATIENCE).await.ok_or_else(|| {
            ApiError::Unavailable(
                "the server is receiving as many photos as it can hold; try again shortly".into(),
                Some(BODY_RETRY_AFTER),
            )
        })?;
        let estimate = state.admission.admit(&*state.queue, K::KIND).await.map_err(refusal)?;
        Ok(Self { estimate, _body: body, _kind: PhantomData })
    }
}

/// Reads a refused request's body to its end without keeping it: a client that is still
/// sending when the answer comes and the connection closes would see a reset instead of
/// the 503 and its `Retry-After`. A client that waits for `100 Continue` has sent nothing.
async fn discard_unless_expected(parts: &Parts, body: Body, limit: usize) {
    if parts.headers.get(EXPECT).is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        return;
    }
    let mut chunks = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(chunk)) = chunks.next().await {
        read += chunk.len();
        if read > limit {
            return;
        }
    }
}

/// The body's size as declared, or the largest body accepted when it is not (chunked);
/// 413 at once when it declares more than that.
fn declared_body_bytes(parts: &Parts, state: &AppState) -> Result<usize, ApiError> {
    let limit = state.config.max_body_bytes;
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    match declared {
        Some(bytes) if bytes > limit => Err(ApiError::PayloadTooLarge),
        Some(bytes) => Ok(bytes),
        None => Ok(limit),
    }
}

fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Busy { retry_after, .. } => ApiError::Unavailable(refusal.to_string(), Some(retry_after)),
        Refusal::Queue(error) => queue_error(error),
    }
}

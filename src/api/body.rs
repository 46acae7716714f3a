//! How the server treats a request body and a request's time: a body that
//! is not read to its end is finished (or the connection is closed, saying
//! so), a request may take a bounded time, and a node that stopped taking
//! changes after a storage failure answers nothing more.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::state::ChainState;

/// How long a request may take, its body included (not the streaming of
/// an answer): a client that sends its body a byte at a time is cut off.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the request middleware needs.
#[derive(Clone)]
pub struct RequestBounds {
    /// The largest request body read.
    pub max_body_bytes: usize,
    /// The chain state, to refuse requests once it stopped.
    pub state: ChainState,
}

/// Most bytes of an unread request body read (and dropped) after the answer
/// so the connection can serve the next request.
const DRAIN_LIMIT_BYTES: u64 = 4 * 1024 * 1024;
/// How long the rest of an unread request body may take to arrive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps a connection usable after an answer given without reading the
/// whole request body (413, 404 or 405 to a POST, a bad block rejected
/// early): the rest of the body is read and dropped, up to a bound, before
/// the answer goes out. A body larger than that, or one that does not
/// arrive in time, gets `Connection: close` instead, so the client knows
/// not to send its next request on a connection the server is closing
/// (HTTP/1.1 gives no other way to tell it; without either, hyper closes
/// the connection silently and the client's next request fails).
///
/// A request that takes longer than [`REQUEST_TIMEOUT`] gets 408, with
/// `Connection: close`.
pub async fn finish_request_body(
    State(limits): State<RequestBounds>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(failure) = limits.state.failure() {
        let mut response =
            ApiError::Unavailable(format!("the node is stopping: {failure}")).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        // Refused on its declared length, without waiting for the body.
        let refused = ApiError::TooLarge(limits.max_body_bytes).into_response();
        return with_body_finished(refused, body, declared).await;
    }
    let unread = Arc::new(Mutex::new(None));
    let body = Body::new(TrackedBody {
        inner: Some(body),
        unread: Arc::clone(&unread),
    });
    let response =
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(Request::from_parts(parts, body)))
            .await
        {
            Ok(response) => response,
            Err(_) => {
                let mut response = ApiError::Timeout(REQUEST_TIMEOUT.as_secs()).into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
    let rest = unread.lock().expect("unread body lock").take();
    match rest {
        Some(rest) => with_body_finished(response, rest, declared).await,
        None => response,
    }
}

/// Drains what is left of a request body before `response` goes out, or
/// marks the response `Connection: close` when that is too much to read.
async fn with_body_finished(mut response: Response, rest: Body, declared: Option<u64>) -> Response {
    let drained =
        declared.is_none_or(|len| len <= DRAIN_LIMIT_BYTES) && drain(rest, DRAIN_LIMIT_BYTES).await;
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and drops a body; true when it ended within the byte and time bounds.
async fn drain(body: Body, limit: u64) -> bool {
    let mut chunks = body.into_data_stream();
    let read_all = async {
        let mut seen = 0u64;
        while let Some(chunk) = chunks.next().await {
            let Ok(chunk) = chunk else { return false };
            seen += chunk.len() as u64;
            if seen > limit {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIMEOUT, read_all)
        .await
        .unwrap_or(false)
}

/// A request body that, when dropped before its end, hands what is left
/// back to [`finish_request_body`].
struct TrackedBody {
    /// `None` once the body has ended (or failed).
    inner: Option<Body>,
    unread: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.inner = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.as_ref().map_or_else(
            || http_body::SizeHint::with_exact(0),
            http_body::Body::size_hint,
        )
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !http_body::Body::is_end_stream(&inner)
        {
            *self.unread.lock().expect("unread body lock") = Some(inner);
        }
    }
}

//! What people watch a node with: the explorer page (`GET /`, built into
//! the binary: no CDN, no font, it works with no internet), the live event
//! stream (`GET /events`), the Prometheus figures (`GET /metrics`), and what
//! every routed answer gets on its way out: `Access-Control-Allow-Origin: *`
//! on reads, so people's own pages can read a node, and a count for the
//! metrics.
//!
//! The page renders nothing the node renders elsewhere: it reads `/status`,
//! `/blocks`, `/peers` and `/data` like any other client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::extract::Sender;
use super::{ApiError, AppState};
use crate::metrics::{CONTENT_TYPE, RequestLabels};
use crate::netgroup::NetGroup;

const PAGE: &str = include_str!("explorer/index.html");
const SCRIPT: &str = include_str!("explorer/explorer.js");
const STYLE: &str = include_str!("explorer/explorer.css");
const ICON: &str = include_str!("explorer/favicon.svg");

/// How often an idle event stream sends a comment, so proxies and browsers
/// keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /`: the explorer page.
pub async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

/// `GET /explorer.js`: the page's script.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// `GET /explorer.css`: the page's style.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// `GET /favicon.svg` (and `/favicon.ico`, which browsers ask for by
/// themselves): two linked blocks.
pub async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        ICON,
    )
}

/// `GET /metrics`: every figure, in the OpenMetrics text format.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.render())
}

/// Most `/events` streams open at once from one network group of clients
/// ([`crate::netgroup`]), and in all: a stream costs a connection and a
/// task for as long as it is open, so without a bound one client could
/// hold every connection the server has.
pub const STREAMS_PER_GROUP: usize = 64;
pub const STREAMS_IN_ALL: usize = 1024;

/// The open `/events` streams, by the client's network group.
#[derive(Debug, Default)]
pub struct StreamSlots {
    open: Mutex<HashMap<Option<NetGroup>, usize>>,
}

/// One open stream's place; given back when the stream ends.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    group: Option<NetGroup>,
}

impl StreamSlots {
    /// A place for a stream from `address`, or why there is none.
    fn take(self: &Arc<Self>, address: Option<IpAddr>) -> Result<StreamSlot, ApiError> {
        let group = address.map(NetGroup::of_ip);
        let mut open = self.open.lock().expect("never poisoned");
        let in_all: usize = open.values().sum();
        let mine = open.get(&group).copied().unwrap_or(0);
        if mine >= STREAMS_PER_GROUP {
            return Err(ApiError::Busy(format!(
                "your network group has {mine} event streams open, the most one group may \
                 have; close one first"
            )));
        }
        if in_all >= STREAMS_IN_ALL {
            return Err(ApiError::Busy(format!(
                "the node has {in_all} event streams open, the most it serves; try again later"
            )));
        }
        *open.entry(group.clone()).or_default() += 1;
        Ok(StreamSlot {
            slots: Arc::clone(self),
            group,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("never poisoned");
        if let Some(count) = open.get_mut(&self.group) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.group);
            }
        }
    }
}

/// `GET /events`: the node's events as Server-Sent Events, each named by
/// its kind with its JSON as data, from now until the node stops. A reader
/// too slow to keep up gets a `lagged` event saying how many it missed.
/// At most [`STREAMS_PER_GROUP`] streams per network group of clients and
/// [`STREAMS_IN_ALL`] in all (503 beyond).
pub async fn events(
    State(app): State<AppState>,
    Sender { remote, .. }: Sender,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let slot = app.streams.take(remote)?;
    let receiver = app.state.events().subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, app.shutdown.clone(), slot),
        |(mut receiver, shutdown, slot)| async move {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return None,
                received = receiver.recv() => received,
            };
            let event = match received {
                Ok(event) => SseEvent::default()
                    .event(event.name())
                    .json_data(&event)
                    .expect("events serialise"),
                Err(RecvError::Lagged(missed)) => SseEvent::default()
                    .event("lagged")
                    .data(format!(r#"{{"type":"lagged","missed":{missed}}}"#)),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (receiver, shutdown, slot)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Runs after routing, around every routed request: reads may be made from
/// any page (`Access-Control-Allow-Origin: *`); requests that change state
/// get no such header, so other sites' pages cannot read their answers, and
/// no preflight is answered, so they cannot send JSON to them. Counts the
/// answer by route and status.
pub async fn on_the_way_out(
    State(app): State<AppState>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = route.map_or_else(|| "other".to_string(), |r| route_label(r.as_str()));
    let mut response = next.run(request).await;
    if is_read(&method) {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    app.metrics.count_request(RequestLabels {
        method: label_method(&method),
        route,
        status: response.status().as_u16(),
    });
    response
}

/// Counts an answer given without a route (the fallback).
pub fn count_unrouted(app: &AppState, method: &Method, status: StatusCode) {
    app.metrics.count_request(RequestLabels {
        method: label_method(method),
        route: "other".into(),
        status: status.as_u16(),
    });
}

/// A route as a label: `/blocks/{index}` as `/blocks/:index`, since some
/// simple parsers of the text format stop a label value at a `}`.
fn route_label(route: &str) -> String {
    route.replace('{', ":").replace('}', "")
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// A method as a label: the standard ones by name, anything else as
/// `other`, so a client cannot grow the metrics without bound.
fn label_method(method: &Method) -> String {
    match *method {
        Method::GET | Method::HEAD | Method::POST | Method::DELETE | Method::PUT => {
            method.as_str().to_string()
        }
        _ => "other".to_string(),
    }
}

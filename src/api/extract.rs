//! What handlers take from a request, each read the same way for every
//! route, so a handler starts from typed values:
//!
//! - [`Sender`]: who sent a request that relays something (`POST /mined`,
//!   `POST /data`): the connection's address, and the node the
//!   `X-Jbc-Peer` header names;
//! - [`RawBody`]: the body's bytes, within the node's body limit, sent as
//!   `Content-Type: application/json` (415 otherwise: a page of another
//!   site cannot send that type without a preflight, which is never
//!   granted, so it cannot post to the node);
//! - [`JsonBody`]: the body parsed as one of the protocol's requests, with
//!   an answer in words when it is not one.
//!
//! Each rejects with an [`ApiError`], so a handler's `?` does the rest.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, AppState};
use crate::block::json_kind;
use crate::peers::PeerUrl;
use crate::protocol::{BanRequest, DataRequest, MineRequest, PEER_HEADER, PeerRequest};

/// The sender of a request, as far as it can be told.
pub struct Sender {
    /// The address the connection came from (none when the server was not
    /// given connection info, as in tests that call the router directly).
    pub remote: Option<IpAddr>,
    /// The node the peer header names, with an unspecified host (a node
    /// that listens on all addresses) replaced by `remote`; none when the
    /// header is missing or not a peer URL.
    pub peer: Option<PeerUrl>,
}

impl<S: Send + Sync> FromRequestParts<S> for Sender {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Sender, Infallible> {
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let peer = parts
            .headers
            .get(PEER_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| PeerUrl::parse(text).ok())
            .map(|url| match remote {
                Some(remote) => url.as_seen_from(remote),
                None => url,
            });
        Ok(Sender { remote, peer })
    }
}

/// A request's body, read whole within the node's body limit.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &AppState) -> Result<RawBody, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE);
        if !content_type.is_some_and(is_json) {
            let got = content_type.map_or("no Content-Type".to_string(), |value| {
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(80)
                    .collect()
            });
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the body as JSON with `Content-Type: application/json` (this request has {got})"
            )));
        }
        let limit = app.max_body_bytes();
        Bytes::from_request(request, app)
            .await
            .map(RawBody)
            .map_err(|rejection| body_unreadable(rejection, limit))
    }
}

/// Whether a Content-Type is JSON: `application/json`, with any parameters
/// (`; charset=utf-8`), in any case.
fn is_json(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|text| text.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A body that could not be read: too large (413) or broken (400).
fn body_unreadable(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(limit)
    } else {
        ApiError::BadRequest(format!(
            "the request body could not be read: {}",
            rejection.body_text()
        ))
    }
}

/// A request body that is one of the protocol's requests: JSON that is not
/// well formed is a 400, JSON of another shape a 422 that says what is
/// expected ([`Expected`]).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Expected> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &AppState) -> Result<JsonBody<T>, ApiError> {
        let RawBody(body) = RawBody::from_request(request, app).await?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|error| {
                if error.is_data() {
                    // Parsed again only on this error path, to say what it is.
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(value) => ApiError::Unprocessable(T::differs(&value)),
                        Err(error) => ApiError::BadRequest(format!("not valid JSON: {error}")),
                    }
                } else {
                    ApiError::BadRequest(format!("not valid JSON: {error}"))
                }
            })
    }
}

/// What a request body should look like, in words for the one who sent
/// something else.
pub trait Expected {
    /// How the request is written, like `a data item is posted as …`.
    const SHAPE: &'static str;

    /// How `value` (valid JSON that did not parse as the request) differs.
    fn differs(value: &Value) -> String {
        format!("{}, not {}", Self::SHAPE, json_kind(value))
    }
}

impl Expected for PeerRequest {
    const SHAPE: &'static str =
        r#"a peer is given as a JSON object like {"url": "http://127.0.0.1:5002"}"#;
}

impl Expected for BanRequest {
    const SHAPE: &'static str = r#"a ban is given as a JSON object like {"url": "http://127.0.0.1:5002", "seconds": 86400}"#;
}

impl Expected for MineRequest {
    const SHAPE: &'static str = r#"an order to mine is a JSON object like {"blocks": 3}"#;
}

impl Expected for DataRequest {
    const SHAPE: &'static str = r#"a data item is posted as {"data": "its text"}"#;

    fn differs(value: &Value) -> String {
        match value.get("data") {
            Some(data) if !data.is_string() => format!(
                "{}: its text is a JSON string, not {}",
                Self::SHAPE,
                json_kind(data)
            ),
            _ => format!("{}, not {}", Self::SHAPE, json_kind(value)),
        }
    }
}

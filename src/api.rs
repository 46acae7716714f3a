//! The HTTP interface: the router, its handlers, and the one error type that
//! maps every failure to a status and a JSON body with an `error` field.
//!
//! Handlers parse, delegate and translate; the chain's rules live in
//! [`crate::state`] and [`crate::chain`], the peers' in [`crate::peers`].
//! Every 4xx answer says in words what was wrong and what is expected.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{debug, error, warn};

use crate::block::{Block, BlockHash, HashParseError, ParseError, json_kind};
use crate::gossip::SyncRequests;
use crate::peers::{PeerBook, PeerBookError, PeerUrl};
use crate::protocol::{DEFAULT_PAGE, MAX_PAGE, PEER_HEADER, Status};
use crate::state::{Added, ChainState, CommitError, Source};
use crate::stats::Stats;

/// Largest request body read; a block is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The endpoints, for the answer to a request for one that does not exist.
const ENDPOINTS: &str = "GET /blockchain.json, GET /status, GET /blocks?from=N&limit=M, \
    GET /blocks/{index}, GET /block/{hash}, POST /mined, GET /peers, POST /peers";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The chain.
    pub state: ChainState,
    /// The peers this node knows.
    pub peers: PeerBook,
    /// Where announcements of blocks we lack ask for a sync.
    pub sync: SyncRequests,
    /// The node's counters, for `/status`.
    pub stats: Arc<Stats>,
}

/// The node's HTTP routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/blockchain.json", get(blockchain_json))
        .route("/status", get(status))
        .route("/blocks", get(blocks))
        .route("/blocks/{index}", get(block_by_index))
        .route("/block/{hash}", get(block_by_hash))
        .route("/mined", post(mined))
        .route("/peers", get(list_peers).post(add_peer))
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::NotFound(format!(
                "there is no {method} {}; the endpoints are {ENDPOINTS}",
                uri.path()
            ))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(finish_request_body))
        .with_state(state)
}

/// `GET /blockchain.json`: the whole chain, from memory.
async fn blockchain_json(State(app): State<AppState>) -> Result<Response, ApiError> {
    // Usually cached; rebuilding it is CPU work for the blocking pool (the
    // hand-off costs a thread wake-up, so only when needed).
    let state = app.state;
    let json = match state.cached_chain_json() {
        Some(json) => json,
        None => tokio::task::spawn_blocking(move || state.chain_json())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// `GET /status`: what a peer needs to decide whether to sync from us.
async fn status(State(app): State<AppState>) -> Json<Status> {
    let tip = app.state.tip();
    let network = app.state.network();
    Json(Status {
        height: tip.index,
        tip: tip.hash,
        difficulty: network.difficulty,
        genesis: network.genesis.hash,
        peers: app.peers.list().len(),
        hashrate: app.stats.hashrate(),
        blocks_fetched: app.stats.blocks_fetched(),
    })
}

/// `GET /blocks?from=N&limit=M`: blocks N… in order, at most [`MAX_PAGE`];
/// `from` defaults to 0 and `limit` to [`DEFAULT_PAGE`]; past the tip the
/// list is empty.
async fn blocks(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (mut from, mut limit) = (0, DEFAULT_PAGE);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = || {
            value.trim().parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "`{name}` must be a whole number, like /blocks?from=0&limit=100 (got {:?})",
                    value.chars().take(40).collect::<String>()
                ))
            })
        };
        match &*name {
            "from" => from = number()?,
            "limit" => limit = number()?,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "/blocks takes `from` (the first index, default 0) and `limit` \
                     (default {DEFAULT_PAGE}, at most {MAX_PAGE}), not `{}`",
                    name.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    let blocks = app.state.blocks(from, limit.min(MAX_PAGE));
    let json = serde_json::to_vec(&blocks).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// `GET /blocks/{index}`: one block by index.
async fn block_by_index(
    State(app): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Result<Json<Block>, ApiError> {
    let Path(index) = index.map_err(|_| {
        ApiError::BadRequest("the index must be a whole number, like /blocks/12".into())
    })?;
    app.state.block(index).map(Json).ok_or_else(|| {
        ApiError::NotFound(format!(
            "there is no block {index} yet; the tip is block {}",
            app.state.tip().index
        ))
    })
}

/// `GET /block/{hash}`: one block by hash.
async fn block_by_hash(
    State(app): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Json<Block>, ApiError> {
    let hash: BlockHash = hash
        .parse()
        .map_err(|e: HashParseError| ApiError::BadRequest(e.to_string()))?;
    app.state
        .block_by_hash(&hash)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no block of this chain has hash {hash}")))
}

/// `POST /mined`: a peer announces a block (the original's endpoint and
/// body). Extends our tip → saved and relayed; ahead of us → we sync from
/// the sender; known or not better → said so; invalid → 422.
async fn mined(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::from_body_rejection)?;
    let block = Block::from_json(&body).map_err(ApiError::from_parse)?;
    let sender = headers
        .get(PEER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|text| PeerUrl::parse(text).ok());

    let state = app.state.clone();
    let source = Source::Announced(sender.clone());
    let added = tokio::task::spawn_blocking(move || state.add_block(block, source))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let added = match added {
        Ok(added) => added,
        Err(CommitError::Invalid(error)) => {
            debug!(from = ?sender, %error, "rejected an announced block");
            return Err(ApiError::InvalidBlock(error.to_string()));
        }
        Err(CommitError::Store(error)) => {
            return Err(ApiError::Unavailable(format!(
                "cannot save the block: {error}"
            )));
        }
    };
    if let Some(sender) = &sender {
        learn_peer(&app.peers, sender).await;
    }
    let (status, body) = match added {
        Added::Accepted => (StatusCode::OK, json!({ "status": "accepted" })),
        Added::Known => (StatusCode::OK, json!({ "status": "known" })),
        Added::NotOnTip { ahead: true } => {
            app.sync.request(sender);
            (StatusCode::ACCEPTED, json!({ "status": "syncing" }))
        }
        Added::NotOnTip { ahead: false } => (
            StatusCode::OK,
            json!({ "status": "ignored", "reason": "it does not make a chain longer than ours" }),
        ),
    };
    Ok((status, Json(body)).into_response())
}

/// Adds a node that announced to us as a peer, if there is room.
async fn learn_peer(peers: &PeerBook, url: &PeerUrl) {
    let (peers, url) = (peers.clone(), url.to_string());
    let added = tokio::task::spawn_blocking(move || peers.add(&url)).await;
    if let Ok(Err(error)) = added {
        debug!(%error, "did not add an announcing node as a peer");
    }
}

/// `GET /peers`: the peers' base URLs.
async fn list_peers(State(app): State<AppState>) -> Json<Vec<PeerUrl>> {
    Json(app.peers.list())
}

/// The body of `POST /peers`.
#[derive(Deserialize)]
struct NewPeer {
    url: String,
}

/// `POST /peers` with `{"url": "http://127.0.0.1:5004"}`: adds a peer.
async fn add_peer(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::from_body_rejection)?;
    let NewPeer { url } = serde_json::from_slice(&body).map_err(|error| {
        if error.is_data() {
            let found = serde_json::from_slice::<Value>(&body)
                .map_or("something else", |value| json_kind(&value));
            ApiError::Unprocessable(format!(
                r#"a peer is added with a JSON object like {{"url": "http://127.0.0.1:5002"}}, not {found}"#
            ))
        } else {
            ApiError::BadRequest(format!("not valid JSON: {error}"))
        }
    })?;
    let peers = app.peers.clone();
    let added = tokio::task::spawn_blocking(move || peers.add(&url))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match added {
        Ok(true) => Ok((StatusCode::CREATED, Json(json!({ "added": true }))).into_response()),
        Ok(false) => Ok((
            StatusCode::OK,
            Json(json!({ "added": false, "reason": "already a peer" })),
        )
            .into_response()),
        Err(error @ (PeerBookError::BadUrl(_) | PeerBookError::Itself)) => {
            Err(ApiError::Unprocessable(error.to_string()))
        }
        Err(error @ PeerBookError::Full) => Err(ApiError::Conflict(error.to_string())),
        Err(error @ PeerBookError::Save { .. }) => Err(ApiError::Unavailable(error.to_string())),
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not valid JSON, or a malformed parameter.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Well-formed JSON that is not a valid block.
    #[error("{0}")]
    InvalidBlock(String),
    /// Well-formed but unacceptable.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    /// The node cannot do it now (the disk refused a write).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on our side; the details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Malformed JSON is the client's syntax error (400); JSON that is not a
    /// block is an invalid block (422).
    fn from_parse(error: ParseError) -> ApiError {
        match &error {
            ParseError::Syntax(_) => ApiError::BadRequest(error.to_string()),
            _ => ApiError::InvalidBlock(error.to_string()),
        }
    }

    fn from_body_rejection(rejection: BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ))
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidBlock(_) | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body: Value = json!({ "error": self.to_string() });
        match &self {
            ApiError::InvalidBlock(_) => body["status"] = json!("rejected"),
            ApiError::Internal(detail) => error!(%detail, "request failed"),
            ApiError::Unavailable(detail) => warn!(%detail, "request refused"),
            _ => {}
        }
        (status, Json(body)).into_response()
    }
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
async fn finish_request_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        // Refused on its declared length, without waiting for the body.
        return with_body_finished(ApiError::TooLarge.into_response(), body, declared).await;
    }
    let unread = Arc::new(Mutex::new(None));
    let body = Body::new(TrackedBody {
        inner: Some(body),
        unread: Arc::clone(&unread),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
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

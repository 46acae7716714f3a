//! The HTTP interface: the router, its handlers, and the server that runs
//! them.
//!
//! Handlers parse, delegate and translate; the chain's rules live in
//! [`crate::state`] and [`crate::chain`], the peers' in [`crate::gossip`].
//! Every 4xx answer says in words what was wrong and what is expected
//! ([`ApiError`] is the one place that maps failures to HTTP).
//!
//! - `authors`: signed items' authors, checked as they are read (`GET
//!   /authors/{key}`, `GET /block/{hash}/authors`, an item's author);
//! - [`body`]: request bodies and times, for every route;
//! - [`connections`]: the connections held, by network group, and whom to
//!   drop for a newcomer;
//! - [`error`]: the error type;
//! - [`explorer`]: the explorer page, `/events`, `/metrics` and what every
//!   answer gets on its way out (CORS for reading, request counts);
//! - `extract`: what handlers take from a request (its sender, its body);
//! - `guard`: the operator key, the Host check, the framing policy;
//! - `link`: a peer's live link opened (`GET /link`), and the links and
//!   their messages shown (`GET /peers/links`);
//! - [`pace`]: the pace a client must read at;
//! - [`serve`]: the connection loop, with its limits.

mod authors;
mod body;
mod connections;
mod error;
mod explorer;
mod extract;
mod guard;
mod link;
mod pace;
mod serve;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;
pub use guard::{ADVERTISE, ALLOWED_HOSTS, Access, FRAME_ANCESTORS};
pub use serve::{HOST, MAX_CONNECTIONS, PORT, ServerLimits, serve};

use self::extract::{JsonBody, RawBody, Sender};
use self::guard::Operator;
use crate::block::{Block, BlockHash, HashParseError};
use crate::crawl::Crawler;
use crate::gossip::{Considered, Gossip, Received};
use crate::item::IdPrefix;
use crate::metrics::Metrics;
use crate::orders::{MAX_ORDER, MineOrders};
use crate::peers::{PeerUrl, PeerView};
use crate::pool::{PendingView, Submitter};

use crate::protocol::{
    Addresses, BanLifted, BanRequest, Banned, BlockProof, DEFAULT_PAGE, DataRequest, Isolation,
    ItemAnswer, ItemStatus, MAX_PAGE, MineOrdered, MineRequest, MinedAnswer, PAGE_BYTES, PeerAdded,
    PeerRemoved, PeerRequest, Status, VERSION, route,
};
use crate::state::{ChainState, Submitted};
use crate::stats::Stats;
use crate::tree::{SeenAt, TREE_SPAN, Tree};

/// Heights a `/tree` answer covers when the request does not say.
const TREE_DEFAULT: u64 = 100;

/// Every route the node answers, `METHOD PATH` (with the query it takes,
/// if any): the list a request for an unknown one is answered with, and
/// the first column of the README's tables of routes (the unit tests hold
/// the three together: this list, the README and the router).
pub const ROUTES: &[&str] = &[
    "GET /",
    "GET /events",
    "GET /metrics",
    "GET /blockchain.json",
    "GET /status",
    "GET /blocks?from=N&limit=M",
    "GET /blocks/{index}",
    "GET /blocks/{index}/proof",
    "GET /block/{hash}",
    "GET /blocks/{index}/seen",
    "GET /tree?from=H&limit=N",
    "GET /network",
    "POST /mined",
    "GET /peers/addr",
    "GET /peers/links?after=N&block=H",
    "GET /link",
    "GET /peers",
    "POST /peers",
    "DELETE /peers",
    "POST /peers/bans",
    "DELETE /peers/bans",
    "POST /mine",
    "POST /data",
    "GET /data",
    "GET /data/{id}",
    "GET /authors/{key}?limit=N",
    "GET /block/{hash}/authors",
    "POST /isolation",
    "DELETE /isolation",
];

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The chain.
    pub state: ChainState,
    /// The peers: the book, handshakes and sync requests.
    pub gossip: Gossip,
    /// The node's counters, for `/status`.
    pub stats: Arc<Stats>,
    /// The figures for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether the node mines.
    pub mining: bool,
    /// The operator key and the names the node answers to.
    pub access: Access,
    /// The open `/events` streams, bounded per client and in all.
    pub streams: Arc<explorer::StreamSlots>,
    /// When the node started, for its uptime.
    pub started: Instant,
    /// The same, in seconds since the epoch.
    pub started_unix: i64,
    /// Cancelled when the node stops: ends the event streams, which would
    /// otherwise keep their connections open.
    pub shutdown: CancellationToken,
    /// Blocks the operator ordered mined (`POST /mine`).
    pub orders: Arc<MineOrders>,
    /// Maps the network for the explorer (`GET /network`).
    pub crawler: Arc<Crawler>,
}

impl AppState {
    /// What the handlers of a node reach; its metrics read `state`, `stats`
    /// and the peers of `gossip`.
    pub fn new(
        state: ChainState,
        gossip: Gossip,
        stats: Arc<Stats>,
        mining: bool,
        access: Access,
        shutdown: CancellationToken,
    ) -> AppState {
        let metrics = Metrics::new(state.clone(), Arc::clone(&stats), gossip.clone());
        let crawler = Arc::new(Crawler::new(state.clone(), gossip.clone(), mining));
        AppState {
            crawler,
            state,
            gossip,
            stats,
            metrics: Arc::new(metrics),
            mining,
            access,
            streams: Arc::default(),
            started: Instant::now(),
            started_unix: i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX),
            shutdown,
            orders: Arc::default(),
        }
    }

    /// When the node started, in seconds since the epoch: taken once (a
    /// figure worked out again at each request from whole seconds moved by
    /// one between requests, and so did the mean block time).
    pub fn started_at_unix(&self) -> i64 {
        self.started_unix
    }

    /// The largest request body read: a block of the largest size the
    /// network allows, with room for white space around its values.
    pub fn max_body_bytes(&self) -> usize {
        self.state.network().max_block_text_bytes() as usize
    }
}

/// The node's HTTP routes.
pub fn app(state: AppState) -> Router {
    let limits = body::RequestBounds {
        max_body_bytes: state.max_body_bytes(),
        state: state.state.clone(),
    };
    Router::new()
        .route("/", get(explorer::page))
        .route("/explorer.js", get(explorer::script))
        .route("/explorer.css", get(explorer::style))
        .route("/favicon.svg", get(explorer::icon))
        .route("/favicon.ico", get(explorer::icon))
        .route("/events", get(explorer::events))
        .route("/metrics", get(explorer::metrics))
        .route(route::BLOCKCHAIN, get(blockchain_json))
        .route(route::STATUS, get(status))
        .route(route::BLOCKS, get(blocks))
        .route(&format!("{}/{{index}}", route::BLOCKS), get(block_by_index))
        .route(
            &format!("{}/{{index}}/proof", route::BLOCKS),
            get(block_proof),
        )
        .route(
            &format!("{}/{{index}}/seen", route::BLOCKS),
            get(block_seen),
        )
        .route("/block/{hash}", get(block_by_hash))
        .route(route::TREE, get(tree))
        .route(route::NETWORK, get(network))
        .route(route::MINED, post(mined))
        .route(
            route::PEERS,
            get(list_peers).post(add_peer).delete(remove_peer),
        )
        .route(route::BANS, post(ban_peer).delete(lift_ban))
        .route(route::ADDRESSES, get(addresses))
        .route(route::LINKS, get(link::links))
        .route(crate::wire::LINK_ROUTE, get(link::link))
        .route(route::DATA, get(list_data).post(add_data))
        .route(&format!("{}/{{id}}", route::DATA), get(data_by_id))
        .route(
            &format!("{}/{{key}}", route::AUTHORS),
            get(authors::author_items),
        )
        .route("/block/{hash}/authors", get(authors::block_authors))
        .route(route::MINE, post(mine))
        .route(route::ISOLATION, post(isolate).delete(rejoin))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            explorer::on_the_way_out,
        ))
        .fallback(
            |State(app): State<AppState>, method: Method, uri: Uri| async move {
                explorer::count_unrouted(&app, &method, StatusCode::NOT_FOUND);
                ApiError::NotFound(format!(
                    "there is no {method} {}; the endpoints are {}",
                    uri.path(),
                    ROUTES.join(", ")
                ))
            },
        )
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::refuse_peers_while_isolated,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::frame_and_script_policy,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::check_host,
        ))
        .layer(middleware::from_fn_with_state(
            limits,
            body::finish_request_body,
        ))
        .with_state(state)
}

/// `GET /blockchain.json`: the whole chain, streamed from memory. The
/// chain's full segments are shared, not copied, so a download costs the
/// node no more memory at a million blocks than at a thousand, and it never
/// holds up a new block.
async fn blockchain_json(State(app): State<AppState>) -> Response {
    let json = app.state.chain_json();
    let body = ChainBody {
        remaining: json.len(),
        chunks: json.into_chunks().into_iter(),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::new(body),
    )
        .into_response()
}

/// The body of `/blockchain.json`: the snapshot's pieces, with the length
/// known up front (so it goes out with a `Content-Length`).
struct ChainBody {
    chunks: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl http_body::Body for ChainBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let chunk = self.chunks.next();
        if let Some(chunk) = &chunk {
            self.remaining -= chunk.len() as u64;
        }
        std::task::Poll::Ready(chunk.map(|chunk| Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The blocks a fixed network's mean block time is taken over.
const FIXED_MEAN_SPAN: u64 = 20;

/// `GET /status`: what a peer needs to decide whether to sync from us,
/// and to handshake with us.
///
/// A node that names itself in the peer header while it syncs is reached
/// back at the address its request came from, as an inbound peer.
async fn status(State(app): State<AppState>, sender: Sender) -> Json<Status> {
    if let (Some(peer), Some(remote)) = (sender.peer, sender.remote) {
        app.gossip.introduced(peer, remote);
    }
    Json(app.status())
}

impl AppState {
    /// What `GET /status` answers, and a link's `hello` carries.
    pub fn status(&self) -> Status {
        let app = self;
        // Height, tip and work from one reading of the chain: a peer judges
        // our claim by the blocks at the height we give, so the work must be
        // that height's, not a later tip's.
        let cursor = app.state.tip_cursor();
        let network = app.state.network();
        let (seconds, window) = network.kind.timing();
        Status {
            kind: Some(network.kind.name().to_string()),
            target_block_seconds: seconds,
            retarget_window: window,
            chainwork: Some(cursor.work.to_string()),
            target: Some(cursor.target.to_string()),
            effective_difficulty: Some(cursor.target.difficulty()),
            next_retarget: window.map(|w| (cursor.index / w + 1) * w),
            mean_block_seconds: app
                .state
                .mean_block_seconds(window.unwrap_or(FIXED_MEAN_SPAN), app.started_at_unix()),
            height: cursor.index,
            tip: cursor.hash,
            difficulty: network.difficulty,
            genesis: network.genesis.hash,
            peers: app.gossip.book().count(),
            hashrate: app.stats.hashrate(),
            blocks_fetched: app.stats.blocks_fetched(),
            node_id: Some(app.gossip.node_id().clone()),
            version: Some(VERSION.to_string()),
            max_block_bytes: Some(network.max_block_bytes),
            max_item_bytes: Some(network.max_item_bytes),
            pending_items: app.state.pool().len(),
            catching_up: app.stats.catching_up().map(|c| c.view()),
            uptime_seconds: Some(app.started.elapsed().as_secs()),
            mining: Some(app.mining),
            connections: Some(app.gossip.connections()),
            blocks_owed: app.orders.owed(),
            isolated: app.gossip.is_isolated(),
        }
    }
}

/// `POST /mine` with `{"blocks": N}` (operator key): the node mines N
/// blocks now, whether or not it mines all the time, then goes back to
/// what it did; answers 202 at once (`/status` `blocks_owed` counts down).
/// A convenience for a development network, as `generate` is for
/// `bitcoind -regtest`.
async fn mine(
    State(app): State<AppState>,
    _: Operator,
    JsonBody(MineRequest { blocks }): JsonBody<MineRequest>,
) -> Result<Response, ApiError> {
    if !(1..=MAX_ORDER).contains(&blocks) {
        return Err(ApiError::Unprocessable(format!(
            "blocks is how many blocks to mine now: 1 to {MAX_ORDER}, not {blocks}"
        )));
    }
    let owed = app.orders.order(blocks);
    tracing::info!("the operator asked for {blocks} block(s) mined now ({owed} owed)");
    let answer = MineOrdered {
        ordered: blocks,
        owed,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// `POST /isolation` (operator): cut the node off from every peer, as
/// [`Gossip::isolate`] says; `{"isolated": true, "changed"}`.
async fn isolate(State(app): State<AppState>, _: Operator) -> Json<Isolation> {
    let changed = app.gossip.isolate();
    Json(Isolation {
        isolated: true,
        changed,
    })
}

/// `DELETE /isolation` (operator): rejoin the network, as
/// [`Gossip::rejoin`] says; `{"isolated": false, "changed"}`.
async fn rejoin(State(app): State<AppState>, _: Operator) -> Json<Isolation> {
    let changed = app.gossip.rejoin();
    Json(Isolation {
        isolated: false,
        changed,
    })
}

/// `GET /peers/addr`: addresses of nodes that answered this one lately, for
/// a node that wants more peers (see [`Gossip::addresses_for_others`]).
async fn addresses(State(app): State<AppState>) -> Json<Addresses> {
    let addresses = app
        .gossip
        .addresses_for_others()
        .iter()
        .map(ToString::to_string)
        .collect();
    Json(Addresses { addresses })
}

/// `GET /blocks?from=N&limit=M`: blocks N… in order, at most [`MAX_PAGE`];
/// `from` defaults to 0 and `limit` to [`DEFAULT_PAGE`]; past the tip the
/// list is empty.
async fn blocks(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let [from, limit] = from_and_limit(
        query,
        "/blocks",
        &format!(
            "(the first index, default 0) and `limit` (default {DEFAULT_PAGE}, at most {MAX_PAGE})"
        ),
    )?;
    let (from, limit) = (from.unwrap_or(0), limit.unwrap_or(DEFAULT_PAGE));
    // At most MAX_PAGE blocks, and no more once the page passes PAGE_BYTES
    // (it always holds one), so a client can bound what it reads.
    let json = app.state.page_json(from, limit.min(MAX_PAGE), PAGE_BYTES);
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// `GET /blocks/{index}`: one block by index.
async fn block_by_index(
    State(app): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Result<Json<Block>, ApiError> {
    let index = block_index(index, "/blocks/12")?;
    app.state
        .block(index)
        .map(Json)
        .ok_or_else(|| no_block(&app, index))
}

/// `GET /blocks/{index}/proof`: what block `index`'s proof of work is
/// measured against: its target (hex), that target as a difficulty, and the
/// chain's cumulative work through it (`chainwork`, as on `/status`).
async fn block_proof(
    State(app): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Result<Json<BlockProof>, ApiError> {
    let index = block_index(index, "/blocks/12/proof")?;
    let cursor = app
        .state
        .cursor_at(index)
        .ok_or_else(|| no_block(&app, index))?;
    Ok(Json(BlockProof {
        index,
        hash: cursor.hash,
        target: cursor.target.to_string(),
        difficulty: cursor.target.difficulty(),
        chainwork: cursor.work.to_string(),
    }))
}

/// The `from` and `limit` numbers of a query to `path`, when given; any
/// other name is refused with what the two mean (`meaning`).
fn from_and_limit(
    query: Option<String>,
    path: &str,
    meaning: &str,
) -> Result<[Option<u64>; 2], ApiError> {
    let mut numbers = [None, None];
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match &*name {
            "from" => 0,
            "limit" => 1,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "{path} takes `from` {meaning}, not `{}`",
                    name.chars().take(40).collect::<String>()
                )));
            }
        };
        let number = value.trim().parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be a whole number, like {path}?from=0&limit=100 (got {:?})",
                value.chars().take(40).collect::<String>()
            ))
        })?;
        numbers[slot] = Some(number);
    }
    Ok(numbers)
}

/// `GET /tree?from=H&limit=N`: every block this node knows at heights H to
/// H+N-1, on its best chain and on side branches, with each block's parent,
/// work and first sighting. By default the last [`TREE_DEFAULT`] heights;
/// at most [`TREE_SPAN`].
async fn tree(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Tree>, ApiError> {
    let [from, limit] = from_and_limit(
        query,
        "/tree",
        &format!(
            "(the first height, default the last {TREE_DEFAULT}) and `limit` \
             (default {TREE_DEFAULT}, at most {TREE_SPAN})"
        ),
    )?;
    let limit = limit.unwrap_or(TREE_DEFAULT).clamp(1, TREE_SPAN);
    let from = from.unwrap_or_else(|| (app.state.len() - 1).saturating_sub(limit - 1));
    Ok(Json(app.state.tree(from, limit)))
}

/// `GET /network`: the nodes this node reaches by crawling the peer graph
/// (bounded; see [`crate::crawl`]), with their tips and links.
async fn network(State(app): State<AppState>) -> Response {
    let map = app.crawler.map().await;
    Json(&*map).into_response()
}

/// `GET /blocks/{index}/seen`: each block this node knows at that height,
/// the best chain's first, with when and from where it first saw it.
async fn block_seen(
    State(app): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Result<Json<SeenAt>, ApiError> {
    let index = block_index(index, "/blocks/12/seen")?;
    app.state
        .seen_at(index)
        .map(Json)
        .ok_or_else(|| no_block(&app, index))
}

/// A block index from the path, or what it should look like (`example`).
fn block_index(index: Result<Path<u64>, PathRejection>, example: &str) -> Result<u64, ApiError> {
    index.map(|Path(index)| index).map_err(|_| {
        ApiError::BadRequest(format!("the index must be a whole number, like {example}"))
    })
}

fn no_block(app: &AppState, index: u64) -> ApiError {
    ApiError::NotFound(format!(
        "there is no block {index} yet; the tip is block {}",
        app.state.tip().index
    ))
}

/// `GET /block/{hash}`: one block by hash.
async fn block_by_hash(
    State(app): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Json<Block>, ApiError> {
    let hash: BlockHash = hash
        .parse()
        .map_err(|e: HashParseError| ApiError::BadRequest(e.to_string()))?;
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || {
        state
            .block_by_hash(&hash)
            .or_else(|| state.side_block(&hash))
    })
    .await?
    .map(Json)
    .ok_or_else(|| {
        ApiError::NotFound(format!(
            "no block of this chain, nor of a side branch this node remembers, has hash {hash}"
        ))
    })
}

/// `POST /mined`: a peer announces a block (the original's endpoint and
/// body). Extends our tip → saved and relayed; ahead of us → we sync;
/// known or not better → said so; invalid → 422. What the block means for
/// the node and its sender is [`Gossip::receive_block`]'s to decide.
async fn mined(
    State(app): State<AppState>,
    Sender { peer, remote }: Sender,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let block = Block::from_json(&body)?;
    let (status, answer) = match app.gossip.receive_block(block, peer, remote).await? {
        Received::Accepted => (StatusCode::OK, MinedAnswer::Accepted),
        Received::Known => (StatusCode::OK, MinedAnswer::Known),
        Received::Syncing => (StatusCode::ACCEPTED, MinedAnswer::Syncing),
        Received::NotBetter => (
            StatusCode::OK,
            MinedAnswer::Ignored {
                reason: "it does not make a chain longer than ours".into(),
            },
        ),
    };
    Ok((status, Json(answer)).into_response())
}

/// `GET /peers`: every peer with what the node knows of it (and the bans).
async fn list_peers(State(app): State<AppState>) -> Json<Vec<PeerView>> {
    Json(app.gossip.book().views())
}

/// The peer a `{"url": "http://…"}` names.
fn peer_url(PeerRequest { url }: PeerRequest) -> Result<PeerUrl, ApiError> {
    PeerUrl::parse(&url).map_err(|error| ApiError::Unprocessable(error.to_string()))
}

/// `POST /peers` with `{"url": "http://127.0.0.1:5004"}`: handshakes with
/// the URL, then adds it (201), says it is known (200), or says why not
/// (422: unreachable, another network, itself, banned, book full).
async fn add_peer(
    State(app): State<AppState>,
    _: Operator,
    JsonBody(request): JsonBody<PeerRequest>,
) -> Result<Response, ApiError> {
    let url = peer_url(request)?;
    match app
        .gossip
        .consider(url, crate::peers::Origin::Added)
        .await?
    {
        Considered::Added => {
            let answer = PeerAdded {
                added: true,
                reason: None,
            };
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        Considered::Known => {
            let answer = PeerAdded {
                added: false,
                reason: Some("already a peer".into()),
            };
            Ok(Json(answer).into_response())
        }
        Considered::Alias { of } => {
            let answer = PeerAdded {
                added: false,
                reason: Some(format!(
                    "already a peer as {of} (the same node id): one node takes one place"
                )),
            };
            Ok(Json(answer).into_response())
        }
    }
}

/// `DELETE /peers` with `{"url": "http://127.0.0.1:5004"}`: takes a peer
/// out of the book (a configured one comes back at the next start).
async fn remove_peer(
    State(app): State<AppState>,
    operator: Operator,
    body: JsonBody<PeerRequest>,
) -> Result<Json<PeerRemoved>, ApiError> {
    let removed = change_peer(app, operator, body, Gossip::remove, "is not a peer").await?;
    Ok(Json(PeerRemoved { removed }))
}

/// `POST /peers/bans` with `{"url": "http://127.0.0.1:5004", "seconds": N}`
/// (operator only): the node leaves the URL alone for N seconds (default
/// `ban_seconds`), across restarts; only the operator bans.
async fn ban_peer(
    State(app): State<AppState>,
    _: Operator,
    JsonBody(request): JsonBody<BanRequest>,
) -> Result<Json<Banned>, ApiError> {
    let url = peer_url(PeerRequest { url: request.url })?;
    let time = match request.seconds {
        None => app.gossip.book().ban_time(),
        Some(seconds) if (1..=MAX_BAN_SECONDS).contains(&seconds) => Duration::from_secs(seconds),
        Some(seconds) => {
            return Err(ApiError::Unprocessable(format!(
                "seconds is how long the ban lasts: 1 to {MAX_BAN_SECONDS} (a year), not {seconds}"
            )));
        }
    };
    let reason = (request.reason)
        .filter(|reason| !reason.trim().is_empty())
        .unwrap_or_else(|| "banned by the operator".into());
    let gossip = app.gossip.clone();
    let ban = tokio::task::spawn_blocking(move || gossip.ban(&url, time, &reason)).await??;
    Ok(Json(Banned {
        banned_until: ban.until,
    }))
}

/// The longest ban the operator can ask for: a year.
const MAX_BAN_SECONDS: u64 = 365 * 86_400;

/// `DELETE /peers/bans` with `{"url": "http://127.0.0.1:5004"}`: lifts
/// the ban on a URL, and forgets its misbehaviour (operator only).
async fn lift_ban(
    State(app): State<AppState>,
    operator: Operator,
    body: JsonBody<PeerRequest>,
) -> Result<Json<BanLifted>, ApiError> {
    let lifted = change_peer(
        app,
        operator,
        body,
        Gossip::unban,
        "is not banned, nor discouraged",
    )
    .await?;
    Ok(Json(BanLifted { lifted }))
}

/// Applies the operator's `change` to the peer a request names (it saves
/// the book: off the async runtime); a 404 saying the URL `not_there`
/// when it changed nothing.
async fn change_peer(
    app: AppState,
    _: Operator,
    JsonBody(request): JsonBody<PeerRequest>,
    change: fn(&Gossip, &PeerUrl) -> Result<bool, crate::peers::BookError>,
    not_there: &str,
) -> Result<bool, ApiError> {
    let url = peer_url(request)?;
    let gossip = app.gossip.clone();
    let (changed, url) =
        tokio::task::spawn_blocking(move || change(&gossip, &url).map(|c| (c, url))).await??;
    if changed {
        Ok(true)
    } else {
        Err(ApiError::NotFound(format!("{url} {not_there}")))
    }
}

/// `POST /data` with `{"data": "any text"}`: a data item for a block. A new
/// item answers 202 once it is on disk and is relayed to the peers; one
/// known already answers 200 with where it is. A remote address (not
/// loopback, no operator key) holds at most its share of a busy pool.
async fn add_data(
    State(app): State<AppState>,
    Sender {
        peer: sender,
        remote,
    }: Sender,
    operator: Result<Operator, ApiError>,
    JsonBody(DataRequest { data: text }): JsonBody<DataRequest>,
) -> Result<Response, ApiError> {
    let from = Submitter::of(remote, operator.is_ok());
    let (state, submitted) = (app.state.clone(), text.clone());
    match tokio::task::spawn_blocking(move || state.submit(&submitted, from)).await?? {
        (id, Submitted::New) => {
            app.gossip.relay_item(text, sender);
            Ok((
                StatusCode::ACCEPTED,
                Json(ItemAnswer::at(id, ItemStatus::Pending)),
            )
                .into_response())
        }
        (id, Submitted::Known) => {
            let status = app.state.item(&id);
            Ok(Json(ItemAnswer::at(id, status)).into_response())
        }
    }
}

/// `GET /data`: the items waiting for a block, oldest first.
async fn list_data(State(app): State<AppState>) -> Json<Vec<PendingView>> {
    Json(app.state.pool().pending())
}

/// `GET /data/{id}`: where an item is: pending, or confirmed in a block.
/// The first digits of an id will do when they name one item only.
async fn data_by_id(
    State(app): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<ItemAnswer>, ApiError> {
    let prefix: IdPrefix = text
        .parse()
        .map_err(|e: crate::item::IdPrefixError| ApiError::BadRequest(e.to_string()))?;
    let id = match app.state.items_starting(&prefix, 2)[..] {
        [id] => id,
        [] => {
            return Err(ApiError::NotFound(format!(
                "no item {prefix} is waiting or in the chain"
            )));
        }
        [first, second, ..] => {
            return Err(ApiError::BadRequest(format!(
                "{prefix} is the start of more than one item ({first} and {second}, at least): \
                 give more of its digits"
            )));
        }
    };
    match app.state.item(&id) {
        ItemStatus::Unknown => Err(ApiError::NotFound(format!(
            "no item {id} is waiting or in the chain"
        ))),
        status => Ok(Json(
            authors::with_author(&app, ItemAnswer::at(id, status)).await?,
        )),
    }
}

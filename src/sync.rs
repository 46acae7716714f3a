//! Talking to peers: learning their height, fetching what we lack, and
//! announcing our new blocks.
//!
//! This module owns the HTTP client side. Every request has a connect and a
//! total timeout and a cap on the bytes read; every answer is parsed and
//! validated before use; every peer's outcome is logged. A peer that is
//! down, slow or hostile costs at most its timeouts and never delays the
//! others or the node.
//!
//! Catching up is incremental, Bitcoin-style: ask the peer's `/status`;
//! if it is ahead, find the fork point by probing its blocks at heights that
//! step back exponentially from our tip and then bisecting; fetch only the
//! blocks after the fork, page by page, validating each against the one
//! before. A peer without these endpoints (the original Python node) is
//! synced through `/blockchain.json`. Whether a branch replaces the chain is
//! the node's decision ([`crate::node::Node::adopt_branch`]).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::block::{Block, BlockHash, ParseError, blocks_from_json};
use crate::chain::{Chain, ChainError, check_next};
use crate::config::PeerSettings;
use crate::node::{AddError, Adoption, Node, Source};
use crate::peers::PeerBook;

/// Blocks asked for per page while catching up.
pub const PAGE: u64 = 500;
/// The most blocks one sync may fetch; a longer claim is caught up in steps.
const MAX_BLOCKS_PER_SYNC: u64 = 1_000_000;
/// Header naming the announcing node's base URL, so the receiver can sync
/// from it and add it as a peer.
pub const PEER_HEADER: &str = "x-jbc-peer";

/// What `GET /status` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Index of the tip block.
    pub height: u64,
    /// Hash of the tip block.
    pub tip: BlockHash,
    /// The network's difficulty.
    pub difficulty: u32,
    /// Hash of the network's genesis block.
    pub genesis: BlockHash,
    /// How many peers the node knows.
    pub peers: usize,
    /// The miner's hashes per second (0 when not mining).
    pub hashrate: u64,
    /// Blocks fetched from peers while syncing, since start.
    pub blocks_fetched: u64,
}

/// An HTTP client for peers, with the node's timeouts and limits.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    max_response_bytes: u64,
    /// Our own base URL, sent with announcements.
    own_url: Option<String>,
}

impl PeerClient {
    /// A client following `settings`; `own_url` is sent with announcements.
    pub fn new(settings: &PeerSettings, own_url: Option<String>) -> PeerClient {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("the HTTP client builds without TLS or system configuration");
        PeerClient {
            http,
            max_response_bytes: settings.max_response_bytes,
            own_url,
        }
    }

    /// `GET {peer}{path}`, read up to the byte cap.
    async fn get(&self, peer: &Url, path: &str) -> Result<Vec<u8>, PeerError> {
        let url = peer
            .join(path)
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(PeerError::from_request)?;
        self.read_body(response).await
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, PeerError> {
        if !response.status().is_success() {
            return Err(PeerError::Status(response.status().as_u16()));
        }
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(PeerError::TooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(PeerError::from_request)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(PeerError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A peer's `/status`; `Ok(None)` when it has no such endpoint.
    pub async fn status(&self, peer: &Url) -> Result<Option<Status>, PeerError> {
        match self.get(peer, "status").await {
            Ok(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| PeerError::Parse(ParseError::Json(e))),
            Err(PeerError::Status(404)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The peer's block at `index`.
    async fn block(&self, peer: &Url, index: u64) -> Result<Block, PeerError> {
        let body = self.get(peer, &format!("blocks/{index}")).await?;
        let block = Block::from_json(&body).map_err(PeerError::Parse)?;
        if block.index != index {
            return Err(PeerError::Invalid(ChainError::BadIndex {
                expected: index,
                got: block.index,
            }));
        }
        Ok(block)
    }

    /// Up to `limit` of the peer's blocks from `from` on.
    async fn blocks(&self, peer: &Url, from: u64, limit: u64) -> Result<Vec<Block>, PeerError> {
        let body = self
            .get(peer, &format!("blocks?from={from}&limit={limit}"))
            .await?;
        tokio::task::spawn_blocking(move || blocks_from_json(&body).map_err(PeerError::Parse))
            .await
            .expect("parsing does not panic")
    }

    /// The peer's whole chain, validated.
    pub async fn whole_chain(&self, peer: &Url, node: &Node) -> Result<Chain, PeerError> {
        let body = self.get(peer, "blockchain.json").await?;
        let network = node.network().clone();
        tokio::task::spawn_blocking(move || {
            let blocks = blocks_from_json(&body).map_err(PeerError::Parse)?;
            Chain::from_blocks(blocks, &network).map_err(PeerError::Invalid)
        })
        .await
        .expect("validation does not panic")
    }

    /// `POST {peer}/mined` with `block`; the peer's answer, for the log.
    pub async fn announce(&self, peer: &Url, block: &Block) -> Result<String, PeerError> {
        let url = peer
            .join("mined")
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(block.to_json_line());
        if let Some(own) = &self.own_url {
            request = request.header(PEER_HEADER, own);
        }
        let response = request.send().await.map_err(PeerError::from_request)?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let shown: String = body.chars().take(200).collect();
        Ok(format!("{} {}", status.as_u16(), shown.trim()))
    }
}

/// Why a peer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("timed out")]
    Timeout,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answer larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("invalid answer: {0}")]
    Parse(ParseError),
    #[error("invalid chain: {0}")]
    Invalid(ChainError),
    #[error("on another network (genesis {0})")]
    OtherNetwork(BlockHash),
    #[error("could not save its blocks: {0}")]
    Save(String),
}

impl PeerError {
    fn from_request(error: reqwest::Error) -> PeerError {
        if error.is_timeout() {
            return PeerError::Timeout;
        }
        // The innermost cause says the most ("connection refused").
        let mut cause: &dyn std::error::Error = &error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        PeerError::Unreachable(cause.to_string())
    }
}

impl From<AddError> for PeerError {
    fn from(error: AddError) -> PeerError {
        match error {
            AddError::Invalid(error) => PeerError::Invalid(error),
            AddError::Store(error) => PeerError::Save(error.to_string()),
        }
    }
}

/// What syncing with one peer came to.
#[derive(Debug)]
pub enum Outcome {
    /// Its chain was longer; we now have it.
    Adopted { height: u64, fetched: u64 },
    /// Its chain is not longer than ours.
    NotLonger { height: u64 },
    /// It could not be used.
    Failed(PeerError),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Adopted { height, fetched } => {
                write!(
                    f,
                    "adopted its chain, height {height} ({fetched} blocks fetched)"
                )
            }
            Outcome::NotLonger { height } => write!(f, "valid, height {height}, not longer"),
            Outcome::Failed(error) => error.fmt(f),
        }
    }
}

/// Catches up with one peer: incremental when it serves `/status`, through
/// `/blockchain.json` otherwise.
pub async fn sync_with(node: &Node, client: &PeerClient, peer: &Url) -> Outcome {
    match try_sync_with(node, client, peer).await {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Failed(error),
    }
}

async fn try_sync_with(node: &Node, client: &PeerClient, peer: &Url) -> Result<Outcome, PeerError> {
    let Some(status) = client.status(peer).await? else {
        return sync_whole_chain(node, client, peer).await;
    };
    if status.genesis != node.network().genesis.hash {
        return Err(PeerError::OtherNetwork(status.genesis));
    }
    let our_height = node.tip().index;
    if status.height <= our_height {
        return Ok(Outcome::NotLonger {
            height: status.height,
        });
    }
    let fork = find_fork(node, client, peer, status.height.min(our_height)).await?;
    // Our chain only ever grows, so the block before the fork is still there;
    // if it was replaced meanwhile, the branch simply fails to link below.
    let base = node
        .chain()
        .get(fork - 1)
        .cloned()
        .ok_or(PeerError::Invalid(ChainError::BadIndex {
            expected: fork,
            got: status.height,
        }))?;

    // Fetch the branch page by page, validating as it arrives. A block that
    // fails stops the fetch; what came before it may still be longer.
    let mut incoming: Vec<Block> = Vec::new();
    let mut failure = None;
    let last_wanted = status.height.min(fork + MAX_BLOCKS_PER_SYNC - 1);
    let mut next = fork;
    'pages: while next <= last_wanted {
        let page = client
            .blocks(peer, next, PAGE.min(last_wanted - next + 1))
            .await?;
        if page.is_empty() {
            break;
        }
        node.count_fetched(page.len() as u64);
        for block in page {
            let prev = incoming.last().unwrap_or(&base);
            if let Err(error) = check_next(prev, &block, node.network().difficulty) {
                failure = Some(error);
                break 'pages;
            }
            incoming.push(block);
        }
        next = fork + incoming.len() as u64;
    }
    let fetched = incoming.len() as u64;
    let height = (fork + fetched).saturating_sub(1);
    let adoption = if incoming.is_empty() {
        Adoption::NotLonger
    } else {
        node.adopt_branch(fork, incoming, Source::Synced(peer.clone()))
            .await?
    };
    match (adoption, failure) {
        (Adoption::Switched { .. }, failure) => {
            if let Some(error) = failure {
                warn!(peer = %peer, "sync: kept the valid part of a branch that is invalid further on: {error}");
            }
            Ok(Outcome::Adopted { height, fetched })
        }
        (Adoption::NotLonger, Some(error)) => Err(PeerError::Invalid(error)),
        (Adoption::NotLonger, None) => Ok(Outcome::NotLonger { height }),
    }
}

/// The length of the prefix our chain shares with the peer's (at least 1:
/// the genesis block), found with O(log n) block requests: probe heights
/// stepping back exponentially from `top`, then bisect.
async fn find_fork(
    node: &Node,
    client: &PeerClient,
    peer: &Url,
    top: u64,
) -> Result<u64, PeerError> {
    let ours = |index: u64| node.chain().get(index).map(|b| b.hash);
    let matches = |index: u64| async move {
        let theirs = client.block(peer, index).await?;
        Ok::<bool, PeerError>(ours(index) == Some(theirs.hash))
    };
    let mut differs = top + 1; // lowest height known to differ
    let mut step = 1;
    let mut height = top;
    let same = loop {
        if matches(height).await? {
            break height;
        }
        if height == 0 {
            return Err(PeerError::OtherNetwork(client.block(peer, 0).await?.hash));
        }
        differs = height;
        height = height.saturating_sub(step);
        step *= 2;
    };
    let (mut same, mut differs) = (same, differs);
    while differs - same > 1 {
        let middle = same + (differs - same) / 2;
        if matches(middle).await? {
            same = middle;
        } else {
            differs = middle;
        }
    }
    Ok(same + 1)
}

/// Syncs with a peer that only serves `/blockchain.json`.
async fn sync_whole_chain(
    node: &Node,
    client: &PeerClient,
    peer: &Url,
) -> Result<Outcome, PeerError> {
    let chain = client.whole_chain(peer, node).await?;
    let height = chain.tip().index;
    let fetched = chain.len();
    node.count_fetched(fetched);
    match node.adopt(chain, Source::Synced(peer.clone())).await? {
        Adoption::Switched { .. } => Ok(Outcome::Adopted { height, fetched }),
        Adoption::NotLonger => Ok(Outcome::NotLonger { height }),
    }
}

/// Syncs with every peer at once, so that a slow or hostile peer costs only
/// its own timeouts. Adoptions are serialised by the node, and each one
/// only happens if it still makes our chain longer.
/// Each peer's outcome is logged as soon as it is known (`routine` logs
/// "not longer" at debug level, for periodic syncs).
pub async fn sync_with_all(
    node: &Node,
    client: &PeerClient,
    peers: &[Url],
    routine: bool,
) -> Vec<Outcome> {
    join_all(peers.iter().map(|peer| async move {
        let outcome = sync_with(node, client, peer).await;
        log_outcome(peer, &outcome, routine);
        outcome
    }))
    .await
}

/// Logs a peer's outcome: failures as warnings, the rest as info (or debug
/// for the routine "not longer" of periodic syncs).
fn log_outcome(peer: &Url, outcome: &Outcome, routine: bool) {
    match outcome {
        Outcome::Failed(_) => warn!(peer = %peer, "sync: {outcome}"),
        Outcome::NotLonger { .. } if routine => debug!(peer = %peer, "sync: {outcome}"),
        _ => info!(peer = %peer, "sync: {outcome}"),
    }
}

/// Asks the sync task to catch up with a peer (or with all of them).
#[derive(Clone)]
pub struct SyncRequests {
    sender: mpsc::Sender<Option<Url>>,
}

impl SyncRequests {
    /// Asks for a sync with `peer` (`None`: all peers). Requests that arrive
    /// while the queue is full are dropped: the periodic sync covers them.
    pub fn request(&self, peer: Option<Url>) {
        let _ = self.sender.try_send(peer);
    }
}

/// Starts the task that runs one sync at a time: on request and every
/// `interval` with all peers.
pub fn start_sync_task(
    node: Node,
    client: PeerClient,
    peers: PeerBook,
    interval: Duration,
    shutdown: CancellationToken,
) -> SyncRequests {
    let (sender, mut receiver) = mpsc::channel::<Option<Url>>(64);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => None,
                request = receiver.recv() => match request {
                    Some(request) => request,
                    None => return,
                },
            };
            // Fold everything queued meanwhile into one round.
            let mut wanted: HashSet<Url> = HashSet::new();
            let mut all = first.is_none();
            wanted.extend(first);
            while let Ok(request) = receiver.try_recv() {
                match request {
                    Some(peer) => {
                        wanted.insert(peer);
                    }
                    None => all = true,
                }
            }
            let round = async {
                if all {
                    sync_with_all(&node, &client, &peers.list(), true).await;
                } else {
                    let wanted: Vec<Url> = wanted.into_iter().collect();
                    sync_with_all(&node, &client, &wanted, false).await;
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = round => {}
            }
        }
    });
    SyncRequests { sender }
}

/// Announces every new tip to `peer` until shutdown. Tips that arrive while
/// an announcement is in flight are folded into the next one, so a slow
/// peer only delays its own announcements.
pub fn start_announcer(node: &Node, client: PeerClient, peer: Url, shutdown: CancellationToken) {
    let mut tips = node.subscribe();
    tips.borrow_and_update();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = tips.changed() => if changed.is_err() { return },
            }
            let tip = tips.borrow_and_update().clone();
            if tip.source.is_from(&peer) {
                continue;
            }
            let announced = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = client.announce(&peer, &tip.block) => result,
            };
            match announced {
                Ok(answer) => debug!(peer = %peer, index = tip.block.index, "announced: {answer}"),
                Err(error) => {
                    debug!(peer = %peer, index = tip.block.index, "announcement failed: {error}")
                }
            }
        }
    });
}

//! The HTTP client side of the protocol: asking a peer for its status and
//! blocks, and announcing ours.
//!
//! Every request has a connect and a total timeout, and every kind of
//! answer its own cap on the bytes read: a few KiB for `/status` and the
//! answer to an announcement, a page's worth for `/blocks`, and only
//! `/blockchain.json` (the original node's whole chain) up to
//! `max_response_bytes`. Large downloads also take a share of a fixed
//! budget, so the memory that catching up from many peers at once can take
//! is bounded whatever they send. Every answer is parsed before it is
//! returned; whether what a peer says is believed is [`crate::sync`]'s
//! business.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::block::{Block, BlockHash, ParseError, blocks_from_json};
use crate::chain::Network;
use crate::peers::{Failure, PeerUrl};
use crate::protocol::{
    ADDRESSES_BYTES, Addresses, DataRequest, MAX_ADDRESSES, PAGE_BYTES, PEER_HEADER,
    SMALL_ANSWER_BYTES, Status, route,
};
use crate::setting::Setting;
use crate::stats::Stats;

/// `/blocks` pages read at once, from all peers together.
const PAGES_AT_ONCE: usize = 8;
/// Whole chains (`/blockchain.json`) read at once, from all peers together.
const WHOLE_CHAINS_AT_ONCE: usize = 1;

pub const CONNECT_TIMEOUT_MS: Setting<u64> = Setting {
    key: "connect_timeout_ms",
    help: "milliseconds a peer has to accept a connection",
    default: 2_000,
    range: Some(1..=3_600_000),
    unit: "a whole number of milliseconds",
};
pub const REQUEST_TIMEOUT_MS: Setting<u64> = Setting {
    key: "request_timeout_ms",
    help: "milliseconds a whole request to a peer may take",
    default: 10_000,
    ..CONNECT_TIMEOUT_MS
};
/// Only an original node's whole chain may be this large.
pub const MAX_RESPONSE_BYTES: Setting<u64> = Setting {
    key: "max_response_bytes",
    help: "largest whole chain read from an original node",
    default: 256 * 1024 * 1024,
    range: Some(1024..=u64::MAX),
    unit: "a whole number of bytes",
};

/// How the node talks to its peers.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, body included.
    pub request_timeout: Duration,
    /// Responses larger than this are refused.
    pub max_response_bytes: u64,
}

impl Default for PeerSettings {
    fn default() -> PeerSettings {
        PeerSettings {
            connect_timeout: Duration::from_millis(CONNECT_TIMEOUT_MS.default),
            request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS.default),
            max_response_bytes: MAX_RESPONSE_BYTES.default,
        }
    }
}

/// An HTTP client for peers, with the node's timeouts and limits.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    /// The cap on a whole chain.
    max_response_bytes: u64,
    /// The cap on one block (`/blocks/{index}`).
    block_bytes: u64,
    /// The cap on one `/blocks` page.
    page_bytes: u64,
    /// Our own base URL, sent with announcements so the receiver can sync
    /// from us.
    own_url: Option<String>,
    /// Where fetched blocks are counted.
    stats: Arc<Stats>,
    /// The download budget: permits for pages and for whole chains.
    pages: Arc<Semaphore>,
    whole_chains: Arc<Semaphore>,
}

/// Why a request to a peer brought nothing usable: the transport failed,
/// or the answer was not one this protocol gives. Whether that says
/// anything about the peer's honesty is for whoever asked to judge
/// ([`crate::sync::SyncError::misbehaviour`]); a refused connection or a
/// timeout never does.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("timed out")]
    Timeout,
    #[error("answered HTTP {0}")]
    Status(u16),
    /// An answer other than 2xx to something we sent (an announcement),
    /// with its first line.
    #[error("refused it: {0}")]
    Refused(String),
    #[error("answer larger than the {limit}-byte limit for it")]
    TooLarge { limit: u64 },
    #[error("invalid answer: {0}")]
    Parse(ParseError),
}

impl FetchError {
    /// The way the request failed, to tell a repeated failure from a new
    /// one.
    pub fn failure(&self) -> Failure {
        match self {
            FetchError::Unreachable(_) => Failure::Unreachable,
            FetchError::Timeout => Failure::TimedOut,
            FetchError::Status(_) => Failure::HttpError,
            FetchError::Refused(_) => Failure::Refused,
            FetchError::TooLarge { .. } => Failure::TooLarge,
            FetchError::Parse(_) => Failure::InvalidAnswer,
        }
    }

    /// Whether the network failed (nothing came, or not in time), as
    /// opposed to an answer that came and was wrong.
    pub fn is_transport(&self) -> bool {
        matches!(self, FetchError::Unreachable(_) | FetchError::Timeout)
    }

    fn from_request(error: reqwest::Error) -> FetchError {
        if error.is_timeout() {
            return FetchError::Timeout;
        }
        // The innermost cause says the most ("connection refused").
        let mut cause: &dyn std::error::Error = &error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        FetchError::Unreachable(cause.to_string())
    }
}

/// The HTTP client every request to a node goes through (peers, and the
/// `jbc` command's own requests): bounded times, no redirects (a peer's
/// answer is its own, not another address's), no proxy from the
/// environment (nodes are reached directly).
pub fn http_client(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("the HTTP client builds without TLS or system configuration")
}

impl PeerClient {
    /// A client following `settings` for `network`; `own_url` is sent with
    /// announcements.
    pub fn new(
        settings: &PeerSettings,
        network: &Network,
        own_url: Option<String>,
        stats: Arc<Stats>,
    ) -> PeerClient {
        let http = http_client(settings.connect_timeout, settings.request_timeout);
        // A page holds blocks up to PAGE_BYTES, plus the one that crosses it.
        let block_bytes = network.max_block_text_bytes();
        PeerClient {
            http,
            max_response_bytes: settings.max_response_bytes,
            block_bytes,
            page_bytes: PAGE_BYTES as u64 + block_bytes,
            own_url,
            stats,
            pages: Arc::new(Semaphore::new(PAGES_AT_ONCE)),
            whole_chains: Arc::new(Semaphore::new(WHOLE_CHAINS_AT_ONCE)),
        }
    }

    /// The node's counters (fetched blocks, the catch-up under way).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The most memory the answers being read can hold at once, whatever
    /// the peers send: the download budget, plus a small answer per peer.
    pub fn download_budget(&self, peers: usize) -> u64 {
        PAGES_AT_ONCE as u64 * self.page_bytes
            + WHOLE_CHAINS_AT_ONCE as u64 * self.max_response_bytes
            + peers as u64 * (SMALL_ANSWER_BYTES + self.block_bytes)
    }

    /// `GET {peer}{path}`, read up to `limit` bytes.
    async fn get(&self, peer: &PeerUrl, path: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.get_as(peer, path, limit, false).await
    }

    /// `GET {peer}{path}`, read up to `limit` bytes; `introduce`: with our
    /// URL in the peer header, so the peer can reach us back and tell
    /// others of us.
    async fn get_as(
        &self,
        peer: &PeerUrl,
        path: &str,
        limit: u64,
        introduce: bool,
    ) -> Result<Vec<u8>, FetchError> {
        let mut request = self.http.get(peer.endpoint(path));
        if introduce && let Some(own) = &self.own_url {
            request = request.header(PEER_HEADER, own);
        }
        let response = request.send().await.map_err(FetchError::from_request)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        read_capped(response, limit).await
    }

    /// `GET {peer}/{path}` parsed, off the async runtime.
    async fn get_parsed<T, F>(
        &self,
        peer: &PeerUrl,
        path: &str,
        limit: u64,
        parse: F,
    ) -> Result<T, FetchError>
    where
        T: Send + 'static,
        F: FnOnce(&[u8]) -> Result<T, ParseError> + Send + 'static,
    {
        let body = self.get(peer, path, limit).await?;
        tokio::task::spawn_blocking(move || parse(&body).map_err(FetchError::Parse))
            .await
            .expect("parsing does not panic")
    }

    /// A peer's `/status`; `Ok(None)` when it has no such endpoint (the
    /// original node). `introduce`: say who we are (a sync does, so the
    /// peer takes us as an inbound peer; a handshake does not, or two nodes
    /// would handshake each other back and forth).
    pub async fn status(
        &self,
        peer: &PeerUrl,
        introduce: bool,
    ) -> Result<Option<Status>, FetchError> {
        match self
            .get_as(peer, route::STATUS, SMALL_ANSWER_BYTES, introduce)
            .await
        {
            Ok(body) => parse_json::<Status>(&body).map(Some),
            Err(FetchError::Status(404)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The URL this node gives peers to reach it, when it has one.
    pub fn own_url(&self) -> Option<&str> {
        self.own_url.as_deref()
    }

    /// A small JSON answer of a peer's (`/peers`, `/blocks/{i}/seen`), read
    /// up to `limit` bytes and parsed; `Ok(None)` on a 404 (an older node,
    /// or nothing there).
    pub async fn small_json<T: DeserializeOwned>(
        &self,
        peer: &PeerUrl,
        path: &str,
        limit: u64,
    ) -> Result<Option<T>, FetchError> {
        match self.get(peer, path, limit).await {
            Ok(body) => parse_json(&body).map(Some),
            Err(FetchError::Status(404)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The addresses a peer gives out (`GET /peers/addr`): at most
    /// [`MAX_ADDRESSES`], each parsed (the ones that do not parse are left
    /// out); `Ok(None)` when it has no such endpoint (an older node).
    pub async fn addresses(&self, peer: &PeerUrl) -> Result<Option<Vec<PeerUrl>>, FetchError> {
        let body = match self.get(peer, route::ADDRESSES, ADDRESSES_BYTES).await {
            Ok(body) => body,
            Err(FetchError::Status(404)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let answer = parse_json::<Addresses>(&body)?;
        Ok(Some(
            answer
                .addresses
                .iter()
                .take(MAX_ADDRESSES)
                .filter_map(|text| PeerUrl::parse(text).ok())
                .collect(),
        ))
    }

    /// The peer's block at `index`.
    pub async fn block(&self, peer: &PeerUrl, index: u64) -> Result<Block, FetchError> {
        let body = self
            .get(
                peer,
                &format!("{}/{index}", route::BLOCKS),
                self.block_bytes,
            )
            .await?;
        let block = Block::from_json(&body).map_err(FetchError::Parse)?;
        if block.index != index {
            return Err(FetchError::Parse(ParseError::Shape(format!(
                "asked for block {index}, it served block {}",
                block.index
            ))));
        }
        Ok(block)
    }

    /// The hash of the peer's block at `index`.
    pub async fn hash_at(&self, peer: &PeerUrl, index: u64) -> Result<BlockHash, FetchError> {
        Ok(self.block(peer, index).await?.hash)
    }

    /// Up to `limit` of the peer's blocks from `from` on.
    pub async fn blocks(
        &self,
        peer: &PeerUrl,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Block>, FetchError> {
        let _permit = self.pages.acquire().await.expect("never closed");
        let path = format!("{}?from={from}&limit={limit}", route::BLOCKS);
        let blocks = self
            .get_parsed(peer, &path, self.page_bytes, blocks_from_json)
            .await?;
        self.stats.count_fetched(blocks.len() as u64);
        Ok(blocks)
    }

    /// The peer's whole chain, parsed but not yet validated, in the order
    /// of the indices (the original serves its files in directory order).
    pub async fn whole_chain(&self, peer: &PeerUrl) -> Result<Vec<Block>, FetchError> {
        let _permit = self.whole_chains.acquire().await.expect("never closed");
        let mut blocks = self
            .get_parsed(
                peer,
                route::BLOCKCHAIN,
                self.max_response_bytes,
                blocks_from_json,
            )
            .await?;
        blocks.sort_by_key(|block| block.index);
        self.stats.count_fetched(blocks.len() as u64);
        Ok(blocks)
    }

    /// `POST {peer}/mined` with `block`; the peer's answer, for the log. An
    /// answer other than 2xx is an error.
    pub async fn announce(&self, peer: &PeerUrl, block: &Block) -> Result<String, FetchError> {
        let mut request = self
            .http
            .post(peer.endpoint(route::MINED))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(block.to_json_line());
        if let Some(own) = &self.own_url {
            request = request.header(PEER_HEADER, own);
        }
        let response = request.send().await.map_err(FetchError::from_request)?;
        let status = response.status();
        let body = read_capped(response, SMALL_ANSWER_BYTES)
            .await
            .unwrap_or_default();
        let answer = format!("{} {}", status.as_u16(), first_line_of_text(&body));
        if status.is_success() {
            Ok(answer)
        } else {
            Err(FetchError::Refused(answer))
        }
    }
}

/// The body of `POST /data` for `text`.
pub fn data_request(text: &str) -> String {
    let request = DataRequest {
        data: text.to_string(),
    };
    serde_json::to_string(&request).expect("a string serialises")
}

impl PeerClient {
    /// `POST {peer}/data` with a data item, for the peer to relay and mine.
    pub async fn relay_item(&self, peer: &PeerUrl, text: &str) -> Result<(), FetchError> {
        let mut request = self
            .http
            .post(peer.endpoint(route::DATA))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(data_request(text));
        if let Some(own) = &self.own_url {
            request = request.header(PEER_HEADER, own);
        }
        let response = request.send().await.map_err(FetchError::from_request)?;
        let status = response.status();
        let _ = read_capped(response, SMALL_ANSWER_BYTES).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(FetchError::Status(status.as_u16()))
        }
    }
}

/// Reads a body up to `limit` bytes.
/// The first line of text of an answer's body, for a log line: an HTML
/// error page (the original's server sends one with a 500) shows as its
/// title, not as four lines of markup.
fn first_line_of_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push('\n');
            }
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    plain
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, FetchError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(FetchError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::from_request)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(FetchError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a small JSON answer of this node's protocol. The error says
/// what kind of JSON came and which field was missing, never the values the
/// URL served: it reaches whoever posted the URL, who must not learn what
/// an address they could not read themselves serves.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|error| {
        FetchError::Parse(if error.is_data() {
            let found = serde_json::from_slice::<serde_json::Value>(body)
                .map_or("something else", |value| crate::block::json_kind(&value));
            let message = error.to_string();
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .map(|field| format!(" without `{field}`"))
                .unwrap_or_default();
            ParseError::Shape(format!(
                "not the answer this protocol gives (it served {found}{missing})"
            ))
        } else {
            ParseError::Syntax(format!(
                "not JSON (line {}, column {})",
                error.line(),
                error.column()
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::first_line_of_text;

    #[test]
    fn an_answer_shows_as_its_first_line_of_text() {
        let page = b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n";
        assert_eq!(first_line_of_text(page), "500 Internal Server Error");
        assert_eq!(
            first_line_of_text(b"{\"confirmed\": true}\n"),
            "{\"confirmed\": true}"
        );
        assert_eq!(first_line_of_text(b"\n\n  two\nthree"), "two");
        assert_eq!(first_line_of_text(b""), "");
        assert_eq!(first_line_of_text(&[b'x'; 500]).len(), 120);
    }
}

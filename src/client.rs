//! The HTTP client side of the protocol: asking a peer for its status and
//! blocks, and announcing ours.
//!
//! Every request has a connect and a total timeout and a cap on the bytes
//! read, and every answer is parsed before it is returned, so a peer that
//! is down, slow or hostile costs at most its timeouts. Whether what a peer
//! says is believed is the caller's business ([`crate::sync`]).

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::block::{Block, ParseError, blocks_from_json};
use crate::chain::ChainError;
use crate::config::PeerSettings;
use crate::peers::PeerUrl;
use crate::protocol::{PEER_HEADER, Status};
use crate::stats::Stats;

/// An HTTP client for peers, with the node's timeouts and limits.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    max_response_bytes: u64,
    /// Our own base URL, sent with announcements so the receiver can sync
    /// from us.
    own_url: Option<String>,
    /// Where fetched blocks are counted.
    stats: Arc<Stats>,
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
    OtherNetwork(crate::block::BlockHash),
    #[error("could not save its blocks: {0}")]
    Save(String),
    #[error("refused it: {0}")]
    Refused(String),
}

impl PeerError {
    /// A short name for the way the peer failed, to tell a repeated failure
    /// from a new one.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerError::Unreachable(_) => "unreachable",
            PeerError::Timeout => "timed out",
            PeerError::Status(_) => "HTTP error",
            PeerError::TooLarge { .. } => "too large",
            PeerError::Parse(_) => "invalid answer",
            PeerError::Invalid(_) => "invalid chain",
            PeerError::OtherNetwork(_) => "another network",
            PeerError::Save(_) => "not saved",
            PeerError::Refused(_) => "refused",
        }
    }

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

impl PeerClient {
    /// A client following `settings`; `own_url` is sent with announcements.
    pub fn new(settings: &PeerSettings, own_url: Option<String>, stats: Arc<Stats>) -> PeerClient {
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
            stats,
        }
    }

    /// `GET {peer}/{path}`, read up to the byte cap.
    async fn get(&self, peer: &PeerUrl, path: &str) -> Result<Vec<u8>, PeerError> {
        let response = self
            .http
            .get(peer.endpoint(path))
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

    /// `GET {peer}/{path}` parsed as JSON, off the async runtime.
    async fn get_parsed<T, F>(&self, peer: &PeerUrl, path: &str, parse: F) -> Result<T, PeerError>
    where
        T: Send + 'static,
        F: FnOnce(&[u8]) -> Result<T, ParseError> + Send + 'static,
    {
        let body = self.get(peer, path).await?;
        tokio::task::spawn_blocking(move || parse(&body).map_err(PeerError::Parse))
            .await
            .expect("parsing does not panic")
    }

    /// A peer's `/status`; `Ok(None)` when it has no such endpoint (the
    /// original node).
    pub async fn status(&self, peer: &PeerUrl) -> Result<Option<Status>, PeerError> {
        match self.get(peer, "status").await {
            Ok(body) => parse_json::<Status>(&body).map(Some),
            Err(PeerError::Status(404)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The peer's block at `index`.
    pub async fn block(&self, peer: &PeerUrl, index: u64) -> Result<Block, PeerError> {
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
    pub async fn blocks(
        &self,
        peer: &PeerUrl,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Block>, PeerError> {
        let path = format!("blocks?from={from}&limit={limit}");
        let blocks = self.get_parsed(peer, &path, blocks_from_json).await?;
        self.stats.count_fetched(blocks.len() as u64);
        Ok(blocks)
    }

    /// The peer's whole chain, parsed but not yet validated.
    pub async fn whole_chain(&self, peer: &PeerUrl) -> Result<Vec<Block>, PeerError> {
        let blocks = self
            .get_parsed(peer, "blockchain.json", blocks_from_json)
            .await?;
        self.stats.count_fetched(blocks.len() as u64);
        Ok(blocks)
    }

    /// `POST {peer}/mined` with `block`; the peer's answer, for the log. An
    /// answer other than 2xx is an error.
    pub async fn announce(&self, peer: &PeerUrl, block: &Block) -> Result<String, PeerError> {
        let mut request = self
            .http
            .post(peer.endpoint("mined"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(block.to_json_line());
        if let Some(own) = &self.own_url {
            request = request.header(PEER_HEADER, own);
        }
        let response = request.send().await.map_err(PeerError::from_request)?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let shown: String = body.chars().take(200).collect();
        let answer = format!("{} {}", status.as_u16(), shown.trim());
        if status.is_success() {
            Ok(answer)
        } else {
            Err(PeerError::Refused(answer))
        }
    }
}

/// Parses a small JSON answer of this node's protocol.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, PeerError> {
    serde_json::from_slice(body).map_err(|error| {
        PeerError::Parse(if error.is_data() {
            ParseError::Shape(format!("not the answer this protocol gives: {error}"))
        } else {
            ParseError::Syntax(error.to_string())
        })
    })
}

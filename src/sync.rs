//! Talking to peers: fetching their chains and keeping the longest valid one.
//!
//! This module owns the HTTP client side: every request has a connect and a
//! total timeout and a cap on the bytes read, every answer is parsed and
//! validated off the async runtime, and every peer's outcome is logged. A
//! peer that is down, slow or hostile costs at most its timeouts and never
//! delays the others. What to do with a better chain is the node's business
//! ([`crate::node::Node::adopt`]).

use std::fmt;

use futures_util::future::join_all;
use reqwest::Url;
use tracing::{info, warn};

use crate::block::{ParseError, blocks_from_json};
use crate::chain::{Chain, ChainError, Network};
use crate::config::PeerSettings;
use crate::node::{Adoption, Node};

/// An HTTP client for peers, with the node's timeouts and limits.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    max_response_bytes: u64,
}

impl PeerClient {
    /// A client following `settings`.
    pub fn new(settings: &PeerSettings) -> PeerClient {
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
        }
    }

    /// `GET {peer}/{path}`, read up to the byte cap.
    async fn get(&self, peer: &Url, path: &str) -> Result<Vec<u8>, PeerError> {
        let url = peer
            .join(path)
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(PeerError::from_request)?;
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

    /// Fetches a peer's whole chain and validates it against `network`.
    pub async fn fetch_chain(&self, peer: &Url, network: &Network) -> Result<Chain, PeerError> {
        let body = self.get(peer, "blockchain.json").await?;
        let network = network.clone();
        tokio::task::spawn_blocking(move || {
            let blocks = blocks_from_json(&body).map_err(PeerError::Parse)?;
            Chain::from_blocks(blocks, &network).map_err(PeerError::Invalid)
        })
        .await
        .map_err(|e| PeerError::Unreachable(format!("validation task failed: {e}")))?
    }
}

/// Why a peer's chain could not be used.
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
}

impl PeerError {
    fn from_request(error: reqwest::Error) -> PeerError {
        if error.is_timeout() {
            PeerError::Timeout
        } else {
            // The innermost cause says the most ("connection refused").
            let mut cause: &dyn std::error::Error = &error;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            PeerError::Unreachable(cause.to_string())
        }
    }
}

/// What syncing with one peer came to.
#[derive(Debug)]
pub enum Outcome {
    /// Its chain was the longest valid one and replaced ours.
    Adopted { height: u64 },
    /// Its chain was valid but not longer than the one kept.
    NotLonger { height: u64 },
    /// Its chain could not be used.
    Failed(PeerError),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Adopted { height } => write!(f, "adopted its chain of {height} blocks"),
            Outcome::NotLonger { height } => write!(f, "valid, {height} blocks, not longer"),
            Outcome::Failed(error) => error.fmt(f),
        }
    }
}

/// Asks every peer for its chain at once and adopts the longest valid one
/// if it is longer than ours (ours wins ties; among peers, the first listed).
pub async fn sync_with_peers(
    node: &Node,
    client: &PeerClient,
    peers: &[Url],
) -> Vec<(Url, Outcome)> {
    let network = node.network().clone();
    let fetched = join_all(peers.iter().map(|peer| client.fetch_chain(peer, &network))).await;

    let best = fetched
        .iter()
        .enumerate()
        .filter_map(|(i, result)| result.as_ref().ok().map(|chain| (i, chain.len())))
        .fold(None, |best: Option<(usize, u64)>, (i, len)| match best {
            Some((_, best_len)) if best_len >= len => best,
            _ => Some((i, len)),
        });

    let mut outcomes: Vec<Outcome> = Vec::with_capacity(peers.len());
    for (i, result) in fetched.into_iter().enumerate() {
        let outcome = match result {
            Err(error) => Outcome::Failed(error),
            Ok(chain) if best.is_some_and(|(b, _)| b == i) => {
                let height = chain.len();
                match node.adopt(chain).await {
                    Ok(Adoption::Switched { .. }) => Outcome::Adopted { height },
                    Ok(Adoption::NotLonger) => Outcome::NotLonger { height },
                    Err(error) => {
                        warn!(%error, "could not save a peer's chain");
                        Outcome::NotLonger { height }
                    }
                }
            }
            Ok(chain) => Outcome::NotLonger {
                height: chain.len(),
            },
        };
        outcomes.push(outcome);
    }
    let result: Vec<(Url, Outcome)> = peers.iter().cloned().zip(outcomes).collect();
    for (peer, outcome) in &result {
        match outcome {
            Outcome::Failed(_) => warn!(peer = %peer, "sync: {outcome}"),
            _ => info!(peer = %peer, "sync: {outcome}"),
        }
    }
    result
}

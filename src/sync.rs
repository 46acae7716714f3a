//! Catching up with one peer: find where its chain leaves ours, fetch only
//! the blocks after that point, check them, and hand the branch to the
//! chain state, which adopts it if it makes a better chain.
//!
//! Incremental, in the manner of Bitcoin Core's headers-first sync: ask the
//! peer's `/status`; if it is ahead, find the fork point by probing its
//! blocks at heights that step back exponentially from our tip and then
//! bisecting; fetch the blocks after the fork page by page, validating each
//! against the one before. A peer without these endpoints (the original
//! Python node) is synced through `/blockchain.json`.
//!
//! This module decides what to believe of one peer. When to sync and with
//! whom is [`crate::gossip`]'s business; the HTTP requests are
//! [`crate::client`]'s.

use std::fmt;

use crate::block::Block;
use crate::chain::{ChainError, check_genesis, check_next};
use crate::client::{PeerClient, PeerError};
use crate::peers::PeerUrl;
use crate::protocol::MAX_PAGE;
use crate::state::{Adoption, ChainState, CommitError, Source};

/// The most blocks one sync may fetch; a longer claim is caught up in steps.
const MAX_BLOCKS_PER_SYNC: u64 = 1_000_000;

/// What syncing with one peer came to.
#[derive(Debug)]
pub enum Outcome {
    /// Its chain was better; we now have it.
    Adopted { height: u64, fetched: u64 },
    /// Its chain is not better than ours.
    NotBetter { height: u64 },
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
            Outcome::NotBetter { height } => {
                write!(f, "valid, height {height}, not ahead of ours")
            }
            Outcome::Failed(error) => error.fmt(f),
        }
    }
}

impl From<CommitError> for PeerError {
    fn from(error: CommitError) -> PeerError {
        match error {
            CommitError::Invalid(error) => PeerError::Invalid(error),
            CommitError::Store(error) => PeerError::Save(error.to_string()),
        }
    }
}

/// Catches up with one peer: incremental when it serves `/status`, through
/// `/blockchain.json` otherwise.
pub async fn catch_up(state: &ChainState, client: &PeerClient, peer: &PeerUrl) -> Outcome {
    match try_catch_up(state, client, peer).await {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Failed(error),
    }
}

async fn try_catch_up(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
) -> Result<Outcome, PeerError> {
    let Some(status) = client.status(peer).await? else {
        return catch_up_whole_chain(state, client, peer).await;
    };
    if status.genesis != state.network().genesis.hash {
        return Err(PeerError::OtherNetwork(status.genesis));
    }
    let our_height = state.tip().index;
    if status.height <= our_height {
        return Ok(Outcome::NotBetter {
            height: status.height,
        });
    }
    let fork = find_fork(state, client, peer, status.height.min(our_height)).await?;
    // If our block before the fork was replaced meanwhile, the branch simply
    // fails to link when it is adopted.
    let base = state
        .block(fork - 1)
        .ok_or(PeerError::Invalid(ChainError::BadIndex {
            expected: fork,
            got: status.height,
        }))?;

    // Fetch the branch page by page, validating as it arrives. A block that
    // fails stops the fetch; what came before it may still be better.
    let difficulty = state.network().difficulty;
    let mut incoming: Vec<Block> = Vec::new();
    let mut failure = None;
    let last_wanted = status.height.min(fork + MAX_BLOCKS_PER_SYNC - 1);
    let mut next = fork;
    'pages: while next <= last_wanted {
        let page = client
            .blocks(peer, next, MAX_PAGE.min(last_wanted - next + 1))
            .await?;
        if page.is_empty() {
            break;
        }
        for block in page {
            let prev = incoming.last().unwrap_or(&base);
            if let Err(error) = check_next(prev, &block, difficulty) {
                failure = Some(error);
                break 'pages;
            }
            incoming.push(block);
        }
        next = fork + incoming.len() as u64;
    }
    let fetched = incoming.len() as u64;
    adopt(state, peer, fork, incoming, failure, fetched).await
}

/// Offers the checked part of a peer's branch to the chain state, and says
/// what came of it. `failure` is why the rest of the branch was not
/// checked; it is the outcome when the valid part is not better than ours.
async fn adopt(
    state: &ChainState,
    peer: &PeerUrl,
    fork: u64,
    incoming: Vec<Block>,
    failure: Option<ChainError>,
    fetched: u64,
) -> Result<Outcome, PeerError> {
    let height = (fork + incoming.len() as u64).saturating_sub(1);
    let adoption = if incoming.is_empty() {
        Adoption::NotBetter
    } else {
        state
            .adopt_branch(fork, incoming, Source::Synced(peer.clone()))
            .await?
    };
    match (adoption, failure) {
        (Adoption::Switched { .. }, failure) => {
            if let Some(error) = failure {
                tracing::warn!(peer = %peer, "sync: kept the valid part of a branch that is invalid further on: {error}");
            }
            Ok(Outcome::Adopted { height, fetched })
        }
        (Adoption::NotBetter, Some(error)) => Err(PeerError::Invalid(error)),
        (Adoption::NotBetter, None) => Ok(Outcome::NotBetter { height }),
    }
}

/// The length of the prefix our chain shares with the peer's (at least 1:
/// the genesis block), found with O(log n) block requests: probe heights
/// stepping back exponentially from `top`, then bisect.
async fn find_fork(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
    top: u64,
) -> Result<u64, PeerError> {
    let matches = |index: u64| async move {
        let theirs = client.block(peer, index).await?;
        Ok::<bool, PeerError>(state.hash_at(index) == Some(theirs.hash))
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

/// Syncs with a peer that only serves `/blockchain.json`: the blocks after
/// the prefix it shares with ours are checked, and adopted only if all are
/// valid.
async fn catch_up_whole_chain(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
) -> Result<Outcome, PeerError> {
    let blocks = client.whole_chain(peer).await?;
    let Some(first) = blocks.first() else {
        return Err(PeerError::Invalid(ChainError::Empty));
    };
    check_genesis(first, state.network()).map_err(PeerError::Invalid)?;
    let fetched = blocks.len() as u64;
    let fork = state.common_prefix(&blocks);
    let Some(base) = state.block(fork - 1) else {
        // Our chain changed meanwhile; the next sync tries again.
        return Ok(Outcome::NotBetter {
            height: fetched - 1,
        });
    };
    let difficulty = state.network().difficulty;
    let (incoming, failure) = tokio::task::spawn_blocking(move || {
        let mut incoming: Vec<Block> = Vec::new();
        for block in blocks.into_iter().skip(fork as usize) {
            if let Err(error) = check_next(incoming.last().unwrap_or(&base), &block, difficulty) {
                return (incoming, Some(error));
            }
            incoming.push(block);
        }
        (incoming, None)
    })
    .await
    .expect("validation does not panic");
    // The whole chain is one answer: invalid anywhere, it is refused whole,
    // as the original node refuses it.
    if let Some(error) = failure {
        return Err(PeerError::Invalid(error));
    }
    adopt(state, peer, fork, incoming, None, fetched).await
}

//! The inbound side of the peer protocol, as Bitcoin Core's
//! `net_processing` is apart from its `net` and `validation`: what a block
//! another node announces means for this node, and for the node that sent
//! it. The HTTP layer parses the request and translates the answer; the
//! chain state validates; this module decides whom to credit, whom to sync
//! from, and whom to consider as a peer.
//!
//! The sender named in a peer header is a claim anyone can make, so a block
//! that is invalid costs the peer it names nothing here: peers are scored
//! only for what the node fetched from them itself ([`super::Gossip`]'s
//! sync).

use std::net::IpAddr;

use tracing::debug;

use super::{Gossip, Heard};
use crate::block::Block;
use crate::peers::{Failure, PeerUrl};
use crate::state::{Added, CommitError, Source};

/// What an announced block came to, for the sender's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// It extends our tip; saved and relayed.
    Accepted,
    /// We have it already.
    Known,
    /// It is ahead of our chain: we sync from the sender (or our peers).
    Syncing,
    /// It does not make a chain better than ours.
    NotBetter,
}

/// Why an announced block was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The block breaks the rules (the sender's fault, or a forger's).
    #[error("{0}")]
    Invalid(String),
    /// This node cannot take blocks now (its disk refused a write).
    #[error("cannot save the block: {0}")]
    Unavailable(String),
    /// The sender is a peer whose chain, at our last sync with it, was not
    /// of our network, and the block does not link to ours: nothing of
    /// that chain can be taken, and no sync is worth starting for it.
    #[error(
        "this node's last sync with {peer} found its chain is not of this network ({reason}): \
         its blocks are not taken (give both nodes the same genesis block and settings)"
    )]
    OtherNetwork { peer: PeerUrl, reason: &'static str },
}

impl Gossip {
    /// Takes a block announced by `sender` (the URL in its peer header, as
    /// seen from `remote`, the address the request came from), and acts on
    /// what it showed about the sender. A block without a peer header from
    /// the address of one of our original peers is taken as theirs, so it
    /// never goes back to them (and, when only one is there, as from it).
    pub async fn receive_block(
        &self,
        block: Block,
        mut sender: Option<PeerUrl>,
        remote: Option<IpAddr>,
    ) -> Result<Received, ReceiveError> {
        let state = &self.inner.state;
        let linked = block
            .prev_hash
            .block_hash()
            .is_some_and(|parent| state.block_by_hash(parent).is_some());
        if sender.is_none()
            && let Some(remote) = remote
        {
            let originals = self.originals_at(remote);
            for original in &originals {
                self.came_from_original(original, block.index, block.hash);
            }
            if let [only] = &originals[..] {
                sender = Some(only.clone());
            }
        }

        if !linked
            && let Some(peer) = &sender
            && self.inner.book.sync_failure(peer) == Some(Failure::OtherNetwork)
        {
            debug!(peer = %peer, "a block from {peer}, a peer on another network: refused");
            return Err(ReceiveError::OtherNetwork {
                peer: peer.clone(),
                reason: "its blocks do not start with our genesis block, or its settings differ",
            });
        }

        let (state, source) = (state.clone(), Source::Announced(sender.clone()));
        let added = tokio::task::spawn_blocking(move || state.add_block(block, source))
            .await
            .map_err(|error| ReceiveError::Unavailable(error.to_string()))?;
        let added = match added {
            Ok(added) => added,
            Err(CommitError::Invalid(error)) => {
                debug!(from = ?sender, %error, "rejected an announced block");
                return Err(ReceiveError::Invalid(error.to_string()));
            }
            Err(
                error @ (CommitError::Store(_) | CommitError::Stopped(_) | CommitError::Pool(_)),
            ) => {
                return Err(ReceiveError::Unavailable(error.to_string()));
            }
        };
        let (received, heard) = match added {
            Added::Accepted => (Received::Accepted, Heard::Accepted),
            Added::Known => (Received::Known, Heard::Nothing),
            Added::NotOnTip { ahead: true } => (Received::Syncing, Heard::Ahead { linked }),
            Added::NotOnTip { ahead: false } => (Received::NotBetter, Heard::Nothing),
        };
        self.heard(heard, sender, remote);
        Ok(received)
    }
}

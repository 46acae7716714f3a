//! The handshake: what a URL must answer before the node treats it as a
//! peer, in the manner of Bitcoin Core's version message.
//!
//! A node of this software answers `GET /status` within the timeouts, on
//! this network (the same genesis block, difficulty, kind of targets and
//! size limits)
//! and with a node id that is not ours: the id, random for each run, is how
//! a node knows itself behind any of its addresses (`0.0.0.0`,
//! `localhost.`, `127.0.0.2`, a LAN address). A node of the original Python
//! implementation has no `/status`; it is accepted only when the operator
//! named it (config or `POST /peers`), and only if its `/blockchain.json`
//! starts with our genesis block.
//!
//! What the handshake fetched is handed to the first sync ([`Handshaken`]),
//! so a new peer is asked once, and an original's whole chain is read
//! once. The same check runs at the start of every later sync, so a peer
//! that changes network or turns out to be ourselves is found out then too.

use crate::block::Block;
use crate::chain::Network;
use crate::client::{FetchError, PeerClient};
use crate::peers::{Identity, Origin, PeerUrl};
use crate::pow::Kind;
use crate::protocol::{NodeId, Status};

/// Why a URL did not pass the handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Unreachable(FetchError),
    #[error("it is on another network: {0}")]
    OtherNetwork(String),
    #[error("it is this node itself")]
    Itself,
    #[error(
        "it has no /status (an original node?); original nodes are accepted only when \
         configured or added with POST /peers"
    )]
    OriginalNotNamed,
    #[error(
        "it has no /status (an original node?); original nodes cannot follow an adaptive \
         network's targets"
    )]
    OriginalInAdaptive,
    #[error(
        "it is a node without a node id (an older jbc?); it cannot be told apart from this one"
    )]
    NoNodeId,
    #[error("its inbound slots are full ({0}): it would not announce its blocks to us")]
    Full(usize),
}

/// What a handshake fetched, for the first sync to start from.
#[derive(Debug)]
pub enum Handshaken {
    /// A node of this software, and the `/status` it answered.
    Jbc {
        identity: Identity,
        status: Box<Status>,
    },
    /// An original node, and the whole chain it served (sorted by index).
    Original { chain: Vec<Block> },
}

impl Handshaken {
    /// Who the peer is.
    pub fn identity(&self) -> Identity {
        match self {
            Handshaken::Jbc { identity, .. } => identity.clone(),
            Handshaken::Original { .. } => Identity::Original,
        }
    }
}

/// Checks a `/status` answer against our network and our id.
pub fn check_status(
    status: &Status,
    network: &Network,
    own_id: &NodeId,
) -> Result<Identity, HandshakeError> {
    if status.genesis != network.genesis.hash {
        return Err(HandshakeError::OtherNetwork(format!(
            "its genesis block is {}, ours {}",
            status.genesis, network.genesis.hash
        )));
    }
    if status.difficulty != network.difficulty {
        return Err(HandshakeError::OtherNetwork(format!(
            "its difficulty is {}, ours {}",
            status.difficulty, network.difficulty
        )));
    }
    if let Some(max) = status.max_block_bytes
        && max != network.max_block_bytes
    {
        return Err(HandshakeError::OtherNetwork(format!(
            "its blocks may be {max} bytes, ours {}",
            network.max_block_bytes
        )));
    }
    if let Some(max) = status.max_item_bytes
        && max != network.max_item_bytes
    {
        return Err(HandshakeError::OtherNetwork(format!(
            "its data items may be {max} bytes, ours {}",
            network.max_item_bytes
        )));
    }
    let kind = network.kind.name();
    let (seconds, window) = network.kind.timing();
    let their_kind = status.kind.as_deref().unwrap_or(Kind::Fixed.name());
    if their_kind != kind
        || status.target_block_seconds != seconds
        || status.retarget_window != window
    {
        let describe =
            |kind: &str, seconds: Option<u64>, window: Option<u64>| match (seconds, window) {
                (Some(seconds), Some(window)) => {
                    format!("{kind} (a block every {seconds} s, retargeted every {window} blocks)")
                }
                _ => kind.to_string(),
            };
        return Err(HandshakeError::OtherNetwork(format!(
            "its targets are {}, ours {}",
            describe(
                their_kind,
                status.target_block_seconds,
                status.retarget_window
            ),
            describe(kind, seconds, window)
        )));
    }
    match &status.node_id {
        None => Err(HandshakeError::NoNodeId),
        Some(id) if id == own_id => Err(HandshakeError::Itself),
        Some(id) => Ok(Identity::Jbc {
            node_id: id.to_string(),
            version: status.version.clone().unwrap_or_default(),
        }),
    }
}

/// Handshakes with `url`, which came into view as `origin`. A peer the
/// node is about to sync from (configured, added, chosen) is told who we
/// are, so it reaches us back as an inbound peer at once; a node being
/// reached back (`Inbound`) is not, or two nodes would handshake each
/// other back and forth.
pub async fn handshake(
    client: &PeerClient,
    url: &PeerUrl,
    origin: Origin,
    network: &Network,
    own_id: &NodeId,
) -> Result<Handshaken, HandshakeError> {
    let introduce = origin != Origin::Inbound;
    let status = match client.status(url, introduce).await {
        Ok(Some(status)) => status,
        Ok(None) if matches!(origin, Origin::Learned | Origin::Inbound) => {
            return Err(HandshakeError::OriginalNotNamed);
        }
        Ok(None) if network.kind != Kind::Fixed => {
            return Err(HandshakeError::OriginalInAdaptive);
        }
        Ok(None) => return check_original(client, url, network).await,
        Err(error) => return Err(HandshakeError::Unreachable(error)),
    };
    let identity = check_status(&status, network, own_id)?;
    if origin == Origin::Learned
        && let Some(c) = &status.connections
        && c.max_inbound.is_some_and(|max| c.inbound >= max)
    {
        return Err(HandshakeError::Full(c.inbound));
    }
    Ok(Handshaken::Jbc {
        identity,
        status: Box::new(status),
    })
}

/// An original node passes if its chain starts with our genesis block.
async fn check_original(
    client: &PeerClient,
    url: &PeerUrl,
    network: &Network,
) -> Result<Handshaken, HandshakeError> {
    let chain = client
        .whole_chain(url)
        .await
        .map_err(HandshakeError::Unreachable)?;
    starts_with_genesis(&chain, network).map_err(HandshakeError::OtherNetwork)?;
    Ok(Handshaken::Original { chain })
}

/// Whether a chain an original served (sorted by index) starts with our
/// genesis block; if not, why, in words.
pub fn starts_with_genesis(chain: &[Block], network: &Network) -> Result<(), String> {
    match chain.first() {
        Some(first) if *first == network.genesis => Ok(()),
        Some(first) => Err(format!(
            "its chain does not start with our genesis block (its first block is {}, ours {})",
            first.hash, network.genesis.hash
        )),
        None => Err("its /blockchain.json is empty".into()),
    }
}

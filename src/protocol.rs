//! The wire protocol between nodes: the names and shapes both sides of a
//! connection must agree on, in one place that the server ([`crate::api`])
//! and the client ([`crate::client`]) both import.
//!
//! The original Python node speaks only `GET /blockchain.json` and
//! `POST /mined` (a block as the body); everything else here is this node's
//! addition, and a peer without it is treated as an original.

use serde::{Deserialize, Serialize};

use crate::block::BlockHash;

/// Header naming the announcing node's base URL, so the receiver can sync
/// from it and learn it as a peer.
pub const PEER_HEADER: &str = "x-jbc-peer";

/// Most blocks one `/blocks` page holds, whatever the request asks.
pub const MAX_PAGE: u64 = 500;

/// Blocks per `/blocks` page when the request does not say.
pub const DEFAULT_PAGE: u64 = 100;

/// What `GET /status` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Index of the tip block (a chain of only the genesis block has height 0).
    pub height: u64,
    /// Hash of the tip block.
    pub tip: BlockHash,
    /// The network's difficulty: leading zero hex digits a block hash needs.
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

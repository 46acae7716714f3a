//! The wire protocol between nodes: the names and shapes both sides of a
//! connection must agree on, in one place that the server ([`crate::api`])
//! and the client ([`crate::client`]) both import.
//!
//! The original Python node speaks only `GET /blockchain.json` and
//! `POST /mined` (a block as the body); everything else here is this node's
//! addition, and a peer without it is treated as an original.

use serde::{Deserialize, Serialize};

use crate::block::BlockHash;
use crate::item::ItemId;
use crate::signed::Authorship;

/// The routes both sides name: the server mounts them ([`crate::api`]),
/// the peer client and the `jbc` command ask them.
pub mod route {
    /// The whole chain as a JSON array (the original's endpoint).
    pub const BLOCKCHAIN: &str = "/blockchain.json";
    /// A block announced by a peer (the original's endpoint).
    pub const MINED: &str = "/mined";
    /// What a peer needs to sync from and handshake with a node.
    pub const STATUS: &str = "/status";
    /// Pages of blocks (`?from=&limit=`), and one block at `/blocks/{index}`.
    pub const BLOCKS: &str = "/blocks";
    /// Data items: posted to it, and one at `/data/{id}`.
    pub const DATA: &str = "/data";
    /// The peer book.
    pub const PEERS: &str = "/peers";
    /// `DELETE` with `{"url": …}` lifts a ban (operator only).
    pub const BANS: &str = "/peers/bans";
    /// Addresses of nodes that answered lately, for others to connect to.
    pub const ADDRESSES: &str = "/peers/addr";
    /// The live links and their messages.
    pub const LINKS: &str = "/peers/links";
    /// `POST` with `{"blocks": N}`: mine N blocks now (operator only).
    pub const MINE: &str = "/mine";
    /// The blocks a node knows at some heights, on its chain and off it.
    pub const TREE: &str = "/tree";
    /// The network as a node's crawl of the peer graph finds it.
    pub const NETWORK: &str = "/network";
    /// The items signed with one key.
    pub const AUTHORS: &str = "/authors";
    /// The operator cuts the node off from its peers (POST) or ends that
    /// (DELETE).
    pub const ISOLATION: &str = "/isolation";
}

/// Most addresses one `GET /peers/addr` answer holds (and a reader reads).
pub const MAX_ADDRESSES: usize = 100;

/// The cap on a `GET /peers/addr` answer: its addresses, with room.
pub const ADDRESSES_BYTES: u64 = 64 * 1024;

/// What `GET /peers/addr` answers: base URLs of nodes that answered this
/// one lately, in random order, from a cache that changes only now and
/// then (so asking often does not map the book).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Addresses {
    pub addresses: Vec<String>,
}

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
    /// The node's random id for this run (absent on nodes older than the
    /// handshake, which are not accepted as peers).
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// The node's software, like `jbc/0.1.0`.
    #[serde(default)]
    pub version: Option<String>,
    /// The largest block the network allows, in bytes of JSON.
    #[serde(default)]
    pub max_block_bytes: Option<u64>,
    /// The largest data item the network allows, in bytes.
    #[serde(default)]
    pub max_item_bytes: Option<u64>,
    /// Data items waiting for a block.
    #[serde(default)]
    pub pending_items: usize,
    /// A catch-up with a peer under way: whom from, to what height, how
    /// far, how fast.
    #[serde(default)]
    pub catching_up: Option<crate::stats::CatchUpView>,
    /// How the network sets targets: `fixed` or `adaptive` (absent on
    /// nodes older than adaptive networks, which are all fixed).
    #[serde(default)]
    pub kind: Option<String>,
    /// An adaptive network's seconds between blocks.
    #[serde(default)]
    pub target_block_seconds: Option<u64>,
    /// An adaptive network's blocks between retargets.
    #[serde(default)]
    pub retarget_window: Option<u64>,
    /// The chain's cumulative work: the hashes it took on average, hex
    /// (`0x…`). Peers compare chains by it.
    #[serde(default)]
    pub chainwork: Option<String>,
    /// The tip's target, 64 hex digits.
    #[serde(default)]
    pub target: Option<String>,
    /// That target as a number of leading zero hex digits (fractional: the
    /// log16 of the hashes a block takes), to compare with a fixed
    /// network's difficulty.
    #[serde(default)]
    pub effective_difficulty: Option<f64>,
    /// The height of the next retarget (adaptive networks).
    #[serde(default)]
    pub next_retarget: Option<u64>,
    /// The mean time between blocks over the last retarget window (the
    /// last 20 blocks in a fixed network), in seconds.
    #[serde(default)]
    pub mean_block_seconds: Option<f64>,
    /// Seconds since the node started.
    #[serde(default)]
    pub uptime_seconds: Option<u64>,
    /// Whether the node mines.
    #[serde(default)]
    pub mining: Option<bool>,
    /// Its peers by direction, and the addresses it knows.
    #[serde(default)]
    pub connections: Option<Connections>,
    /// Blocks the operator ordered (`POST /mine`) not mined yet.
    #[serde(default)]
    pub blocks_owed: u64,
    /// The operator cut the node off from its peers (`jbc isolate`).
    #[serde(default)]
    pub isolated: bool,
}

/// A node's connections, as `/status` tells them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connections {
    /// Peers it syncs from: configured, added and chosen.
    pub outbound: usize,
    /// Of those, the ones it chose from learned addresses.
    pub chosen: usize,
    /// How many it aims to choose.
    pub outbound_target: usize,
    /// Nodes that sync from it and hear its blocks.
    pub inbound: usize,
    /// The most it takes: a node choosing outbound peers passes over one
    /// that is full, which would not announce its blocks to it.
    #[serde(default)]
    pub max_inbound: Option<usize>,
    /// Addresses it could connect to, never reached yet.
    pub addresses_new: usize,
    /// Addresses that answered.
    pub addresses_tried: usize,
}

impl Status {
    /// The chain's work, when the node said (and said it well).
    pub fn work(&self) -> Option<crate::pow::Work> {
        self.chainwork.as_deref().and_then(crate::pow::Work::parse)
    }
}

/// The most bytes read of a `/status` answer, a handshake, or the answer
/// to an announcement: each is a small JSON object.
pub const SMALL_ANSWER_BYTES: u64 = 16 * 1024;

/// A `/blocks` page stops growing once its JSON passes this many bytes
/// (it always holds at least one block), so a page's size is bounded by
/// this plus one block whatever the block sizes.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A node's identity for this run: random, so that a node that reaches
/// itself through any of its addresses (`0.0.0.0`, `localhost.`, a LAN
/// address) knows it by the id it gets back, as Bitcoin Core knows itself
/// by the nonce in its version message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// A fresh random id (128 bits, hex).
    pub fn random() -> NodeId {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS has a source of randomness");
        NodeId(hex::encode(bytes))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// This software's version, sent on `/status`.
pub const VERSION: &str = concat!("jbc/", env!("CARGO_PKG_VERSION"));

/// Where a data item is, as `POST /data` and `GET /data/{id}` answer it:
/// `{"id": …, "status": "pending" | "confirmed" | "unknown"}`, with the
/// block, its hash and the confirmations when confirmed.
///
/// `GET /data/{id}` and `GET /authors/{key}` also give its `text` and, for a
/// signed item, its `author` as the node checked it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemAnswer {
    pub id: ItemId,
    #[serde(flatten)]
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<AuthorView>,
}

impl ItemAnswer {
    /// Where item `id` is, and nothing more.
    pub fn at(id: ItemId, status: ItemStatus) -> ItemAnswer {
        ItemAnswer {
            id,
            status,
            text: None,
            author: None,
        }
    }
}

/// Who signed an item, as a node checked it: absent for a plain text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorView {
    /// The public key the item names (absent when its envelope is broken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Whether the signature passed every check.
    pub verifies: bool,
    /// When it does not: the check that failed, as one word, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AuthorView {
    /// The view of `authorship`; `None` for a plain text.
    pub fn of(authorship: &Authorship) -> Option<AuthorView> {
        if *authorship == Authorship::Unsigned {
            return None;
        }
        let (key, error) = (authorship.key(), authorship.error());
        Some(AuthorView {
            key: key.map(|key| key.to_string()),
            fingerprint: key.map(|key| key.fingerprint()),
            verifies: error.is_none(),
            check: error.map(|error| error.check().to_string()),
            reason: error.map(ToString::to_string),
        })
    }
}

/// `GET /authors/{key}`: the items signed with a key that this node holds,
/// waiting ones first, then those in blocks, the newest first, at most
/// `limit`; `more` when there are others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorItems {
    pub key: String,
    pub fingerprint: String,
    pub items: Vec<ItemAnswer>,
    pub more: bool,
}

/// The most items `GET /authors/{key}` gives in one answer (`limit`).
pub const MAX_AUTHOR_ITEMS: usize = 200;

/// Where a data item is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ItemStatus {
    /// Waiting for a block.
    Pending,
    /// Carried by block `block`, `confirmations` blocks deep (1: the tip).
    Confirmed {
        block: u64,
        hash: BlockHash,
        confirmations: u64,
    },
    /// Neither.
    Unknown,
}

/// What `POST /mined` answers for a block it took apart from errors
/// (those are `{"error": …}`, with `"status": "rejected"` for an invalid
/// block).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum MinedAnswer {
    /// It extends our tip; saved and relayed.
    Accepted,
    /// We have it already.
    Known,
    /// It is ahead of our chain; we sync from the sender.
    Syncing,
    /// It does not make a better chain.
    Ignored { reason: String },
}

/// What `GET /blocks/{index}/proof` answers: what a block's proof of work
/// is measured against.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockProof {
    pub index: u64,
    pub hash: BlockHash,
    /// The block's target, 64 hex digits.
    pub target: String,
    /// That target as leading zero hex digits (as `effective_difficulty`
    /// on `/status`).
    pub difficulty: f64,
    /// The chain's cumulative work through this block, hex (`0x…`).
    pub chainwork: String,
}

/// The body of `POST /mine`: `{"blocks": N}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MineRequest {
    pub blocks: u64,
}

/// What `POST /mine` answers (202): the blocks ordered, and all that are
/// owed now (earlier orders included); `/status` `blocks_owed` counts down.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MineOrdered {
    pub ordered: u64,
    pub owed: u64,
}

/// The body of `POST /peers` and `DELETE /peers`: `{"url": "http://…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerRequest {
    pub url: String,
}

/// What `POST /peers` answers when it did not refuse the URL: added (201),
/// or known already (200, with the reason it was not added).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerAdded {
    pub added: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `DELETE /peers` answers when the peer was in the book.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerRemoved {
    pub removed: bool,
}

/// The body of `POST /peers/bans`: `{"url": "http://…", "seconds": 3600}`
/// (`seconds`, how long the ban lasts, defaults to the node's
/// `ban_seconds`; `reason` to "banned by the operator").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BanRequest {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `POST /peers/bans` answers: until when (seconds since the epoch).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Banned {
    pub banned_until: u64,
}

/// What `DELETE /peers/bans` answers when the URL was banned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BanLifted {
    pub lifted: bool,
}

/// What `POST /isolation` and `DELETE /isolation` answer: whether the node
/// is isolated now, and whether the request changed that.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Isolation {
    pub isolated: bool,
    pub changed: bool,
}

/// The body of `POST /data`: one data item's text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataRequest {
    pub data: String,
}

// The live links, as `GET /peers/links` shows them.

/// Who opened a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Opened {
    /// This node, to a peer it syncs from.
    Outbound,
    /// The peer, to this node.
    Inbound,
}

/// A link as `GET /peers/links` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub peer: String,
    pub opened: Opened,
    /// How long it has been up.
    pub seconds: u64,
    pub sent: u64,
    pub sent_bytes: u64,
    pub received: u64,
    pub received_bytes: u64,
}

/// What `GET /peers/links` answers: the links, and their messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinksAnswer {
    pub links: Vec<LinkView>,
    pub messages: Vec<Logged>,
    /// Ask with `after=` this next time for the messages since.
    pub last: u64,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the peer to this node.
    In,
    /// From this node to the peer.
    Out,
}

/// One message on a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    /// Its place in this node's list: later messages have larger numbers.
    pub seq: u64,
    /// When, in milliseconds since the epoch.
    pub at_ms: u64,
    pub direction: Direction,
    /// The peer at the other end.
    pub peer: String,
    /// The message's `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The bytes of its frame's text.
    pub bytes: usize,
    /// The block it is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// How many ids or texts it carries (inv, getitems, items, getdata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_answer_has_the_shape_clients_read_and_round_trips() {
        let id = ItemId::of("hello");
        let hash = BlockHash([7; 32]);
        let confirmed = ItemAnswer {
            text: None,
            author: None,
            id,
            status: ItemStatus::Confirmed {
                block: 3,
                hash,
                confirmations: 2,
            },
        };
        let json = serde_json::to_value(&confirmed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": id.to_string(), "status": "confirmed", "block": 3,
                "hash": hash.to_string(), "confirmations": 2
            })
        );
        assert_eq!(
            serde_json::from_value::<ItemAnswer>(json).unwrap(),
            confirmed
        );
        let pending = serde_json::json!({ "id": id.to_string(), "status": "pending" });
        assert_eq!(
            serde_json::from_value::<ItemAnswer>(pending)
                .unwrap()
                .status,
            ItemStatus::Pending
        );
    }

    #[test]
    fn mined_data_and_peer_bodies_have_the_wire_shape() {
        assert_eq!(
            serde_json::to_value(MinedAnswer::Accepted).unwrap(),
            serde_json::json!({ "status": "accepted" })
        );
        assert_eq!(
            serde_json::to_value(MinedAnswer::Ignored {
                reason: "why".into()
            })
            .unwrap(),
            serde_json::json!({ "status": "ignored", "reason": "why" })
        );
        let body = serde_json::to_value(DataRequest {
            data: "text".into(),
        })
        .unwrap();
        assert_eq!(body, serde_json::json!({ "data": "text" }));
        let added = PeerAdded {
            added: true,
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(added).unwrap(),
            serde_json::json!({ "added": true })
        );
    }
}

//! The peers a node knows: what a peer's address may be ([`PeerUrl`]), the
//! [`PeerBook`] of everyone the node talks to and what it knows of each
//! (their [`health`] and their [`score`]), the operator's bans, and the
//! [`AddrMan`] of everyone it could talk to.
//!
//! This module keeps records; it does not talk to peers. The handshake
//! that lets a URL in is [`crate::handshake`]'s, the conversation with the
//! peers [`crate::gossip`]'s.

pub mod addrman;
mod book;
mod health;
pub mod score;
mod url;
mod watch;

pub use addrman::AddrMan;
pub use book::{
    Admitted, BAN_SECONDS, Ban, BookError, Identity, MAX_INBOUND, OUTBOUND_PEERS, Origin, PeerBook,
    PeerSlots, PeerState, PeerView, Verdict,
};
pub use health::{Change, Contact, Failure};
pub use url::{PeerUrl, PeerUrlError};
pub use watch::watch_peers;

use crate::setting::Text;

/// The peers of the config: one list may serve every node of a network,
/// each finding itself in it by its node id.
pub const PEERS: Text = crate::setting::Setting {
    key: "peers",
    help: "peers' base URLs, comma-separated (http:// only); the node's own may be among them",
    default: crate::setting::Unset("none"),
    range: None,
    unit: "",
};

//! The peers a node knows: what a peer's address may be ([`PeerUrl`]) and
//! the [`PeerBook`] of everyone the node talks to, what it knows of each,
//! and whom it has banned.
//!
//! This module keeps records; it does not talk to peers. The handshake
//! that lets a URL in is [`crate::handshake`]'s, the conversation with the
//! peers [`crate::gossip`]'s.

pub mod addrman;
mod book;
mod url;
mod watch;

pub use addrman::AddrMan;
pub use book::{
    Admitted, BookError, Change, Contact, Identity, Limits, Origin, PeerBook, PeerView,
};
pub use url::{PeerUrl, PeerUrlError};
pub use watch::watch_peers;

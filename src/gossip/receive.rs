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
//! sync). What the block showed about its sender is decided by [`decide`],
//! as values a unit test can read, then acted on.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::Gossip;
use crate::block::Block;
use crate::peers::addrman::group_of_ip;
use crate::peers::score::Misbehaviour;
use crate::peers::{Failure, PeerUrl};
use crate::state::{Added, CommitError, Source};
use crate::sync::SyncError;

/// The least time between two catch-ups woken by announced blocks whose
/// parent we do not have.
pub(super) const UNLINKED_WAKE_INTERVAL: Duration = Duration::from_secs(5);

/// What an announcement came to, for deciding about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// The block was new and extended our tip.
    Accepted,
    /// The block is valid and ahead of our tip: its sender has blocks we
    /// lack. `linked`: its parent is a block of our chain, so the sender
    /// showed it shares our chain; a block with an unknown parent could be
    /// one replayed by anyone.
    Ahead { linked: bool },
    /// Anything else (known, not better, invalid): the sender is not
    /// considered.
    Nothing,
}

/// What the node knows of an announcement's sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Standing {
    /// A peer the node talks to.
    peer: bool,
    /// Its last sync failed, or it has not been reached yet.
    failing: bool,
    unreached: bool,
    /// In the book in some way (itself included), or removed by the
    /// operator lately: never a candidate.
    kept_out: bool,
    /// Its URL names the address the request came from.
    at_remote: bool,
}

/// What to do about an announcement's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Act {
    /// Sync with this peer now, past its pause.
    SyncWith(PeerUrl),
    /// Sync with every peer now.
    SyncEveryone,
    /// Sync with every peer, unless that was done for the same reason
    /// within [`UNLINKED_WAKE_INTERVAL`].
    SyncEveryoneNowAndThen,
    /// Keep its URL as a candidate for the address manager.
    Keep(PeerUrl),
}

/// What an announcement of `heard` from `sender` calls for. A peer that
/// showed it is up (a new block) or ahead is synced with now, rather than
/// after its pause; every peer is asked when a stranger is ahead. A block
/// whose parent nobody here knows could be anyone's replay: it never wakes
/// a failing peer past its back-off, and wakes all of them at most now and
/// then. A stranger is never contacted for it: the URL it gives, if it is
/// its own address and the block was of use, is kept as a candidate the
/// address manager tries in its turn.
fn decide(heard: Heard, sender: Option<(&PeerUrl, Standing)>) -> Vec<Act> {
    let peer = sender.filter(|(_, standing)| standing.peer);
    let mut acts = Vec::new();
    match (heard, peer) {
        (Heard::Nothing, _) | (Heard::Accepted, None) => {}
        (Heard::Accepted, Some((url, standing))) => {
            if standing.unreached || standing.failing {
                acts.push(Act::SyncWith(url.clone()));
            }
        }
        (Heard::Ahead { linked: true }, Some((url, _))) => acts.push(Act::SyncWith(url.clone())),
        (Heard::Ahead { linked: true }, None) => acts.push(Act::SyncEveryone),
        (Heard::Ahead { linked: false }, Some((url, standing))) if !standing.failing => {
            acts.push(Act::SyncWith(url.clone()))
        }
        (Heard::Ahead { linked: false }, _) => acts.push(Act::SyncEveryoneNowAndThen),
    }
    let useful = matches!(heard, Heard::Accepted | Heard::Ahead { linked: true });
    if let Some((url, standing)) = sender
        && useful
        && !standing.peer
        && !standing.kept_out
        && standing.at_remote
    {
        acts.push(Act::Keep(url.clone()));
    }
    acts
}

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
    /// The block breaks the rules (the sender's fault, or a forger's);
    /// `offence`: what that says against whoever sent it, when the sender
    /// is known for sure (a link), if anything (a block ahead of our clock
    /// says nothing).
    #[error("{reason}")]
    Invalid {
        reason: String,
        offence: Option<Misbehaviour>,
    },
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
                let reason = error.to_string();
                let offence = SyncError::from(CommitError::Invalid(error)).misbehaviour();
                return Err(ReceiveError::Invalid { reason, offence });
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

    /// Acts on what an announcement from `sender` (as seen from `remote`)
    /// showed: see [`decide`].
    fn heard(&self, heard: Heard, sender: Option<PeerUrl>, remote: Option<IpAddr>) {
        let book = &self.inner.book;
        let standing = sender.as_ref().map(|url| Standing {
            peer: book.talks_to(url),
            failing: book.is_failing(url),
            unreached: book.identity(url).is_none(),
            kept_out: book.contains(url) || book.removed_by_operator(url),
            at_remote: remote.is_some_and(|remote| url.is_at(remote)),
        });
        let sender = sender.as_ref().zip(standing);
        for act in decide(heard, sender) {
            match act {
                Act::SyncWith(url) => self.request_sync(Some(&url)),
                Act::SyncEveryone => self.request_sync(None),
                Act::SyncEveryoneNowAndThen => {
                    let mut last = self.inner.unlinked_wake.lock().expect("wake lock");
                    if last.is_none_or(|at| at.elapsed() >= UNLINKED_WAKE_INTERVAL) {
                        *last = Some(Instant::now());
                        self.request_sync(None);
                    }
                }
                Act::Keep(url) => {
                    let remote = remote.expect("kept only when at the remote address");
                    if self.inner.addrman.add(&url, &group_of_ip(remote)) {
                        debug!(peer = %url, "{url} announced a block: kept as a candidate address");
                        self.inner.connect_wake.notify_one();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(port: u16) -> PeerUrl {
        PeerUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap()
    }

    const PEER: Standing = Standing {
        peer: true,
        failing: false,
        unreached: false,
        kept_out: true,
        at_remote: true,
    };
    const STRANGER: Standing = Standing {
        peer: false,
        failing: false,
        unreached: true,
        kept_out: false,
        at_remote: true,
    };

    #[test]
    fn a_peer_that_shows_it_is_up_or_ahead_is_synced_with_now() {
        let peer = url(5002);
        let failing = Standing {
            failing: true,
            ..PEER
        };
        let accepted = Heard::Accepted;
        assert_eq!(decide(accepted, Some((&peer, PEER))), [], "up already");
        assert_eq!(
            decide(accepted, Some((&peer, failing))),
            [Act::SyncWith(peer.clone())],
            "evidently up again"
        );
        let linked = Heard::Ahead { linked: true };
        assert_eq!(
            decide(linked, Some((&peer, failing))),
            [Act::SyncWith(peer.clone())]
        );
        assert_eq!(decide(Heard::Nothing, Some((&peer, failing))), []);
    }

    #[test]
    fn a_block_anyone_could_replay_never_wakes_a_failing_peer_past_its_pause() {
        let peer = url(5002);
        let unlinked = Heard::Ahead { linked: false };
        assert_eq!(
            decide(unlinked, Some((&peer, PEER))),
            [Act::SyncWith(peer.clone())]
        );
        let failing = Standing {
            failing: true,
            ..PEER
        };
        assert_eq!(
            decide(unlinked, Some((&peer, failing))),
            [Act::SyncEveryoneNowAndThen]
        );
        assert_eq!(
            decide(unlinked, Some((&url(9), STRANGER))),
            [Act::SyncEveryoneNowAndThen],
            "and a stranger's is not even kept"
        );
        assert_eq!(decide(unlinked, None), [Act::SyncEveryoneNowAndThen]);
    }

    #[test]
    fn a_stranger_is_a_candidate_at_its_own_address_never_a_contact() {
        let stranger = url(7000);
        let linked = Heard::Ahead { linked: true };
        assert_eq!(
            decide(linked, Some((&stranger, STRANGER))),
            [Act::SyncEveryone, Act::Keep(stranger.clone())]
        );
        assert_eq!(
            decide(Heard::Accepted, Some((&stranger, STRANGER))),
            [Act::Keep(stranger.clone())]
        );
        let elsewhere = Standing {
            at_remote: false,
            ..STRANGER
        };
        assert_eq!(decide(Heard::Accepted, Some((&stranger, elsewhere))), []);
        let removed = Standing {
            kept_out: true,
            ..STRANGER
        };
        assert_eq!(decide(Heard::Accepted, Some((&stranger, removed))), []);
        assert_eq!(decide(Heard::Nothing, Some((&stranger, STRANGER))), []);
    }
}

//! The node's place in the network: the outbound peers it chooses, the
//! inbound peers that find it, and the addresses that travel between nodes,
//! in the manner of Bitcoin Core's connection manager (`net`) and `addr`
//! messages.
//!
//! A node needs one address to join. It asks each outbound peer it reaches
//! for the addresses it knows to be good (`GET /peers/addr`), keeps them as
//! candidates in its [`AddrMan`](crate::peers::AddrMan), and keeps
//! `outbound_peers` of them as its chosen outbound peers, one per network
//! group ([`crate::netgroup`]: a LAN machine or a local port is a group of
//! its own); one that fails
//! [`REPLACE_AFTER_FAILURES`] syncs in a row is replaced. It says who it is
//! when it syncs (the peer header of `GET /status`), so the node it syncs
//! from reaches it back, takes it as an inbound peer and announces its
//! blocks to it: a quiet node is known, and hears of blocks at once.
//!
//! Addresses heard are candidates, never peers: each passes the handshake
//! before the node asks it anything else, and the node tries one at a time.
//! A node that names itself while syncing is reached back only at the
//! address its request came from, so nobody can point this node at a
//! third party by naming it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{Considered, Gossip, Refusal};
use crate::client::FetchError;
use crate::handshake::{HandshakeError, handshake};
use crate::peers::addrman::{fit_to_keep, group_of_ip, network_group, shuffle};
use crate::peers::{Contact, Origin, PeerUrl};
use crate::protocol::{Connections, MAX_ADDRESSES};

/// The pause between two attempts to choose an outbound peer while the
/// node has fewer than it aims for.
const CONNECT_TICK: Duration = Duration::from_millis(250);
/// The pause between two looks at the outbound peers while there are
/// enough.
const SATISFIED_TICK: Duration = Duration::from_secs(5);
/// The least time between two requests for addresses made because the
/// node ran out of candidates; it doubles while no answer brings a new
/// one, up to [`MOST_ASK_AGAIN_AFTER`] (a network smaller than the target
/// has nothing more to tell).
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(3);
const MOST_ASK_AGAIN_AFTER: Duration = Duration::from_secs(120);
/// How long the answer to `GET /peers/addr` stays the same once it holds
/// [`MAX_ADDRESSES`]: asking often does not map the book.
const ADDRESS_CACHE_FOR: Duration = Duration::from_secs(300);
/// How long a shorter answer stays the same: a young network's nodes
/// learn of each other within seconds, and a short answer maps little.
const SHORT_ADDRESS_CACHE_FOR: Duration = Duration::from_secs(5);
/// Most addresses of one network group in an answer to `GET /peers/addr`
/// (an eighth of it): a hundred ports of one host are one address's worth.
pub(super) const ADDRESSES_PER_GROUP: usize = MAX_ADDRESSES / 8;
/// Failed syncs in a row after which a chosen outbound peer is replaced,
/// or failed contacts after which an inbound peer is dropped.
pub(super) const REPLACE_AFTER_FAILURES: u32 = 3;
/// The least time between two handshakes with a would-be inbound peer.
pub(super) const INBOUND_RETRY: Duration = Duration::from_secs(60);

/// What one look for a new outbound peer came to.
enum Chose {
    /// A candidate was tried (or an inbound peer chosen).
    Tried,
    /// There was none to try.
    NoCandidate,
}

/// When the node last asked for addresses for want of candidates, and the
/// pause before it asks again.
pub(super) struct AddressRequests {
    last: Option<Instant>,
    pause: Duration,
}

impl Default for AddressRequests {
    fn default() -> AddressRequests {
        AddressRequests {
            last: None,
            pause: ASK_AGAIN_AFTER,
        }
    }
}

/// The answer to `GET /peers/addr`, as made last.
pub(super) struct AddressCache {
    made: Instant,
    addresses: Vec<PeerUrl>,
}

impl Gossip {
    /// Keeps the node's chosen outbound peers at the target, until
    /// shutdown: chooses a candidate while it has fewer, asks its peers for
    /// more addresses when it has no candidate, and tests the old entry of
    /// a tried slot a newcomer wants.
    pub(super) async fn keep_outbound(&self) {
        let target = self.inner.outbound_target;
        loop {
            self.test_a_collision().await;
            let chosen = self.inner.book.directions().chosen;
            let pause = if chosen < target {
                match self.choose_one().await {
                    Chose::Tried => CONNECT_TICK,
                    Chose::NoCandidate => {
                        if chosen > 0 && !self.inner.joined.swap(true, Ordering::Relaxed) {
                            info!(
                                outbound = chosen,
                                "joined the network: {chosen} outbound peers chosen, all it knows of so far (the target is {target}; more as it hears of them)"
                            );
                        }
                        SATISFIED_TICK
                    }
                }
            } else {
                if target > 0 && !self.inner.joined.swap(true, Ordering::Relaxed) {
                    let counts = self.inner.addrman.counts();
                    info!(
                        outbound = chosen,
                        "joined the network: {chosen} outbound peers chosen (the target), {} addresses known",
                        counts.new + counts.tried
                    );
                }
                SATISFIED_TICK
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.inner.connect_wake.notified() => {}
            }
        }
    }

    /// Chooses one candidate and handshakes with it.
    async fn choose_one(&self) -> Chose {
        let inner = &self.inner;
        let book = &inner.book;
        let groups: HashSet<String> = book.chosen().iter().map(network_group).collect();
        // An inbound peer may be chosen too: in a small network every node
        // may be one already.
        let skip = |url: &PeerUrl| {
            (book.contains(url) && book.origin(url) != Some(Origin::Inbound))
                || book.left_alone(url).is_some()
                || book.removed_by_operator(url)
        };
        // One chosen peer per network group, as Core's one outbound per
        // netgroup: addresses one operator made up cannot take them all.
        let candidate = inner.addrman.select(skip, |group| groups.contains(group));
        let Some(url) = candidate else {
            self.ask_for_more_addresses().await;
            return Chose::NoCandidate;
        };
        if book.origin(&url) == Some(Origin::Inbound) {
            if book.choose_inbound(&url) {
                inner.addrman.attempted(&url, true);
                info!(peer = %url, "inbound peer {url} is now an outbound peer too: chosen from the addresses learned");
                self.request_sync(Some(&url));
            }
            return Chose::Tried;
        }
        match self.consider(url.clone(), Origin::Learned).await {
            Ok(Considered::Added | Considered::Known) => {}
            Ok(Considered::Alias { of }) => {
                debug!(peer = %url, "{url} is {of}, a peer already: forgotten");
                inner.addrman.forget(&url);
            }
            Err(Refusal::Handshake(HandshakeError::Itself)) => {
                debug!(peer = %url, "{url} is this node itself: forgotten");
                inner.addrman.forget(&url);
            }
            Err(refusal) => {
                debug!(peer = %url, "a candidate did not become a peer: {refusal}");
                inner.addrman.attempted(&url, false);
            }
        }
        Chose::Tried
    }

    /// Tests the old entry of one tried slot a newcomer wants, and settles
    /// the collision.
    async fn test_a_collision(&self) {
        let inner = &self.inner;
        let Some(collision) = inner.addrman.collisions().into_iter().next() else {
            return;
        };
        // Whether it answers is what counts, not whether it has room for
        // us: tested as a node that names itself would be.
        let answered = handshake(
            &inner.client,
            &collision.old,
            Origin::Inbound,
            inner.state.network(),
            &inner.node_id,
        )
        .await
        .is_ok();
        debug!(
            old = %collision.old,
            newcomer = %collision.newcomer,
            answered,
            "tested the old entry of a tried slot {} wants",
            collision.newcomer
        );
        inner.addrman.resolve(&collision, answered);
    }

    /// Asks one working peer for addresses, unless the node asked a moment
    /// ago.
    async fn ask_for_more_addresses(&self) {
        {
            let mut asked = self.inner.address_requests.lock().expect("lock");
            if asked.last.is_some_and(|at| at.elapsed() < asked.pause) {
                return;
            }
            asked.last = Some(Instant::now());
        }
        let mut peers = self.inner.book.working_jbc();
        shuffle(&mut peers);
        let Some(peer) = peers.first() else {
            return;
        };
        let learned = self.ask_for_addresses(peer).await;
        let mut asked = self.inner.address_requests.lock().expect("lock");
        asked.pause = if learned > 0 {
            ASK_AGAIN_AFTER
        } else {
            (asked.pause * 2).clamp(ASK_AGAIN_AFTER, MOST_ASK_AGAIN_AFTER)
        };
    }

    /// Asks `peer` for the addresses it knows, and keeps those fit to keep
    /// as candidates; how many were new.
    pub(super) async fn ask_for_addresses(&self, peer: &PeerUrl) -> usize {
        let told = match self.inner.links.get(peer) {
            Some(link) => match self.addresses_over(&link).await {
                Ok(addresses) => Ok(Some(addresses)),
                Err(error) => {
                    debug!(peer = %peer, "asking {peer} for addresses failed: {error}");
                    return 0;
                }
            },
            None => self.inner.client.addresses(peer).await,
        };
        match told {
            Ok(Some(addresses)) => {
                let heard = addresses.len();
                let kept = self.learn_addresses(peer, addresses);
                debug!(peer = %peer, heard, kept, "{peer} told of {heard} addresses, {kept} new here");
                return kept;
            }
            Ok(None) => debug!(peer = %peer, "{peer} has no /peers/addr (an older node)"),
            Err(FetchError::Status(code)) => {
                debug!(peer = %peer, "{peer} answered HTTP {code} when asked for addresses")
            }
            Err(error) => debug!(peer = %peer, "asking {peer} for addresses failed: {error}"),
        }
        0
    }

    /// Keeps the addresses `from` told of that are fit to keep; how many
    /// were new.
    fn learn_addresses(&self, from: &PeerUrl, addresses: Vec<PeerUrl>) -> usize {
        let source_ip = from.ip().or_else(|| {
            (from.host_name().as_deref() == Some("localhost"))
                .then_some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        });
        let group = network_group(from);
        let mut added = 0;
        for url in addresses.into_iter().take(MAX_ADDRESSES) {
            if fit_to_keep(&url, source_ip).is_ok() && self.inner.addrman.add(&url, &group) {
                added += 1;
            }
        }
        if added > 0 {
            self.inner.connect_wake.notify_one();
        }
        added
    }

    /// A node named itself (`url`) in a request that came from `remote`:
    /// if it is reachable there and new here, it becomes a candidate, and
    /// is reached back as an inbound peer.
    pub fn introduced(&self, url: PeerUrl, remote: IpAddr) {
        let book = &self.inner.book;
        if !url.is_at(remote) || book.contains(&url) || book.removed_by_operator(&url) {
            return;
        }
        // A flood of introductions waits for nobody: while every handshake
        // slot is taken, the rest are dropped (a real node syncs again).
        if self.inner.handshakes.available_permits() == 0 {
            return;
        }
        self.inner.addrman.add(&url, &group_of_ip(remote));
        let gossip = self.clone();
        self.spawn(async move {
            match gossip.consider(url.clone(), Origin::Inbound).await {
                Ok(_) | Err(Refusal::TriedRecently) => {}
                Err(refusal) => debug!(peer = %url, "a node that syncs from us: {refusal}"),
            }
        });
    }

    /// What `GET /peers/addr` answers: peers that answered lately and
    /// addresses that did, at most [`MAX_ADDRESSES`] and at most
    /// [`ADDRESSES_PER_GROUP`] of one network group, in random order, the
    /// same for [`ADDRESS_CACHE_FOR`] once it is full.
    pub fn addresses_for_others(&self) -> Vec<PeerUrl> {
        let mut cache = self.inner.address_cache.lock().expect("lock");
        if let Some(cached) = cache.as_ref() {
            let keep_for = if cached.addresses.len() >= MAX_ADDRESSES {
                ADDRESS_CACHE_FOR
            } else {
                SHORT_ADDRESS_CACHE_FOR
            };
            if cached.made.elapsed() < keep_for {
                return cached.addresses.clone();
            }
        }
        let mut addresses = self.inner.book.working_jbc();
        for url in self.inner.addrman.good(MAX_ADDRESSES) {
            if !addresses.contains(&url) {
                addresses.push(url);
            }
        }
        shuffle(&mut addresses);
        let mut per_group: HashMap<String, usize> = HashMap::new();
        addresses.retain(|url| {
            let given = per_group.entry(network_group(url)).or_default();
            *given += 1;
            *given <= ADDRESSES_PER_GROUP
        });
        addresses.truncate(MAX_ADDRESSES);
        *cache = Some(AddressCache {
            made: Instant::now(),
            addresses: addresses.clone(),
        });
        addresses
    }

    /// The node's connections, for `/status`.
    pub fn connections(&self) -> Connections {
        let directions = self.inner.book.directions();
        let counts = self.inner.addrman.counts();
        Connections {
            outbound: directions.outbound,
            chosen: directions.chosen,
            outbound_target: self.inner.outbound_target,
            inbound: directions.inbound,
            max_inbound: Some(self.inner.book.limits().inbound),
            addresses_new: counts.new,
            addresses_tried: counts.tried,
        }
    }

    /// After a failed contact: a chosen outbound peer whose syncs failed
    /// [`REPLACE_AFTER_FAILURES`] times in a row makes way for another, and
    /// an inbound peer that stopped answering is dropped (it comes back
    /// when it syncs from us again).
    pub(super) fn replace_if_failing(
        &self,
        peer: &PeerUrl,
        contact: Contact,
        error: &dyn std::fmt::Display,
    ) {
        let book = &self.inner.book;
        let failures = book.failures_in_a_row(peer, contact);
        if failures < REPLACE_AFTER_FAILURES {
            return;
        }
        match book.origin(peer) {
            Some(Origin::Learned) if contact == Contact::Sync => {
                self.inner.addrman.attempted(peer, false);
                let _ = book.drop_peer(peer);
                self.stop_peer(peer);
                info!(
                    peer = %peer,
                    "outbound peer {peer} failed {failures} syncs in a row (the last: {error}): another takes its place"
                );
                self.inner.connect_wake.notify_one();
            }
            Some(Origin::Inbound) => {
                let _ = book.drop_peer(peer);
                self.stop_peer(peer);
                info!(
                    peer = %peer,
                    "inbound peer {peer} failed {failures} contacts in a row (the last: {error}): dropped until it syncs from us again"
                );
            }
            _ => {}
        }
    }
}

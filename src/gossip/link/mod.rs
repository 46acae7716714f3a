//! Live links: one long-lived WebSocket per peer of this software, used
//! both ways, in place of polling `/status` and posting every block whole
//! (the wire's messages are [`crate::wire`]'s).
//!
//! The outbound side opens a link after its first sync with a peer (on
//! the peer's own port: `GET /link`, a WebSocket upgrade); the inbound side
//! takes it under the URL the opener names in its `hello`, believed only
//! at the address the link came from. Each linked peer has one
//! [`LinkPeer`], as each connected peer has one `Peer` in Bitcoin Core:
//! its send queue, what it is known to have, its counters. While a peer is
//! linked, its task does not poll it and nothing is posted to it over
//! HTTP; when the link goes, the task syncs once over HTTP and links again.
//! A peer that cannot link (an original node, an older version, a node
//! with links turned off) is served and announced to over HTTP as before.
//!
//! Bounds: a message's size, messages per second, the send queue (a peer
//! that reads too slowly for it is dropped, never buffered without
//! limit), the time a `hello` has to come, the time a link may stay
//! silent, and links per network group. This module owns the registry and
//! the per-peer object; the conversation is [`session`]'s, what each
//! message means [`handle`]'s.

mod catchup;
mod handle;
pub mod log;
mod session;
mod socket;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use crate::protocol::{Direction, LinkView, LinksAnswer, Opened};
pub(in crate::gossip) use catchup::{LinkSource, MOST_OVER_LINKS};
pub use log::MessageLog;
pub use socket::{Frame, from_axum};

use crate::block::{Block, BlockHash};
use crate::item::ItemId;
use crate::netgroup::NetGroup;
use crate::peers::PeerUrl;
use crate::protocol::{NodeId, Status};
use crate::setting::{Setting, Words};
use crate::wire::Header;

pub const LINKS: Setting<Words, bool> = Setting {
    key: "links",
    help: "talk to peers of this software over one live link each (false: poll and post over HTTP, as before)",
    default: true,
    range: None,
    unit: "",
};

/// The most links peers open to this node, for `max_inbound` inbound peer
/// slots: twice as many. A link is an inbound peer's connection, so a node
/// that takes none takes no link; but a node that chose this one before
/// its slots filled syncs from it with or without one, and a link refused
/// only leaves it polling over HTTP, which costs this node more (in a
/// hundred nodes that all chose the same few, those few had a hundred
/// inbound peers for 64 slots).
pub fn inbound_links_for(max_inbound: usize) -> usize {
    max_inbound.saturating_mul(2)
}
/// Links peers of one network group may open to this node.
pub const LINKS_PER_GROUP: usize = 8;
/// A link's socket buffers, each way (the library's default of 128 KiB
/// each, times a link per peer, was most of a node's memory).
pub const BUFFER_BYTES: usize = 16 * 1024;
/// The time a `hello` has to arrive once a link opens.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a link may be quiet before this node pings it (Bitcoin Core's
/// interval): only the side that heard nothing pings, so an idle link
/// carries one ping and one pong per interval.
pub const PING_INTERVAL: Duration = Duration::from_secs(2 * 60);
/// How long a link may stay silent (no message, no pong) before it is
/// closed: three pings unanswered.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(3 * 2 * 60);
/// Messages waiting to be written to one peer; a peer that lets more pile
/// up reads too slowly, and is dropped.
pub const SEND_QUEUE: usize = 1024;
/// Bytes waiting to be written to one peer; past them, as past
/// [`SEND_QUEUE`] messages, it is dropped (a peer asking for items over
/// and over while reading nothing would otherwise hold a queue of whole
/// answers).
pub const SEND_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// The longest one frame's write may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// Messages a peer may send per second, on average, and at once: far
/// above what an honest node sends (a difficulty-3 network on two cores
/// makes about 1 000 blocks a second), so only a flood meets it.
pub const MESSAGES_PER_SECOND: f64 = 5000.0;
pub const MESSAGE_BURST: f64 = 20_000.0;
/// How long a block asked of one peer is not asked of another.
pub const IN_FLIGHT_FOR: Duration = Duration::from_secs(2);
/// Blocks held for their parent at most.
const MOST_HELD: usize = 64;
/// Blocks and items noted as under way at most (notes older than
/// [`IN_FLIGHT_FOR`] are dropped when it is reached).
const MOST_IN_FLIGHT: usize = 4096;
/// Block and item hashes remembered per peer as known to it.
const KNOWN_KEPT: usize = 8192;
/// The least wait before a link that failed to open is tried again; one
/// refused as unsupported waits [`NO_LINKS_RETRY`].
pub const LINK_RETRY: Duration = Duration::from_secs(15);
pub const NO_LINKS_RETRY: Duration = Duration::from_secs(10 * 60);

/// A linked peer: its link, what it knows, its send queue and counters.
pub struct LinkPeer {
    pub url: PeerUrl,
    pub opened: Opened,
    /// The node id of the side that opened the link: of two links between
    /// the same nodes, the one opened by the smaller id is kept.
    opener: NodeId,
    since: Instant,
    queue: mpsc::Sender<Frame>,
    /// The bytes of the frames queued and not yet written.
    queued_bytes: Arc<AtomicUsize>,
    known: Mutex<Known>,
    /// Cancelled when the link ends, for whatever reason.
    pub closed: CancellationToken,
    /// Why it was closed by this node, when it was.
    close_reason: Mutex<Option<String>>,
    pub counters: Counters,
    /// The highest block it is known to have: its `hello`'s height, then
    /// the blocks it sends and announces (a catch-up asks it for bodies up
    /// to there).
    height: AtomicU64,
    /// Where the answer to our `getheaders` goes, while one is awaited.
    headers_wanted: Mutex<Option<oneshot::Sender<Vec<Header>>>>,
    /// Where the answer to our `getaddr` goes, while one is awaited.
    addr_wanted: Mutex<Option<oneshot::Sender<Vec<String>>>>,
}

/// Messages and bytes each way.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
}

/// Hashes (blocks and items) the peer has or was told of, the oldest
/// forgotten first.
#[derive(Default)]
struct Known {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Known {
    /// Notes `hash`; false if it was known already.
    fn insert(&mut self, hash: [u8; 32]) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        if self.order.len() == KNOWN_KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(hash);
        true
    }
}

/// Why a message could not be queued: the link is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl LinkPeer {
    /// Queues a frame for the writer; a full queue closes the link (the
    /// peer reads too slowly).
    fn queue(&self, frame: Frame) -> Result<(), Gone> {
        let bytes = frame.bytes();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if queued > SEND_QUEUE_BYTES {
            self.close(&format!(
                "it reads too slowly: {} MiB waited for it",
                queued / (1024 * 1024)
            ));
            return Err(Gone);
        }
        match self.queue.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(&format!(
                    "it reads too slowly: {SEND_QUEUE} messages waited for it"
                ));
                Err(Gone)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
        }
    }

    /// Notes that the peer has (or was told of) `hash`; false if it was
    /// known to already.
    pub fn mark_known(&self, hash: [u8; 32]) -> bool {
        self.known.lock().expect("known lock").insert(hash)
    }

    /// Whether the peer has (or was told of) `hash`.
    pub fn knows(&self, hash: &[u8; 32]) -> bool {
        self.known.lock().expect("known lock").set.contains(hash)
    }

    /// Ends the link, saying why (the first reason given is the one sent).
    pub fn close(&self, reason: &str) {
        let mut said = self.close_reason.lock().expect("close lock");
        if said.is_none() {
            *said = Some(reason.to_string());
        }
        self.closed.cancel();
    }

    /// Notes that the peer has block `index`.
    fn has(&self, index: u64) {
        self.height.fetch_max(index, Ordering::Relaxed);
    }

    /// The highest block it is known to have.
    fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }

    fn close_reason(&self) -> Option<String> {
        self.close_reason.lock().expect("close lock").clone()
    }

    fn view(&self) -> LinkView {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LinkView {
            peer: self.url.to_string(),
            opened: self.opened,
            seconds: self.since.elapsed().as_secs(),
            sent: count(&self.counters.sent),
            sent_bytes: count(&self.counters.sent_bytes),
            received: count(&self.counters.received),
            received_bytes: count(&self.counters.received_bytes),
        }
    }
}

/// Why a link was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    #[error("a link with this node is up already")]
    Duplicate,
    #[error("its network group ({0}) holds its share of links already")]
    GroupFull(String),
    #[error("this node holds {0} inbound links, the most it takes")]
    Full(usize),
}

/// A body a catch-up asked for, and the peer that sent it.
pub struct Body {
    pub block: Block,
    pub from: PeerUrl,
}

/// A block held until its parent comes, and whom it came from.
pub struct Held {
    pub block: Block,
    pub from: PeerUrl,
    pub remote: Option<IpAddr>,
}

/// What builds this node's `/status`.
pub type StatusSource = Box<dyn Fn() -> Status + Send + Sync>;

/// Every live link, by peer URL.
pub struct Links {
    /// Whether this node opens links (the `links` setting).
    pub enabled: bool,
    by_url: Mutex<HashMap<PeerUrl, Arc<LinkPeer>>>,
    /// Links being opened, so one peer gets one attempt at a time.
    opening: Mutex<HashSet<PeerUrl>>,
    /// When a link to a peer may be tried again.
    retry_at: Mutex<HashMap<PeerUrl, Instant>>,
    /// Blocks asked of one peer and not come yet, and when: not asked of
    /// another meanwhile (for [`IN_FLIGHT_FOR`] at most), so a body
    /// comes about once.
    in_flight: Mutex<HashMap<[u8; 32], Instant>>,
    /// When `in_flight` was last swept of old notes.
    swept: Mutex<Instant>,
    /// Blocks that came before their parent, which was on its way.
    held: Mutex<VecDeque<Held>>,
    /// Bodies catch-ups by headers await, and where each goes (two
    /// catch-ups with two peers ahead may await the same).
    expected: Mutex<HashMap<BlockHash, Vec<mpsc::Sender<Body>>>>,
    /// Bumped at each link up or down, for whoever waits on one.
    changes: watch::Sender<u64>,
    pub log: MessageLog,
    /// What this node says of itself in a `hello` (its `/status`); taken
    /// away when gossip stops, as it holds the HTTP side's state, which
    /// holds gossip.
    status: Mutex<Option<StatusSource>>,
    /// The most inbound links, and per network group.
    most_inbound: usize,
    most_per_group: usize,
}

impl Links {
    /// No links yet; at most `most_inbound` opened by peers, and of one
    /// network group 8 (an eighth of the default 64 inbound peer slots).
    pub fn new(enabled: bool, most_inbound: usize) -> Links {
        Links {
            enabled,
            by_url: Mutex::default(),
            opening: Mutex::default(),
            retry_at: Mutex::default(),
            in_flight: Mutex::default(),
            swept: Mutex::new(Instant::now()),
            held: Mutex::default(),
            expected: Mutex::default(),
            changes: watch::channel(0).0,
            log: MessageLog::default(),
            status: Mutex::new(None),
            most_inbound,
            most_per_group: LINKS_PER_GROUP.min(most_inbound),
        }
    }

    /// Sets what the node says of itself in a `hello` (the HTTP side
    /// builds `/status`, and is made after gossip).
    pub fn say_status_with(&self, status: StatusSource) {
        *self.status.lock().expect("status lock") = Some(status);
    }

    fn status(&self) -> Option<Status> {
        self.status
            .lock()
            .expect("status lock")
            .as_ref()
            .map(|status| status())
    }

    /// Drops what [`Links::say_status_with`] set: no link opens after.
    pub fn stop(&self) {
        self.status.lock().expect("status lock").take();
        self.close_all("the node stops");
    }

    /// The linked peer at `url`.
    pub fn get(&self, url: &PeerUrl) -> Option<Arc<LinkPeer>> {
        self.by_url.lock().expect("links lock").get(url).cloned()
    }

    /// Whether `url` is linked.
    pub fn is_linked(&self, url: &PeerUrl) -> bool {
        self.by_url.lock().expect("links lock").contains_key(url)
    }

    /// How many links are up.
    pub fn count(&self) -> usize {
        self.by_url.lock().expect("links lock").len()
    }

    /// Every linked peer.
    pub fn all(&self) -> Vec<Arc<LinkPeer>> {
        self.by_url
            .lock()
            .expect("links lock")
            .values()
            .cloned()
            .collect()
    }

    /// A receiver that changes whenever a link comes up or goes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The links and the messages after `after` (about `block` only).
    pub fn answer(&self, after: Option<u64>, block: Option<&BlockHash>) -> LinksAnswer {
        let mut links: Vec<LinkView> = self.all().iter().map(|peer| peer.view()).collect();
        links.sort_by(|a, b| a.peer.cmp(&b.peer));
        let (messages, last) = self.log.since(after, block);
        LinksAnswer {
            links,
            messages,
            last,
        }
    }

    /// Whether a link to `url` may be opened now (none is up or being
    /// opened, and its retry time has come); if so, it is marked as being
    /// opened until [`Links::opened_or_failed`].
    fn start_opening(&self, url: &PeerUrl) -> bool {
        if !self.enabled || self.is_linked(url) {
            return false;
        }
        if (self.retry_at.lock().expect("retry lock").get(url))
            .is_some_and(|at| Instant::now() < *at)
        {
            return false;
        }
        self.opening
            .lock()
            .expect("opening lock")
            .insert(url.clone())
    }

    /// Ends an attempt begun by [`Links::start_opening`]; the next may come
    /// after `retry`.
    fn opened_or_failed(&self, url: &PeerUrl, retry: Duration) {
        self.opening.lock().expect("opening lock").remove(url);
        let mut retry_at = self.retry_at.lock().expect("retry lock");
        retry_at.retain(|_, at| Instant::now() < *at);
        retry_at.insert(url.clone(), Instant::now() + retry);
    }

    /// Takes `peer` in, unless a link with the same node is up that wins
    /// over it (the one opened by the smaller node id; a newer one of the
    /// same opener replaces the older), or its share is full. The link it
    /// replaces is closed.
    fn register(&self, peer: Arc<LinkPeer>) -> Result<(), LinkRefused> {
        let mut by_url = self.by_url.lock().expect("links lock");
        if let Some(existing) = by_url.get(&peer.url) {
            if existing.opener < peer.opener {
                return Err(LinkRefused::Duplicate);
            }
            existing.close("a link with this node opened by the node of smaller id replaces it");
        } else if peer.opened == Opened::Inbound {
            let inbound = by_url.values().filter(|p| p.opened == Opened::Inbound);
            let group: NetGroup = peer.url.group();
            let (mut all, mut same) = (0, 0);
            for other in inbound {
                all += 1;
                same += usize::from(other.url.group() == group);
            }
            if all >= self.most_inbound {
                return Err(LinkRefused::Full(self.most_inbound));
            }
            if same >= self.most_per_group {
                return Err(LinkRefused::GroupFull(group.to_string()));
            }
        }
        by_url.insert(peer.url.clone(), peer);
        drop(by_url);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Takes `peer` out, if it is still the one registered.
    fn deregister(&self, peer: &Arc<LinkPeer>) {
        let mut by_url = self.by_url.lock().expect("links lock");
        if by_url.get(&peer.url).is_some_and(|p| Arc::ptr_eq(p, peer)) {
            by_url.remove(&peer.url);
            drop(by_url);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Whether block `hash` should be asked for now: none is under way,
    /// or the one under way is older than [`IN_FLIGHT_FOR`] (then this
    /// one is noted as under way).
    pub fn claim(&self, hash: &BlockHash) -> bool {
        self.claim_hash(&hash.0)
    }

    /// Whether item `id` should be asked for now, as [`Links::claim`]
    /// for a block: a node hearing of an item from fifteen peers at once
    /// asks one of them.
    pub fn claim_item(&self, id: &ItemId) -> bool {
        self.claim_hash(&id.0)
    }

    fn claim_hash(&self, hash: &[u8; 32]) -> bool {
        let mut in_flight = self.in_flight.lock().expect("in flight lock");
        let now = Instant::now();
        if in_flight.len() >= MOST_IN_FLIGHT {
            // Swept at most ten times a second: a flood of new ids costs
            // no sweep each.
            let mut swept = self.swept.lock().expect("swept lock");
            if now.duration_since(*swept) >= Duration::from_millis(100) {
                *swept = now;
                in_flight.retain(|_, asked| now.duration_since(*asked) < IN_FLIGHT_FOR);
            }
            // Still full (a burst): asked for without a note rather than
            // noted without bound.
            if in_flight.len() >= MOST_IN_FLIGHT {
                return true;
            }
        }
        match in_flight.get(hash) {
            Some(asked) if now.duration_since(*asked) < IN_FLIGHT_FOR => false,
            _ => {
                in_flight.insert(*hash, now);
                true
            }
        }
    }

    /// Block `hash` came.
    pub fn landed(&self, hash: &BlockHash) {
        self.in_flight
            .lock()
            .expect("in flight lock")
            .remove(&hash.0);
    }

    /// Item `id` came.
    pub fn item_landed(&self, id: &ItemId) {
        self.in_flight.lock().expect("in flight lock").remove(&id.0);
    }

    /// Whether block `parent` is on its way from a peer (asked for less
    /// than [`IN_FLIGHT_FOR`] ago).
    pub fn coming(&self, parent: &BlockHash) -> bool {
        (self
            .in_flight
            .lock()
            .expect("in flight lock")
            .get(&parent.0))
        .is_some_and(|asked| asked.elapsed() < IN_FLIGHT_FOR)
    }

    /// Holds `block` (from `from`) until its parent is taken, at most
    /// [`MOST_HELD`] blocks, the oldest dropped first.
    pub fn hold(&self, block: Block, from: &PeerUrl, remote: Option<IpAddr>) {
        let mut held = self.held.lock().expect("held lock");
        if held.len() == MOST_HELD {
            held.pop_front();
        }
        held.push_back(Held {
            block,
            from: from.clone(),
            remote,
        });
    }

    /// The blocks held for `parent`, taken out.
    pub fn children_of(&self, parent: &BlockHash) -> Vec<Held> {
        let mut held = self.held.lock().expect("held lock");
        let (children, rest): (Vec<Held>, Vec<Held>) = held
            .drain(..)
            .partition(|h| h.block.prev_hash.block_hash() == Some(parent));
        held.extend(rest);
        children
    }

    /// Sends block `hash`, when a catch-up asked for it, to that catch-up;
    /// gives it back when none did.
    fn to_catch_up(&self, block: Block, from: &PeerUrl) -> Option<Block> {
        let expected = self.expected.lock().expect("expected lock");
        let Some(catch_ups) = expected.get(&block.hash) else {
            return Some(block);
        };
        for to in catch_ups {
            // A catch-up's channel holds what it asked for: full, it is
            // gone.
            let _ = to.try_send(Body {
                block: block.clone(),
                from: from.clone(),
            });
        }
        None
    }

    /// Sends block `hash`, when it comes, to `to`.
    fn expect(&self, hash: BlockHash, to: &mpsc::Sender<Body>) {
        let mut expected = self.expected.lock().expect("expected lock");
        expected.entry(hash).or_default().push(to.clone());
    }

    /// No longer sends block `hash` to `to`.
    fn unexpect(&self, hash: &BlockHash, to: &mpsc::Sender<Body>) {
        let mut expected = self.expected.lock().expect("expected lock");
        if let Some(catch_ups) = expected.get_mut(hash) {
            catch_ups.retain(|other| !other.same_channel(to));
            if catch_ups.is_empty() {
                expected.remove(hash);
            }
        }
    }

    /// Closes every link (the node stops).
    pub fn close_all(&self, reason: &str) {
        for peer in self.all() {
            peer.close(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(url: &str, opened: Opened, opener: &str) -> (Arc<LinkPeer>, mpsc::Receiver<Frame>) {
        let (queue, frames) = mpsc::channel(2);
        let peer = LinkPeer {
            url: PeerUrl::parse(url).unwrap(),
            opened,
            opener: serde_json::from_value(serde_json::json!(opener)).unwrap(),
            since: Instant::now(),
            queue,
            queued_bytes: Arc::default(),
            known: Mutex::default(),
            closed: CancellationToken::new(),
            close_reason: Mutex::default(),
            counters: Counters::default(),
            height: AtomicU64::new(0),
            headers_wanted: Mutex::default(),
            addr_wanted: Mutex::default(),
        };
        (Arc::new(peer), frames)
    }

    #[test]
    fn of_two_links_between_two_nodes_both_keep_the_one_the_smaller_id_opened() {
        let links = Links::new(true, 64);
        let (ours, _a) = peer("http://127.0.0.1:5002", Opened::Outbound, "bbbb");
        let (theirs, _b) = peer("http://127.0.0.1:5002", Opened::Inbound, "aaaa");
        links.register(Arc::clone(&ours)).unwrap();
        links.register(Arc::clone(&theirs)).unwrap();
        assert!(ours.closed.is_cancelled());
        assert!(Arc::ptr_eq(&links.get(&ours.url).unwrap(), &theirs));
        // The other order: the larger opener's comes second and is refused.
        let (late, _c) = peer("http://127.0.0.1:5002", Opened::Outbound, "bbbb");
        assert_eq!(links.register(late), Err(LinkRefused::Duplicate));
        // Deregistering a link no longer registered leaves the winner.
        links.deregister(&ours);
        assert!(links.is_linked(&theirs.url));
        links.deregister(&theirs);
        assert!(!links.is_linked(&theirs.url));
    }

    #[test]
    fn an_item_or_block_under_way_is_asked_of_one_peer_until_it_lands() {
        let links = Links::new(true, 64);
        let id = ItemId::of("pay bob 5");
        assert!(links.claim_item(&id));
        assert!(!links.claim_item(&id), "asked of a second announcer");
        links.item_landed(&id);
        assert!(links.claim_item(&id));
        let hash = BlockHash([3; 32]);
        assert!(links.claim(&hash) && !links.claim(&hash) && links.coming(&hash));
        links.landed(&hash);
        assert!(!links.coming(&hash));
        // Full of notes under way, it asks without noting rather than grow.
        for i in 0..MOST_IN_FLIGHT as u64 {
            links.claim_hash(
                &[i.to_le_bytes(), [0; 8], [0; 8], [1; 8]]
                    .concat()
                    .try_into()
                    .unwrap(),
            );
        }
        let fresh = ItemId::of("one more");
        assert!(links.claim_item(&fresh) && links.claim_item(&fresh));
        assert_eq!(links.in_flight.lock().unwrap().len(), MOST_IN_FLIGHT);
    }

    #[test]
    fn inbound_links_are_shared_by_network_group() {
        let links = Links::new(true, 9);
        // A public /16 holds eight.
        for port in 1..=LINKS_PER_GROUP {
            let (p, _q) = peer(&format!("http://8.8.0.{port}:5001"), Opened::Inbound, "aa");
            std::mem::forget(_q);
            links.register(p).unwrap();
        }
        let (third, _q) = peer("http://8.8.9.9:5001", Opened::Inbound, "aa");
        assert!(matches!(
            links.register(third),
            Err(LinkRefused::GroupFull(_))
        ));
        let (other, _r) = peer("http://9.9.0.1:5001", Opened::Inbound, "aa");
        links.register(other).unwrap();
        let (tenth, _t) = peer("http://7.7.0.1:5001", Opened::Inbound, "aa");
        assert_eq!(links.register(tenth), Err(LinkRefused::Full(9)));
        // Outbound links are the node's own choice, not bounded here.
        let (outbound, _s) = peer("http://8.8.7.7:5001", Opened::Outbound, "aa");
        links.register(outbound).unwrap();
    }

    #[test]
    fn a_peer_whose_queue_fills_is_closed_and_the_known_set_forgets_the_oldest() {
        let (p, _frames) = peer("http://127.0.0.1:5002", Opened::Outbound, "aa");
        assert_eq!(p.queue(Frame::Text("1".into())), Ok(()));
        assert_eq!(p.queue(Frame::Text("2".into())), Ok(()));
        assert_eq!(p.queue(Frame::Text("3".into())), Err(Gone));
        assert!(p.closed.is_cancelled());
        assert!(p.close_reason().unwrap().contains("reads too slowly"));
        let mut known = Known::default();
        for i in 0..=KNOWN_KEPT {
            assert!(known.insert((i as u64).to_le_bytes().repeat(4).try_into().unwrap()));
        }
        assert!(!known.set.contains(&[0u8; 32]));
        assert_eq!(known.set.len(), KNOWN_KEPT);
    }
}

//! The node's conversation with its peers: who gets in, and what is said.
//!
//! Each peer in the book has its own task, which syncs with it (an outbound
//! peer at start, every `sync_interval` while it answers, after growing
//! pauses while it does not; any peer at once when an announcement shows it
//! is ahead) and announces every new tip to it: the whole missing run of
//! blocks, in order, to an original node, which learns blocks only that
//! way. A slow or hostile peer therefore delays only its own task: an
//! honest peer's blocks are adopted as soon as they arrive.
//!
//! A URL gets a task only after a handshake ([`crate::handshake`]): one
//! given by the operator (`POST /peers`), one the node chose from the
//! addresses it learned (`connect`), or one that named itself in a sync
//! from the address the request came from, reached back as an inbound
//! peer (asked once at most per [`connect::INBOUND_RETRY`] however often
//! it is named). The sender an announcement names is never contacted for
//! it: at most it becomes a candidate for the address manager.
//!
//! What a sync shows against a peer is judged here by what no honest node
//! does ([`SyncError::misbehaviour`], scored by [`crate::peers::score`]);
//! a peer banned by the operator or discouraged is left alone, its task
//! waiting, while nothing else waits for it.
//!
//! Every contact is recorded in the [`PeerBook`], and the log tells the
//! operator what changed: a peer that starts failing is reported once (and
//! again only if it fails differently), with when it is tried again, a peer
//! that comes up once, with its height, a discouragement once; the routine
//! rest is at debug level.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

mod announce;
mod connect;
mod first_round;
mod flaps;
pub mod link;
mod original;
mod receive;
mod relay;
mod report;

pub use first_round::FirstRound;
use first_round::Part;
use flaps::Flaps;
use original::Fill;
pub use receive::{ReceiveError, Received};
use relay::{RELAY_QUEUE, Relayed};

use crate::client::PeerClient;
use crate::handshake::{HandshakeError, Handshaken, check_status, handshake};
use crate::peers::addrman::network_group;
use crate::peers::{AddrMan, Admitted, BookError, Contact, Identity, Origin, PeerBook, PeerUrl};
use crate::protocol::NodeId;
use crate::state::ChainState;
use crate::sync::{Outcome, SyncError, Told, catch_up, catch_up_with};

/// Handshakes with new URLs under way at once.
const HANDSHAKES_AT_ONCE: usize = 16;
/// How often what was learned of the peers is saved.
const BOOK_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// How long the first ask of a new outbound peer for addresses waits for
/// the link its task opens (a peer that takes none is asked over HTTP).
const ADDR_WAITS_FOR_LINK: Duration = Duration::from_secs(5);

/// The gossip handle: cheap to clone.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<Inner>,
}

struct Inner {
    state: ChainState,
    client: PeerClient,
    book: PeerBook,
    /// Our id for this run, which a handshake must not get back.
    node_id: NodeId,
    /// The running peer tasks.
    tasks: Mutex<HashMap<PeerUrl, PeerTask>>,
    /// Bounds the handshakes under way.
    handshakes: Semaphore,
    /// Every task stops with it.
    shutdown: CancellationToken,
    /// Every task started, so that shutdown can wait for them.
    running: TaskTracker,
    /// New data items, for every peer's task to relay.
    items: tokio::sync::broadcast::Sender<Relayed>,
    /// When blocks of unknown parent last woke the peers: at most once
    /// per [`receive::UNLINKED_WAKE_INTERVAL`], however often one is
    /// replayed.
    unlinked_wake: Mutex<Option<std::time::Instant>>,
    /// Each peer's recent failures and recoveries, per kind of contact.
    flaps: Mutex<HashMap<(PeerUrl, Contact), Flaps>>,
    /// The addresses the node could connect to.
    addrman: Arc<AddrMan>,
    /// How many outbound peers the node chooses from them.
    outbound_target: usize,
    /// Wakes the connector: a chosen peer went, or addresses came.
    connect_wake: Notify,
    /// Whether the target was reached once (said once).
    joined: std::sync::atomic::AtomicBool,
    /// When the node last asked for addresses for want of candidates.
    address_requests: Mutex<connect::AddressRequests>,
    /// The answer to `GET /peers/addr`.
    address_cache: Mutex<Option<connect::AddressCache>>,
    /// The live links with peers of this software.
    links: link::Links,
}

/// What a peer task has told the log and need not repeat while it lasts.
#[derive(Default)]
struct Said {
    /// The peer's chain was longer than ours but had less work.
    refused_longer: bool,
    /// The chain it served had holes.
    holes: bool,
    /// It is banned or discouraged, and left alone meanwhile.
    left_alone: bool,
}

/// A peer's task, as the manager holds it.
struct PeerTask {
    /// Tells this task from a later one for the same URL.
    id: u64,
    cancel: CancellationToken,
    /// Wakes the task for a sync now.
    wake: Arc<Notify>,
    /// What an original peer lacks.
    fill: Arc<Fill>,
}

/// How the node deals with its peers, from its settings.
#[derive(Debug, Clone, Copy)]
pub struct GossipSettings {
    /// Outbound peers it chooses from the addresses it learned.
    pub outbound_target: usize,
    /// Whether it talks to peers of this software over live links.
    pub links: bool,
}

/// What [`Gossip::consider`] did with a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Considered {
    /// It passed the handshake and is now a peer.
    Added,
    /// It was a peer already.
    Known,
    /// The node is a peer already under another URL.
    Alias { of: PeerUrl },
}

/// Why a URL did not become a peer.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not added: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("not added: {0}")]
    Book(#[from] BookError),
    #[error("not asked again: it was tried recently")]
    TriedRecently,
}

impl Gossip {
    pub fn new(
        state: ChainState,
        client: PeerClient,
        book: PeerBook,
        node_id: NodeId,
        addrman: Arc<AddrMan>,
        settings: GossipSettings,
        shutdown: CancellationToken,
    ) -> Gossip {
        let GossipSettings {
            outbound_target,
            links,
        } = settings;
        let links = link::Links::new(links, link::inbound_links_for(book.limits().inbound));
        Gossip {
            inner: Arc::new(Inner {
                state,
                client,
                book,
                node_id,
                tasks: Mutex::new(HashMap::new()),
                handshakes: Semaphore::new(HANDSHAKES_AT_ONCE),
                shutdown,
                running: TaskTracker::new(),
                items: tokio::sync::broadcast::channel(RELAY_QUEUE).0,
                unlinked_wake: Mutex::new(None),
                flaps: Mutex::new(HashMap::new()),
                addrman,
                outbound_target,
                connect_wake: Notify::new(),
                joined: Default::default(),
                address_requests: Mutex::default(),
                address_cache: Mutex::new(None),
                links,
            }),
        }
    }

    /// The address book.
    pub fn book(&self) -> &PeerBook {
        &self.inner.book
    }

    /// Our id for this run.
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node_id
    }

    /// Resolves once every task gossip started has ended: call it after
    /// shutdown, so the node stops with nothing of it still running.
    pub async fn stopped(&self) {
        self.inner.links.stop();
        self.inner.running.close();
        self.inner.running.wait().await;
        // What the last tasks learned (an address that answered a moment
        // before the stop) is saved with the rest.
        let gossip = self.clone();
        let _ = tokio::task::spawn_blocking(move || gossip.inner.addrman.flush()).await;
    }

    /// Runs `task` as one of gossip's tasks, dropped at shutdown.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.inner.shutdown.clone();
        self.inner.running.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// The peer client.
    pub fn client(&self) -> &PeerClient {
        &self.inner.client
    }

    /// The live links.
    pub fn links(&self) -> &link::Links {
        &self.inner.links
    }

    /// The address manager.
    pub fn addrman(&self) -> &AddrMan {
        &self.inner.addrman
    }

    /// Starts a task for every peer in the book, the connector that keeps
    /// the outbound peers, and the periodic save of the book and the
    /// addresses. Returns at once, with the first round of syncs, which
    /// the miner waits for (bounded); nothing else waits for a peer.
    pub fn start(&self) -> FirstRound {
        let urls = self.inner.book.urls();
        let (round, parts) = FirstRound::of(urls.len());
        for (url, part) in urls.into_iter().zip(parts) {
            self.spawn_peer(url, None, Some(part));
        }
        let gossip = self.clone();
        self.spawn(async move { gossip.keep_outbound().await });
        let gossip = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.running.spawn(async move {
            let mut flush = tokio::time::interval(BOOK_FLUSH_INTERVAL);
            flush.tick().await;
            loop {
                tokio::select! {
                    _ = flush.tick() => {}
                    _ = shutdown.cancelled() => {
                        gossip.inner.book.flush();
                        gossip.inner.addrman.flush();
                        return;
                    }
                }
                let gossip = gossip.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    gossip.inner.book.flush();
                    gossip.inner.addrman.flush();
                })
                .await;
            }
        });
        round
    }

    /// Asks for a sync now with `peer`, or with every peer.
    pub fn request_sync(&self, peer: Option<&PeerUrl>) {
        let tasks = self.inner.tasks.lock().expect("tasks lock");
        match peer {
            Some(peer) => {
                if let Some(task) = tasks.get(peer) {
                    task.wake.notify_one();
                }
            }
            None => tasks.values().for_each(|task| task.wake.notify_one()),
        }
    }

    /// Handshakes with `url` and, if it passes, makes it a peer. A would-be
    /// inbound peer (a URL named in a request) is asked at most once per
    /// [`connect::INBOUND_RETRY`].
    pub async fn consider(&self, url: PeerUrl, origin: Origin) -> Result<Considered, Refusal> {
        let book = &self.inner.book;
        if origin != Origin::Added {
            if let Some(ban) = book.ban(&url) {
                return Err(BookError::Banned {
                    until: ban.until,
                    reason: ban.reason,
                }
                .into());
            }
            if let Some(discouraged) = book.discouraged(&url) {
                return Err(BookError::Discouraged {
                    seconds: discouraged
                        .until
                        .saturating_duration_since(std::time::Instant::now())
                        .as_secs(),
                    reason: discouraged.reason,
                }
                .into());
            }
        }
        // The operator adding a peer the node found by itself makes it one
        // the node keeps.
        let upgrade = origin == Origin::Added
            && matches!(book.origin(&url), Some(Origin::Inbound | Origin::Learned));
        if book.contains(&url) && !upgrade {
            return if book.urls().contains(&url) {
                Ok(Considered::Known)
            } else {
                Err(HandshakeError::Itself.into())
            };
        }
        if origin == Origin::Inbound && !book.first_attempt(&url, connect::INBOUND_RETRY) {
            return Err(Refusal::TriedRecently);
        }
        let handshaken = {
            let _permit = self.inner.handshakes.acquire().await.expect("never closed");
            let network = self.inner.state.network();
            handshake(
                &self.inner.client,
                &url,
                origin,
                network,
                &self.inner.node_id,
            )
            .await
        };
        match origin {
            Origin::Learned => self.inner.addrman.attempted(&url, handshaken.is_ok()),
            // It answered at the address it gave: an address worth keeping,
            // whether or not it ever named itself to us in a sync (it may
            // have announced first), and whether or not the book has room.
            Origin::Inbound if handshaken.is_ok() => {
                self.inner.addrman.add(&url, &network_group(&url));
                self.inner.addrman.attempted(&url, true);
            }
            _ => {}
        }
        let handshaken = handshaken?;
        let identity = handshaken.identity();
        let admitted = {
            let (book, url, identity) = (book.clone(), url.clone(), identity.clone());
            tokio::task::spawn_blocking(move || book.admit(&url, origin, identity))
                .await
                .expect("admitting does not panic")?
        };
        match admitted {
            // Decided by the book, not by what it held before the
            // handshake: the peer may have come in meanwhile.
            Admitted::Promoted { from } if origin == Origin::Added => {
                let found = match from {
                    Origin::Inbound => "inbound: it synced from us",
                    _ => "one the node found",
                };
                info!(peer = %url, "{url} is now a peer added by the operator (it was {found})");
                self.request_sync(Some(&url));
                Ok(Considered::Added)
            }
            Admitted::Known | Admitted::Promoted { .. } => Ok(Considered::Known),
            Admitted::Alias { of } => Ok(Considered::Alias { of }),
            Admitted::New { evicted } => {
                if let Some(evicted) = evicted {
                    self.stop_peer(&evicted);
                    info!(peer = %evicted, "evicted {evicted} (failing longest) to make room for {url}");
                }
                let what = match identity {
                    Identity::Jbc { version, .. } => version,
                    Identity::Original => "an original node".into(),
                };
                let kind = match origin {
                    Origin::Config => "configured",
                    Origin::Added => "added by the operator",
                    Origin::Learned => "outbound, chosen from the addresses learned",
                    Origin::Inbound => "inbound: it syncs from us",
                };
                info!(peer = %url, "new peer {url} ({what}, {kind}): it passed the handshake");
                self.spawn_peer(url, Some(handshaken), None);
                Ok(Considered::Added)
            }
        }
    }

    /// Bans `url` for `time` at the operator's word: it is not contacted
    /// nor taken back until then (a configured peer stays in the book, left
    /// alone).
    pub fn ban(
        &self,
        url: &PeerUrl,
        time: Duration,
        reason: &str,
    ) -> Result<crate::peers::Ban, BookError> {
        let ban = self.inner.book.ban_by_operator(url, time, reason)?;
        if !self.inner.book.contains(url) {
            self.stop_peer(url);
        }
        self.inner.addrman.forget(url);
        warn!(
            peer = %url,
            "the operator banned {url} for {}: {reason}",
            crate::human::duration_in_words(time.as_secs_f64())
        );
        Ok(ban)
    }

    /// Cuts the node off from its peers at the operator's word (a planned
    /// split, maintenance, a fork made on purpose): its links close, and no
    /// peer is synced with, announced to, relayed to or heard from (a
    /// peer's request gets 503) until [`Gossip::rejoin`]. It keeps mining
    /// alone. False if it was isolated already.
    pub fn isolate(&self) -> bool {
        if !self.inner.book.set_isolated(true) {
            return false;
        }
        self.inner.links.close_all("isolated by its operator");
        warn!(
            "isolated by the operator: no peer is synced with, told of blocks or heard from \
             until `jbc rejoin`; mining goes on alone"
        );
        true
    }

    /// Ends an isolation: every peer is synced with at once, so the network
    /// settles on the chain with the most work. False if it was not
    /// isolated.
    pub fn rejoin(&self) -> bool {
        if !self.inner.book.set_isolated(false) {
            return false;
        }
        info!("rejoined the network at the operator's word: syncing with every peer now");
        self.request_sync(None);
        self.inner.connect_wake.notify_one();
        true
    }

    /// Whether the operator cut the node off from its peers.
    pub fn is_isolated(&self) -> bool {
        self.inner.book.is_isolated()
    }

    /// Lifts the operator's ban on `url`, and forgets its misbehaviour (the
    /// operator's word); false if it had neither. A configured peer left
    /// alone is synced with at once.
    pub fn unban(&self, url: &PeerUrl) -> Result<bool, BookError> {
        let lifted = self.inner.book.unban(url)?;
        if lifted {
            info!(peer = %url, "lifted the ban on {url}, and forgot its misbehaviour");
            self.request_sync(Some(url));
        }
        Ok(lifted)
    }

    /// Takes `url` out of the book and stops talking to it.
    pub fn remove(&self, url: &PeerUrl) -> Result<bool, BookError> {
        let removed = self.inner.book.remove(url)?;
        if removed {
            self.inner.addrman.forget(url);
            self.stop_peer(url);
            info!(peer = %url, "removed peer {url}");
        }
        Ok(removed)
    }

    fn stop_peer(&self, url: &PeerUrl) {
        if let Some(task) = self.inner.tasks.lock().expect("tasks lock").remove(url) {
            task.cancel.cancel();
        }
        // A peer no longer talked to leaves no record of its flapping.
        (self.inner.flaps.lock().expect("flaps lock")).retain(|(peer, _), _| peer != url);
    }

    /// Starts `url`'s task, unless it runs already; `handshaken`: what its
    /// handshake fetched a moment ago, for its first sync; `part`: its part
    /// in the first round of syncs, for a start-up peer.
    fn spawn_peer(&self, url: PeerUrl, handshaken: Option<Handshaken>, part: Option<Part>) {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut tasks = self.inner.tasks.lock().expect("tasks lock");
        if tasks.contains_key(&url) {
            return;
        }
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cancel = self.inner.shutdown.child_token();
        let wake = Arc::new(Notify::new());
        let fill = Arc::new(Fill::default());
        tasks.insert(
            url.clone(),
            PeerTask {
                id,
                cancel: cancel.clone(),
                wake: Arc::clone(&wake),
                fill: Arc::clone(&fill),
            },
        );
        let gossip = self.clone();
        self.inner.running.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = gossip.run_peer(&url, &wake, &fill, handshaken, part) => {}
            }
            let mut tasks = gossip.inner.tasks.lock().expect("tasks lock");
            if tasks.get(&url).is_some_and(|task| task.id == id) {
                tasks.remove(&url);
            }
        });
    }

    /// One peer's task: syncing and announcing, until it is stopped or
    /// turns out to be ourselves.
    async fn run_peer(
        &self,
        peer: &PeerUrl,
        wake: &Notify,
        fill: &Arc<Fill>,
        mut handshaken: Option<Handshaken>,
        mut part: Option<Part>,
    ) {
        // Tells the announcer the peer answered for the first time in this
        // task (a handshake just passed, or a peer added, or known from the
        // book after a restart), so it hears of our tip at once rather than
        // at the next block.
        let answered = Notify::new();
        let syncing = async {
            // What the last syncs showed, to say it once rather than each
            // time.
            let mut said = Said::default();
            let mut heard_from = false;
            loop {
                // Banned by the operator, or discouraged: left alone until
                // then (or until the operator lifts it, which wakes us).
                if let Some((left, why)) = self.inner.book.left_alone(peer) {
                    if !said.left_alone {
                        info!(
                            peer = %peer,
                            "{peer} is left alone for {}: {why} (tried again then)",
                            crate::human::duration_in_words(left.as_secs_f64())
                        );
                        said.left_alone = true;
                    }
                    handshaken = None;
                    drop(part.take());
                    tokio::select! {
                        _ = tokio::time::sleep(left.max(Duration::from_secs(1))) => {}
                        _ = wake.notified() => {}
                    }
                    continue;
                }
                said.left_alone = false;
                let go_on = self
                    .sync_once(peer, fill, &mut said, handshaken.take())
                    .await;
                drop(part.take());
                if !heard_from
                    && self.inner.book.identity(peer).is_some()
                    && !self.inner.book.is_failing(peer)
                {
                    heard_from = true;
                    answered.notify_one();
                    // An outbound peer is asked once what nodes it knows.
                    if matches!(self.inner.book.identity(peer), Some(Identity::Jbc { .. }))
                        && self.inner.book.origin(peer) != Some(Origin::Inbound)
                    {
                        let (gossip, peer) = (self.clone(), peer.clone());
                        self.spawn(async move {
                            // Over the link this task opens next, when
                            // the peer takes one; over HTTP otherwise.
                            gossip.until_linked(&peer, ADDR_WAITS_FOR_LINK).await;
                            gossip.ask_for_addresses(&peer).await;
                        });
                    }
                }
                if !go_on {
                    return;
                }
                // An inbound peer syncs from us; we sync from it only when
                // it shows it is ahead.
                if self.inner.book.origin(peer) == Some(Origin::Inbound) {
                    wake.notified().await;
                    continue;
                }
                if matches!(self.inner.book.identity(peer), Some(Identity::Jbc { .. }))
                    && !self.inner.book.is_failing(peer)
                {
                    self.link_to(peer);
                }
                self.until_next_sync(peer, wake).await;
            }
        };
        tokio::select! {
            _ = syncing => {}
            _ = self.announce_to(peer, &answered, fill) => {}
            _ = self.relay_items_to(peer) => {}
        }
    }

    /// Waits until `peer` is linked, `most` at most (not at all when this
    /// node opens no links).
    async fn until_linked(&self, peer: &PeerUrl, most: Duration) {
        let links = &self.inner.links;
        if !links.enabled {
            return;
        }
        let mut changes = links.changes();
        let _ = tokio::time::timeout(most, async {
            while !links.is_linked(peer) {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Waits until `peer` is due for a sync: woken (it showed it is
    /// ahead, the operator asked), or its pause over while it is not
    /// linked. A linked peer is never polled: a link that goes down makes
    /// it due at once (its pause long over), so what was said meanwhile is
    /// caught up with over HTTP before it links again.
    async fn until_next_sync(&self, peer: &PeerUrl, wake: &Notify) {
        let due = tokio::time::Instant::now() + self.inner.book.next_sync_in(peer);
        let mut links = self.inner.links.changes();
        loop {
            let linked = self.inner.links.is_linked(peer);
            tokio::select! {
                _ = wake.notified() => return,
                _ = tokio::time::sleep_until(due), if !linked => return,
                changed = links.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }

    /// Checks who `peer` is, then catches up with it; `handshaken`: what
    /// its handshake fetched a moment ago, which answers the first
    /// question. False when it turned out to be this node itself (nothing
    /// more is said to it).
    async fn sync_once(
        &self,
        peer: &PeerUrl,
        fill: &Arc<Fill>,
        said: &mut Said,
        handshaken: Option<Handshaken>,
    ) -> bool {
        let inner = &self.inner;
        let told = match handshaken {
            Some(Handshaken::Jbc { status, .. }) => Told::Status(status),
            Some(Handshaken::Original { chain }) => Told::NoStatus { chain: Some(chain) },
            None => match self.ask_who(peer).await {
                Ok(told) => told,
                Err(go_on) => return go_on,
            },
        };
        let original = matches!(told, Told::NoStatus { .. });
        if original {
            fill.sync_started();
        }
        // A linked peer not far ahead: headers, then bodies, over the
        // links; further, the HTTP pages (a thousand blocks a request).
        let linked = inner.links.get(peer).filter(|_| match &told {
            Told::Status(status) => {
                status.height <= inner.state.tip_cursor().index + link::MOST_OVER_LINKS
            }
            Told::NoStatus { .. } => false,
        });
        let outcome = match (&told, linked) {
            (Told::Status(status), Some(link)) => {
                let source = link::LinkSource::new(self, link);
                catch_up_with(&inner.state, &inner.client, peer, status, &source).await
            }
            _ => catch_up(&inner.state, &inner.client, peer, told).await,
        };
        if original {
            let (fill, state, served) = (
                Arc::clone(fill),
                inner.state.clone(),
                outcome.served().cloned(),
            );
            let lacking =
                tokio::task::spawn_blocking(move || fill.sync_ended(served.as_ref(), &state))
                    .await
                    .unwrap_or_default();
            if lacking > 0 {
                debug!(peer = %peer, lacking, "{peer} lacks {lacking} of our blocks: sending them");
            }
        }
        match &outcome {
            Outcome::Failed(SyncError::Raced) => {
                debug!(peer = %peer, "sync with {peer}: {outcome}");
                self.request_sync(Some(peer));
            }
            Outcome::Failed(error) => {
                self.report_failure(peer, Contact::Sync, error.failure(), error);
                self.penalise(peer, error);
            }
            _ => self.report_sync(peer, &outcome),
        }
        let longer = matches!(outcome, Outcome::NotBetter { longer: true, .. });
        if longer && !said.refused_longer {
            info!(peer = %peer, "the chain of {peer} is longer than ours but has less work: ours is kept (said once while this lasts)");
        }
        said.refused_longer = longer;
        let holes = outcome
            .served()
            .is_some_and(|served| served.hole_count() > 0);
        if holes && !said.holes {
            let served = outcome.served().expect("checked above");
            info!(peer = %peer, "{peer} serves {served}: the blocks it lacks are sent to it (said once while this lasts)");
        }
        said.holes = holes;
        true
    }

    /// Asks `peer` who it is (its `/status`, naming ourselves so it
    /// reaches us back), checks the answer as the handshake does, and notes
    /// what it found. `Err(go_on)` when there is nothing to sync: it failed
    /// (true: tried again later), or it is this node itself (false).
    async fn ask_who(&self, peer: &PeerUrl) -> Result<Told, bool> {
        let inner = &self.inner;
        let status = match inner.client.status(peer, true).await {
            Ok(status) => status,
            Err(error) => {
                let error = SyncError::from(error);
                self.report_failure(peer, Contact::Sync, error.failure(), &error);
                self.penalise(peer, &error);
                return Err(true);
            }
        };
        let (told, identity) = match status {
            Some(status) => match check_status(&status, inner.state.network(), &inner.node_id) {
                Ok(identity) => (Told::Status(Box::new(status)), identity),
                Err(HandshakeError::Itself) => {
                    inner.book.mark_itself(peer);
                    info!(peer = %peer, "{peer} is this node itself (it answered with our node id); it is not contacted again");
                    return Err(false);
                }
                Err(error) => {
                    let error = SyncError::Handshake(error);
                    self.report_failure(peer, Contact::Sync, error.failure(), &error);
                    return Err(true);
                }
            },
            None if matches!(
                inner.book.origin(peer),
                Some(Origin::Learned | Origin::Inbound)
            ) =>
            {
                let error = SyncError::Handshake(HandshakeError::OriginalNotNamed);
                self.report_failure(peer, Contact::Sync, error.failure(), &error);
                return Err(true);
            }
            None => (Told::NoStatus { chain: None }, Identity::Original),
        };
        if inner.book.identity(peer).as_ref() != Some(&identity) {
            let (book, url) = (inner.book.clone(), peer.clone());
            let _ = tokio::task::spawn_blocking(move || book.set_identity(&url, identity)).await;
        }
        Ok(told)
    }
}

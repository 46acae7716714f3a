//! The node's conversation with its peers over time: a task that catches up
//! with them (at startup, every `sync_interval`, and when an announcement
//! shows a peer is ahead) and one task per peer that announces every new
//! tip to it.
//!
//! Every contact with a peer is recorded in the [`PeerBook`], and the log
//! tells the operator what changed: a peer that starts failing is reported
//! once (and again only if it fails differently), a peer that comes up once,
//! with its height; the routine rest is at debug level.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::client::{PeerClient, PeerError};
use crate::peers::{Change, Contact, PeerBook, PeerUrl};
use crate::state::ChainState;
use crate::sync::{Outcome, catch_up};

/// Asks the sync task to catch up with a peer (or with all of them).
#[derive(Clone)]
pub struct SyncRequests {
    sender: mpsc::Sender<Option<PeerUrl>>,
}

impl SyncRequests {
    /// Asks for a sync with `peer` (`None`: all peers). Requests that arrive
    /// while the queue is full are dropped: the periodic sync covers them.
    pub fn request(&self, peer: Option<PeerUrl>) {
        let _ = self.sender.try_send(peer);
    }
}

/// The parts every gossip task needs.
#[derive(Clone)]
pub struct Gossip {
    pub state: ChainState,
    pub client: PeerClient,
    pub book: PeerBook,
    /// How often the sync task asks every peer for its status.
    pub sync_interval: Duration,
}

impl Gossip {
    /// Syncs with every peer in `peers` at once, so that a slow or hostile
    /// peer costs only its own timeouts; adoptions are serialised by the
    /// chain state, and each only happens if it still makes a better chain.
    pub async fn sync_with(&self, peers: &[PeerUrl]) -> Vec<Outcome> {
        join_all(peers.iter().map(|peer| async move {
            let outcome = catch_up(&self.state, &self.client, peer).await;
            self.report_sync(peer, &outcome);
            outcome
        }))
        .await
    }

    /// Records a sync's outcome and logs what is news. (An adoption has
    /// been told in words by the chain state already.)
    fn report_sync(&self, peer: &PeerUrl, outcome: &Outcome) {
        let height = match outcome {
            Outcome::Failed(error) => return self.report_failure(peer, Contact::Sync, error),
            Outcome::Adopted { height, .. } | Outcome::NotBetter { height } => *height,
        };
        match self.book.record_success(peer, Contact::Sync) {
            Change::FirstAnswer => info!(peer = %peer, "peer {peer} is up, at height {height}"),
            Change::Recovered { failures } => info!(
                peer = %peer,
                "peer {peer} is up again, at height {height} (after {failures} failed contacts)"
            ),
            _ => {}
        }
        debug!(peer = %peer, "sync with {peer}: {outcome}");
    }

    /// Records a failed contact and logs it if it is news.
    fn report_failure(&self, peer: &PeerUrl, contact: Contact, error: &PeerError) {
        let what = match contact {
            Contact::Sync => "sync with",
            Contact::Announce => "announcing to",
        };
        match self.book.record_failure(peer, contact, error.kind()) {
            Change::StillFailing { failures } => {
                debug!(peer = %peer, failures, "{what} {peer} failed again: {error}")
            }
            _ => {
                let again = match contact {
                    Contact::Sync => format!("tried again every {:?}", self.sync_interval),
                    Contact::Announce => "each new block is offered again".to_string(),
                };
                warn!(
                    peer = %peer,
                    "{what} {peer} failed: {error} ({again}; logged again only when this changes)"
                )
            }
        }
    }

    /// Starts the task that runs one sync round at a time: on request and
    /// every `sync_interval` with all peers.
    pub fn start_sync_task(&self, shutdown: CancellationToken) -> SyncRequests {
        let (sender, mut receiver) = mpsc::channel::<Option<PeerUrl>>(64);
        let gossip = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(gossip.sync_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => None,
                    request = receiver.recv() => match request {
                        Some(request) => request,
                        None => return,
                    },
                };
                // Fold everything queued meanwhile into one round.
                let mut wanted: HashSet<PeerUrl> = HashSet::new();
                let mut all = first.is_none();
                wanted.extend(first);
                while let Ok(request) = receiver.try_recv() {
                    match request {
                        Some(peer) => {
                            wanted.insert(peer);
                        }
                        None => all = true,
                    }
                }
                let peers = if all {
                    gossip.book.list()
                } else {
                    wanted.into_iter().collect()
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = gossip.sync_with(&peers) => {}
                }
            }
        });
        SyncRequests { sender }
    }

    /// Starts an announcer for each peer in the book now, and for each peer
    /// `added` yields later.
    pub fn start_announcers(
        &self,
        mut added: mpsc::UnboundedReceiver<PeerUrl>,
        shutdown: CancellationToken,
    ) {
        for peer in self.book.list() {
            self.start_announcer(peer, shutdown.clone());
        }
        let gossip = self.clone();
        tokio::spawn(async move {
            while let Some(peer) = tokio::select! {
                peer = added.recv() => peer,
                _ = shutdown.cancelled() => None,
            } {
                gossip.start_announcer(peer, shutdown.clone());
            }
        });
    }

    /// Announces every new tip to `peer` until shutdown. Tips that arrive
    /// while an announcement is in flight are folded into the next one, so
    /// a slow peer only delays its own announcements.
    fn start_announcer(&self, peer: PeerUrl, shutdown: CancellationToken) {
        let mut tips = self.state.subscribe();
        tips.borrow_and_update();
        let gossip = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = tips.changed() => if changed.is_err() { return },
                }
                let tip = tips.borrow_and_update().clone();
                if tip.source.is_from(&peer) {
                    continue;
                }
                let announced = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    result = gossip.client.announce(&peer, &tip.block) => result,
                };
                let index = tip.block.index;
                match announced {
                    Ok(answer) => {
                        if let Change::Recovered { failures } =
                            gossip.book.record_success(&peer, Contact::Announce)
                        {
                            info!(peer = %peer, "announcing to {peer} works again (after {failures} failures)");
                        }
                        debug!(peer = %peer, index, "announced block {index}: {answer}");
                    }
                    Err(error) => gossip.report_failure(&peer, Contact::Announce, &error),
                }
            }
        });
    }
}

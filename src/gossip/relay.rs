//! Data items on their way between nodes: each new item is offered to
//! every peer of this software but the one it came from, one peer's queue
//! at a time, and a peer that comes up is offered what waits in the pool,
//! as a Bitcoin node sends its mempool to a new peer.

use std::sync::Arc;

use tracing::debug;

use super::Gossip;
use crate::client::FetchError;
use crate::peers::{Identity, PeerUrl};

/// Data items waiting to be relayed to a peer; beyond, they are dropped
/// for that peer.
pub(super) const RELAY_QUEUE: usize = 4096;

/// A data item to relay, and the peer it came from.
#[derive(Debug, Clone)]
pub(super) struct Relayed {
    pub(super) text: Arc<str>,
    pub(super) from: Option<PeerUrl>,
}

impl Gossip {
    /// Offers a new data item to every peer (but the one it came from).
    pub fn relay_item(&self, text: String, from: Option<PeerUrl>) {
        // Nobody listening (no peers) is no error.
        let _ = self.inner.items.send(Relayed {
            text: text.into(),
            from,
        });
    }

    /// Posts every new data item to `peer`, one at a time, until the
    /// channel closes. A node without the data endpoints (an original one,
    /// or one that answers 404) is skipped without noise; items that pile
    /// up faster than a peer takes them are dropped for it (every node that
    /// has an item mines it, and the node it reached relays it too).
    pub(super) async fn relay_items_to(&self, peer: &PeerUrl) {
        let mut items = self.inner.items.subscribe();
        let mut has_endpoint = true;
        loop {
            let item = match items.recv().await {
                Ok(item) => item,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(peer = %peer, missed, "relaying to {peer} fell behind; {missed} items not offered");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if !has_endpoint || item.from.as_ref() == Some(peer) {
                continue;
            }
            // A linked peer hears of it over its link.
            if !matches!(self.inner.book.identity(peer), Some(Identity::Jbc { .. }))
                || self.inner.book.left_alone(peer).is_some()
                || self.inner.links.is_linked(peer)
            {
                continue;
            }
            match self.inner.client.relay_item(peer, &item.text).await {
                Ok(()) => {}
                Err(FetchError::Status(404 | 405)) => {
                    debug!(peer = %peer, "{peer} has no /data: items are not relayed to it");
                    has_endpoint = false;
                }
                Err(error) => debug!(peer = %peer, "relaying an item to {peer} failed: {error}"),
            }
        }
    }

    /// Offers a peer that has just come up every item waiting in our pool,
    /// oldest first, as a Bitcoin node sends its mempool to a new peer:
    /// items relayed while it was down, or before its handshake, would
    /// otherwise never reach it. It takes the ones it has as known.
    pub(super) fn offer_waiting_items(&self, peer: &PeerUrl) {
        if !matches!(self.inner.book.identity(peer), Some(Identity::Jbc { .. })) {
            return;
        }
        let items = self.inner.state.pool().select(usize::MAX, |_| false);
        if items.is_empty() {
            return;
        }
        let (gossip, peer) = (self.clone(), peer.clone());
        self.spawn(async move {
            let count = items.len();
            for text in items {
                if gossip.inner.shutdown.is_cancelled() {
                    return;
                }
                if let Err(error) = gossip.inner.client.relay_item(&peer, &text).await {
                    debug!(peer = %peer, "offering our waiting items to {peer} stopped: {error}");
                    return;
                }
            }
            debug!(peer = %peer, "offered {count} waiting items to {peer}");
        });
    }
}

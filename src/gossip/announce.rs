//! Telling peers of our blocks: every new tip to a node of this software
//! (folded when they come faster than it takes them), and to an original
//! node, which learns blocks only that way, what its [`Fill`] plans, one
//! block per [`FILL_GAP`]. Nothing goes to a peer before its handshake, nor
//! to one left alone (banned or discouraged).

use tokio::sync::Notify;
use tracing::{debug, info};

use super::Gossip;
use super::original::{FILL_GAP, Fill};
use crate::block::{Block, BlockHash};
use crate::peers::{Change, Contact, Identity, PeerUrl};
use crate::state::Source;

impl Gossip {
    /// Announces every new tip to `peer` until the tip channel closes, and
    /// the current one when its handshake passes. Tips that arrive while an
    /// announcement is in flight are folded into the next one, so a slow
    /// peer only delays its own announcements. An original peer gets what
    /// its `fill` plans instead, after each sync and each new tip.
    pub(super) async fn announce_to(&self, peer: &PeerUrl, handshaken: &Notify, fill: &Fill) {
        let inner = &self.inner;
        let mut tips = inner.state.subscribe();
        tips.borrow_and_update();
        loop {
            tokio::select! {
                changed = tips.changed() => if changed.is_err() { return },
                _ = handshaken.notified() => {}
                _ = fill.wanted() => {}
            }
            let tip = tips.borrow_and_update().clone();
            match inner.book.identity(peer) {
                // Every node has the genesis block; a peer need not hear
                // of its own block again.
                // A linked peer hears of it over its link.
                Some(Identity::Jbc { .. })
                    if tip.block.index > 0
                        && !tip.source.is_from(peer)
                        && !inner.links.is_linked(peer) =>
                {
                    self.announce(peer, &tip.block).await;
                }
                Some(Identity::Original) => {
                    if !matches!(tip.source, Source::Mined | Source::Announced(None)) {
                        fill.left_to_sync(tip.block.index);
                    }
                    self.fill_original(peer, fill).await
                }
                // Nothing is sent to a URL before its handshake.
                _ => {}
            }
        }
    }

    /// Sends an original peer what it lacks, oldest first, one block per
    /// [`FILL_GAP`], until nothing is left or a send fails (the next sync
    /// or tip tries again).
    async fn fill_original(&self, peer: &PeerUrl, fill: &Fill) {
        while let Some(block) = fill.next(&self.inner.state) {
            if !self.announce(peer, &block).await {
                fill.not_sent(block.index);
                return;
            }
            tokio::time::sleep(FILL_GAP).await;
        }
    }

    /// The original peers at `remote`, the address a request came from: a
    /// block an original announces comes without a peer header, and is
    /// told from others' only by that.
    pub fn originals_at(&self, remote: std::net::IpAddr) -> Vec<PeerUrl> {
        let book = &self.inner.book;
        book.urls()
            .into_iter()
            .filter(|url| url.is_at(remote) && book.identity(url) == Some(Identity::Original))
            .collect()
    }

    /// Notes that `peer`, an original, gave us block `index` (`hash`): it is
    /// never sent back to it.
    pub fn came_from_original(&self, peer: &PeerUrl, index: u64, hash: BlockHash) {
        if let Some(task) = self.inner.tasks.lock().expect("tasks lock").get(peer) {
            task.fill.came_from_it(index, hash);
        }
    }

    /// Posts one block to `peer`; true if it was taken. Nothing is sent to
    /// a peer left alone (banned or discouraged).
    async fn announce(&self, peer: &PeerUrl, block: &Block) -> bool {
        if self.inner.book.left_alone(peer).is_some() {
            return false;
        }
        let index = block.index;
        match self.inner.client.announce(peer, block).await {
            Ok(answer) => {
                let change = self
                    .inner
                    .book
                    .record_success(peer, Contact::Announce, None);
                if let Change::Recovered { failures } = change
                    && self.said_as_usual(peer, Contact::Announce, &change, None)
                {
                    info!(peer = %peer, "announcing to {peer} works again (after {failures} failures)");
                }
                debug!(peer = %peer, index, "announced block {index}: {answer}");
                true
            }
            Err(error) => {
                self.report_failure(peer, Contact::Announce, error.failure(), &error);
                false
            }
        }
    }
}

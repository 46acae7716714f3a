//! What happens on the node, as a stream of events: a new tip, a reorg, a
//! peer changing state, a data item taken or confirmed. `GET /events` sends
//! them to browsers as Server-Sent Events; the explorer page lives on them.
//!
//! The hub is a broadcast channel: publishing never waits for a listener,
//! and a listener that falls behind is told how many events it missed
//! rather than holding up the node. Publishers are the chain state (tips,
//! reorgs, data) and the peer watcher ([`crate::peers::watch_peers`], peer
//! states). It does not count
//! anything for metrics; [`crate::state`] and [`crate::stats`] do.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::block::{Block, BlockHash};
use crate::item::ItemId;

/// Events kept for a listener that is slow to read; beyond, it misses some.
const CAPACITY: usize = 1024;

/// A block as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockRef {
    pub index: u64,
    pub hash: BlockHash,
}

impl From<&Block> for BlockRef {
    fn from(block: &Block) -> BlockRef {
        BlockRef {
            index: block.index,
            hash: block.hash,
        }
    }
}

/// One thing that happened. Serialised with its kind in `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The chain grew on its tip by `added` blocks (mined, announced or
    /// synced; `source` says which, in words).
    Tip {
        tip: BlockRef,
        added: u64,
        source: String,
    },
    /// The chain switched branches: `depth` blocks after block `fork` left
    /// it, for a branch ending at `new_tip`.
    Reorg {
        depth: u64,
        fork: u64,
        old_tip: BlockRef,
        new_tip: BlockRef,
        source: String,
    },
    /// A valid block arrived that is not on the chain and did not make a
    /// better one (a side block: a fork seen from here).
    SideBlock { block: BlockRef, source: String },
    /// A peer's state changed (`new`, `up`, `backing off`, `banned`,
    /// `itself`, or `removed`).
    Peer {
        url: String,
        state: String,
        previous: Option<String>,
    },
    /// A data item is new in the pool.
    DataAccepted { id: ItemId },
    /// A block of the chain carries a data item now.
    DataConfirmed { id: ItemId, block: u64 },
}

impl Event {
    /// The SSE event name: the same as `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Tip { .. } => "tip",
            Event::Reorg { .. } => "reorg",
            Event::SideBlock { .. } => "side_block",
            Event::Peer { .. } => "peer",
            Event::DataAccepted { .. } => "data_accepted",
            Event::DataConfirmed { .. } => "data_confirmed",
        }
    }
}

/// The hub events are published to.
#[derive(Debug, Clone)]
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        Events {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Tells every listener; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_kind_in_type() {
        let event = Event::DataConfirmed {
            id: ItemId::of("hello"),
            block: 7,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.name());
        assert_eq!(json["block"], 7);
    }

    #[tokio::test]
    async fn a_listener_hears_what_is_published_after_it_subscribed() {
        let events = Events::new();
        events.publish(Event::DataAccepted {
            id: ItemId::of("before"),
        });
        let mut listener = events.subscribe();
        events.publish(Event::DataAccepted {
            id: ItemId::of("after"),
        });
        assert_eq!(
            listener.recv().await.unwrap(),
            Event::DataAccepted {
                id: ItemId::of("after")
            }
        );
    }
}

//! What this node knows beyond its one chain, for people watching a network
//! agree: when and from where it first saw each recent block
//! ([`Sightings`]), and the blocks of side branches it knows
//! ([`SideBlocks`]): blocks that left its chain in a switch of branches,
//! and valid blocks that arrived and lost. Both are bounded, oldest out
//! first, so a long run or a flood of side blocks costs a fixed amount of
//! memory.
//!
//! It decides nothing: which chain is best is [`crate::state`]'s, and the
//! records here are fed by its commit path. It does not persist anything
//! (a side block's file is in `chaindata/orphaned/` when it was ours).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockHash};
use crate::pow::Work;

/// Blocks whose first sighting is remembered.
pub const SIGHTINGS_KEPT: usize = 10_000;
/// Side blocks remembered.
pub const SIDE_BLOCKS_KEPT: usize = 1_000;
/// Heights one `/tree` answer covers at most.
pub const TREE_SPAN: u64 = 500;

/// Where this node first had a block from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Via {
    /// Its own miner found it.
    Mined,
    /// A peer sent it (announced, or served in a sync).
    Peer { peer: String },
    /// A node announced it without saying its address.
    Unnamed,
    /// Read from the chaindata folder at start (when, is not known).
    Files,
}

/// When and from where this node first saw a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// Milliseconds since the epoch, by this node's clock; none for a block
    /// read from the node's files.
    pub first_seen_ms: Option<u64>,
    #[serde(flatten)]
    pub via: Via,
}

/// The first sighting of the last [`SIGHTINGS_KEPT`] blocks this node saw.
#[derive(Debug)]
pub struct Sightings {
    by_hash: HashMap<BlockHash, Sighting>,
    /// Hashes in the order they were first seen, to drop the oldest.
    order: VecDeque<BlockHash>,
    capacity: usize,
}

impl Sightings {
    pub fn new(capacity: usize) -> Sightings {
        Sightings {
            by_hash: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records a sighting of `hash`, unless one is recorded already (the
    /// first one counts).
    pub fn record(&mut self, hash: BlockHash, sighting: Sighting) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        self.by_hash.insert(hash, sighting);
        self.order.push_back(hash);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.by_hash.remove(&oldest);
            }
        }
    }

    /// The first sighting of `hash`, when it is still remembered.
    pub fn get(&self, hash: &BlockHash) -> Option<&Sighting> {
        self.by_hash.get(hash)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

/// Why a valid block is off the best chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Off {
    /// It was on this node's chain, and a branch with more work replaced
    /// it.
    LeftTheChain,
    /// It arrived on a branch that did not have more work.
    Lost,
}

/// A valid block of a side branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideBlock {
    pub block: Block,
    /// Its work, when its target is known here (its parent is on our chain,
    /// or it was).
    pub work: Option<Work>,
    pub off: Off,
}

/// The side blocks this node knows, at most [`SIDE_BLOCKS_KEPT`]: the
/// lowest first out, as the oldest forks matter least.
#[derive(Debug)]
pub struct SideBlocks {
    by_height: BTreeMap<(u64, BlockHash), SideBlock>,
    capacity: usize,
}

impl SideBlocks {
    pub fn new(capacity: usize) -> SideBlocks {
        SideBlocks {
            by_height: BTreeMap::new(),
            capacity,
        }
    }

    /// Remembers a side block. One that left the chain stays marked so,
    /// even if it arrives again later and loses.
    pub fn insert(&mut self, side: SideBlock) {
        let key = (side.block.index, side.block.hash);
        match self.by_height.get_mut(&key) {
            Some(known) => {
                known.work = known.work.or(side.work);
            }
            None => {
                self.by_height.insert(key, side);
                while self.by_height.len() > self.capacity {
                    self.by_height.pop_first();
                }
            }
        }
    }

    /// Forgets a block that is on the best chain now.
    pub fn remove(&mut self, block: &Block) {
        self.by_height.remove(&(block.index, block.hash));
    }

    /// The side blocks at heights `from..=to`, lowest first.
    pub fn between(&self, from: u64, to: u64) -> impl Iterator<Item = &SideBlock> {
        let low = (from, BlockHash([0; 32]));
        let high = (to, BlockHash([0xff; 32]));
        self.by_height.range(low..=high).map(|(_, side)| side)
    }

    /// The side block with `hash`, if known.
    pub fn by_hash(&self, hash: &BlockHash) -> Option<&SideBlock> {
        // Side blocks are few (bounded); a scan is cheap and keeps one index.
        self.by_height
            .values()
            .find(|side| side.block.hash == *hash)
    }

    pub fn len(&self) -> usize {
        self.by_height.len()
    }
}

/// Both records, kept under one lock by the chain state.
#[derive(Debug)]
pub struct Records {
    pub sightings: Sightings,
    pub side: SideBlocks,
}

impl Default for Records {
    fn default() -> Records {
        Records {
            sightings: Sightings::new(SIGHTINGS_KEPT),
            side: SideBlocks::new(SIDE_BLOCKS_KEPT),
        }
    }
}

/// A block of the tree as `GET /tree` and `GET /blocks/{index}/seen` tell
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBlock {
    pub index: u64,
    pub hash: BlockHash,
    /// The hash of its parent (empty for the genesis block).
    pub parent: String,
    /// Whether it is on this node's best chain.
    pub best: bool,
    /// Why it is not, for a side block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<Off>,
    /// The block's own work (hashes it took on average), hex.
    pub work: Option<String>,
    /// When and from where this node first saw it, while remembered.
    pub seen: Option<Sighting>,
}

impl TreeBlock {
    pub fn new(block: &Block, best: bool, off: Option<Off>, work: Option<Work>) -> TreeBlock {
        TreeBlock {
            index: block.index,
            hash: block.hash,
            parent: block.prev_hash.to_string(),
            best,
            off,
            work: work.map(|work| work.to_string()),
            seen: None,
        }
    }
}

/// What `GET /tree?from=H` answers: every block this node knows at heights
/// `from..=to`, on the best chain and off it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tree {
    pub from: u64,
    pub to: u64,
    /// The best chain's tip.
    pub height: u64,
    pub tip: BlockHash,
    /// Lowest first; at one height, the best chain's block first.
    pub blocks: Vec<TreeBlock>,
    /// Side blocks this node remembers, in all, and the most it keeps.
    pub side_blocks_kept: usize,
    pub side_blocks_capacity: usize,
}

/// What `GET /blocks/{index}/seen` answers: each block this node knows at
/// that height (the best chain's first) and when it first saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenAt {
    pub index: u64,
    pub blocks: Vec<TreeBlock>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::PrevHash;

    fn block(index: u64, tag: u8) -> Block {
        Block::new(index, 0, PrevHash::none(), format!("{tag}"), 0)
    }

    fn seen_at(ms: u64) -> Sighting {
        Sighting {
            first_seen_ms: Some(ms),
            via: Via::Mined,
        }
    }

    #[test]
    fn sightings_keep_the_first_and_only_the_newest_few() {
        let mut sightings = Sightings::new(100);
        for i in 0..1_000u64 {
            sightings.record(block(i, 0).hash, seen_at(i));
        }
        assert_eq!(sightings.len(), 100);
        assert_eq!(sightings.by_hash.len(), 100);
        assert!(sightings.get(&block(899, 0).hash).is_none());
        assert_eq!(sightings.get(&block(900, 0).hash), Some(&seen_at(900)));
        // A later sighting of a known block changes nothing.
        sightings.record(block(950, 0).hash, seen_at(5));
        assert_eq!(sightings.get(&block(950, 0).hash), Some(&seen_at(950)));
        assert_eq!(sightings.len(), 100);
    }

    #[test]
    fn side_blocks_are_bounded_and_the_lowest_go_first() {
        let mut side = SideBlocks::new(50);
        // Inserted in no particular order of height.
        for i in (0..200u64).rev().chain(200..400) {
            side.insert(SideBlock {
                block: block(i, 1),
                work: None,
                off: Off::Lost,
            });
        }
        assert_eq!(side.len(), 50);
        let heights: Vec<u64> = side.between(0, u64::MAX).map(|s| s.block.index).collect();
        assert_eq!(heights, (350..400).collect::<Vec<_>>());
        assert!(side.by_hash(&block(349, 1).hash).is_none());
        assert!(side.by_hash(&block(399, 1).hash).is_some());
    }

    #[test]
    fn a_block_that_left_the_chain_stays_marked_so() {
        let mut side = SideBlocks::new(10);
        let orphan = block(5, 2);
        side.insert(SideBlock {
            block: orphan.clone(),
            work: Some(Work::of(&crate::pow::Target::limit(1))),
            off: Off::LeftTheChain,
        });
        side.insert(SideBlock {
            block: orphan.clone(),
            work: None,
            off: Off::Lost,
        });
        let kept = side.by_hash(&orphan.hash).unwrap();
        assert_eq!(kept.off, Off::LeftTheChain);
        assert!(kept.work.is_some());
        // Two blocks at one height are both kept, and listed by height.
        side.insert(SideBlock {
            block: block(5, 3),
            work: None,
            off: Off::Lost,
        });
        assert_eq!(side.between(5, 5).count(), 2);
        assert_eq!(side.between(6, 9).count(), 0);
        side.remove(&orphan);
        assert_eq!(side.between(5, 5).count(), 1);
    }
}

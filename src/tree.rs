//! What this node knows beyond its one chain, for people watching a network
//! agree: when and from where it first saw each recent block
//! ([`Sightings`]), and the blocks of side branches it knows
//! ([`SideBlocks`]): blocks that left its chain in a switch of branches,
//! and valid blocks that arrived and lost. Both are bounded, oldest out
//! first, so a long run or a flood of side blocks costs a fixed amount of
//! memory: of a side block only its header is kept here, its body is in a
//! file (`chaindata/orphaned/` when it was ours, `chaindata/side/` when it
//! lost on arrival, where [`SIDE_BYTES_KEPT`] bounds the bodies on disk).
//!
//! It decides nothing: which chain is best is [`crate::state`]'s, and the
//! records here are fed by its commit path. It writes no file; it says
//! which ones are no longer needed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockHash};
use crate::pow::Work;

/// Blocks whose first sighting is remembered.
pub const SIGHTINGS_KEPT: usize = 10_000;
/// Side blocks remembered.
pub const SIDE_BLOCKS_KEPT: usize = 1_000;
/// Bytes of the bodies of side blocks that lost on arrival kept on disk
/// (`chaindata/side/`); past it, the lowest go, as past [`SIDE_BLOCKS_KEPT`].
pub const SIDE_BYTES_KEPT: u64 = 64 * 1024 * 1024;
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

/// A valid block of a side branch: its header, and where its body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideBlock {
    pub index: u64,
    pub hash: BlockHash,
    /// Its parent's hash, as the block writes it.
    pub parent: String,
    /// The file its body is in, and that file's size.
    pub file: PathBuf,
    pub bytes: u64,
    /// Its work, when its target is known here (its parent is on our chain,
    /// or it was).
    pub work: Option<Work>,
    pub off: Off,
}

impl SideBlock {
    /// The side block `block`, whose body is in `file`.
    pub fn of(block: &Block, file: PathBuf, work: Option<Work>, off: Off) -> SideBlock {
        SideBlock {
            index: block.index,
            hash: block.hash,
            parent: block.prev_hash.to_string(),
            bytes: block.json_len() as u64,
            file,
            work,
            off,
        }
    }
}

/// The side blocks this node knows, at most [`SIDE_BLOCKS_KEPT`], and
/// bodies of lost ones of at most [`SIDE_BYTES_KEPT`]: the lowest first
/// out, as the oldest forks matter least.
#[derive(Debug)]
pub struct SideBlocks {
    by_height: BTreeMap<(u64, BlockHash), SideBlock>,
    capacity: usize,
    /// The bodies of the lost ones, in bytes, and their bound.
    lost_bytes: u64,
    max_lost_bytes: u64,
}

impl SideBlocks {
    pub fn new(capacity: usize, max_lost_bytes: u64) -> SideBlocks {
        SideBlocks {
            by_height: BTreeMap::new(),
            capacity,
            lost_bytes: 0,
            max_lost_bytes,
        }
    }

    /// Remembers a side block. One that left the chain stays marked so,
    /// even if it arrives again later and loses. Returns the side blocks
    /// that made way (lowest first), whose files the caller may drop; the
    /// newcomer itself when it is the lowest of a full record, and any
    /// second copy's file when it was known already.
    #[must_use]
    pub fn insert(&mut self, side: SideBlock) -> Vec<SideBlock> {
        let key = (side.index, side.hash);
        if let Some(known) = self.by_height.get_mut(&key) {
            known.work = known.work.or(side.work);
            return if known.file == side.file {
                Vec::new()
            } else {
                vec![side]
            };
        }
        if side.off == Off::Lost {
            self.lost_bytes += side.bytes;
        }
        self.by_height.insert(key, side);
        let mut dropped = Vec::new();
        while self.by_height.len() > self.capacity || self.lost_bytes > self.max_lost_bytes {
            let Some((_, lowest)) = self.by_height.pop_first() else {
                break;
            };
            self.forget_bytes(&lowest);
            dropped.push(lowest);
        }
        dropped
    }

    /// Forgets a block that is on the best chain now; what was remembered
    /// of it.
    pub fn remove(&mut self, block: &Block) -> Option<SideBlock> {
        let removed = self.by_height.remove(&(block.index, block.hash))?;
        self.forget_bytes(&removed);
        Some(removed)
    }

    fn forget_bytes(&mut self, side: &SideBlock) {
        if side.off == Off::Lost {
            self.lost_bytes -= side.bytes;
        }
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
        self.by_height.values().find(|side| side.hash == *hash)
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
            side: SideBlocks::new(SIDE_BLOCKS_KEPT, SIDE_BYTES_KEPT),
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

    /// A side block, from what is remembered of it.
    pub fn side(side: &SideBlock) -> TreeBlock {
        TreeBlock {
            index: side.index,
            hash: side.hash,
            parent: side.parent.clone(),
            best: false,
            off: Some(side.off),
            work: side.work.map(|work| work.to_string()),
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

    fn side(index: u64, tag: u8, off: Off) -> SideBlock {
        let block = block(index, tag);
        SideBlock::of(&block, PathBuf::from(format!("{index}-{tag}")), None, off)
    }

    #[test]
    fn side_blocks_are_bounded_and_the_lowest_go_first() {
        let mut sides = SideBlocks::new(50, u64::MAX);
        let mut dropped = Vec::new();
        // Inserted in no particular order of height.
        for i in (0..200u64).rev().chain(200..400) {
            dropped.extend(sides.insert(side(i, 1, Off::Lost)));
        }
        assert_eq!(sides.len(), 50);
        let heights: Vec<u64> = sides.between(0, u64::MAX).map(|s| s.index).collect();
        assert_eq!(heights, (350..400).collect::<Vec<_>>());
        assert!(sides.by_hash(&block(349, 1).hash).is_none());
        assert!(sides.by_hash(&block(399, 1).hash).is_some());
        assert_eq!(dropped.len(), 350, "each dropped one is told, for its file");
    }

    #[test]
    fn the_bodies_of_lost_blocks_are_bounded_in_bytes() {
        let one = side(1, 1, Off::Lost).bytes;
        let mut sides = SideBlocks::new(1_000, one * 10);
        let mut dropped = Vec::new();
        for i in 0..30u64 {
            dropped.extend(sides.insert(side(i, 1, Off::Lost)));
            // Blocks that were ours are not bounded by bytes: their files
            // are never deleted.
            dropped.extend(sides.insert(side(i, 2, Off::LeftTheChain)));
        }
        assert!(sides.lost_bytes <= one * 10 + 30, "{}", sides.lost_bytes);
        assert!(dropped.iter().all(|s| s.index < 30));
        let kept_lost = sides.between(0, 100).filter(|s| s.off == Off::Lost).count();
        assert!((9..=10).contains(&kept_lost), "{kept_lost}");
        // A block that joins the chain is forgotten, and its bytes with it.
        let before = sides.lost_bytes;
        let removed = sides.remove(&block(29, 1)).unwrap();
        assert_eq!(sides.lost_bytes, before - removed.bytes);
    }

    #[test]
    fn a_block_that_left_the_chain_stays_marked_so() {
        let mut sides = SideBlocks::new(10, u64::MAX);
        let orphan = block(5, 2);
        let work = Some(Work::of(&crate::pow::Target::limit(1)));
        let _ = sides.insert(SideBlock::of(
            &orphan,
            "orphaned".into(),
            work,
            Off::LeftTheChain,
        ));
        let copy = sides.insert(SideBlock::of(&orphan, "side".into(), None, Off::Lost));
        assert_eq!(copy.len(), 1, "the second copy's file can go");
        let kept = sides.by_hash(&orphan.hash).unwrap();
        assert_eq!(kept.off, Off::LeftTheChain);
        assert_eq!(kept.file, PathBuf::from("orphaned"));
        assert!(kept.work.is_some());
        // Two blocks at one height are both kept, and listed by height.
        let _ = sides.insert(side(5, 3, Off::Lost));
        assert_eq!(sides.between(5, 5).count(), 2);
        assert_eq!(sides.between(6, 9).count(), 0);
        sides.remove(&orphan);
        assert_eq!(sides.between(5, 5).count(), 1);
    }
}

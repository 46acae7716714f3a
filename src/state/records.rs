//! The chain state's records of what lies beyond its one chain, as the
//! block tree shows them: each block's first sighting, and the side blocks
//! (headers here, bodies in `orphaned/` or `side/`), fed by the commit
//! path. The records themselves, and their bounds, are [`crate::tree`]'s.

use std::sync::MutexGuard;

use super::{ChainState, Source};
use crate::block::{Block, BlockHash};
use crate::chain::{Chain, Network};
use crate::events::{BlockRef, Event};
use crate::pow::Work;
use crate::tree::{
    Off, Records, SIDE_BLOCKS_KEPT, SeenAt, SideBlock, Sighting, TREE_SPAN, Tree, TreeBlock, Via,
};

impl ChainState {
    /// Records what a commit changed in the tree: the new blocks' first
    /// sightings, and the blocks that left the chain as a side branch.
    pub(super) fn remember_commit(
        &self,
        incoming: &[Block],
        outgoing: &[Block],
        outgoing_works: Vec<Work>,
        source: &Source,
    ) {
        let sighting = sighting_now(source);
        let store = &self.shared.store;
        let mut unneeded = Vec::new();
        let mut records = self.records();
        for block in incoming {
            unneeded.extend(records.side.remove(block));
            records.sightings.record(block.hash, sighting.clone());
        }
        for (block, work) in outgoing.iter().zip(outgoing_works) {
            let file = store.orphan_file(block);
            unneeded.extend(records.side.insert(SideBlock::of(
                block,
                file,
                Some(work),
                Off::LeftTheChain,
            )));
        }
        drop(records);
        for side in unneeded {
            store.drop_side(&side.file);
        }
    }

    /// Remembers valid blocks that did not make the best chain, with their
    /// work when known (else worked out here if the parent is ours): their
    /// headers here, their bodies in `side/` (a block that cannot be
    /// written there is not remembered).
    pub(super) fn remember_side(&self, mut blocks: Vec<(Block, Option<Work>)>, source: &Source) {
        // A long branch: only its highest blocks would be kept.
        blocks.sort_by_key(|(block, _)| block.index);
        let blocks = blocks.split_off(blocks.len().saturating_sub(SIDE_BLOCKS_KEPT));
        let blocks: Vec<(Block, Option<Work>)> = {
            let current = self.current();
            blocks
                .into_iter()
                .filter(|(block, _)| current.chain.by_hash(&block.hash).is_none())
                .map(|(block, work)| {
                    let work = work.or_else(|| side_work(&current.chain, self.network(), &block));
                    (block, work)
                })
                .collect()
        };
        let sighting = sighting_now(source);
        let store = &self.shared.store;
        for (block, work) in blocks {
            self.shared.events.publish(Event::SideBlock {
                block: BlockRef::from(&block),
                source: source.to_string(),
            });
            let mut records = self.records();
            records.sightings.record(block.hash, sighting.clone());
            if records.side.by_hash(&block.hash).is_some() {
                continue;
            }
            drop(records);
            let file = match store.keep_side(&block) {
                Ok(file) => file,
                Err(error) => {
                    tracing::debug!(%error, "a side block's body was not kept");
                    continue;
                }
            };
            let side = SideBlock::of(&block, file, work, Off::Lost);
            let dropped = self.records().side.insert(side);
            for dropped in dropped {
                store.drop_side(&dropped.file);
            }
        }
    }

    /// The blocks this node knows at heights `from` to `from + limit - 1`
    /// (at most [`TREE_SPAN`] heights), on the best chain and off it.
    pub fn tree(&self, from: u64, limit: u64) -> Tree {
        let span = limit.clamp(1, TREE_SPAN);
        let current = self.current();
        let chain = &current.chain;
        let height = chain.tip().index;
        let to = from.saturating_add(span - 1);
        let mut best: Vec<TreeBlock> = (from..=to.min(height))
            .filter_map(|i| {
                let block = chain.get(i)?;
                Some(TreeBlock::new(
                    &block,
                    true,
                    None,
                    Some(Work::of(&chain.target_at(i))),
                ))
            })
            .collect();
        let tip = chain.tip().hash;
        drop(current);
        let records = self.records();
        let side = records.side.between(from, to).map(TreeBlock::side);
        best.extend(side);
        best.sort_by_key(|block| (block.index, !block.best));
        for block in &mut best {
            block.seen = Some(sighting_of(&records, &block.hash));
        }
        Tree {
            from,
            to,
            height,
            tip,
            blocks: best,
            side_blocks_kept: records.side.len(),
            side_blocks_capacity: SIDE_BLOCKS_KEPT,
        }
    }

    /// Each block this node knows at height `index`, with when and from
    /// where it first saw it; none when it knows no block there.
    pub fn seen_at(&self, index: u64) -> Option<SeenAt> {
        let tree = self.tree(index, 1);
        (!tree.blocks.is_empty()).then_some(SeenAt {
            index,
            blocks: tree.blocks,
        })
    }

    /// Whether block `hash` is known here: on the chain, or a side block
    /// remembered (a peer need not send it again).
    pub fn knows(&self, hash: &BlockHash) -> bool {
        self.block_by_hash(hash).is_some() || self.records().side.by_hash(hash).is_some()
    }

    /// A side block by hash, for a block page one click from the tree.
    /// Blocking: reads the block's file.
    pub fn side_block(&self, hash: &BlockHash) -> Option<Block> {
        let file = self.records().side.by_hash(hash)?.file.clone();
        self.shared.store.read_side(&file, hash)
    }

    pub(super) fn records(&self) -> MutexGuard<'_, Records> {
        self.shared.records.lock().expect("records lock")
    }
}

/// Where a change from `source` was first seen from, now.
pub(super) fn sighting_now(source: &Source) -> Sighting {
    let via = match source {
        Source::Loaded => Via::Files,
        Source::Mined => Via::Mined,
        Source::Announced(Some(peer)) | Source::Synced(peer) => Via::Peer {
            peer: peer.to_string(),
        },
        Source::Announced(None) => Via::Unnamed,
    };
    let first_seen_ms = (via != Via::Files).then(crate::clock::unix_now_ms);
    Sighting { first_seen_ms, via }
}

/// The remembered sighting of `hash`; a block of the chain with none was
/// read from the node's files or seen too long ago to be remembered.
fn sighting_of(records: &Records, hash: &BlockHash) -> Sighting {
    records.sightings.get(hash).cloned().unwrap_or(Sighting {
        first_seen_ms: None,
        via: Via::Files,
    })
}

/// The work of a side block whose parent is on `chain`: one block at the
/// target that parent sets. None when the parent is not ours.
pub(super) fn side_work(chain: &Chain, network: &Network, block: &Block) -> Option<Work> {
    let parent = block.index.checked_sub(1)?;
    if !block.prev_hash.links_to(&chain.hash_at(parent)?) {
        return None;
    }
    Some(Work::of(&chain.cursor_at(parent)?.next_target(network)))
}

//! A valid chain in memory, kept as the JSON it is served as.
//!
//! Each block is stored once, as its compact JSON followed by a comma, in
//! segments of up to [`SEGMENT_BLOCKS`] blocks: full segments are
//! immutable and shared (a download of `/blockchain.json` holds them while
//! it streams, and appends never touch them), the last one grows a block at
//! a time. An index from each hash's last 8 bytes to the block's position
//! finds blocks by hash; the tip is kept parsed. A block at a million
//! blocks costs its JSON plus about 40 bytes, and appending one costs the
//! same at any length: nothing on that path copies or re-encodes the chain.
//!
//! Holding a [`Chain`] is proof of validity: every way to build or extend
//! one checks the blocks (or is `pub(crate)` for callers that have).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{ChainError, Clock, Cursor, History, Network, check_genesis};
use crate::block::{Block, BlockHash};
use crate::item::{IdPrefix, ItemId, items_in};
use crate::pow::{Target, Work};
use crate::signed::{AuthorKey, author_of};

/// Blocks per full segment.
pub const SEGMENT_BLOCKS: usize = 4096;
/// A segment is also full once it holds this many bytes.
const SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// Consecutive blocks' JSON, each followed by a comma.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The index of its first block.
    first: u64,
    bytes: Bytes,
    /// Where each block's JSON ends (after its comma).
    ends: Arc<[u32]>,
}

impl Segment {
    /// A segment from blocks' JSON laid end to end (each followed by a
    /// comma) and where each ends; the caller has checked the blocks.
    pub(crate) fn new(first: u64, bytes: Bytes, ends: Vec<u32>) -> Segment {
        debug_assert_eq!(ends.last().map_or(0, |&e| e as usize), bytes.len());
        Segment {
            first,
            bytes,
            ends: ends.into(),
        }
    }

    fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// The byte range of block `first + i`, its comma included.
    fn range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }
}

/// Where a hash's block is: the last 8 bytes of the hash (proof of work
/// zeroes the first ones) to its index, and the rare hashes whose last 8
/// bytes another block's share.
#[derive(Debug, Clone, Default)]
struct HashIndex {
    short: HashMap<u64, u32>,
    collided: HashMap<BlockHash, u64>,
}

impl HashIndex {
    fn key(hash: &BlockHash) -> u64 {
        u64::from_le_bytes(hash.0[24..].try_into().expect("8 bytes"))
    }

    fn insert(&mut self, hash: &BlockHash, index: u64) {
        match self.short.entry(HashIndex::key(hash)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(index as u32);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(*hash, index);
            }
        }
    }

    /// A candidate position for `hash` (to be checked against the block).
    fn candidates(&self, hash: &BlockHash) -> impl Iterator<Item = u64> {
        let collided = self.collided.get(hash).copied();
        let short = self.short.get(&HashIndex::key(hash)).map(|&i| u64::from(i));
        collided.into_iter().chain(short)
    }

    fn remove(&mut self, hash: &BlockHash, index: u64) {
        if self.collided.get(hash) == Some(&index) {
            self.collided.remove(hash);
        } else if self.short.get(&HashIndex::key(hash)) == Some(&(index as u32)) {
            self.short.remove(&HashIndex::key(hash));
        }
    }
}

/// A data item a block carries, as the chain's indexes file it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Carried {
    pub id: ItemId,
    /// The index of the block.
    pub block: u64,
    /// The key a well-formed signed item names (verified or not).
    pub author: Option<AuthorKey>,
}

impl Carried {
    /// The items of `block`'s data, in order.
    pub(crate) fn of(block: &Block) -> impl Iterator<Item = Carried> {
        let index = block.index;
        (items_in(&block.data).into_iter().flatten()).map(move |text| Carried {
            id: ItemId::of(&text),
            block: index,
            author: author_of(&text),
        })
    }
}

/// A valid chain: every public constructor validates, so holding one is
/// proof.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Full segments, in order; shared with the serving snapshots.
    sealed: Arc<Vec<Segment>>,
    /// The index of the first block after the full segments.
    open_first: u64,
    /// The blocks after the full segments, one piece each.
    open: Vec<Bytes>,
    open_bytes: usize,
    index: HashIndex,
    /// The block that carries each data item (the first, if several do).
    items: BTreeMap<ItemId, u64>,
    /// The signed items, by the key they name: (key, block, item).
    authored: BTreeSet<(AuthorKey, u64, ItemId)>,
    tip: Block,
    /// The targets and work of the blocks.
    history: History,
    network: Arc<Network>,
}

/// `/blockchain.json` of a chain at one moment, to stream: it shares the
/// chain's full segments, so taking it costs at most one segment's copy.
#[derive(Debug, Clone)]
pub struct ChainJson {
    chunks: Vec<Bytes>,
}

impl ChainJson {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    /// Whether it is empty (never: it is at least `[...]`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its bytes, in order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }

    /// Its bytes in one piece (for tests and small chains).
    pub fn to_vec(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

impl Chain {
    /// The chain holding only the network's genesis block.
    pub fn genesis(network: &Network) -> Chain {
        Chain::from_trusted(vec![network.genesis.clone()], network)
    }

    /// Validates `blocks` as a whole chain of `network`.
    pub fn from_blocks(blocks: Vec<Block>, network: &Network) -> Result<Chain, ChainError> {
        let Some(first) = blocks.first() else {
            return Err(ChainError::Empty);
        };
        check_genesis(first, network)?;
        let mut cursor = Cursor::genesis(network);
        for block in &blocks[1..] {
            cursor.step(block, network, Clock::Stored)?;
        }
        Ok(Chain::from_trusted(blocks, network))
    }

    /// Builds a chain from blocks the caller has already validated.
    pub(crate) fn from_trusted(blocks: Vec<Block>, network: &Network) -> Chain {
        let mut blocks = blocks.into_iter();
        let genesis = blocks.next().expect("a chain has its genesis block");
        let mut chain = Chain {
            sealed: Arc::new(Vec::new()),
            open_first: 0,
            open: Vec::new(),
            open_bytes: 0,
            index: HashIndex::default(),
            items: BTreeMap::new(),
            authored: BTreeSet::new(),
            tip: genesis.clone(),
            history: History::genesis(network),
            network: Arc::new(network.clone()),
        };
        chain.push_trusted(genesis);
        for block in blocks {
            chain.push_trusted(block);
        }
        chain
    }

    /// Builds a chain from full segments of checked blocks (their hashes in
    /// order, the last block parsed, and their history), then the blocks
    /// after them.
    pub(crate) fn from_segments(
        segments: Vec<Segment>,
        hashes: impl IntoIterator<Item = BlockHash>,
        carried: impl IntoIterator<Item = Carried>,
        tip: Block,
        history: History,
        network: &Network,
    ) -> Chain {
        let mut index = HashIndex::default();
        for (position, hash) in hashes.into_iter().enumerate() {
            index.insert(&hash, position as u64);
        }
        let mut items = BTreeMap::new();
        let mut authored = BTreeSet::new();
        for carried in carried {
            items.entry(carried.id).or_insert(carried.block);
            if let Some(author) = carried.author {
                authored.insert((author, carried.block, carried.id));
            }
        }
        let open_first = segments.last().map_or(0, |s| s.first + s.len());
        let mut chain = Chain {
            sealed: Arc::new(segments),
            open_first,
            open: Vec::new(),
            open_bytes: 0,
            index,
            items,
            authored,
            tip,
            history,
            network: Arc::new(network.clone()),
        };
        debug_assert_eq!(chain.history.tip().index + 1, chain.len());
        // Segments that are not full yet become the open one.
        if let Some(last) = chain.sealed.last()
            && (last.len() as usize) < SEGMENT_BLOCKS
            && last.bytes.len() < SEGMENT_BYTES
        {
            let last = Arc::make_mut(&mut chain.sealed).pop().expect("checked");
            chain.open_first = last.first;
            for i in 0..last.len() as usize {
                let piece = last.bytes.slice(last.range(i));
                chain.open_bytes += piece.len();
                chain.open.push(piece);
            }
        }
        chain
    }

    /// Appends a block after validating it against the tip (as a stored
    /// block: the clock is not consulted). Only tests build chains this
    /// way; the node's chains change through [`crate::state`]'s commits.
    #[cfg(test)]
    pub(crate) fn push(&mut self, block: Block, network: &Network) -> Result<(), ChainError> {
        self.history.tip().check(&block, network, Clock::Stored)?;
        self.push_trusted(block);
        Ok(())
    }

    /// Appends a block the caller has validated against the tip.
    pub(crate) fn push_trusted(&mut self, block: Block) {
        let index = self.len();
        debug_assert!(index == 0 || block.index == index);
        let mut json = Vec::with_capacity(256 + block.data.len());
        serde_json::to_writer(&mut json, &block).expect("a block always serialises");
        json.push(b',');
        self.open_bytes += json.len();
        self.open.push(Bytes::from(json));
        self.index.insert(&block.hash, index);
        if index > 0 {
            self.history
                .push(block.hash, block.timestamp, &self.network);
        }
        for carried in Carried::of(&block) {
            self.items.entry(carried.id).or_insert(index);
            if let Some(author) = carried.author {
                self.authored.insert((author, index, carried.id));
            }
        }
        self.tip = block;
        if self.open.len() >= SEGMENT_BLOCKS || self.open_bytes >= SEGMENT_BYTES {
            self.seal();
        }
    }

    /// Makes the open blocks a full segment.
    fn seal(&mut self) {
        let mut bytes = BytesMut::with_capacity(self.open_bytes);
        let mut ends = Vec::with_capacity(self.open.len());
        for piece in self.open.drain(..) {
            bytes.extend_from_slice(&piece);
            ends.push(bytes.len() as u32);
        }
        let segment = Segment::new(self.open_first, bytes.freeze(), ends);
        self.open_first += segment.len();
        self.open_bytes = 0;
        Arc::make_mut(&mut self.sealed).push(segment);
    }

    /// Removes the blocks from index `len` on (the genesis block stays)
    /// and returns them, in order.
    pub(crate) fn truncate(&mut self, len: u64) -> Vec<Block> {
        let len = len.max(1);
        if len >= self.len() {
            return Vec::new();
        }
        let removed: Vec<Block> = (len..self.len())
            .map(|i| self.get(i).expect("within the chain"))
            .collect();
        for block in &removed {
            self.index.remove(&block.hash, block.index);
            for carried in Carried::of(block) {
                if self.items.get(&carried.id) == Some(&block.index) {
                    self.items.remove(&carried.id);
                }
                if let Some(author) = carried.author {
                    self.authored.remove(&(author, block.index, carried.id));
                }
            }
        }
        if len < self.open_first {
            // Reopen the segment that holds block `len - 1`.
            let sealed = Arc::make_mut(&mut self.sealed);
            while sealed.last().is_some_and(|s| s.first >= len) {
                sealed.pop();
            }
            let last = sealed.pop().expect("block 0 is in a segment");
            self.open = (0..(len - last.first) as usize)
                .map(|i| last.bytes.slice(last.range(i)))
                .collect();
            self.open_first = last.first;
        } else {
            self.open.truncate((len - self.open_first) as usize);
        }
        self.open_bytes = self.open.iter().map(Bytes::len).sum();
        self.tip = self.parse(len - 1).expect("within the chain");
        let cursor = self.cursor_at(len - 1).expect("within the chain");
        self.history.truncate(len, cursor);
        removed
    }

    /// The work of the whole chain.
    pub fn work(&self) -> Work {
        self.history.tip().work
    }

    /// The cursor on the tip: what the next block must meet.
    pub fn tip_cursor(&self) -> &Cursor {
        self.history.tip()
    }

    /// The cursor on block `index`, to check a branch that leaves the chain
    /// after it.
    pub fn cursor_at(&self, index: u64) -> Option<Cursor> {
        if index >= self.len() {
            return None;
        }
        if index == self.history.tip().index {
            return Some(self.history.tip().clone());
        }
        let hash = self.hash_at(index)?;
        Some(self.history.cursor_at(
            index,
            hash,
            |i| self.get(i).expect("within the chain").timestamp,
            &self.network,
        ))
    }

    /// The target of block `index` (within the chain).
    pub fn target_at(&self, index: u64) -> Target {
        self.history.target_at(index)
    }

    /// Number of blocks, the genesis included.
    pub fn len(&self) -> u64 {
        self.open_first + self.open.len() as u64
    }

    /// Always false: a chain holds at least its genesis block.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The last block.
    pub fn tip(&self) -> &Block {
        &self.tip
    }

    /// The JSON of block `index` (without its comma).
    fn json(&self, index: u64) -> Option<Bytes> {
        let piece = if index >= self.open_first {
            self.open.get((index - self.open_first) as usize)?.clone()
        } else {
            let position = self.sealed.partition_point(|s| s.first <= index) - 1;
            let segment = &self.sealed[position];
            segment
                .bytes
                .slice(segment.range((index - segment.first) as usize))
        };
        Some(piece.slice(..piece.len() - 1))
    }

    /// The block at `index`.
    pub fn get(&self, index: u64) -> Option<Block> {
        if index + 1 == self.len() {
            return Some(self.tip.clone());
        }
        self.parse(index)
    }

    /// The block at `index`, parsed from its JSON.
    fn parse(&self, index: u64) -> Option<Block> {
        let json = self.json(index)?;
        Some(Block::from_json(&json).expect("the chain's own JSON parses"))
    }

    /// The hash of the block at `index`, read from the end of its JSON
    /// (the chain writes `"hash":"…"}` last) without parsing the rest.
    pub fn hash_at(&self, index: u64) -> Option<BlockHash> {
        let json = self.json(index)?;
        let hex = &json[json.len() - 66..json.len() - 2];
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex, &mut hash).expect("the chain's own hash is hex");
        Some(BlockHash(hash))
    }

    /// The index of the block with `hash`.
    pub fn position(&self, hash: &BlockHash) -> Option<u64> {
        self.index
            .candidates(hash)
            .find(|&i| self.hash_at(i).as_ref() == Some(hash))
    }

    /// The index of the block that carries item `id`.
    pub fn item_block(&self, id: &ItemId) -> Option<u64> {
        self.items.get(id).copied()
    }

    /// The signed items naming `author` (verified or not), the newest block
    /// first, at most `limit`: (block index, item id).
    pub fn authored_by(&self, author: &AuthorKey, limit: usize) -> Vec<(u64, ItemId)> {
        let from = (*author, 0, ItemId([0; 32]));
        let to = (*author, u64::MAX, ItemId([0xff; 32]));
        (self.authored.range(from..=to).rev())
            .take(limit)
            .map(|&(_, block, id)| (block, id))
            .collect()
    }

    /// Up to `limit` items the chain carries whose ids start with `prefix`,
    /// in id order, with their blocks' indices.
    pub fn items_starting(&self, prefix: &IdPrefix, limit: usize) -> Vec<(ItemId, u64)> {
        (self.items.range(prefix.range()))
            .take(limit)
            .map(|(id, index)| (*id, *index))
            .collect()
    }

    /// The block with `hash`.
    pub fn by_hash(&self, hash: &BlockHash) -> Option<Block> {
        self.position(hash).and_then(|i| self.get(i))
    }

    /// All blocks in order, parsed (for tests and small chains).
    pub fn blocks(&self) -> Vec<Block> {
        (0..self.len()).filter_map(|i| self.get(i)).collect()
    }

    /// How many blocks at the start of `blocks` are the same as ours.
    pub fn common_prefix(&self, blocks: &[Block]) -> u64 {
        // A block counts only at its own position: a list with a hole
        // shares nothing past it.
        blocks
            .iter()
            .enumerate()
            .take_while(|(position, block)| {
                block.index == *position as u64
                    && self.hash_at(block.index).as_ref() == Some(&block.hash)
            })
            .count() as u64
    }

    /// A JSON array of up to `limit` blocks from `from` on, which stops
    /// growing once it passes `max_bytes` (it holds at least one block when
    /// there is one).
    pub fn page_json(&self, from: u64, limit: u64, max_bytes: usize) -> Vec<u8> {
        let mut json = vec![b'['];
        let to = from.saturating_add(limit).min(self.len());
        for index in from..to {
            if json.len() > max_bytes {
                break;
            }
            if json.len() > 1 {
                json.push(b',');
            }
            json.extend_from_slice(&self.json(index).expect("within the chain"));
        }
        json.push(b']');
        json
    }

    /// `/blockchain.json` as it is now, to stream.
    pub fn json_snapshot(&self) -> ChainJson {
        let mut chunks = Vec::with_capacity(self.sealed.len() + 3);
        chunks.push(Bytes::from_static(b"["));
        chunks.extend(self.sealed.iter().map(|s| s.bytes.clone()));
        if !self.open.is_empty() {
            let mut open = BytesMut::with_capacity(self.open_bytes);
            for piece in &self.open {
                open.extend_from_slice(piece);
            }
            chunks.push(open.freeze());
        }
        // The last block's comma is not part of the array.
        let last = chunks.pop().expect("the genesis block is there");
        chunks.push(last.slice(..last.len() - 1));
        chunks.push(Bytes::from_static(b"]"));
        ChainJson { chunks }
    }

    /// The chain as a JSON array in the network format, in one piece.
    pub fn to_json(&self) -> Vec<u8> {
        self.json_snapshot().to_vec()
    }
}

impl PartialEq for Chain {
    fn eq(&self, other: &Chain) -> bool {
        self.len() == other.len() && self.to_json() == other.to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::{chain_of, test_network};

    #[test]
    fn blocks_round_trip_through_segments_across_seals_and_truncations() {
        let network = test_network();
        let blocks = crate::chain::tests::long_chain().to_vec();
        let mut chain = Chain::from_trusted(blocks.clone(), &network);
        assert_eq!(chain.len(), blocks.len() as u64);
        assert_eq!(chain.sealed.len(), 2);
        for index in [0, 1, 4095, 4096, 4097, 8191, 8192, 8291] {
            let block = &blocks[index as usize];
            assert_eq!(chain.get(index).as_ref(), Some(block), "{index}");
            assert_eq!(chain.hash_at(index), Some(block.hash));
            assert_eq!(chain.position(&block.hash), Some(index));
        }
        assert_eq!(chain.get(8292), None);
        assert_eq!(chain.to_json(), serde_json::to_vec(&blocks).unwrap());

        // Back into a full segment, then grown again on another branch.
        let removed = chain.truncate(5000);
        assert_eq!(removed, blocks[5000..]);
        assert_eq!(chain.len(), 5000);
        assert_eq!(chain.tip(), &blocks[4999]);
        assert_eq!(chain.position(&blocks[6000].hash), None);
        assert_eq!(
            chain.to_json(),
            serde_json::to_vec(&blocks[..5000]).unwrap()
        );
        let mut other = blocks[..5000].to_vec();
        other = crate::chain::tests::extend(&network, other, 5200, "other");
        for block in &other[5000..] {
            chain.push(block.clone(), &network).unwrap();
        }
        assert_eq!(chain.blocks(), other);
        assert_eq!(chain.by_hash(&other[5100].hash), Some(other[5100].clone()));
        let removed = chain.truncate(10);
        assert_eq!(removed.len(), 5190);
        assert_eq!(chain.sealed.len(), 0);
        assert_eq!(chain.blocks(), other[..10]);
    }

    #[test]
    fn a_snapshot_is_unchanged_by_later_appends() {
        let network = test_network();
        let blocks = crate::chain::tests::long_chain()[..SEGMENT_BLOCKS + 10].to_vec();
        let mut chain = Chain::from_trusted(blocks[..SEGMENT_BLOCKS + 5].to_vec(), &network);
        let snapshot = chain.json_snapshot();
        for block in &blocks[SEGMENT_BLOCKS + 5..] {
            chain.push(block.clone(), &network).unwrap();
        }
        chain.truncate(3);
        assert_eq!(
            snapshot.to_vec(),
            serde_json::to_vec(&blocks[..SEGMENT_BLOCKS + 5]).unwrap()
        );
        assert_eq!(snapshot.len(), snapshot.to_vec().len() as u64);
    }

    #[test]
    fn the_items_blocks_carry_are_indexed_and_forgotten_with_their_blocks() {
        let network = test_network();
        let mut blocks = chain_of(&network, 3, "items");
        let data = crate::item::data_for(&["pay bob 5", "hello"]);
        blocks.push(crate::chain::tests::mine_on(&blocks[2], &data, 2));
        let mut chain = Chain::from_trusted(blocks.clone(), &network);
        assert_eq!(chain.item_block(&ItemId::of("hello")), Some(3));
        assert_eq!(chain.item_block(&ItemId::of("pay bob 5")), Some(3));
        assert_eq!(
            chain.item_block(&ItemId::of("items 2")),
            None,
            "a plain note"
        );
        chain.truncate(3);
        assert_eq!(chain.item_block(&ItemId::of("hello")), None);
    }

    #[test]
    fn signed_items_are_indexed_by_author_newest_first_and_forgotten_with_their_blocks() {
        use crate::signed::Signed;
        let network = test_network();
        let signer = ed25519_consensus::SigningKey::from([7; 32]);
        let genesis = network.genesis.hash;
        let signed = |text: &str| Signed::sign(&signer, &genesis, text).to_item();
        let author = crate::signed::author_of(&signed("x")).unwrap();
        let mut blocks = chain_of(&network, 2, "authors");
        let first = crate::item::data_for(&[signed("one"), "plain".into(), signed("two")]);
        blocks.push(crate::chain::tests::mine_on(&blocks[1], &first, 2));
        let second = crate::item::data_for(&[signed("three")]);
        blocks.push(crate::chain::tests::mine_on(&blocks[2], &second, 2));
        let mut chain = Chain::from_trusted(blocks.clone(), &network);
        let ids = |found: Vec<(u64, ItemId)>| found.into_iter().map(|(b, _)| b).collect::<Vec<_>>();
        assert_eq!(ids(chain.authored_by(&author, 10)), [3, 2, 2]);
        assert_eq!(
            chain.authored_by(&author, 1),
            [(3, ItemId::of(&signed("three")))]
        );
        let other = crate::signed::AuthorKey([9; 32]);
        assert!(chain.authored_by(&other, 10).is_empty());
        chain.truncate(3);
        assert_eq!(ids(chain.authored_by(&author, 10)), [2, 2]);
    }

    #[test]
    fn pages_stop_at_their_limits() {
        let network = test_network();
        let blocks = chain_of(&network, 20, "page");
        let chain = Chain::from_trusted(blocks.clone(), &network);
        let page = |from, limit, bytes| {
            crate::block::blocks_from_json(&chain.page_json(from, limit, bytes)).unwrap()
        };
        assert_eq!(page(3, 5, usize::MAX), blocks[3..8]);
        assert_eq!(page(18, 5, usize::MAX), blocks[18..]);
        assert!(page(25, 5, usize::MAX).is_empty());
        assert_eq!(page(3, 5, 1), blocks[3..4], "at least one block");
    }
}

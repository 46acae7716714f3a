//! Reading the chaindata folder back into a chain: the fast path for a
//! folder as the node leaves it (segments read on every core) and the
//! general path that sorts out any other folder (stray names, a switch to
//! finish, competing branches). What is not taken goes through
//! [`super::aside`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::aside::{Fate, Why, fate_of};
use super::{COMMITTED, Loaded, PENDING, Store, StoreError, block_file_name, io_error};
use crate::block::{Block, BlockHash, PrevHash};
use crate::chain::{
    Carried, Chain, ChainError, Clock, Cursor, History, Network, SEGMENT_BLOCKS, Segment,
    better_chain, check_block, check_genesis, check_linked,
};
use crate::fsio::{remove_empty_dir, remove_if_leftover, sync_dir, unique_path, write_atomic};

/// A block file found at load.
struct Candidate {
    path: PathBuf,
    block: Block,
    /// In the main folder under the name its index calls for.
    canonical: bool,
    in_pending: bool,
}

impl Store {
    /// The fast path of [`Store::load`]: `None` when the folder is not as
    /// the node leaves it.
    pub(super) fn load_canonical(&self, network: &Network) -> Result<Option<Loaded>, StoreError> {
        if self.dir.join(PENDING).exists() {
            return Ok(None);
        }
        let Some(indices) = canonical_indices(&self.dir)? else {
            return Ok(None);
        };
        // One file for each block from 0 on, no gap: otherwise a block
        // may sit under another name, for the general path to find.
        if indices.first() != Some(&0) || indices.last() != Some(&(indices.len() as u64 - 1)) {
            return Ok(None);
        }
        let run = indices.len();
        let max_file_bytes = network.max_block_text_bytes();
        let segments = (run as u64).div_ceil(SEGMENT_BLOCKS as u64);
        let next = std::sync::atomic::AtomicU64::new(0);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut read: Vec<Option<ReadSegment>> = (0..segments).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let segment = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if segment >= segments {
                                return done;
                            }
                            let first = segment * SEGMENT_BLOCKS as u64;
                            let last = (first + SEGMENT_BLOCKS as u64).min(run as u64);
                            done.push((
                                segment,
                                read_segment(&self.dir, first..last, network, max_file_bytes),
                            ));
                        }
                    })
                })
                .collect();
            for handle in handles {
                for (segment, result) in handle.join().expect("a reader does not panic") {
                    read[segment as usize] = Some(result);
                }
            }
        });
        let read: Vec<ReadSegment> = read
            .into_iter()
            .map(|r| r.expect("every segment read"))
            .collect();
        if read.iter().any(|r| r.misnamed) {
            return Ok(None);
        }
        match read.first().and_then(|r| r.failure.as_ref()) {
            Some((0, BlockFailure::Invalid(ChainError::WrongGenesis { got, .. }))) => {
                return Err(StoreError::GenesisMismatch {
                    path: self.dir.join(block_file_name(0)),
                    expected: network.genesis.hash,
                    got: *got,
                });
            }
            // A damaged genesis file: the general path rewrites it.
            Some((0, _)) => return Ok(None),
            _ => {}
        }

        // The chain runs up to the first failure: in a segment, or a broken
        // link between two.
        let mut segments_kept = Vec::new();
        let mut hashes: Vec<BlockHash> = Vec::new();
        let mut timestamps: Vec<u128> = Vec::new();
        let mut items = Vec::new();
        let mut failure: Option<(u64, BlockFailure)> = None;
        let mut tip_json: Option<Vec<u8>> = None;
        for segment in read {
            if failure.is_some() {
                break;
            }
            if let (Some(prev), Some(first_prev)) = (hashes.last(), &segment.first_prev)
                && !first_prev.links_to(prev)
            {
                failure = Some((
                    segment.first,
                    BlockFailure::Invalid(ChainError::BadPrevHash {
                        index: segment.first,
                        expected: *prev,
                        got: first_prev.shown(),
                    }),
                ));
                break;
            }
            failure = segment.failure.clone();
            if segment.ends.is_empty() {
                continue;
            }
            tip_json = Some(segment.last_json().to_vec());
            hashes.extend_from_slice(&segment.hashes);
            timestamps.extend_from_slice(&segment.timestamps);
            items.extend_from_slice(&segment.items);
            segments_kept.push(Segment::new(
                segment.first,
                bytes::Bytes::from(segment.bytes),
                segment.ends,
            ));
        }
        let tip = Block::from_json(&tip_json.expect("block 0 was read"))
            .expect("the loader's own JSON parses");
        // The rules of each block's place in the chain (an adaptive
        // network's targets and timestamps), in order; a block that breaks
        // them is rare enough to leave to the general path.
        let mut history = History::genesis(network);
        for (hash, timestamp) in hashes.iter().zip(&timestamps).skip(1) {
            if history
                .push_checked(*hash, *timestamp, network, Clock::Stored)
                .is_err()
            {
                return Ok(None);
            }
        }
        let chain = Chain::from_segments(segments_kept, hashes, items, tip, history, network);

        // Files from the failure on are set aside, each with its reason;
        // if one of them holds a block other than its name says, the
        // general path sorts the folder out instead.
        let mut fates = Vec::new();
        if let Some((failed, _)) = &failure {
            for index in failed + 1..indices.len() as u64 {
                let fate =
                    match read_block_file(&self.dir.join(block_file_name(index)), max_file_bytes) {
                        Err(reason) => Fate::Quarantine(Why::only(reason)),
                        Ok(block) if block.index != index => return Ok(None),
                        Ok(block) => fate_of(&block, &chain, network),
                    };
                fates.push((index, fate));
            }
        }
        if let Some((1, BlockFailure::Invalid(error))) = &failure {
            let path = self.dir.join(block_file_name(1));
            if let Ok(block) = read_block_file(&path, max_file_bytes)
                && let Some(refusal) = StoreError::other_difficulty(&path, &block, error, network)
            {
                return Err(refusal);
            }
        }
        let mut set_aside = Vec::new();
        if let Some((failed, why)) = failure {
            let reason = match &why {
                BlockFailure::Unreadable(reason) => reason.clone(),
                BlockFailure::Invalid(error) => error.to_string(),
            };
            let path = self.dir.join(block_file_name(failed));
            set_aside.push(self.set_aside(
                &path,
                Some(failed),
                Fate::Quarantine(Why::only(reason)),
            )?);
        }
        for (index, fate) in fates {
            let path = self.dir.join(block_file_name(index));
            set_aside.push(self.set_aside(&path, Some(index), fate)?);
        }
        Ok(Some(Loaded { chain, set_aside }))
    }

    /// The general path of [`Store::load`].
    pub(super) fn load_general(&self, network: &Network) -> Result<Loaded, StoreError> {
        let pending_dir = self.dir.join(PENDING);
        let max_file_bytes = network.max_block_text_bytes();
        // Staged blocks are part of the chain only if their switch reached
        // its commit point; otherwise they are leftovers, set aside below.
        let committed = pending_dir.join(COMMITTED).exists();
        let mut candidates = Vec::new();
        let mut unreadable = Vec::new();
        let mut stale = Vec::new();
        for (folder, in_pending) in [(&self.dir, false), (&pending_dir, true)] {
            for path in json_files(folder)? {
                if in_pending && !committed {
                    stale.push(path);
                    continue;
                }
                match read_block_file(&path, max_file_bytes) {
                    Ok(block) => {
                        let canonical = !in_pending
                            && path.file_name() == Some(OsStr::new(&block_file_name(block.index)));
                        candidates.push(Candidate {
                            path,
                            block,
                            canonical,
                            in_pending,
                        });
                    }
                    Err(reason) => unreadable.push((path, reason)),
                }
            }
        }
        // Preferred copies first: the current files win every tie.
        candidates.sort_by_key(|c| (c.block.index, c.in_pending, !c.canonical));

        let genesis_files: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.block.index == 0 && !c.in_pending)
            .collect();
        if let Some(first) = genesis_files.first()
            && genesis_files.iter().all(|c| c.block != network.genesis)
        {
            return Err(StoreError::GenesisMismatch {
                path: first.path.clone(),
                expected: network.genesis.hash,
                got: first.block.hash,
            });
        }

        // A chain of another difficulty: no block 1 passes, and one fails
        // only for its proof of work.
        let firsts = || candidates.iter().filter(|c| c.block.index == 1);
        if firsts().all(|c| check_block(&c.block, network).is_err())
            && let Some(refusal) = firsts().find_map(|c| {
                let error = check_block(&c.block, network).err()?;
                StoreError::other_difficulty(&c.path, &c.block, &error, network)
            })
        {
            return Err(refusal);
        }

        let (chosen, reached) = best_chain(&candidates, network);
        let blocks: Vec<Block> = chosen
            .iter()
            .enumerate()
            .map(|(index, source)| match source {
                Some(id) => candidates[*id].block.clone(),
                None => {
                    debug_assert_eq!(index, 0);
                    network.genesis.clone()
                }
            })
            .collect();
        let chain = Chain::from_trusted(blocks, network);

        let chosen_ids: HashSet<usize> = chosen.iter().flatten().copied().collect();
        let mut set_aside = Vec::new();
        let mut redundant = Vec::new();
        for (path, reason) in unreadable {
            set_aside.push(self.set_aside(&path, None, Fate::Quarantine(Why::only(reason)))?);
        }
        for path in stale {
            let why = Why::only(
                "staged for a switch of branches that never reached its commit point; \
                 not part of the chain",
            );
            set_aside.push(self.set_aside(&path, None, Fate::Quarantine(why))?);
        }
        for (id, candidate) in candidates.iter().enumerate() {
            if chosen_ids.contains(&id) {
                continue;
            }
            let block = &candidate.block;
            if chain.get(block.index).is_some_and(|b| b == *block) {
                // Another copy of a chain block: a staging copy can go, a
                // stray copy in the main folder is kept aside.
                if candidate.in_pending {
                    redundant.push(candidate.path.clone());
                } else {
                    let why = Why::shared(
                        format!("a second copy of block {}", block.index),
                        "second copies of blocks of the chain",
                    );
                    set_aside.push(self.set_aside(
                        &candidate.path,
                        Some(block.index),
                        Fate::Quarantine(why),
                    )?);
                }
                continue;
            }
            let fate = match fate_of(block, &chain, network) {
                // Valid on a branch of its own that lost: a longer one than
                // the chain, in an adaptive network.
                Fate::Quarantine(_) if reached.contains(&id) => Fate::Orphan(Why::shared(
                    format!("block {}: on a branch with less work", block.index),
                    "on a branch with less work",
                )),
                fate => fate,
            };
            set_aside.push(self.set_aside(&candidate.path, Some(block.index), fate)?);
        }

        // Chain blocks under another name move to pending first, so that no
        // rename below can land on a file still needed; the marker makes a
        // crash meanwhile load them as part of the chain.
        let mut staged = Vec::new();
        for id in chosen.iter().flatten() {
            let candidate = &candidates[*id];
            if !candidate.canonical && !candidate.in_pending {
                if !pending_dir.join(COMMITTED).exists() {
                    fs::create_dir_all(&pending_dir).map_err(io_error("create", &pending_dir))?;
                    write_atomic(
                        &pending_dir,
                        COMMITTED,
                        b"names of chain blocks being fixed\n",
                    )?;
                    sync_dir(&pending_dir)?;
                }
                let name = candidate
                    .path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy();
                let to = unique_path(&pending_dir, &format!("renamed-{name}"));
                fs::rename(&candidate.path, &to).map_err(io_error("move", &candidate.path))?;
                staged.push(to);
            } else if candidate.in_pending {
                staged.push(candidate.path.clone());
            }
        }
        let mut wrote_any = false;
        for (index, source) in chosen.iter().enumerate() {
            let in_place = source.is_some_and(|id| candidates[id].canonical);
            if !in_place {
                let block = chain
                    .get(index as u64)
                    .expect("the chain holds every chosen index");
                write_atomic(
                    &self.dir,
                    &block_file_name(block.index),
                    &block.to_json_line(),
                )?;
                wrote_any = true;
            }
        }
        if wrote_any {
            sync_dir(&self.dir)?;
        }
        for path in staged.into_iter().chain(redundant) {
            fs::remove_file(&path).map_err(io_error("remove staged copy", &path))?;
        }
        let marker = pending_dir.join(COMMITTED);
        if marker.exists() {
            fs::remove_file(&marker).map_err(io_error("remove", &marker))?;
        }
        remove_empty_dir(&pending_dir);
        Ok(Loaded { chain, set_aside })
    }
}

/// For each index of the valid chain with the most work the candidates
/// form, which candidate holds it (`None`: the genesis block has no file
/// yet); and every candidate that is valid on some branch.
fn best_chain(candidates: &[Candidate], network: &Network) -> (Vec<Option<usize>>, HashSet<usize>) {
    let mut by_index: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (id, candidate) in candidates.iter().enumerate() {
        by_index.entry(candidate.block.index).or_default().push(id);
    }
    let genesis = by_index.get(&0).and_then(|ids| {
        ids.iter()
            .copied()
            .find(|&id| candidates[id].block == network.genesis)
    });

    // Walk the block tree one height at a time; each level keeps every
    // valid block of that height, the position of its parent and its
    // branch's work, and the last level the cursors to check the next.
    struct Reached {
        source: Option<usize>,
        hash: BlockHash,
        parent: usize,
        work: crate::pow::Work,
    }
    let genesis_cursor = Cursor::genesis(network);
    let mut levels: Vec<Vec<Reached>> = vec![vec![Reached {
        source: genesis,
        hash: network.genesis.hash,
        parent: 0,
        work: genesis_cursor.work,
    }]];
    let mut cursors = vec![genesis_cursor];
    for height in 1.. {
        let previous = levels.last().expect("level 0 exists");
        let parents: HashMap<BlockHash, usize> = previous
            .iter()
            .enumerate()
            .map(|(position, reached)| (reached.hash, position))
            .collect();
        let mut level: Vec<Reached> = Vec::new();
        let mut next_cursors = Vec::new();
        for &id in by_index.get(&height).into_iter().flatten() {
            let block = &candidates[id].block;
            let Some(&parent) = block.prev_hash.block_hash().and_then(|h| parents.get(h)) else {
                continue;
            };
            if level.iter().any(|r| r.hash == block.hash) {
                continue;
            }
            let mut cursor = cursors[parent].clone();
            if cursor.step(block, network, Clock::Stored).is_ok() {
                level.push(Reached {
                    source: Some(id),
                    hash: block.hash,
                    parent,
                    work: cursor.work,
                });
                next_cursors.push(cursor);
            }
        }
        if level.is_empty() {
            break;
        }
        levels.push(level);
        cursors = next_cursors;
    }

    // Every reached block is the tip of a valid branch; the chain rule picks
    // one, and on a tie the one found first (the current files).
    let (mut best_height, mut position) = (0, 0);
    for (height, level) in levels.iter().enumerate() {
        for (candidate, reached) in level.iter().enumerate() {
            if better_chain(levels[best_height][position].work, reached.work) {
                (best_height, position) = (height, candidate);
            }
        }
    }
    let mut chosen = vec![None; best_height + 1];
    for height in (0..=best_height).rev() {
        let reached = &levels[height][position];
        chosen[height] = reached.source;
        position = reached.parent;
    }
    let reached = levels
        .iter()
        .flatten()
        .filter_map(|reached| reached.source)
        .collect();
    (chosen, reached)
}

/// Reads and parses one block file, or says why it cannot be used.
fn read_block_file(path: &Path, max_bytes: u64) -> Result<Block, String> {
    let size = fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > max_bytes {
        return Err(format!(
            "{size} bytes is too large for a block file of this network"
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    Block::from_json(&bytes).map_err(|e| e.to_string())
}

/// The `*.json` files directly in `dir` (none if it does not exist). Left
/// over temporary files of interrupted writes are removed: they were never
/// renamed into place, so no block was accepted from them.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error("list", dir))?.path();
        if !path.is_file() {
            continue;
        }
        if remove_if_leftover(&path) {
            continue;
        }
        if path.extension() == Some(OsStr::new("json")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Why a block file stops the fast load.
#[derive(Debug, Clone)]
enum BlockFailure {
    Unreadable(String),
    Invalid(ChainError),
}

/// What one reader made of a run of block files.
struct ReadSegment {
    first: u64,
    /// The blocks' compact JSON, each followed by a comma, up to the first
    /// failure.
    bytes: Vec<u8>,
    ends: Vec<u32>,
    hashes: Vec<BlockHash>,
    timestamps: Vec<u128>,
    /// The data items the blocks carry, and where.
    items: Vec<Carried>,
    /// The first block's `prev_hash`, to check the link with the segment
    /// before.
    first_prev: Option<PrevHash>,
    /// The first block that could not be used, and why.
    failure: Option<(u64, BlockFailure)>,
    /// A file held a block other than the one its name says.
    misnamed: bool,
}

impl ReadSegment {
    fn last_json(&self) -> &[u8] {
        let end = *self.ends.last().expect("not empty") as usize;
        let start = self.ends.iter().rev().nth(1).map_or(0, |&e| e as usize);
        &self.bytes[start..end - 1]
    }
}

/// Reads, parses and checks block files `range`, linking each to the one
/// before; stops at the first that fails.
fn read_segment(
    dir: &Path,
    range: std::ops::Range<u64>,
    network: &Network,
    max_file_bytes: u64,
) -> ReadSegment {
    let mut read = ReadSegment {
        first: range.start,
        bytes: Vec::with_capacity((range.end - range.start) as usize * 256),
        ends: Vec::with_capacity((range.end - range.start) as usize),
        hashes: Vec::with_capacity((range.end - range.start) as usize),
        timestamps: Vec::with_capacity((range.end - range.start) as usize),
        items: Vec::new(),
        first_prev: None,
        failure: None,
        misnamed: false,
    };
    let mut prev: Option<Block> = None;
    for index in range {
        let block = match read_block_file(&dir.join(block_file_name(index)), max_file_bytes) {
            Ok(block) => block,
            Err(reason) => {
                read.failure = Some((index, BlockFailure::Unreadable(reason)));
                break;
            }
        };
        if block.index != index {
            read.misnamed = true;
            break;
        }
        let checked = match &prev {
            _ if index == 0 => check_genesis(&block, network),
            Some(prev) => check_linked(prev.index, &prev.hash, &block, network),
            None => {
                read.first_prev = Some(block.prev_hash.clone());
                check_block(&block, network)
            }
        };
        if let Err(error) = checked {
            read.failure = Some((index, BlockFailure::Invalid(error)));
            break;
        }
        serde_json::to_writer(&mut read.bytes, &block).expect("a block always serialises");
        read.bytes.push(b',');
        read.ends.push(read.bytes.len() as u32);
        read.hashes.push(block.hash);
        read.timestamps.push(block.timestamp);
        read.items.extend(Carried::of(&block));
        prev = Some(block);
    }
    read
}

/// The indices of the `*.json` files in `dir` when every one is named for a
/// block (`000042.json`), sorted; `None` when one is named otherwise.
/// Leftover temporary files of interrupted writes are removed.
fn canonical_indices(dir: &Path) -> Result<Option<Vec<u64>>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    let mut indices = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Ok(None);
        };
        if remove_if_leftover(&entry.path()) {
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if !entry.file_type().map_err(io_error("list", dir))?.is_file() {
            continue;
        }
        match stem.parse::<u64>() {
            Ok(index) if block_file_name(index) == name => indices.push(index),
            _ => return Ok(None),
        }
    }
    indices.sort_unstable();
    Ok(Some(indices))
}

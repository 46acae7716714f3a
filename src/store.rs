//! The chaindata folder: one JSON file per block, named by its zero-padded
//! index (`000000.json`, `000001.json`, … `1000000.json`).
//!
//! This module owns every byte the node writes there, and three promises:
//!
//! - a block is on disk (written to a temporary name, synced, renamed into
//!   place, folder synced) before [`Store::append`] returns, so the node can
//!   serve or announce it;
//! - no block file is ever deleted: files that do not belong to the loaded
//!   chain are moved into `quarantine/` (not a valid block) or `orphaned/`
//!   (a valid block on a losing branch), each with a note saying why;
//! - a crash at any instant leaves files that load into a valid chain: a
//!   switch to another branch first stages the new blocks in `pending/`,
//!   which [`Store::load`] reads as well.
//!
//! It does not decide which chain is best among peers; see [`crate::chain`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::block::{Block, BlockHash};
use crate::chain::{
    Chain, ChainError, Clock, Cursor, History, Network, SEGMENT_BLOCKS, Segment, better_chain,
    check_block, check_genesis, check_linked,
};
use crate::fsio::{
    FileError, file_error, remove_empty_dir, remove_if_leftover, sync_dir, sync_filesystem,
    unique_path, write_all_atomic, write_atomic,
};
use crate::item::{ItemId, items_in};

/// Folder for the new branch's blocks while the node switches branches.
const PENDING: &str = "pending";
/// The file in `pending/` that commits a switch: with it, the staged
/// blocks are part of the chain; without it, they are leftovers.
const COMMITTED: &str = "COMMITTED";
/// Folder for files that are not valid blocks of this chain.
const QUARANTINE: &str = "quarantine";
/// Folder for valid blocks that lost to a branch with more work.
const ORPHANED: &str = "orphaned";

/// The name of the file that holds block `index`.
pub fn block_file_name(index: u64) -> String {
    format!("{index:06}.json")
}

/// The lock file that keeps two nodes off one folder. It holds the owner's
/// pid; the lock itself is an OS file lock, released even on SIGKILL.
const LOCK_FILE: &str = "jbc.lock";

/// A node's chaindata folder, locked for as long as this value lives.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Held open: closing it releases the lock.
    lock: fs::File,
}

/// What [`Store::load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The longest valid chain the files hold.
    pub chain: Chain,
    /// Files that were not part of it, and where they went.
    pub set_aside: Vec<SetAside>,
}

/// A file moved out of the way at load, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Where the file was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
    /// The index of the block it holds, when it holds one.
    pub index: Option<u64>,
    /// Why it is not part of the chain.
    pub reason: String,
    /// The reason without this file's particulars, shared by a run of
    /// files set aside for one cause (so they can be reported together).
    pub cause: String,
}

/// Consecutive blocks set aside into one folder for one cause: how the
/// load is reported, one line per run rather than one per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAsideRun {
    /// The first file of the run.
    pub first: SetAside,
    /// The index of the last block of the run.
    pub last_index: Option<u64>,
    /// How many files.
    pub count: usize,
}

impl fmt::Display for SetAsideRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = &self.first;
        let folder = first.to.parent().unwrap_or(Path::new("")).display();
        match (first.index, self.last_index) {
            (Some(from), Some(to)) if self.count > 1 => write!(
                f,
                "{} block files, blocks {from} to {to}, set aside in {folder}: {}",
                self.count, first.cause
            ),
            _ => write!(
                f,
                "block file {} set aside in {folder}: {}",
                first.from.display(),
                first.reason
            ),
        }
    }
}

/// Groups set-aside files into runs: consecutive block indices, one
/// folder, one cause.
pub fn runs(set_aside: &[SetAside]) -> Vec<SetAsideRun> {
    let mut sorted: Vec<&SetAside> = set_aside.iter().collect();
    sorted.sort_by_key(|aside| aside.index);
    let mut runs: Vec<SetAsideRun> = Vec::new();
    for aside in sorted {
        if let Some(run) = runs.last_mut()
            && run.first.to.parent() == aside.to.parent()
            && run.first.cause == aside.cause
            && run
                .last_index
                .zip(aside.index)
                .is_some_and(|(last, index)| index == last + 1)
        {
            run.count += 1;
            run.last_index = aside.index;
            continue;
        }
        runs.push(SetAsideRun {
            first: aside.clone(),
            last_index: aside.index,
            count: 1,
        });
    }
    runs
}

/// What went wrong with the chaindata folder.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// Another process is using the folder.
    #[error(
        "{} is locked by {}: another node is using this chaindata (stop it, or use another --chaindata)",
        path.display(),
        pid.map_or("another process".to_string(), |pid| format!("process {pid}"))
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    /// A switch of branches failed after its commit point, twice: the
    /// files are part-way between two chains, and only a restart (whose
    /// load finishes the switch) makes memory and disk agree again.
    #[error(
        "a switch of branches was interrupted after its commit point ({source}); \
         the node must restart, and its next start finishes the switch"
    )]
    SwitchInterrupted { source: Box<StoreError> },
    /// The folder belongs to another network.
    #[error(
        "{} holds block 0 {got}, but this network's genesis block is {expected}: \
         this chaindata belongs to another network (use another --chaindata or --genesis)",
        path.display()
    )]
    GenesisMismatch {
        path: PathBuf,
        expected: BlockHash,
        got: BlockHash,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let wrap = file_error(action, path);
    move |source| StoreError::Io(wrap(source))
}

/// A block file found at load.
struct Candidate {
    path: PathBuf,
    block: Block,
    /// In the main folder under the name its index calls for.
    canonical: bool,
    in_pending: bool,
}

/// Where a file that is not part of the chain goes, and why.
enum Fate {
    Quarantine(Why),
    Orphan(Why),
}

/// Why a file is set aside: the whole reason, and the part of it a run of
/// files can share.
struct Why {
    reason: String,
    cause: String,
}

impl Why {
    /// A reason particular to one file.
    fn only(reason: impl Into<String>) -> Why {
        let reason = reason.into();
        Why {
            cause: reason.clone(),
            reason,
        }
    }

    /// A reason whose `cause` a run of files may share.
    fn shared(reason: impl Into<String>, cause: impl Into<String>) -> Why {
        Why {
            reason: reason.into(),
            cause: cause.into(),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the chaindata folder at `dir` and locks it
    /// against other nodes.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        // Absolute, so every path the node reports says where it really is.
        let dir = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let lock = lock(&dir)?;
        Ok(Store { dir, lock })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the longest valid chain the folder holds, then tidies the
    /// folder so it holds exactly that chain under canonical names. A fresh
    /// folder gets the genesis block. Refuses, touching nothing, when the
    /// folder's block 0 is another network's.
    ///
    /// A folder as the node leaves it (every file named for the block it
    /// holds, nothing staged) is read on every core, a segment of files per
    /// task; anything else (files under other names, a switch to finish)
    /// takes the general path, which sorts every candidate out.
    pub fn load(&self, network: &Network) -> Result<Loaded, StoreError> {
        match self.load_canonical(network)? {
            Some(loaded) => Ok(loaded),
            None => self.load_general(network),
        }
    }

    /// The fast path of [`Store::load`]: `None` when the folder is not as
    /// the node leaves it.
    fn load_canonical(&self, network: &Network) -> Result<Option<Loaded>, StoreError> {
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
        let max_file_bytes = max_block_file_bytes(network);
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
                && *first_prev != prev.to_string()
            {
                failure = Some((
                    segment.first,
                    BlockFailure::Invalid(ChainError::BadPrevHash {
                        index: segment.first,
                        expected: *prev,
                        got: first_prev.chars().take(80).collect(),
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
    fn load_general(&self, network: &Network) -> Result<Loaded, StoreError> {
        let pending_dir = self.dir.join(PENDING);
        let max_file_bytes = max_block_file_bytes(network);
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
                let block = &chain.blocks()[index];
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

    /// Writes one new block to its file; it is durable when this returns.
    pub fn append(&self, block: &Block) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(block))
    }

    /// Writes new blocks after the last one, each to its file; they are
    /// durable when this returns.
    ///
    /// A batch is written to temporary files, made durable together (one
    /// `syncfs` instead of a flush per block), renamed into place, and the
    /// folder synced once: a page of a catch-up costs about what one block
    /// does. A crash part-way leaves some of the new files in place, each
    /// complete, which load as the chain's next blocks.
    pub fn append_all(&self, blocks: &[Block]) -> Result<(), StoreError> {
        if blocks.len() <= 2 {
            for block in blocks {
                write_atomic(
                    &self.dir,
                    &block_file_name(block.index),
                    &block.to_json_line(),
                )?;
            }
            return Ok(sync_dir(&self.dir)?);
        }
        let files: Vec<(String, Vec<u8>)> = blocks
            .iter()
            .map(|block| (block_file_name(block.index), block.to_json_line()))
            .collect();
        Ok(write_all_atomic(
            &self.dir,
            files
                .iter()
                .map(|(name, bytes)| (name.clone(), bytes.as_slice())),
        )?)
    }

    /// Switches branches: the files of `outgoing` (the current blocks from
    /// the fork on) make way for `incoming` (the new ones). Blocks before the
    /// fork are not touched; outgoing blocks are kept in `orphaned/`.
    ///
    /// The new blocks are staged in `pending/` and made durable, then a
    /// marker file there commits the switch. A failure before the marker
    /// leaves the old chain (the staged copies are dropped, and a crash's
    /// leftovers are set aside at the next load, never adopted); after it,
    /// the switch is finished, tried twice, and if that fails the error is
    /// [`StoreError::SwitchInterrupted`]: the next load finishes it.
    pub fn switch(&self, outgoing: &[Block], incoming: &[Block]) -> Result<(), StoreError> {
        if let Err(error) = self.stage(incoming) {
            self.discard_pending(incoming);
            return Err(error);
        }
        self.finish_switch(outgoing, incoming).or_else(|first| {
            tracing::warn!("finishing a switch of branches failed ({first}); trying again");
            self.finish_switch(outgoing, incoming)
                .map_err(|_| StoreError::SwitchInterrupted {
                    source: Box::new(first),
                })
        })
    }

    /// Writes the incoming blocks to `pending/`, durably, then the marker
    /// that commits the switch.
    fn stage(&self, incoming: &[Block]) -> Result<(), StoreError> {
        let pending_dir = self.dir.join(PENDING);
        fs::create_dir_all(&pending_dir).map_err(io_error("create", &pending_dir))?;
        // Staged files count only once the marker is written, so they need
        // no temporary names: one sync makes them all durable.
        for block in incoming {
            failpoint("stage a block")?;
            let path = pending_dir.join(block_file_name(block.index));
            fs::write(&path, block.to_json_line()).map_err(io_error("write", &path))?;
        }
        sync_filesystem(&self.dir)?;
        sync_dir(&pending_dir)?;
        failpoint("commit")?;
        write_atomic(
            &pending_dir,
            COMMITTED,
            b"a switch of branches is committed\n",
        )?;
        Ok(sync_dir(&pending_dir)?)
    }

    /// Drops what a switch that did not reach its commit point staged.
    fn discard_pending(&self, incoming: &[Block]) {
        let pending_dir = self.dir.join(PENDING);
        for block in incoming {
            let _ = fs::remove_file(pending_dir.join(block_file_name(block.index)));
        }
        let _ = fs::remove_file(pending_dir.join(COMMITTED));
        remove_empty_dir(&pending_dir);
    }

    /// The steps after the commit point; safe to run again after a failure
    /// part-way.
    fn finish_switch(&self, outgoing: &[Block], incoming: &[Block]) -> Result<(), StoreError> {
        let pending_dir = self.dir.join(PENDING);
        let orphan_dir = self.dir.join(ORPHANED);
        if !outgoing.is_empty() {
            fs::create_dir_all(&orphan_dir).map_err(io_error("create", &orphan_dir))?;
        }
        for block in outgoing {
            let from = self.dir.join(block_file_name(block.index));
            let to = orphan_dir.join(format!("{:06}-{}.json", block.index, block.hash));
            if to.exists() {
                continue; // moved by an earlier attempt
            }
            failpoint("orphan a block")?;
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("move", &from)(e)),
            }
        }
        for block in incoming {
            let name = block_file_name(block.index);
            let from = pending_dir.join(&name);
            failpoint("move a block into place")?;
            match fs::rename(&from, self.dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // moved before
                Err(e) => return Err(io_error("move", &from)(e)),
            }
        }
        sync_dir(&self.dir)?;
        if !outgoing.is_empty() {
            sync_dir(&orphan_dir)?;
        }
        failpoint("uncommit")?;
        let marker = pending_dir.join(COMMITTED);
        fs::remove_file(&marker).map_err(io_error("remove", &marker))?;
        remove_empty_dir(&pending_dir);
        Ok(())
    }

    /// Moves a file that is not part of the chain out of the way and writes
    /// the reason beside it.
    fn set_aside(
        &self,
        path: &Path,
        index: Option<u64>,
        fate: Fate,
    ) -> Result<SetAside, StoreError> {
        let (folder, Why { reason, cause }) = match fate {
            Fate::Quarantine(why) => (self.dir.join(QUARANTINE), why),
            Fate::Orphan(why) => (self.dir.join(ORPHANED), why),
        };
        fs::create_dir_all(&folder).map_err(io_error("create", &folder))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let to = unique_path(&folder, &format!("{stamp}-{name}"));
        fs::rename(path, &to).map_err(io_error("move", path))?;
        let mut note = to.clone().into_os_string();
        note.push(".reason");
        let note = PathBuf::from(note);
        let text = format!("{}: {reason}\n", path.display());
        fs::write(&note, text).map_err(io_error("write", &note))?;
        Ok(SetAside {
            from: path.to_path_buf(),
            to,
            index,
            reason,
            cause,
        })
    }
}

/// Takes the folder's lock, or says which process holds it.
fn lock(dir: &Path) -> Result<fs::File, StoreError> {
    use std::io::{Read, Seek};
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("open the lock file", &path))?;
    let mut previous = String::new();
    let _ = file.read_to_string(&mut previous);
    let previous: Option<u32> = previous.trim().parse().ok();
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Locked {
                path,
                pid: previous,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", &path)(e)),
    }
    if let Some(pid) = previous {
        tracing::warn!(
            pid,
            lock = %path.display(),
            "taking over the lock of process {pid}, which did not stop cleanly (no longer holds it)"
        );
    }
    let own = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(own.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(io_error("write the lock file", &path))?;
    Ok(file)
}

impl Drop for Store {
    fn drop(&mut self) {
        // An empty lock file tells the next owner this one stopped cleanly.
        let _ = self.lock.set_len(0);
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
        let parents: HashMap<String, usize> = previous
            .iter()
            .enumerate()
            .map(|(position, reached)| (reached.hash.to_string(), position))
            .collect();
        let mut level: Vec<Reached> = Vec::new();
        let mut next_cursors = Vec::new();
        for &id in by_index.get(&height).into_iter().flatten() {
            let block = &candidates[id].block;
            let Some(&parent) = parents.get(&block.prev_hash) else {
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

/// Why a parsed block file is not part of the loaded chain.
fn fate_of(block: &Block, chain: &Chain, network: &Network) -> Fate {
    if block.index == 0 {
        return Fate::Quarantine(Why::only("not this network's genesis block"));
    }
    if let Err(error) = check_block(block, network) {
        return Fate::Quarantine(Why::only(error.to_string()));
    }
    if chain.len() < block.index {
        return Fate::Quarantine(Why::shared(
            format!(
                "block {} is missing or invalid, so block {} cannot follow",
                chain.len(),
                block.index
            ),
            format!(
                "block {} is missing or invalid, so the blocks after it cannot follow",
                chain.len()
            ),
        ));
    }
    let cursor = chain
        .cursor_at(block.index - 1)
        .expect("block index - 1 is in the chain");
    match cursor.check(block, network, Clock::Stored) {
        Err(error @ ChainError::BadPrevHash { .. }) if chain.len() > block.index => {
            Fate::Orphan(Why::shared(
                format!("{error}: on a branch that lost to one with more work"),
                "on a branch that lost to one with more work",
            ))
        }
        Err(error) => Fate::Quarantine(Why::only(error.to_string())),
        Ok(()) => Fate::Orphan(Why::shared(
            format!(
                "a competing block {}: a branch with more work won",
                block.index
            ),
            "competing blocks: a branch with more work won",
        )),
    }
}

/// The largest block file read: a block's compact JSON is limited by the
/// network, and a file written by another program (the original writes
/// spaces after `:` and `,`) may be somewhat larger than that.
fn max_block_file_bytes(network: &Network) -> u64 {
    network.max_block_bytes.saturating_mul(2) + 64 * 1024
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
    items: Vec<(ItemId, u64)>,
    /// The first block's `prev_hash`, to check the link with the segment
    /// before.
    first_prev: Option<String>,
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
        for text in items_in(&block.data).into_iter().flatten() {
            read.items.push((ItemId::of(&text), index));
        }
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

/// A place where a test can make a file operation fail (the `n`th one
/// on this thread, counting from 0); nothing in a normal build.
#[cfg(not(test))]
#[inline(always)]
fn failpoint(_step: &str) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// The operation to fail (counting down to 0) and whether every one
    /// after it fails too.
    static FAIL_AT: std::cell::Cell<Option<(usize, bool)>> = const { std::cell::Cell::new(None) };
    /// Whether an injected failure happened.
    static FAILED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn failpoint(step: &str) -> Result<(), StoreError> {
    FAIL_AT.with(|at| match at.get() {
        Some((0, sticky)) => {
            at.set(sticky.then_some((0, true)));
            FAILED.with(|failed| failed.set(true));
            Err(StoreError::Io(FileError {
                action: "inject a failure at",
                path: PathBuf::from(step),
                source: io::Error::other("injected"),
            }))
        }
        Some((n, sticky)) => {
            at.set(Some((n - 1, sticky)));
            Ok(())
        }
        None => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::{chain_of, test_network};
    use crate::miner::Template;

    fn write_chain(dir: &Path, blocks: &[Block]) {
        for block in blocks {
            fs::write(dir.join(block_file_name(block.index)), block.to_json_line()).unwrap();
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != LOCK_FILE)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_second_store_on_one_folder_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected the folder to be locked, got {other:?}"),
        }
        drop(first);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn a_fresh_folder_gets_the_genesis_block() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), 1);
        assert_eq!(listing(dir.path()), ["000000.json"]);
        let written = fs::read(dir.path().join("000000.json")).unwrap();
        assert_eq!(Block::from_json(&written).unwrap(), network.genesis);
    }

    #[test]
    fn appended_blocks_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let store = Store::open(dir.path()).unwrap();
        let mut chain = store.load(&network).unwrap().chain;
        for block in chain_of(&network, 4, "a").into_iter().skip(1) {
            store.append(&block).unwrap();
            chain.push(block, &network).unwrap();
        }
        let loaded = store.load(&network).unwrap();
        assert_eq!(loaded.chain.blocks(), chain.blocks());
        assert!(loaded.set_aside.is_empty());
        assert_eq!(listing(dir.path()).len(), 4);
    }

    #[test]
    fn a_chain_block_under_another_name_moves_to_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let blocks = chain_of(&network, 4, "a");
        write_chain(dir.path(), &blocks);
        // 000002.json's block under a name that sorts last, and 000003.json's
        // block where block 1 belongs: nothing may be overwritten.
        fs::rename(dir.path().join("000002.json"), dir.path().join("zzz.json")).unwrap();
        fs::rename(
            dir.path().join("000001.json"),
            dir.path().join("000002.json"),
        )
        .unwrap();
        fs::rename(
            dir.path().join("000003.json"),
            dir.path().join("000001.json"),
        )
        .unwrap();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.blocks(), &blocks[..]);
        assert!(loaded.set_aside.is_empty());
        assert_eq!(
            listing(dir.path()),
            ["000000.json", "000001.json", "000002.json", "000003.json"]
        );
        let again = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(again.chain.blocks(), &blocks[..]);
    }

    #[test]
    fn big_indices_get_more_digits_and_sort_numerically() {
        let mut names: Vec<String> = [999_999, 1_000_000, 5]
            .into_iter()
            .map(block_file_name)
            .collect();
        names.sort();
        assert_eq!(names, ["000005.json", "1000000.json", "999999.json"]);
        // The loader orders by the index inside each file, not by name.
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let blocks = chain_of(&network, 3, "a");
        fs::write(dir.path().join("000000.json"), blocks[0].to_json_line()).unwrap();
        fs::write(dir.path().join("9999999.json"), blocks[1].to_json_line()).unwrap();
        fs::write(dir.path().join("1000000.json"), blocks[2].to_json_line()).unwrap();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.blocks(), &blocks[..]);
    }

    #[test]
    fn a_corrupt_file_keeps_the_valid_prefix_and_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let blocks = chain_of(&network, 5, "a");
        write_chain(dir.path(), &blocks);
        let garbage = b"{\"index\": \"3\", trunc".to_vec();
        fs::write(dir.path().join("000003.json"), &garbage).unwrap();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.blocks(), &blocks[..3]);
        assert_eq!(loaded.set_aside.len(), 2, "{:?}", loaded.set_aside);
        let corrupt = loaded
            .set_aside
            .iter()
            .find(|s| s.from.ends_with("000003.json"))
            .unwrap();
        assert!(
            corrupt.reason.starts_with("not valid JSON"),
            "{}",
            corrupt.reason
        );
        assert_eq!(fs::read(&corrupt.to).unwrap(), garbage);
        let orphan = loaded
            .set_aside
            .iter()
            .find(|s| s.from.ends_with("000004.json"))
            .unwrap();
        assert!(
            orphan.reason.contains("block 3 is missing or invalid"),
            "{}",
            orphan.reason
        );
        assert_eq!(fs::read(&orphan.to).unwrap(), blocks[4].to_json_line());
        // The folder now holds exactly the chain, so later writes can't
        // overwrite anything that was set aside.
        assert_eq!(
            listing(dir.path()),
            ["000000.json", "000001.json", "000002.json", "quarantine"]
        );
        let again = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(again.chain.len(), 3);
        assert!(again.set_aside.is_empty());
    }

    #[test]
    fn a_missing_block_sets_the_rest_aside_as_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let blocks = chain_of(&network, 9, "a");
        write_chain(dir.path(), &blocks);
        fs::remove_file(dir.path().join("000003.json")).unwrap();
        fs::write(dir.path().join("notes.json"), "not json").unwrap();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.set_aside.len(), 6);
        let runs = runs(&loaded.set_aside);
        assert_eq!(runs.len(), 2, "{runs:?}");
        let quarantine = dir.path().join(QUARANTINE);
        assert_eq!(
            runs[1].to_string(),
            format!(
                "5 block files, blocks 4 to 8, set aside in {}: \
                 block 3 is missing or invalid, so the blocks after it cannot follow",
                quarantine.display()
            )
        );
        assert!(
            runs[0].to_string().starts_with(&format!(
                "block file {}",
                dir.path().join("notes.json").display()
            )),
            "{}",
            runs[0]
        );
    }

    #[test]
    fn a_long_folder_loads_segment_by_segment_and_stops_where_it_breaks() {
        let network = test_network();
        let blocks = crate::chain::tests::long_chain();
        let dir = tempfile::tempdir().unwrap();
        write_chain(dir.path(), blocks);
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), blocks.len() as u64);
        assert_eq!(loaded.chain.to_json(), serde_json::to_vec(blocks).unwrap());
        assert!(loaded.set_aside.is_empty());

        // The first block of the second segment is damaged: the chain is the
        // first segment, and every file after it is set aside.
        let broken = SEGMENT_BLOCKS as u64;
        fs::write(
            dir.path().join(block_file_name(broken)),
            b"{\"index\": 4096",
        )
        .unwrap();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), broken);
        assert_eq!(loaded.chain.tip(), &blocks[broken as usize - 1]);
        let runs = runs(&loaded.set_aside);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(
            runs[0].to_string().contains("not valid JSON"),
            "{}",
            runs[0]
        );
        assert_eq!(runs[1].count, blocks.len() - broken as usize - 1);
        assert_eq!(
            listing(&dir.path().join(QUARANTINE)).len(),
            2 * (blocks.len() - broken as usize),
            "each file and its reason"
        );

        // Another branch's block where a segment begins: the link breaks.
        let dir = tempfile::tempdir().unwrap();
        write_chain(dir.path(), blocks);
        let stranger = (0..)
            .map(|nonce| {
                let prev = blocks[100].hash.to_string();
                Block::new(broken, 1_700_000_000, prev, "elsewhere".into(), nonce)
            })
            .find(|b| b.hash.meets_difficulty(2))
            .unwrap();
        fs::write(
            dir.path().join(block_file_name(broken)),
            stranger.to_json_line(),
        )
        .unwrap();
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), broken);
        assert!(
            loaded.set_aside[0]
                .reason
                .contains("is not the hash of block 4095"),
            "{}",
            loaded.set_aside[0].reason
        );
    }

    #[test]
    fn an_adaptive_chain_loads_back_with_its_targets_and_work() {
        let dir = tempfile::tempdir().unwrap();
        let network = crate::chain::tests::adaptive_network(10, 5);
        // Fast blocks: the target gets harder at every retarget.
        let genesis = vec![network.genesis.clone()];
        let blocks = crate::chain::tests::extend_timed(&network, genesis, &[1; 23], "fast");
        let built = Chain::from_blocks(blocks.clone(), &network).unwrap();
        assert!(built.target_at(20) < built.target_at(15));
        write_chain(dir.path(), &blocks);
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert!(loaded.set_aside.is_empty());
        assert_eq!(loaded.chain.work(), built.work());
        assert_eq!(loaded.chain.tip_cursor(), built.tip_cursor());
        for index in [0, 4, 5, 19, 20, 23] {
            assert_eq!(loaded.chain.target_at(index), built.target_at(index));
            assert_eq!(loaded.chain.cursor_at(index), built.cursor_at(index));
        }
    }

    #[test]
    fn a_block_that_breaks_the_time_rule_is_quarantined_with_the_rest_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let network = crate::chain::tests::adaptive_network(10, 5);
        let genesis = vec![network.genesis.clone()];
        let mut blocks = crate::chain::tests::extend_timed(&network, genesis, &[10; 6], "a");
        // Block 7 goes back in time past the median of the blocks before.
        let early = Template::with_target(
            &blocks[6],
            "early".into(),
            blocks[2].timestamp,
            network.pow_limit(),
        )
        .solve_plainly();
        blocks.push(early);
        let blocks = crate::chain::tests::extend_timed(&network, blocks, &[100; 2], "after");
        write_chain(dir.path(), &blocks);
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), 7);
        let early = loaded
            .set_aside
            .iter()
            .find(|s| s.index == Some(7))
            .expect("block 7 set aside");
        assert!(early.reason.contains("is not after"), "{}", early.reason);
        assert!(early.to.starts_with(dir.path().join(QUARANTINE)));
        assert_eq!(loaded.set_aside.len(), 3);
    }

    #[test]
    fn the_branch_with_the_most_work_wins_over_a_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        let network = crate::chain::tests::adaptive_network(10, 5);
        let genesis = vec![network.genesis.clone()];
        // Fast blocks make the targets harder: fewer blocks, more work.
        let heavy = crate::chain::tests::extend_timed(&network, genesis.clone(), &[1; 14], "heavy");
        let light = crate::chain::tests::extend_timed(&network, genesis, &[100; 17], "light");
        let (heavy_chain, light_chain) = (
            Chain::from_blocks(heavy.clone(), &network).unwrap(),
            Chain::from_blocks(light.clone(), &network).unwrap(),
        );
        assert!(light_chain.len() > heavy_chain.len());
        assert!(heavy_chain.work() > light_chain.work());
        // The light branch holds the canonical names; the heavy one sits
        // under other names, so the general path weighs both.
        write_chain(dir.path(), &light);
        for block in &heavy[1..] {
            fs::write(
                dir.path().join(format!("heavy-{}.json", block.index)),
                block.to_json_line(),
            )
            .unwrap();
        }
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.blocks(), heavy);
        let orphaned: Vec<&SetAside> = loaded
            .set_aside
            .iter()
            .filter(|s| s.to.starts_with(dir.path().join(ORPHANED)))
            .collect();
        assert_eq!(orphaned.len(), light.len() - 1, "{:#?}", loaded.set_aside);
        assert!(
            orphaned[0].reason.contains("more work"),
            "{}",
            orphaned[0].reason
        );
    }

    #[test]
    fn a_tampered_block_is_quarantined_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let mut blocks = chain_of(&network, 4, "a");
        blocks[2].data = "tampered".into();
        write_chain(dir.path(), &blocks);
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), 2);
        let tampered = loaded
            .set_aside
            .iter()
            .find(|s| s.from.ends_with("000002.json"))
            .unwrap();
        assert!(
            tampered.reason.contains("does not match its contents"),
            "{}",
            tampered.reason
        );
        let note = fs::read_to_string(format!("{}.reason", tampered.to.display())).unwrap();
        assert!(note.contains("000002.json"), "{note}");
    }

    #[test]
    fn another_networks_genesis_is_refused_touching_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let other = Network {
            genesis: Block::new(0, 1, String::new(), "another network".into(), 0),
            ..test_network()
        };
        let blocks = chain_of(&other, 3, "a");
        write_chain(dir.path(), &blocks);
        fs::write(dir.path().join("junk.json"), "not json").unwrap();
        let before = listing(dir.path());
        let err = Store::open(dir.path()).unwrap().load(&network).unwrap_err();
        assert!(matches!(err, StoreError::GenesisMismatch { .. }), "{err}");
        assert_eq!(listing(dir.path()), before);
    }

    #[test]
    fn switching_branches_rewrites_only_the_fork_and_orphans_the_losers() {
        let dir = tempfile::tempdir().unwrap();
        let network = test_network();
        let store = Store::open(dir.path()).unwrap();
        let ours = chain_of(&network, 4, "ours");
        write_chain(dir.path(), &ours);
        let old = store.load(&network).unwrap().chain;
        let mut theirs = ours[..2].to_vec();
        for block in chain_of(&network, 4, "theirs").into_iter().skip(1) {
            let next = crate::chain::tests::mine_on(theirs.last().unwrap(), &block.data, 2);
            theirs.push(next);
        }
        theirs.truncate(6);
        let new = Chain::from_blocks(theirs.clone(), &network).unwrap();
        let unchanged = fs::metadata(dir.path().join("000001.json"))
            .unwrap()
            .modified()
            .unwrap();
        let fork = old.common_prefix(&new.blocks()) as usize;
        assert_eq!(fork, 2);
        store
            .switch(&old.blocks()[fork..], &new.blocks()[fork..])
            .unwrap();
        assert_eq!(
            fs::metadata(dir.path().join("000001.json"))
                .unwrap()
                .modified()
                .unwrap(),
            unchanged
        );
        assert_eq!(listing(&dir.path().join(ORPHANED)).len(), 2);
        let loaded = store.load(&network).unwrap();
        assert_eq!(loaded.chain.blocks(), new.blocks());
        assert!(loaded.set_aside.is_empty());
    }

    /// Two branches from block 1: ours (5 blocks) and theirs (7).
    fn two_branches() -> (Network, Vec<Block>, Vec<Block>) {
        let network = test_network();
        let ours = chain_of(&network, 5, "ours");
        let mut theirs = ours[..2].to_vec();
        while theirs.len() < 7 {
            let next = crate::chain::tests::mine_on(theirs.last().unwrap(), "theirs", 2);
            theirs.push(next);
        }
        (network, ours, theirs)
    }

    #[test]
    fn a_switch_interrupted_at_any_step_loads_the_old_or_new_chain() {
        // Replay the switch's file operations one by one, loading a copy of
        // the folder after each, as a crash at that instant would leave it:
        // the old chain before the commit marker, the new one from it on.
        enum Content<'a> {
            Block(&'a Block),
            Marker,
            Removed,
        }
        let (network, ours, theirs) = two_branches();
        let pending = |i: u64| format!("{PENDING}/{}", block_file_name(i));
        let main = block_file_name;
        let orphan = |b: &Block| format!("{ORPHANED}/{:06}-{}.json", b.index, b.hash);
        let marker = format!("{PENDING}/{COMMITTED}");
        let mut steps: Vec<Vec<(String, Content)>> = Vec::new();
        for b in &theirs[2..] {
            steps.push(vec![(pending(b.index), Content::Block(b))]);
        }
        let commit = steps.len();
        steps.push(vec![(marker.clone(), Content::Marker)]);
        for b in &ours[2..] {
            steps.push(vec![
                (main(b.index), Content::Removed),
                (orphan(b), Content::Block(b)),
            ]);
        }
        for b in &theirs[2..] {
            steps.push(vec![
                (pending(b.index), Content::Removed),
                (main(b.index), Content::Block(b)),
            ]);
        }
        steps.push(vec![(marker, Content::Removed)]);
        for done in 0..=steps.len() {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join(PENDING)).unwrap();
            fs::create_dir_all(dir.path().join(ORPHANED)).unwrap();
            write_chain(dir.path(), &ours);
            for (file, content) in steps[..done].iter().flatten() {
                let path = dir.path().join(file);
                match content {
                    Content::Block(block) => fs::write(path, block.to_json_line()).unwrap(),
                    Content::Marker => fs::write(path, "committed").unwrap(),
                    Content::Removed => fs::remove_file(path).unwrap(),
                }
            }
            let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
            let expected = if done <= commit { &ours } else { &theirs };
            assert_eq!(
                loaded.chain.blocks(),
                &expected[..],
                "after {done} steps (commit at {commit})"
            );
            assert!(!dir.path().join(PENDING).exists(), "after {done} steps");
        }
    }

    #[test]
    fn a_switch_that_fails_anywhere_leaves_the_old_chain_or_finishes() {
        // Fail the nth file operation of the switch, once (the switch
        // retries what follows its commit point) or from then on.
        for sticky in [false, true] {
            for n in 0.. {
                let (network, ours, theirs) = two_branches();
                let dir = tempfile::tempdir().unwrap();
                write_chain(dir.path(), &ours);
                let store = Store::open(dir.path()).unwrap();
                let old = store.load(&network).unwrap().chain;
                FAIL_AT.with(|f| f.set(Some((n, sticky))));
                FAILED.with(|f| f.set(false));
                let result = store.switch(&old.blocks()[2..], &theirs[2..]);
                FAIL_AT.with(|f| f.set(None));
                let failed_anywhere = FAILED.with(|f| f.get());
                drop(store);
                let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
                match result {
                    Ok(()) => assert_eq!(loaded.chain.blocks(), &theirs[..], "n={n}"),
                    Err(StoreError::SwitchInterrupted { .. }) => {
                        assert!(sticky, "a single failure is retried (n={n})");
                        assert_eq!(loaded.chain.blocks(), &theirs[..], "n={n}: rolled forward");
                    }
                    Err(error) => {
                        assert_eq!(loaded.chain.blocks(), &ours[..], "n={n}: {error}");
                        assert!(
                            loaded.set_aside.is_empty(),
                            "n={n}: nothing staged is left to set aside"
                        );
                    }
                }
                assert!(!dir.path().join(PENDING).exists(), "n={n}");
                if !failed_anywhere {
                    break; // n is past the last operation
                }
            }
        }
    }
}

//! The chaindata folder: one JSON file per block, named by its zero-padded
//! index (`000000.json`, `000001.json`, … `1000000.json`).
//!
//! This module owns every byte the node writes there, and three promises:
//!
//! - a block is on disk (written to a temporary name, synced, renamed into
//!   place, folder synced) before [`Store::append_all`] returns, so the node can
//!   serve or announce it;
//! - no block file is ever deleted: files that do not belong to the loaded
//!   chain are moved into `quarantine/` (not a valid block) or `orphaned/`
//!   (a valid block on a losing branch), each with a note saying why;
//! - a crash at any instant leaves files that load into a valid chain: a
//!   switch to another branch first stages the new blocks in `pending/`,
//!   which [`Store::load`] reads as well.
//!
//! Reading the folder back is in `load`, setting files aside in `aside`.
//! It does not decide which chain is best among peers; see [`crate::chain`].

mod aside;
mod load;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::block::{Block, BlockError, BlockHash, leading_zero_nibbles};
use crate::chain::{Chain, ChainError, Network};
use crate::fsio::{
    FileError, file_error, remove_empty_dir, sync_dir, sync_filesystem, write_all_atomic,
    write_atomic,
};
use crate::setting::{Setting, Words};

pub use aside::{SetAside, runs};

/// Folder for the new branch's blocks while the node switches branches.
const PENDING: &str = "pending";
/// The file in `pending/` that commits a switch: with it, the staged
/// blocks are part of the chain; without it, they are leftovers.
const COMMITTED: &str = "COMMITTED";
/// Folder for files that are not valid blocks of this chain.
const QUARANTINE: &str = "quarantine";
/// Folder for valid blocks that lost to a branch with more work.
const ORPHANED: &str = "orphaned";
/// Folder for the bodies of valid blocks that lost on arrival (never part
/// of this node's chain), bounded: what the block tree shows of them.
const SIDE: &str = "side";

/// The name of the file that holds block `index`.
pub fn block_file_name(index: u64) -> String {
    format!("{index:06}.json")
}

/// The lock file that keeps two nodes off one folder. It holds the owner's
/// pid; the lock itself is an OS file lock, released even on SIGKILL.
const LOCK_FILE: &str = "jbc.lock";
/// How often, and how far apart, a lock held over an empty file is asked
/// for again (at most 0.2 s in all).
const LOCK_RETRIES: u32 = 20;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// The folder of this node's block files, like the original's.
pub const CHAINDATA: Setting<Words, &str> = Setting {
    key: "chaindata",
    help: "folder of this node's block files",
    default: "chaindata",
    range: None,
    unit: "",
};

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
    /// The folder's chain was mined at another difficulty: its first block
    /// is whole and links to our genesis block, but its hash has too few
    /// zeros. Setting every block aside would throw the chain away for a
    /// mistyped flag, so the node refuses to start instead.
    #[error(
        "{} holds block 1 with a hash of {zeros} leading zero hex digits, short of this network's \
         difficulty {difficulty}: this chaindata was mined at difficulty {zeros} or less. Start \
         the node with the difficulty it was made with, or use another --chaindata (nothing was moved)",
        path.display()
    )]
    OtherDifficulty {
        path: PathBuf,
        zeros: u32,
        difficulty: u32,
    },
}

impl StoreError {
    /// The refusal for block `block` of the file at `path` that failed
    /// with `error`, when that means the chaindata is of another
    /// difficulty: block 1, whole, linked to the genesis block, with too
    /// little work.
    fn other_difficulty(
        path: &Path,
        block: &Block,
        error: &ChainError,
        network: &Network,
    ) -> Option<StoreError> {
        if !block.prev_hash.links_to(&network.genesis.hash) {
            return None;
        }
        match error {
            ChainError::Block(BlockError::BadProofOfWork {
                index: 1,
                hash,
                difficulty,
            }) if block.index == 1 => Some(StoreError::OtherDifficulty {
                path: path.to_path_buf(),
                zeros: leading_zero_nibbles(&hash.0),
                difficulty: *difficulty,
            }),
            _ => None,
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let wrap = file_error(action, path);
    move |source| StoreError::Io(wrap(source))
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
        let in_the_way = self.set_aside_non_files()?;
        let mut loaded = match self.load_canonical(network)? {
            Some(loaded) => loaded,
            None => self.load_general(network)?,
        };
        loaded.set_aside.splice(0..0, in_the_way);
        Ok(loaded)
    }

    /// The blocks in `orphaned/`, the `limit` most recently moved there
    /// (newest first), with their files, for the node to show its side
    /// branches. Best effort: a file that is not a block of at most
    /// `max_bytes`, or cannot be read, is passed over (it stays where it
    /// is; the load reported it when it moved it).
    pub fn recent_orphans(&self, limit: usize, max_bytes: u64) -> Vec<(Block, PathBuf)> {
        recent_blocks(&self.dir.join(ORPHANED), limit, max_bytes)
    }

    /// The blocks kept in `side/`, newest first, with their files: every
    /// one that is a block of at most `max_bytes`. A file that is not is
    /// passed over.
    pub fn side_blocks(&self, max_bytes: u64) -> Vec<(Block, PathBuf)> {
        recent_blocks(&self.dir.join(SIDE), usize::MAX, max_bytes)
    }

    /// Keeps the body of `block`, a valid block that lost on arrival, in
    /// `side/`; the file it is in. Not synced: it is only what the block
    /// tree shows, and a crash that takes it takes nothing of the chain.
    pub fn keep_side(&self, block: &Block) -> Result<PathBuf, StoreError> {
        let dir = self.dir.join(SIDE);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let name = format!("{:06}-{}.json", block.index, block.hash);
        let path = dir.join(&name);
        let tmp = dir.join(crate::fsio::temp_name(&name));
        fs::write(&tmp, block.to_json_line()).map_err(io_error("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("rename into place", &path))?;
        Ok(path)
    }

    /// The file a block of the chain that leaves it in a switch is moved
    /// to (see [`Store::switch`]).
    pub fn orphan_file(&self, block: &Block) -> PathBuf {
        self.dir
            .join(ORPHANED)
            .join(format!("{:06}-{}.json", block.index, block.hash))
    }

    /// Deletes `file` if it is in `side/`: the body of a side block the
    /// tree no longer remembers. Never a block of the chain or of
    /// `orphaned/`.
    pub fn drop_side(&self, file: &Path) {
        if file.parent() == Some(self.dir.join(SIDE).as_path()) {
            let _ = fs::remove_file(file);
        }
    }

    /// The block in `file`, if it is one with hash `hash`.
    pub fn read_side(&self, file: &Path, hash: &BlockHash) -> Option<Block> {
        Block::from_json(&fs::read(file).ok()?)
            .ok()
            .filter(|block| block.hash == *hash)
    }
}

/// The blocks in `dir`, newest first, the first `limit` that are blocks of
/// at most `max_bytes`, with their files.
fn recent_blocks(dir: &Path, limit: usize, max_bytes: u64) -> Vec<(Block, PathBuf)> {
    {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                (meta.is_file() && meta.len() <= max_bytes)
                    .then(|| Some((meta.modified().ok()?, entry.path())))?
            })
            .collect();
        files.sort_unstable_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        // Newest first, until `limit` of them are blocks.
        files
            .into_iter()
            .filter_map(|(_, path)| Some((Block::from_json(&fs::read(&path).ok()?).ok()?, path)))
            .take(limit)
            .collect()
    }
}

impl Store {
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
            let to = self.orphan_file(block);
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
    let read_pid = |file: &mut fs::File| {
        let mut text = String::new();
        let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
        text.trim().parse::<u32>().ok()
    };
    let mut previous = read_pid(&mut file);
    // A lock held over an empty file is one being let go: its owner
    // stopped cleanly (or has not written its pid yet), or a process this
    // one forks holds the closed descriptor until it execs. Asked again a
    // moment later, it is free or names its owner.
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if previous.is_none() && tries < LOCK_RETRIES => {
                tries += 1;
                std::thread::sleep(LOCK_RETRY_PAUSE);
                previous = read_pid(&mut file);
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path,
                    pid: previous,
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", &path)(e)),
        }
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

//! Files the load does not take into the chain: where each one goes
//! (`quarantine/` or `orphaned/`), the note that says why, and how a run of
//! them is reported. Nothing here deletes a file.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::{ORPHANED, QUARANTINE, Store, StoreError, io_error};
use crate::block::Block;
use crate::chain::{Chain, ChainError, Clock, Network, check_block};
use crate::fsio::unique_path;

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

/// Where a file that is not part of the chain goes, and why.
pub(super) enum Fate {
    Quarantine(Why),
    Orphan(Why),
}

/// Why a file is set aside: the whole reason, and the part of it a run of
/// files can share.
pub(super) struct Why {
    reason: String,
    cause: String,
}

impl Why {
    /// A reason particular to one file.
    pub(super) fn only(reason: impl Into<String>) -> Why {
        let reason = reason.into();
        Why {
            cause: reason.clone(),
            reason,
        }
    }

    /// A reason whose `cause` a run of files may share.
    pub(super) fn shared(reason: impl Into<String>, cause: impl Into<String>) -> Why {
        Why {
            reason: reason.into(),
            cause: cause.into(),
        }
    }
}

/// Why a parsed block file is not part of the loaded chain.
pub(super) fn fate_of(block: &Block, chain: &Chain, network: &Network) -> Fate {
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

impl Store {
    /// Moves out of the way every entry of the folder named like a block
    /// file that is not a file (a directory, a socket, …): the block of
    /// that name could never be written, and the node would retry for
    /// ever. Set aside like any other, with the reason.
    pub(super) fn set_aside_non_files(&self) -> Result<Vec<SetAside>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.dir)(e)),
        };
        let mut set_aside = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.dir))?;
            let named_like_a_block = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".json"));
            let kind = entry.file_type().map_err(io_error("list", &self.dir))?;
            if named_like_a_block && !kind.is_file() && !kind.is_symlink() {
                let what = if kind.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                };
                let reason = format!(
                    "{what} named like a block file: no block could be written under its name"
                );
                set_aside.push(self.set_aside(
                    &entry.path(),
                    None,
                    Fate::Quarantine(Why::only(reason)),
                )?);
            }
        }
        Ok(set_aside)
    }

    /// Moves a file that is not part of the chain out of the way and writes
    /// the reason beside it.
    pub(super) fn set_aside(
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

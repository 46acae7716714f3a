//! Durable file writes, the one way this node puts bytes on disk: a
//! temporary name, `fsync`, `rename` into place, a folder `fsync`, and the
//! clean-up of temporary files a crash left behind.
//!
//! A reader, or a restart after a crash, finds a file as it was or as it was
//! meant to be, never half-written. The chaindata store, the pool, the peer
//! book and `jbc init` all write through here; this module knows nothing of
//! what the bytes mean.
//!
//! [`SaveOnChange`] is the save-when-changed pattern of a file that mirrors
//! state kept in memory (the pool, the peer book).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A file operation that failed: what was being done, to which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Wraps an `io::Error` of `action` on `path`, for `map_err`.
pub fn file_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FileError {
    let path = path.to_path_buf();
    move |source| FileError {
        action,
        path,
        source,
    }
}

/// The temporary name a write to `name` goes through before its rename.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// Whether `name` is a temporary file of this module: one left by a write
/// that never reached its rename, so nothing was ever read from it.
pub fn is_leftover_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes `path` if it is a leftover temporary file; says whether it was.
pub fn remove_if_leftover(path: &Path) -> bool {
    let leftover = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(is_leftover_temp);
    if leftover {
        // Another process may have removed it meanwhile: nothing to do then.
        let _ = fs::remove_file(path);
    }
    leftover
}

/// Writes `bytes` to `path`, optionally synced; the file is removed again
/// if anything fails, so a failed write leaves nothing behind.
fn write_temp(path: &Path, bytes: &[u8], sync: bool) -> Result<(), FileError> {
    write_temp_with_mode(path, bytes, sync, 0o666)
}

/// [`write_temp`] for a new file of permissions `mode` (before the umask).
fn write_temp_with_mode(path: &Path, bytes: &[u8], sync: bool, mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        Ok(())
    })();
    written.map_err(|source| {
        let _ = fs::remove_file(path);
        FileError {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes `bytes` to `dir/name` so that the file is either as it was or
/// complete: temporary file, fsync, rename. The rename is durable once the
/// caller runs [`sync_dir`] on `dir` (once for a batch of files).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FileError> {
    let tmp = dir.join(temp_name(name));
    write_temp(&tmp, bytes, true)?;
    let target = dir.join(name);
    fs::rename(&tmp, &target).map_err(file_error("rename into place", &target))
}

/// Writes many files into `dir` at the cost of about one: each goes to its
/// temporary name unsynced, one `syncfs` makes them all durable, then each
/// is renamed into place and the folder synced once. A crash part-way
/// leaves some of the files in place, each complete.
pub fn write_all_atomic<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = (String, &'a [u8])>,
) -> Result<(), FileError> {
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let written = files.into_iter().try_for_each(|(name, bytes)| {
        let tmp = dir.join(temp_name(&name));
        write_temp(&tmp, bytes, false)?;
        staged.push((tmp, dir.join(name)));
        Ok(())
    });
    if let Err(error) = written.and_then(|()| sync_filesystem(dir)) {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(error);
    }
    for (tmp, target) in staged {
        fs::rename(&tmp, &target).map_err(file_error("rename into place", &target))?;
    }
    sync_dir(dir)
}

/// Replaces the file at `path` with `bytes`, durably: a reader, or a crash,
/// finds the old file or the new one and never a mix. The temporary name is
/// unique to this write, so two writers of one file never share it. For
/// files written whole (the pool, the peer book, a new network's config).
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    replace_file_with_mode(path, bytes, 0o666)
}

/// [`replace_file`] for a secret: the file is readable by its owner only
/// (mode 0600) from the moment it exists.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    replace_file_with_mode(path, bytes, 0o600)
}

fn replace_file_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(temp_name(&format!(
        "{name}.{}-{unique}",
        std::process::id()
    )));
    write_temp_with_mode(&tmp, bytes, true, mode)?;
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(file_error("rename into place", path)(source));
    }
    sync_dir(dir)
}

/// Makes renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_error("sync", dir))
}

/// Makes every write to the file system that holds `dir` durable.
pub fn sync_filesystem(dir: &Path) -> Result<(), FileError> {
    let folder = fs::File::open(dir).map_err(file_error("open", dir))?;
    nix::unistd::syncfs(&folder).map_err(|errno| FileError {
        action: "sync",
        path: dir.to_path_buf(),
        source: io::Error::from(errno),
    })
}

/// Removes `dir` if it is empty; anything else (absent, not empty) is
/// left as it is.
pub fn remove_empty_dir(dir: &Path) {
    let _ = fs::remove_dir(dir);
}

/// `dir/name`, or `dir/name.N` for the first N that is free.
pub fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// Moves a damaged file out of the way, never deleting it: `path` becomes
/// `path.damaged` (or `.damaged.N`, the first free), with a
/// `….reason` note beside it saying why. Returns where it went, as an
/// absolute path for the log.
pub fn set_aside_damaged(path: &Path, reason: &str) -> Result<PathBuf, FileError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = unique_path(dir, &format!("{name}.damaged"));
    fs::rename(path, &aside).map_err(file_error("move aside", path))?;
    let note = aside.with_file_name(format!(
        "{}.reason",
        aside.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = replace_file(&note, format!("{reason}\n").as_bytes());
    let _ = sync_dir(dir);
    Ok(std::path::absolute(&aside).unwrap_or(aside))
}

/// An append-only file of lines, each durable before [`Journal::append`]
/// returns, at the cost of about one `fdatasync` per batch: appenders that
/// arrive while a sync runs wait for the next one, which covers them all
/// (group commit). It holds what happened since the last whole save of
/// the state it logs; [`Journal::compact`] empties it when such a save
/// covers everything in it.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: fs::File,
    progress: Mutex<JournalProgress>,
    synced: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct JournalProgress {
    /// The file's length: where a failed write is cut back to, so a line
    /// half-written on a full disk never joins the next one.
    len: u64,
    /// Lines written, and lines known durable.
    written: u64,
    durable: u64,
    /// Whether an appender is syncing for everyone.
    syncing: bool,
    /// Why the last sync failed, for those it was to cover.
    failed: Option<(u64, String)>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, appending.
    pub fn open(path: PathBuf) -> Result<Journal, FileError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(file_error("open", &path))?;
        let len = file.metadata().map_err(file_error("read", &path))?.len();
        Ok(Journal {
            path,
            file,
            progress: Mutex::new(JournalProgress {
                len,
                ..JournalProgress::default()
            }),
            synced: std::sync::Condvar::new(),
        })
    }

    /// Appends `line` (a newline is added) and returns once it is on disk.
    /// Blocking.
    pub fn append(&self, line: &[u8]) -> Result<(), FileError> {
        let mut progress = self.progress.lock().expect("journal lock");
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
        if let Err(error) = (&self.file).write_all(&bytes) {
            let _ = self.file.set_len(progress.len);
            return Err(file_error("append to", &self.path)(error));
        }
        progress.len += bytes.len() as u64;
        progress.written += 1;
        let mine = progress.written;
        loop {
            if progress.durable >= mine {
                return Ok(());
            }
            if let Some((upto, reason)) = &progress.failed
                && *upto >= mine
            {
                return Err(FileError {
                    action: "sync",
                    path: self.path.clone(),
                    source: io::Error::other(reason.clone()),
                });
            }
            if progress.syncing {
                progress = self.synced.wait(progress).expect("journal lock");
                continue;
            }
            progress.syncing = true;
            let covers = progress.written;
            drop(progress);
            let result = self.file.sync_data();
            progress = self.progress.lock().expect("journal lock");
            progress.syncing = false;
            match result {
                Ok(()) => progress.durable = covers,
                Err(error) => progress.failed = Some((covers, error.to_string())),
            }
            self.synced.notify_all();
        }
    }

    /// Empties the journal once `save` has saved, whole and durably,
    /// everything it holds; no line is appended meanwhile, so none is
    /// lost between the save and the truncation. A failed save leaves the
    /// journal as it was.
    pub fn compact(&self, save: impl FnOnce() -> Result<(), FileError>) -> Result<(), FileError> {
        let mut progress = self.progress.lock().expect("journal lock");
        save()?;
        if progress.len == 0 {
            return Ok(());
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_data())
            .map_err(file_error("empty", &self.path))?;
        progress.len = 0;
        Ok(())
    }

    /// The lines of the journal at `path` (none if it does not exist); a
    /// line cut short by a crash is left out.
    pub fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, FileError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(file_error("read", path)(error)),
        };
        Ok(complete_lines(&bytes)
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }
}

/// The bytes up to and including the last newline: a line a crash cut
/// short is not one.
fn complete_lines(bytes: &[u8]) -> &[u8] {
    match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[],
    }
}

/// A file that mirrors state kept in memory: marked when the state
/// changes, written whole by [`SaveOnChange::flush`] when it was, one save
/// at a time, each of the state as it was when that save began.
#[derive(Debug)]
pub struct SaveOnChange {
    path: PathBuf,
    changed: AtomicBool,
    saving: Mutex<()>,
}

impl SaveOnChange {
    pub fn new(path: PathBuf) -> SaveOnChange {
        SaveOnChange {
            path,
            changed: AtomicBool::new(false),
            saving: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Notes that the state changed since the last save.
    pub fn mark_changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Saves what `render` makes of the state if it changed since the last
    /// save. A change while `render` runs is kept for the next flush, and a
    /// failed save leaves the state marked, so the next flush tries again.
    pub fn flush(&self, render: impl FnOnce() -> Vec<u8>) -> Result<(), FileError> {
        let _saving = self.saving.lock().expect("save lock");
        if !self.changed.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        replace_file(&self.path, &render()).inspect_err(|_| self.mark_changed())
    }

    /// Saves what `render` makes of the state now, changed or not.
    pub fn save(&self, render: impl FnOnce() -> Vec<u8>) -> Result<(), FileError> {
        self.mark_changed();
        self.flush(render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_land_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.json", b"one").unwrap();
        write_all_atomic(
            dir.path(),
            [("b.json".to_string(), &b"two"[..]), ("c.json".into(), b"3")],
        )
        .unwrap();
        replace_file(&dir.path().join("a.json"), b"four").unwrap();
        assert_eq!(names(dir.path()), ["a.json", "b.json", "c.json"]);
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"four");
        assert_eq!(fs::read(dir.path().join("c.json")).unwrap(), b"3");
    }

    #[test]
    fn a_write_that_fails_leaves_the_old_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.json");
        fs::write(&path, b"old").unwrap();
        // A folder where the file should go: the rename fails.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        let error = replace_file(&blocked, b"new").unwrap_err();
        assert_eq!(error.action, "rename into place");
        assert_eq!(names(dir.path()), ["blocked", "book.json"]);
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn only_temporary_names_count_as_leftovers() {
        assert!(is_leftover_temp(&temp_name("000001.json")));
        assert!(!is_leftover_temp("000001.json"));
        assert!(!is_leftover_temp(".hidden.json"));
        let dir = tempfile::tempdir().unwrap();
        let leftover = dir.path().join(temp_name("x"));
        fs::write(&leftover, b"").unwrap();
        assert!(remove_if_leftover(&leftover));
        assert!(!leftover.exists());
    }

    #[test]
    fn a_failed_save_is_tried_again_at_the_next_flush() {
        let dir = tempfile::tempdir().unwrap();
        let file = SaveOnChange::new(dir.path().join("missing").join("pool.json"));
        let mut renders = 0;
        file.flush(|| unreachable!("nothing changed")).unwrap();
        file.mark_changed();
        assert!(
            file.flush(|| {
                renders += 1;
                b"[]".to_vec()
            })
            .is_err()
        );
        fs::create_dir(dir.path().join("missing")).unwrap();
        file.flush(|| {
            renders += 1;
            b"[1]".to_vec()
        })
        .unwrap();
        assert_eq!(renders, 2);
        assert_eq!(fs::read(file.path()).unwrap(), b"[1]");
        file.flush(|| unreachable!("saved already")).unwrap();
    }
}

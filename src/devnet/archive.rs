//! A devnet as one `.tar.gz`, to share it or start it again elsewhere.
//!
//! The archive holds `devnet.json` (the layout and the number of nodes)
//! and, for each node folder `jbcPORT/`, its `config/`, its `chaindata/`
//! (the chain, the side and orphaned blocks the tree shows, whatever was
//! set aside) and its pool (`pool.json`, `pool.journal`). Never the keys:
//! no `operator.cookie` (a node writes a fresh one at each start) and no
//! author key (they live in the devnet's `authors/`, outside node folders);
//! no peer book either, which names the ports of the machine it came from.
//!
//! Unpacking takes only plain files and folders under those names, into a
//! folder that holds no devnet yet; the i-th node (by port) becomes the
//! node on the i-th port from the one asked for, so the same network
//! starts on other ports as well.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::{Layout, MANIFEST, folders};
use crate::fsio::is_leftover_temp;

/// The devnet's record, `devnet.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub nodes: usize,
    pub layout: Layout,
}

/// Why an archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{} holds no devnet node folder (jbcPORT/): nothing to export", .0.display())]
    Nothing(PathBuf),
    #[error("{} has a devnet already: choose another --dir, or delete it, to start from an archive", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} is not a devnet archive: {reason}", file.display())]
    Foreign { file: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The devnet's record in `dir`, if it has a readable one.
pub fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = std::fs::read(dir.join(MANIFEST)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The port in a node folder's name (`jbc5001` → 5001).
fn port_of(name: &str) -> Option<u16> {
    let digits = name.strip_prefix("jbc")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// The node folders in `dir`, by port.
fn node_folders(dir: &Path) -> Result<Vec<(u16, PathBuf)>, ArchiveError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if let Some(port) = entry.file_name().to_str().and_then(port_of)
            && entry.path().join("config/jbc.toml").is_file()
        {
            found.push((port, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What `export` wrote.
#[derive(Debug)]
pub struct Exported {
    pub nodes: usize,
    pub files: usize,
    pub bytes: u64,
}

/// Writes the devnet in `dir` to `file` (a `.tar.gz`), whole or not at
/// all (a temporary name, renamed into place).
pub fn export(dir: &Path, file: &Path) -> Result<Exported, ArchiveError> {
    let (bytes, nodes, files) = archive_bytes(dir)?;
    crate::fsio::replace_file(file, &bytes).map_err(|e| ArchiveError::Io {
        path: file.to_path_buf(),
        source: e.source,
    })?;
    Ok(Exported {
        nodes,
        files,
        bytes: bytes.len() as u64,
    })
}

/// The archive of the devnet in `dir`, with its node and file counts.
pub fn archive_bytes(dir: &Path) -> Result<(Vec<u8>, usize, usize), ArchiveError> {
    let nodes = node_folders(dir)?;
    if nodes.is_empty() {
        return Err(ArchiveError::Nothing(dir.to_path_buf()));
    }
    let layout = read_manifest(dir).map_or(Layout::Mesh, |m| m.layout);
    let manifest = Manifest {
        version: 1,
        nodes: nodes.len(),
        layout,
    };
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut files = 0;
    let manifest = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    append_bytes(&mut tar, MANIFEST, &manifest).map_err(io(dir))?;
    for (port, folder) in &nodes {
        let name = format!("jbc{port}");
        for part in ["config", "chaindata", "pool.json", "pool.journal"] {
            files += append_tree(&mut tar, &folder.join(part), &format!("{name}/{part}"))?;
        }
    }
    let gz = tar.into_inner().map_err(io(dir))?;
    let bytes = gz.finish().map_err(io(dir))?;
    Ok((bytes, nodes.len(), files + 1))
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(crate::clock::unix_now());
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
}

/// Appends the file or folder at `path` (gone: nothing), skipping lock
/// files and leftover temporary files; the files appended.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
) -> Result<usize, ArchiveError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // A node may move a file while the export reads (a block leaving
        // the chain goes to orphaned/): what is gone is not exported.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io(path)(error)),
    };
    let base = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if base == "jbc.lock" || is_leftover_temp(base) {
        return Ok(0);
    }
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(io(path))?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        entries.sort();
        let mut files = 0;
        for entry in entries {
            let Some(child) = entry.to_str() else {
                continue;
            };
            files += append_tree(tar, &path.join(child), &format!("{name}/{child}"))?;
        }
        return Ok(files);
    }
    if !meta.is_file() {
        return Ok(0);
    }
    let mut bytes = Vec::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io(path)(error)),
    }
    append_bytes(tar, name, &bytes).map_err(io(path))?;
    Ok(1)
}

/// Unpacks `file` into `dir` (which must hold no devnet), its nodes moved
/// to the ports from `first_port`; the archive's manifest.
pub fn unpack(file: &Path, dir: &Path, first_port: u16) -> Result<Manifest, ArchiveError> {
    if dir.join(MANIFEST).exists() || !node_folders(dir)?.is_empty() {
        return Err(ArchiveError::NotEmpty(dir.to_path_buf()));
    }
    let staging = dir.join(".unpacking");
    let unpacked = unpack_via(file, dir, &staging, first_port);
    if unpacked.is_err() {
        // Nothing half-unpacked stays behind.
        let _ = std::fs::remove_dir_all(&staging);
    }
    unpacked
}

/// Unpacks into `staging`, checks, then moves the node folders into `dir`.
fn unpack_via(
    file: &Path,
    dir: &Path,
    staging: &Path,
    first_port: u16,
) -> Result<Manifest, ArchiveError> {
    let foreign = |reason: String| ArchiveError::Foreign {
        file: file.to_path_buf(),
        reason,
    };
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(io(staging))?;
    }
    std::fs::create_dir_all(staging).map_err(io(staging))?;
    let reader = std::fs::File::open(file).map_err(io(file))?;
    let mut tar = tar::Archive::new(GzDecoder::new(reader));
    for entry in tar.entries().map_err(|e| foreign(e.to_string()))? {
        let mut entry = entry.map_err(|e| foreign(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| foreign(e.to_string()))?
            .into_owned();
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(foreign(format!(
                "{} is neither a file nor a folder",
                path.display()
            )));
        }
        let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
        let first = path
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str());
        let allowed = first.is_some_and(|first| {
            (first == MANIFEST && path.components().count() == 1) || port_of(first).is_some()
        });
        if !plain || !allowed {
            return Err(foreign(format!("it holds {}", path.display())));
        }
        entry.unpack_in(staging).map_err(io(staging))?;
    }
    let manifest =
        read_manifest(staging).ok_or_else(|| foreign(format!("it has no readable {MANIFEST}")))?;
    let nodes = node_folders(staging)?;
    if nodes.is_empty() || nodes.len() != manifest.nodes {
        return Err(foreign(format!(
            "its {MANIFEST} says {} nodes and it holds {}",
            manifest.nodes,
            nodes.len()
        )));
    }
    for (at, (_, folder)) in nodes.iter().enumerate() {
        let port = u16::try_from(usize::from(first_port) + at).map_err(|_| {
            foreign(format!(
                "{} nodes do not fit above port {first_port}",
                nodes.len()
            ))
        })?;
        let target = folders::node_dir(dir, port);
        std::fs::rename(folder, &target).map_err(io(&target))?;
    }
    std::fs::rename(staging.join(MANIFEST), dir.join(MANIFEST)).map_err(io(dir))?;
    std::fs::remove_dir_all(staging).map_err(io(staging))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_devnet_goes_into_an_archive_and_comes_out_on_other_ports_without_keys() {
        let from = tempfile::tempdir().unwrap();
        for port in [5001, 5002] {
            folders::prepare(from.path(), port, Some(5)).unwrap();
            let node = folders::node_dir(from.path(), port);
            std::fs::write(
                node.join("chaindata/000001.json"),
                format!("block of {port}"),
            )
            .unwrap();
            std::fs::write(node.join("pool.json"), "[]").unwrap();
            std::fs::write(node.join("operator.cookie"), "secret").unwrap();
            std::fs::write(node.join("chaindata/jbc.lock"), "1").unwrap();
        }
        std::fs::create_dir_all(from.path().join("authors")).unwrap();
        std::fs::write(from.path().join("authors/ada.pem"), "key").unwrap();
        let file = from.path().join("net.tar.gz");
        let exported = export(from.path(), &file).unwrap();
        assert_eq!(exported.nodes, 2);

        let to = tempfile::tempdir().unwrap();
        let manifest = unpack(&file, to.path(), 6001).unwrap();
        assert_eq!(manifest.nodes, 2);
        for (port, was) in [(6001, 5001), (6002, 5002)] {
            let node = folders::node_dir(to.path(), port);
            assert_eq!(
                std::fs::read_to_string(node.join("chaindata/000001.json")).unwrap(),
                format!("block of {was}")
            );
            assert!(node.join("config/jbc.toml").is_file() && node.join("pool.json").is_file());
            assert!(!node.join("operator.cookie").exists(), "no operator key");
            assert!(!node.join("chaindata/jbc.lock").exists());
        }
        assert!(!to.path().join("authors").exists(), "no author key");
        // Not over a devnet.
        let again = unpack(&file, to.path(), 6001).unwrap_err().to_string();
        assert!(again.contains("has a devnet already"), "{again}");
    }

    /// An archive with a manifest of one node, for more entries.
    fn with_manifest() -> tar::Builder<GzEncoder<Vec<u8>>> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let manifest = br#"{"version":1,"nodes":1,"layout":"mesh"}"#;
        append_bytes(&mut tar, MANIFEST, manifest).unwrap();
        tar
    }

    #[test]
    fn an_archive_with_a_path_out_of_its_folder_is_refused_and_writes_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("evil.tar.gz");
        let mut tar = with_manifest();
        // tar's own append refuses "..", so the name is written raw.
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escaped.tx");
        header.set_size(3);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append(&header, &b"bad"[..]).unwrap();
        std::fs::write(&file, tar.into_inner().unwrap().finish().unwrap()).unwrap();
        let target = dir.path().join("to");
        std::fs::create_dir_all(&target).unwrap();
        let refused = unpack(&file, &target, 5001).unwrap_err().to_string();
        assert!(refused.contains("is not a devnet archive"), "{refused}");
        assert!(!dir.path().join("escaped.tx").exists());
        assert!(
            !target.join(".unpacking").exists(),
            "nothing half-unpacked left"
        );

        // A link, which could point anywhere once unpacked.
        let mut tar = with_manifest();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, "jbc5001/chaindata", "/etc")
            .unwrap();
        std::fs::write(&file, tar.into_inner().unwrap().finish().unwrap()).unwrap();
        let refused = unpack(&file, &target, 5001).unwrap_err().to_string();
        assert!(refused.contains("neither a file nor a folder"), "{refused}");
        assert!(
            std::fs::read_dir(&target).unwrap().next().is_none(),
            "nothing unpacked"
        );
    }
}

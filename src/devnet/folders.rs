//! A devnet's node folders and who is told of whom.
//!
//! Each node runs in a folder of its own under the devnet's folder,
//! `jbcPORT/`, as `scripts/linknodes` makes one: `config/jbc.toml` (the
//! shipped config with the node's port and the devnet's difficulty),
//! `config/genesis.json` and `chaindata/000000.json` (the shipped genesis
//! block). A folder that exists is kept as it is, chain and all; its
//! difficulty must be the one asked for.
//!
//! The layout decides whom each node is told of at start (its `--peers`)
//! and whether it may look for more ([`Layout::discovers`]). It owns no
//! process; the supervisor runs what this module lays out.

use std::path::{Path, PathBuf};

use crate::fsio::replace_file;

/// The shipped config: every devnet node's config is made from it.
const CONFIG_TEMPLATE: &str = include_str!("../../config/jbc.toml");
/// The shipped network's genesis block.
const GENESIS: &str = include_str!("../../config/genesis.json");

/// Who is told of whom.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Every node is told of every other.
    Mesh,
    /// Each node is told of the one before and the one after it: a block
    /// travels hop by hop.
    Line,
    /// A line whose ends are told of each other.
    Ring,
    /// The first node is told of all, each other node of the first only.
    Star,
    /// Each node is told of the first only and finds the others itself
    /// through the addresses nodes pass on.
    Seed,
}

impl Layout {
    /// Whether nodes choose more peers from the addresses they learn. Only
    /// where the layout leaves it to them: otherwise a line would soon be a
    /// mesh.
    pub fn discovers(self) -> bool {
        matches!(self, Layout::Mesh | Layout::Seed)
    }

    /// The ports node `at` of `ports` is told of.
    pub fn told_of(self, at: usize, ports: &[u16]) -> Vec<u16> {
        let n = ports.len();
        let mut told: Vec<usize> = match self {
            Layout::Mesh => (0..n).collect(),
            Layout::Line => [at.checked_sub(1), Some(at + 1)]
                .into_iter()
                .flatten()
                .collect(),
            Layout::Ring => [(at + n - 1) % n, (at + 1) % n].into(),
            Layout::Star if at == 0 => (0..n).collect(),
            Layout::Star | Layout::Seed => vec![0],
        };
        told.retain(|&other| other != at && other < n);
        told.sort_unstable();
        told.dedup();
        told.into_iter().map(|other| ports[other]).collect()
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Layout::Mesh => "mesh",
            Layout::Line => "line",
            Layout::Ring => "ring",
            Layout::Star => "star",
            Layout::Seed => "seed",
        };
        f.write_str(name)
    }
}

/// Why a node folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(
        "{} is a network of difficulty {found} (its config says so): run without --difficulty to go on with it, or delete {} to start a network of difficulty {wanted}",
        dir.display(), devnet.display()
    )]
    Difficulty {
        dir: PathBuf,
        devnet: PathBuf,
        found: String,
        wanted: u32,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The folder of the node on `port` in `devnet`.
pub fn node_dir(devnet: &Path, port: u16) -> PathBuf {
    devnet.join(format!("jbc{port}"))
}

/// Makes the folder of the node on `port` unless it exists, and checks an
/// existing one's difficulty against `difficulty` (when asked for one).
/// Returns whether it was made now.
pub fn prepare(devnet: &Path, port: u16, difficulty: Option<u32>) -> Result<bool, FolderError> {
    let dir = node_dir(devnet, port);
    let config = dir.join("config/jbc.toml");
    if config.exists() {
        if let Some(wanted) = difficulty {
            let found = difficulty_of(&config)?;
            if found != Some(wanted) {
                return Err(FolderError::Difficulty {
                    dir,
                    devnet: devnet.to_path_buf(),
                    found: found.map_or_else(|| "?".to_string(), |d| d.to_string()),
                    wanted,
                });
            }
        }
        return Ok(false);
    }
    let write = |path: PathBuf, text: &str| {
        let parent = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(parent)
            .and_then(|()| replace_file(&path, text.as_bytes()).map_err(|e| e.source))
            .map_err(|source| FolderError::Write { path, source })
    };
    // The genesis block first, the config last: a folder with a config is
    // a finished one.
    write(dir.join("chaindata/000000.json"), GENESIS)?;
    write(dir.join("config/genesis.json"), GENESIS)?;
    write(config, &config_text(port, difficulty))?;
    Ok(true)
}

/// The difficulty an existing config says.
pub fn difficulty_of(config: &Path) -> Result<Option<u32>, FolderError> {
    let text = std::fs::read_to_string(config).map_err(|source| FolderError::Read {
        path: config.to_path_buf(),
        source,
    })?;
    Ok(text
        .parse::<toml::Table>()
        .ok()
        .and_then(|table| table.get("difficulty")?.as_integer())
        .and_then(|d| u32::try_from(d).ok()))
}

/// The shipped config with this node's port and the devnet's difficulty.
fn config_text(port: u16, difficulty: Option<u32>) -> String {
    let mut text = String::from(
        "# A devnet node's config, made by `jbc devnet`: the shipped config with\n\
         # this node's port (and the devnet's difficulty). Whom it is told of\n\
         # comes from the devnet's layout, on its command line.\n",
    );
    for line in CONFIG_TEMPLATE.lines() {
        if line.starts_with("port = ") {
            text.push_str(&format!("port = {port}\n"));
        } else if let (true, Some(difficulty)) = (line.starts_with("difficulty = "), difficulty) {
            text.push_str(&format!("difficulty = {difficulty}\n"));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_tells_each_node_of_its_neighbours() {
        let ports = [1, 2, 3, 4];
        let told = |layout: Layout| -> Vec<Vec<u16>> {
            (0..ports.len())
                .map(|at| layout.told_of(at, &ports))
                .collect()
        };
        assert_eq!(
            told(Layout::Mesh),
            [vec![2, 3, 4], vec![1, 3, 4], vec![1, 2, 4], vec![1, 2, 3]]
        );
        assert_eq!(
            told(Layout::Line),
            [vec![2], vec![1, 3], vec![2, 4], vec![3]]
        );
        assert_eq!(
            told(Layout::Ring),
            [vec![2, 4], vec![1, 3], vec![2, 4], vec![1, 3]]
        );
        assert_eq!(
            told(Layout::Star),
            [vec![2, 3, 4], vec![1], vec![1], vec![1]]
        );
        assert_eq!(told(Layout::Seed), [vec![], vec![1], vec![1], vec![1]]);
        // One node is told of none; two in a ring are told of each other once.
        assert!(Layout::Ring.told_of(0, &[7]).is_empty());
        assert_eq!(Layout::Ring.told_of(0, &[7, 8]), [8]);
    }

    #[test]
    fn a_folder_is_made_once_and_its_difficulty_kept() {
        let devnet = tempfile::tempdir().unwrap();
        assert!(prepare(devnet.path(), 5001, Some(5)).unwrap());
        let dir = node_dir(devnet.path(), 5001);
        let config = std::fs::read_to_string(dir.join("config/jbc.toml")).unwrap();
        assert!(config.contains("\nport = 5001\n") && config.contains("\ndifficulty = 5\n"));
        assert_eq!(
            std::fs::read_to_string(dir.join("chaindata/000000.json")).unwrap(),
            GENESIS
        );
        // Again: kept; with the same difficulty or none, fine; another, refused.
        assert!(!prepare(devnet.path(), 5001, Some(5)).unwrap());
        assert!(!prepare(devnet.path(), 5001, None).unwrap());
        let refused = prepare(devnet.path(), 5001, Some(6))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("is a network of difficulty 5")
                && refused.contains("run without --difficulty"),
            "{refused}"
        );
    }
}

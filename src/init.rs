//! `jbc init`: a new network in a folder, with no hash computed by hand.
//!
//! It mines a genesis block at the chosen difficulty on every core and
//! writes `config/genesis.json` and a `config/jbc.toml` that uses it (the
//! shipped config with this network's difficulty). Every node folder that
//! `scripts/linknodes` makes from there copies both, so the nodes share
//! the network. It never overwrites an existing config.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::block::{Block, PrevHash};
use crate::chain::Template;
use crate::fsio::replace_file;
use crate::miner::Miner;

/// The shipped config, the template of every new network's config.
const CONFIG_TEMPLATE: &str = include_str!("../config/jbc.toml");

/// What a new network is made of.
#[derive(Debug, Clone)]
pub struct NewNetwork {
    /// The folder that gets `config/`.
    pub dir: PathBuf,
    /// Leading zero hex digits every block of the network needs (the
    /// least, in an adaptive network).
    pub difficulty: u32,
    /// For an adaptive network: the seconds between blocks it aims for and
    /// the blocks between retargets.
    pub adaptive: Option<(u64, u64)>,
    /// The genesis block's data.
    pub data: String,
    /// Threads to mine the genesis block on.
    pub threads: usize,
}

/// What `jbc init` made.
#[derive(Debug)]
pub struct Made {
    pub genesis: Block,
    pub config: PathBuf,
    pub genesis_file: PathBuf,
}

/// Why a network could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{} already exists: this folder already has a network \
         (remove its config/ to make a new one, or choose another folder)",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Mines the genesis block and writes the network's config files.
/// Blocking: mining takes seconds at difficulty 7 and grows 16 times with
/// each further digit.
/// `progress` hears when mining starts.
pub fn init(network: &NewNetwork, progress: impl Fn(&str)) -> Result<Made, InitError> {
    let config_dir = network.dir.join("config");
    let config = config_dir.join("jbc.toml");
    let genesis_file = config_dir.join("genesis.json");
    for path in [&config, &genesis_file] {
        if path.exists() {
            return Err(InitError::Exists(path.clone()));
        }
    }
    std::fs::create_dir_all(&config_dir).map_err(|source| InitError::Write {
        path: config_dir.clone(),
        source,
    })?;

    progress(&format!(
        "mining a genesis block at difficulty {} on {} thread(s)",
        network.difficulty, network.threads
    ));
    let genesis = mine_genesis(network);
    let write = |path: &Path, bytes: &[u8]| {
        replace_file(path, bytes).map_err(|error| InitError::Write {
            path: path.to_path_buf(),
            source: error.source,
        })
    };
    write(&genesis_file, &genesis.to_json_line())?;
    write(
        &config,
        config_text(network.difficulty, network.adaptive).as_bytes(),
    )?;
    Ok(Made {
        genesis,
        config,
        genesis_file,
    })
}

/// Mines block 0 of a new network on `threads` threads, at the command's
/// own priority: someone is waiting for it.
fn mine_genesis(network: &NewNetwork) -> Block {
    let (found, block) = mpsc::channel();
    let miner = Miner::start(network.threads, None, move |block| {
        found.send(block).is_ok()
    });
    miner.set_job(Template {
        index: 0,
        prev_hash: PrevHash::none(),
        data: network.data.clone(),
        timestamp: crate::clock::timestamp_now(),
        target: crate::pow::Target::limit(network.difficulty),
    });
    let block = block.recv().expect("the miner finds a block");
    miner.stop();
    block
}

/// The shipped config with this network's difficulty (and targets) and a
/// header saying where it came from.
fn config_text(difficulty: u32, adaptive: Option<(u64, u64)>) -> String {
    let body: String = CONFIG_TEMPLATE
        .lines()
        .map(|line| {
            if line.starts_with("difficulty = ") {
                let mut text = format!("difficulty = {difficulty}\n");
                if let Some((seconds, window)) = adaptive {
                    text.push_str(&format!(
                        "# An adaptive network: the target is retargeted every retarget_window\n\
                         # blocks so that a block comes every target_block_seconds on average;\n\
                         # difficulty is the least a block needs.\n\
                         target_block_seconds = {seconds}\n\
                         retarget_window = {window}\n"
                    ));
                }
                text
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    format!(
        "# A jbc network made by `jbc init` on {}: its genesis block is\n\
         # config/genesis.json, and every node of the network shares it and the\n\
         # network settings below (scripts/linknodes, run in this folder, copies both).\n\
         #\n{body}",
        chrono::Utc::now().format("%Y-%m-%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn a_new_network_has_a_mined_genesis_and_a_config_that_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let network = NewNetwork {
            dir: dir.path().to_path_buf(),
            difficulty: 3,
            adaptive: None,
            data: "our own network".into(),
            threads: 2,
        };
        let made = init(&network, |_| {}).unwrap();
        assert_eq!(made.genesis.index, 0);
        assert!(made.genesis.hash.meets_difficulty(3));
        made.genesis.check_hash().unwrap();
        let written = std::fs::read(&made.genesis_file).unwrap();
        assert_eq!(Block::from_json(&written).unwrap(), made.genesis);

        let settings = Settings::from_file(&made.config).unwrap();
        assert_eq!(settings.difficulty, Some(3));
        assert_eq!(
            settings.genesis.as_deref(),
            Some(Path::new("config/genesis.json"))
        );

        assert_eq!(settings.target_block_seconds, None);

        // An adaptive network's config says so, and resolves to it.
        let adaptive_dir = tempfile::tempdir().unwrap();
        let adaptive = NewNetwork {
            dir: adaptive_dir.path().to_path_buf(),
            adaptive: Some((30, 50)),
            difficulty: 1,
            ..network.clone()
        };
        let made_adaptive = init(&adaptive, |_| {}).unwrap();
        let settings = Settings::from_file(&made_adaptive.config).unwrap();
        assert_eq!(
            (settings.target_block_seconds, settings.retarget_window),
            (Some(30), Some(50))
        );

        // A second init never overwrites the network.
        assert!(matches!(init(&network, |_| {}), Err(InitError::Exists(_))));
        assert_eq!(std::fs::read(&made.genesis_file).unwrap(), written);
    }
}

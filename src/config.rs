//! Node settings: a TOML file (`config/jbc.toml` by default, paths in it
//! relative to the working directory, like the original's `chaindata/`)
//! overridden by command-line flags.
//!
//! This module owns the names and defaults of every setting and turns them
//! into a checked [`Config`]. It does not start anything.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::block::Block;
use crate::chain::Network;

/// Where the node looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/jbc.toml";

/// The genesis block used when no genesis file is configured: the
/// JackBlockChain's first block (its hash meets difficulty 4).
pub const DEFAULT_GENESIS_JSON: &str = r#"{"index":"0","prev_hash":"","data":"First block data","timestamp":"1508895381","nonce":"550","hash":"00007827a6d5ba487ebae6392f97655a1d530b84de727a79a65de5622a2efa8b"}"#;

/// Default leading zero hex digits: a few seconds per block for a small
/// network of nodes sharing one machine.
pub const DEFAULT_DIFFICULTY: u32 = 7;

/// Settings as written in the config file or given as flags; every one is
/// optional, and a flag overrides the file.
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Port to listen on (0 picks a free one) [default: 5001]
    #[arg(long)]
    pub port: Option<u16>,
    /// Peer base URLs, comma-separated; the node skips its own address
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// Leading zero hex digits a block hash needs (a network setting) [default: 7]
    #[arg(long)]
    pub difficulty: Option<u32>,
    /// File holding the network's genesis block [default: the built-in first block]
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Folder of this node's block files [default: chaindata]
    #[arg(long)]
    pub chaindata: Option<PathBuf>,
    /// Text put in the blocks this node mines [default: "Mined by node on port PORT"]
    #[arg(long)]
    pub data: Option<String>,
    /// Mine blocks in the background while serving
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub mine: Option<bool>,
    /// Mining threads [default: the number of cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Milliseconds to wait for a peer to accept a connection [default: 2000]
    #[arg(long)]
    pub connect_timeout_ms: Option<u64>,
    /// Milliseconds a whole request to a peer may take [default: 10000]
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Seconds between syncs with all peers [default: 5]
    #[arg(long)]
    pub sync_interval: Option<f64>,
    /// Largest peer response read, in bytes [default: 268435456]
    #[arg(long)]
    pub max_response_bytes: Option<u64>,
}

impl Settings {
    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            message: source.to_string(),
        })
    }

    /// These settings with every value `overrides` sets replacing ours.
    pub fn overridden_by(self, overrides: Settings) -> Settings {
        Settings {
            host: overrides.host.or(self.host),
            port: overrides.port.or(self.port),
            peers: overrides.peers.or(self.peers),
            difficulty: overrides.difficulty.or(self.difficulty),
            genesis: overrides.genesis.or(self.genesis),
            chaindata: overrides.chaindata.or(self.chaindata),
            data: overrides.data.or(self.data),
            mine: overrides.mine.or(self.mine),
            threads: overrides.threads.or(self.threads),
            connect_timeout_ms: overrides.connect_timeout_ms.or(self.connect_timeout_ms),
            request_timeout_ms: overrides.request_timeout_ms.or(self.request_timeout_ms),
            max_response_bytes: overrides.max_response_bytes.or(self.max_response_bytes),
            sync_interval: overrides.sync_interval.or(self.sync_interval),
        }
    }
}

/// How the node talks to its peers.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, body included.
    pub request_timeout: Duration,
    /// Responses larger than this are refused.
    pub max_response_bytes: u64,
}

/// A checked, complete node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Peers to sync with; never the node itself.
    pub peers: Vec<Url>,
    /// The network's genesis block and difficulty.
    pub network: Network,
    /// This node's block files.
    pub chaindata: PathBuf,
    /// Text of mined blocks; unset, the node names its port.
    pub data: Option<String>,
    /// Whether to mine.
    pub mine: bool,
    /// Mining threads.
    pub threads: usize,
    /// Timeouts and limits for peer requests.
    pub peer: PeerSettings,
    /// Time between syncs with all peers, the safety net for lost
    /// announcements.
    pub sync_interval: Duration,
}

impl Config {
    /// Reads the config file (the given one, or the default one if it
    /// exists), applies the flags, and checks the result.
    pub fn load(file: Option<&Path>, flags: Settings) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => Settings::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Settings::from_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => Settings::default(),
        };
        Config::resolve(from_file.overridden_by(flags))
    }

    /// Fills in defaults and checks every value.
    pub fn resolve(settings: Settings) -> Result<Config, ConfigError> {
        let host = settings.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = settings.port.unwrap_or(5001);
        let listen = SocketAddr::new(host, port);

        let difficulty = settings.difficulty.unwrap_or(DEFAULT_DIFFICULTY);
        if difficulty > 64 {
            return Err(ConfigError::Difficulty(difficulty));
        }
        let genesis = match &settings.genesis {
            Some(path) => read_genesis(path)?,
            None => Block::from_json(DEFAULT_GENESIS_JSON.as_bytes())
                .expect("the built-in genesis block parses"),
        };

        let mut peers = Vec::new();
        for text in settings.peers.unwrap_or_default() {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let url = parse_peer_url(text)?;
            if !is_own_address(&url, listen) && !peers.contains(&url) {
                peers.push(url);
            }
        }

        let threads = match settings.threads {
            Some(0) => return Err(ConfigError::Threads),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };

        let sync_interval = settings.sync_interval.unwrap_or(5.0);
        if !(0.05..=86_400.0).contains(&sync_interval) {
            return Err(ConfigError::SyncInterval(sync_interval));
        }

        Ok(Config {
            listen,
            sync_interval: Duration::from_secs_f64(sync_interval),
            peers,
            network: Network {
                genesis,
                difficulty,
            },
            chaindata: settings
                .chaindata
                .unwrap_or_else(|| PathBuf::from("chaindata")),
            data: settings.data,
            mine: settings.mine.unwrap_or(false),
            threads,
            peer: PeerSettings {
                connect_timeout: Duration::from_millis(
                    settings.connect_timeout_ms.unwrap_or(2_000),
                ),
                request_timeout: Duration::from_millis(
                    settings.request_timeout_ms.unwrap_or(10_000),
                ),
                max_response_bytes: settings.max_response_bytes.unwrap_or(256 * 1024 * 1024),
            },
        })
    }
}

/// Parses a peer's base URL: http or https, a host, no path beyond `/`.
pub fn parse_peer_url(text: &str) -> Result<Url, ConfigError> {
    let bad = |reason: &str| ConfigError::Peer {
        url: text.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https peers are supported"));
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("give the base URL only, like http://127.0.0.1:5002"));
    }
    Ok(url)
}

/// Whether `url` points at this node itself.
pub fn is_own_address(url: &Url, listen: SocketAddr) -> bool {
    if url.port_or_known_default() != Some(listen.port()) {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => {
            IpAddr::V4(ip) == listen.ip()
                || (ip.is_loopback() && listen.ip().is_loopback())
                || listen.ip().is_unspecified()
        }
        Some(url::Host::Ipv6(ip)) => {
            IpAddr::V6(ip) == listen.ip()
                || (ip.is_loopback() && listen.ip().is_loopback())
                || listen.ip().is_unspecified()
        }
        None => false,
    }
}

fn read_genesis(path: &Path) -> Result<Block, ConfigError> {
    let bad = |reason: String| ConfigError::Genesis {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let block = Block::from_json(&bytes).map_err(|e| bad(e.to_string()))?;
    if block.index != 0 {
        return Err(bad(format!("its index is {}, not 0", block.index)));
    }
    block.check_hash().map_err(|e| bad(e.to_string()))?;
    Ok(block)
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("genesis file {}: {reason}", path.display())]
    Genesis { path: PathBuf, reason: String },
    #[error("peer {url:?}: {reason}")]
    Peer { url: String, reason: String },
    #[error("difficulty {0} is more than the 64 hex digits of a hash")]
    Difficulty(u32),
    #[error("threads must be at least 1")]
    Threads,
    #[error("sync interval {0} s is not between 0.05 s and a day")]
    SyncInterval(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(list: &[&str], port: u16) -> Result<Vec<String>, ConfigError> {
        let settings = Settings {
            port: Some(port),
            peers: Some(list.iter().map(|s| s.to_string()).collect()),
            ..Settings::default()
        };
        Ok(Config::resolve(settings)?
            .peers
            .iter()
            .map(|u| u.to_string())
            .collect())
    }

    #[test]
    fn a_node_skips_its_own_address() {
        let got = peers(
            &[
                "http://127.0.0.1:5001",
                "http://localhost:5002",
                "http://127.0.0.1:5003/",
                "",
            ],
            5002,
        )
        .unwrap();
        assert_eq!(got, ["http://127.0.0.1:5001/", "http://127.0.0.1:5003/"]);
    }

    #[test]
    fn bad_peer_urls_are_refused() {
        for bad in [
            "ftp://127.0.0.1:5001",
            "127.0.0.1:5001",
            "http://127.0.0.1:5001/blockchain.json",
        ] {
            assert!(
                matches!(peers(&[bad], 5001), Err(ConfigError::Peer { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags_override_the_file() {
        let file: Settings = toml::from_str("port = 5003\ndifficulty = 3\nmine = true\n").unwrap();
        let flags = Settings {
            port: Some(5009),
            ..Settings::default()
        };
        let config = Config::resolve(file.overridden_by(flags)).unwrap();
        assert_eq!(config.listen.port(), 5009);
        assert_eq!(config.network.difficulty, 3);
        assert!(config.mine);
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        assert!(toml::from_str::<Settings>("prot = 5001\n").is_err());
    }

    #[test]
    fn the_shipped_config_and_genesis_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let settings = Settings::from_file(&root.join(DEFAULT_CONFIG_PATH)).unwrap();
        let settings = Settings {
            genesis: settings.genesis.map(|g| root.join(g)),
            ..settings
        };
        let config = Config::resolve(settings).unwrap();
        let builtin = Block::from_json(DEFAULT_GENESIS_JSON.as_bytes()).unwrap();
        assert_eq!(config.network.genesis, builtin);
        assert_eq!(config.peers.len(), 2, "three nodes, minus this one");
    }
}

//! Node settings: a TOML file (`config/jbc.toml` by default, paths in it
//! relative to the working directory, like the original's `chaindata/`)
//! overridden by command-line flags.
//!
//! This module turns [`Settings`] into a checked [`Config`]: each value is
//! checked against its declaration (its key, default and range, declared
//! beside the module that uses it), and the settings that depend on each
//! other are checked together. It does not start anything.

mod settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::block::Block;
use crate::chain::Network;
use crate::client::PeerSettings;
use crate::item::{block_bytes_needed, largest_item_held};
use crate::peers::{PeerUrl, PeerUrlError};
use crate::pool::PoolLimits;
use crate::pow::Kind;
use crate::setting::Refused;

use settings::declared::*;
pub use settings::{Settings, declared};

/// Where the node looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/jbc.toml";

/// The genesis block used when no genesis file is configured: the
/// JackBlockChain's first block (its hash meets difficulty 4).
pub const DEFAULT_GENESIS_JSON: &str = r#"{"index":"0","prev_hash":"","data":"First block data","timestamp":"1508895381","nonce":"550","hash":"00007827a6d5ba487ebae6392f97655a1d530b84de727a79a65de5622a2efa8b"}"#;

/// Where the settings came from, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// This file was read.
    File(PathBuf),
    /// No file was given and there is none at this default path: built-in
    /// defaults (and the flags) apply.
    DefaultMissing(PathBuf),
}

/// A checked, complete node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the settings came from.
    pub source: ConfigSource,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Peers to sync with; never the node itself.
    pub peers: Vec<PeerUrl>,
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
    /// Their nice level.
    pub miner_nice: u8,
    /// Timeouts and limits of the client that asks peers.
    pub peer_client: PeerSettings,
    /// Time between syncs with all peers, the safety net for lost
    /// announcements.
    pub sync_interval: Duration,
    /// Whether peers of this software are talked to over live links.
    pub links: bool,
    /// How long an operator's ban lasts unless it says.
    pub ban_time: Duration,
    /// How the pool of waiting data items is bounded.
    pub pool: PoolLimits,
    /// Outbound peers kept from the learned addresses.
    pub outbound_peers: usize,
    /// Most inbound peers.
    pub max_inbound: usize,
    /// Most connections served at once, if set (else the open-file limit's).
    pub max_connections: Option<usize>,
    /// The URL this node gives for itself, if set.
    pub advertise: Option<PeerUrl>,
    /// Host names requests may name besides IP addresses, `localhost` and
    /// the host of `advertise`, lowercase.
    pub allowed_hosts: Vec<String>,
    /// Origins whose pages may frame the explorer.
    pub frame_ancestors: Vec<String>,
    /// The fixed operator key, if the config sets one.
    pub operator_key: Option<String>,
}

impl Config {
    /// Reads the config file (the given one, or the default one if it
    /// exists), applies the flags, and checks the result.
    pub fn load(file: Option<&Path>, flags: Settings) -> Result<Config, ConfigError> {
        let (from_file, source) = match file {
            Some(path) => (
                Settings::from_file(path)?,
                ConfigSource::File(path.to_path_buf()),
            ),
            None => {
                let path = Path::new(DEFAULT_CONFIG_PATH);
                if path.exists() {
                    (
                        Settings::from_file(path)?,
                        ConfigSource::File(path.to_path_buf()),
                    )
                } else {
                    (
                        Settings::default(),
                        ConfigSource::DefaultMissing(path.to_path_buf()),
                    )
                }
            }
        };
        let mut config = Config::resolve(from_file.overridden_by(flags))?;
        config.source = source;
        Ok(config)
    }

    /// Fills in defaults and checks every value.
    pub fn resolve(settings: Settings) -> Result<Config, ConfigError> {
        let listen = SocketAddr::new(
            settings.host.unwrap_or(HOST.default),
            PORT.resolve(settings.port)?,
        );
        let genesis = match &settings.genesis {
            Some(path) => read_genesis(path)?,
            None => Block::from_json(DEFAULT_GENESIS_JSON.as_bytes())
                .expect("the built-in genesis block parses"),
        };
        let kind = network_kind(&settings)?;
        if kind != Kind::Fixed && genesis.timestamp > i64::MAX as u128 {
            return Err(GENESIS
                .refuse(format!(
                    "an adaptive network's blocks carry seconds since the epoch, and its genesis \
                     block's timestamp {} is not that",
                    genesis.timestamp
                ))
                .into());
        }

        // The node's own URL may be among them (one list for every node of
        // a network): it finds itself out by its node id.
        let mut peers = Vec::new();
        for text in settings.peers.unwrap_or_default() {
            if text.trim().is_empty() {
                continue;
            }
            let url = PeerUrl::parse(&text)?;
            if !peers.contains(&url) {
                peers.push(url);
            }
        }
        let max_block_bytes = MAX_BLOCK_BYTES.resolve(settings.max_block_bytes)?;
        if let Some(data) = &settings.data {
            // The largest block this node could mine with it.
            let bytes = Block::widest_json_len(u64::MAX, data) as u64;
            if bytes > max_block_bytes {
                return Err(DATA
                    .refuse(format!(
                        "a block carrying it would be {bytes} bytes of JSON, more than \
                         max_block_bytes ({max_block_bytes})"
                    ))
                    .into());
            }
        }
        // Unset, the item limit shrinks to what a small block holds.
        let max_item_bytes = MAX_ITEM_BYTES.resolve(Some(
            settings.max_item_bytes.unwrap_or(
                MAX_ITEM_BYTES
                    .default
                    .min(largest_item_held(max_block_bytes)),
            ),
        ))?;
        if block_bytes_needed(max_item_bytes) > max_block_bytes {
            return Err(MAX_ITEM_BYTES
                .refuse(format!(
                    "{max_item_bytes} bytes could make an item that no block of {max_block_bytes} \
                     bytes holds (max_item_bytes × 12 + 1024 must be at most max_block_bytes)"
                ))
                .into());
        }
        let pool = PoolLimits {
            max_items: POOL_MAX_ITEMS.resolve(settings.pool_max_items)? as usize,
            max_bytes: POOL_MAX_BYTES.resolve(settings.pool_max_bytes)? as usize,
            max_item_bytes: max_item_bytes as usize,
        };
        let advertise = settings
            .advertise
            .as_deref()
            .map(PeerUrl::parse)
            .transpose()?;
        let allowed_hosts = settings
            .allowed_hosts
            .unwrap_or_default()
            .into_iter()
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .map(|name| host_name(&name).map(|()| name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ALLOWED_HOSTS.refuse(reason))?;
        let frame_ancestors = settings
            .frame_ancestors
            .unwrap_or_default()
            .into_iter()
            .map(|origin| origin.trim().to_ascii_lowercase())
            .filter(|origin| !origin.is_empty())
            .map(|origin| web_origin(&origin).map(|()| origin))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| FRAME_ANCESTORS.refuse(reason))?;
        let operator_key = settings
            .operator_key
            .map(|key| operator_key(&key).map(|()| key))
            .transpose()
            .map_err(|reason| OPERATOR_KEY.refuse(reason))?;
        let threads = THREADS
            .resolve(settings.threads)?
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let millis = |ms: u64| Duration::from_millis(ms);

        Ok(Config {
            source: ConfigSource::DefaultMissing(PathBuf::from(DEFAULT_CONFIG_PATH)),
            listen,
            sync_interval: Duration::from_secs_f64(SYNC_INTERVAL.resolve(settings.sync_interval)?),
            links: settings.links.unwrap_or(LINKS.default),
            peers,
            network: Network {
                genesis,
                difficulty: DIFFICULTY.resolve(settings.difficulty)?,
                kind,
                max_future_seconds: MAX_FUTURE_SECONDS.resolve(settings.max_future_seconds)?,
                max_block_bytes,
                max_item_bytes,
            },
            ban_time: Duration::from_secs(BAN_SECONDS.resolve(settings.ban_seconds)?),
            pool,
            outbound_peers: OUTBOUND_PEERS.resolve(settings.outbound_peers)?,
            max_inbound: MAX_INBOUND.resolve(settings.max_inbound)?,
            max_connections: MAX_CONNECTIONS.resolve(settings.max_connections)?,
            advertise,
            allowed_hosts,
            frame_ancestors,
            operator_key,
            chaindata: settings
                .chaindata
                .unwrap_or_else(|| PathBuf::from(CHAINDATA.default)),
            data: settings.data,
            mine: settings.mine.unwrap_or(MINE.default),
            threads,
            miner_nice: MINER_NICE.resolve(settings.miner_nice)?,
            peer_client: PeerSettings {
                connect_timeout: millis(CONNECT_TIMEOUT_MS.resolve(settings.connect_timeout_ms)?),
                request_timeout: millis(REQUEST_TIMEOUT_MS.resolve(settings.request_timeout_ms)?),
                max_response_bytes: MAX_RESPONSE_BYTES.resolve(settings.max_response_bytes)?,
            },
        })
    }
}

/// Fixed, or adaptive when both of an adaptive network's keys are set.
fn network_kind(settings: &Settings) -> Result<Kind, ConfigError> {
    let both = "an adaptive network needs both target_block_seconds and retarget_window (set \
                neither for a fixed network)";
    let seconds = TARGET_BLOCK_SECONDS.resolve(settings.target_block_seconds)?;
    let window = RETARGET_WINDOW.resolve(settings.retarget_window)?;
    match (seconds, window) {
        (None, None) => Ok(Kind::Fixed),
        (Some(target_block_seconds), Some(retarget_window)) => Ok(Kind::Adaptive {
            target_block_seconds,
            retarget_window,
        }),
        (Some(_), None) => Err(RETARGET_WINDOW.refuse(both).into()),
        (None, Some(_)) => Err(TARGET_BLOCK_SECONDS.refuse(both).into()),
    }
}

/// An origin for `frame_ancestors`: `http://` or `https://`, then a host
/// (letters, digits, `-`, `.`, or an IPv6 address in brackets) and an
/// optional port; nothing that could end the header's directive.
fn web_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("{origin:?} is not an origin like http://127.0.0.1:5000"))?;
    let fine = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{origin:?} is not an origin like http://127.0.0.1:5000 (scheme, host, port; no path)"
        ))
    }
}

/// A host name for `allowed_hosts`: letters, digits, `-` and `.`.
fn host_name(name: &str) -> Result<(), String> {
    if name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a host name (letters, digits, - and .)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// An operator key: at least 16 printable ASCII characters, no spaces (it
/// travels in an `Authorization` header).
fn operator_key(key: &str) -> Result<(), String> {
    if key.len() >= 16 && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("an operator key is 16 to 256 printable ASCII characters without spaces".into())
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
    #[error(transparent)]
    Peer(#[from] PeerUrlError),
    #[error(transparent)]
    Invalid(#[from] Refused),
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
    fn an_adaptive_network_needs_both_of_its_keys() {
        let adaptive = Config::resolve(Settings {
            target_block_seconds: Some(10),
            retarget_window: Some(20),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(
            adaptive.network.kind,
            Kind::Adaptive {
                target_block_seconds: 10,
                retarget_window: 20
            }
        );
        assert_eq!(adaptive.network.max_future_seconds, 7200);
        assert_eq!(
            Config::resolve(Settings::default()).unwrap().network.kind,
            Kind::Fixed
        );
        let error = Config::resolve(Settings {
            target_block_seconds: Some(10),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("retarget_window: an adaptive network needs both"),
            "{error}"
        );
        let error = Config::resolve(Settings {
            target_block_seconds: Some(10),
            retarget_window: Some(1),
            ..Settings::default()
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "retarget_window: 1 is not a whole number of blocks from 2 to 100000"
        );
    }

    #[test]
    fn frame_ancestors_are_origins_and_nothing_that_breaks_the_policy() {
        let framed = |origins: &[&str]| {
            Config::resolve(Settings {
                frame_ancestors: Some(origins.iter().map(|o| o.to_string()).collect()),
                ..Settings::default()
            })
        };
        assert_eq!(
            framed(&["http://127.0.0.1:5000", " HTTP://LOCALHOST:5000 ", ""])
                .unwrap()
                .frame_ancestors,
            ["http://127.0.0.1:5000", "http://localhost:5000"]
        );
        for bad in [
            "127.0.0.1:5000",
            "http://x; script-src *",
            "http://a.test/path",
            "javascript:alert(1)",
            "http://",
        ] {
            let error = framed(&[bad]).unwrap_err().to_string();
            assert!(error.starts_with("frame_ancestors: "), "{bad}: {error}");
        }
    }

    #[test]
    fn peers_are_normalised_and_listed_once() {
        let got = peers(
            &[
                "http://127.0.0.1:5001",
                "http://localhost:5002",
                "http://127.0.0.1:5001/",
                "",
            ],
            5002,
        )
        .unwrap();
        assert_eq!(got, ["http://127.0.0.1:5001", "http://localhost:5002"]);
    }

    #[test]
    fn data_too_large_for_a_block_is_refused() {
        let settings = Settings {
            max_block_bytes: Some(1024),
            data: Some("x".repeat(900)),
            ..Settings::default()
        };
        let error = Config::resolve(settings).unwrap_err().to_string();
        assert!(
            error.starts_with("data: a block carrying it would be"),
            "{error}"
        );
    }

    #[test]
    fn bad_peer_urls_are_refused() {
        for bad in [
            "ftp://127.0.0.1:5001",
            "127.0.0.1:5001",
            "http://127.0.0.1:5001/blockchain.json",
            "https://127.0.0.1:5001",
        ] {
            assert!(
                matches!(peers(&[bad], 5001), Err(ConfigError::Peer(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags_override_the_file_and_no_mine_turns_mining_off() {
        let file: Settings = toml::from_str("port = 5003\ndifficulty = 3\nmine = true\n").unwrap();
        let flags = Settings {
            port: Some(5009),
            ..Settings::default()
        };
        let config = Config::resolve(file.clone().overridden_by(flags)).unwrap();
        assert_eq!(config.listen.port(), 5009);
        assert_eq!(config.network.difficulty, 3);
        assert!(config.mine);
        assert!(config.listen.ip().is_loopback());
        let no_mine = Settings {
            no_mine: true,
            ..Settings::default()
        };
        assert!(!Config::resolve(file.overridden_by(no_mine)).unwrap().mine);
    }

    #[test]
    fn miners_run_at_the_lowest_priority_unless_told() {
        let default = Config::resolve(Settings::default()).unwrap();
        assert_eq!(default.miner_nice, 19);
        let file: Settings = toml::from_str("miner_nice = 5\n").unwrap();
        assert_eq!(Config::resolve(file).unwrap().miner_nice, 5);
        let file: Settings = toml::from_str("miner_nice = 20\n").unwrap();
        assert_eq!(
            Config::resolve(file).unwrap_err().to_string(),
            "miner_nice: 20 is not a nice level from 0 to 19"
        );
        assert_eq!(MINER_NICE.parse("0"), Ok(0));
        assert!(MINER_NICE.parse("-1").is_err());
    }

    #[test]
    fn numbers_out_of_range_name_their_setting_in_the_file_and_as_flags() {
        let file: Settings = toml::from_str("threads = 0\n").unwrap();
        let error = Config::resolve(file).unwrap_err().to_string();
        assert_eq!(
            error,
            "threads: 0 is not a whole number of threads from 1 to 1024"
        );
        let file: Settings = toml::from_str("sync_interval = 0.0\n").unwrap();
        assert!(
            Config::resolve(file)
                .unwrap_err()
                .to_string()
                .starts_with("sync_interval:")
        );
        assert_eq!(
            BENCH_SECONDS.parse("-1").unwrap_err(),
            "-1 is not a number of seconds from 0.1 to 3600"
        );
        assert_eq!(
            DIFFICULTY.parse("x").unwrap_err(),
            "\"x\" is not a number of hex digits from 0 to 64"
        );
        assert_eq!(THREADS.parse("3"), Ok(3));
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        assert!(toml::from_str::<Settings>("prot = 5001\n").is_err());
        assert!(toml::from_str::<Settings>("no_mine = true\n").is_err());
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
        assert_eq!(
            config.peers.len(),
            3,
            "the three nodes, this one among them"
        );
    }
}

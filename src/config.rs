//! Node settings: a TOML file (`config/jbc.toml` by default, paths in it
//! relative to the working directory, like the original's `chaindata/`)
//! overridden by command-line flags.
//!
//! This module owns the names, defaults and allowed ranges of every setting
//! (one rule per setting, applied alike to a flag and to the file) and
//! turns them into a checked [`Config`]. It does not start anything.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::block::Block;
use crate::chain::{
    DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_FUTURE_SECONDS, DEFAULT_MAX_ITEM_BYTES, Network,
};
use crate::peers::{PeerUrl, PeerUrlError};
use crate::pool::PoolLimits;
use crate::pow::Kind;

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
    #[arg(long, value_parser = rule::port)]
    pub port: Option<u16>,
    /// Peer base URLs, comma-separated; the node skips its own address
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// Leading zero hex digits a block hash needs (a network setting) [default: 7]
    #[arg(long, value_parser = rule::difficulty)]
    pub difficulty: Option<u32>,
    /// Seconds between blocks an adaptive network aims for; with
    /// --retarget-window, makes the network adaptive (a network setting)
    /// [default: unset, a fixed network]
    #[arg(long, value_parser = rule::target_block_seconds)]
    pub target_block_seconds: Option<u64>,
    /// Blocks between retargets of an adaptive network (a network setting)
    #[arg(long, value_parser = rule::retarget_window)]
    pub retarget_window: Option<u64>,
    /// Seconds a block's timestamp may be ahead of this node's clock in an
    /// adaptive network [default: 7200]
    #[arg(long, value_parser = rule::max_future_seconds)]
    pub max_future_seconds: Option<u64>,
    /// File holding the network's genesis block [default: the built-in first block]
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Folder of this node's block files [default: chaindata]
    #[arg(long)]
    pub chaindata: Option<PathBuf>,
    /// Text put in the blocks this node mines [default: "Mined by node on port PORT"]
    #[arg(long)]
    pub data: Option<String>,
    /// Mine blocks in the background while serving (--mine=false or
    /// --no-mine turns off a config file's `mine = true`)
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        overrides_with = "no_mine"
    )]
    pub mine: Option<bool>,
    /// Do not mine, whatever the config file says
    #[arg(long, overrides_with = "mine")]
    #[serde(skip)]
    pub no_mine: bool,
    /// Mining threads [default: the number of cores]
    #[arg(long, value_parser = rule::threads)]
    pub threads: Option<usize>,
    /// Nice level of the mining threads, 0 (the server's) to 19 [default: 19]
    #[arg(long, value_parser = rule::miner_nice)]
    pub miner_nice: Option<u8>,
    /// Milliseconds to wait for a peer to accept a connection [default: 2000]
    #[arg(long, value_parser = rule::timeout_ms)]
    pub connect_timeout_ms: Option<u64>,
    /// Milliseconds a whole request to a peer may take [default: 10000]
    #[arg(long, value_parser = rule::timeout_ms)]
    pub request_timeout_ms: Option<u64>,
    /// Seconds between syncs with all peers [default: 5]
    #[arg(long, value_parser = rule::sync_interval)]
    pub sync_interval: Option<f64>,
    /// Largest peer response read, in bytes: only an original node's whole
    /// chain may be this large [default: 268435456]
    #[arg(long, value_parser = rule::max_response_bytes)]
    pub max_response_bytes: Option<u64>,
    /// Largest block, in bytes of its JSON (a network setting) [default: 1048576]
    #[arg(long, value_parser = rule::max_block_bytes)]
    pub max_block_bytes: Option<u64>,
    /// Largest data item, in bytes of UTF-8 (a network setting) [default: 4096]
    #[arg(long, value_parser = rule::max_item_bytes)]
    pub max_item_bytes: Option<u64>,
    /// Most data items waiting for a block [default: 10000]
    #[arg(long, value_parser = rule::pool_max_items)]
    pub pool_max_items: Option<u64>,
    /// Most bytes of data items waiting for a block [default: 16777216]
    #[arg(long, value_parser = rule::pool_max_bytes)]
    pub pool_max_bytes: Option<u64>,
    /// Seconds an operator's ban lasts unless it says how long (jbc peers
    /// ban --for), and a removed peer is not taken back [default: 86400]
    #[arg(long, value_parser = rule::ban_seconds)]
    pub ban_seconds: Option<u64>,
    /// Outbound peers the node keeps, chosen from the addresses it learns
    /// (configured and added peers come on top) [default: 8]
    #[arg(long, value_parser = rule::outbound_peers)]
    pub outbound_peers: Option<usize>,
    /// Most inbound peers: nodes that sync from this one and hear its
    /// blocks [default: 64]
    #[arg(long, value_parser = rule::max_inbound)]
    pub max_inbound: Option<usize>,
    /// Most connections served at once; past it, the youngest of the
    /// network group holding the most is dropped for a newcomer [default:
    /// what the open-file limit allows, at most 8192]
    #[arg(long, value_parser = rule::max_connections)]
    pub max_connections: Option<usize>,
    /// The base URL other nodes reach this one at, sent with announcements
    /// [default: http://HOST:PORT, with the connection's address for 0.0.0.0]
    #[arg(long)]
    pub advertise: Option<String>,
    /// Host names, besides IP addresses, `localhost` and the host of
    /// --advertise, that requests may name in their Host header
    /// (comma-separated); any other is refused, against DNS rebinding
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// A fixed operator key, for operators on other machines (config file
    /// only, so it never shows in a process list) [default: a random key
    /// written to operator.cookie at each start]
    #[arg(skip)]
    pub operator_key: Option<String>,
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
            target_block_seconds: overrides.target_block_seconds.or(self.target_block_seconds),
            retarget_window: overrides.retarget_window.or(self.retarget_window),
            max_future_seconds: overrides.max_future_seconds.or(self.max_future_seconds),
            genesis: overrides.genesis.or(self.genesis),
            chaindata: overrides.chaindata.or(self.chaindata),
            data: overrides.data.or(self.data),
            mine: if overrides.no_mine {
                Some(false)
            } else {
                overrides.mine.or(self.mine)
            },
            no_mine: false,
            threads: overrides.threads.or(self.threads),
            miner_nice: overrides.miner_nice.or(self.miner_nice),
            connect_timeout_ms: overrides.connect_timeout_ms.or(self.connect_timeout_ms),
            request_timeout_ms: overrides.request_timeout_ms.or(self.request_timeout_ms),
            max_response_bytes: overrides.max_response_bytes.or(self.max_response_bytes),
            sync_interval: overrides.sync_interval.or(self.sync_interval),
            max_block_bytes: overrides.max_block_bytes.or(self.max_block_bytes),
            ban_seconds: overrides.ban_seconds.or(self.ban_seconds),
            max_item_bytes: overrides.max_item_bytes.or(self.max_item_bytes),
            pool_max_items: overrides.pool_max_items.or(self.pool_max_items),
            pool_max_bytes: overrides.pool_max_bytes.or(self.pool_max_bytes),
            outbound_peers: overrides.outbound_peers.or(self.outbound_peers),
            max_inbound: overrides.max_inbound.or(self.max_inbound),
            max_connections: overrides.max_connections.or(self.max_connections),
            advertise: overrides.advertise.or(self.advertise),
            allowed_hosts: overrides.allowed_hosts.or(self.allowed_hosts),
            operator_key: overrides.operator_key.or(self.operator_key),
        }
    }
}

/// The allowed values of each number setting, shared by the flag parsers
/// (clap calls these with the flag's text) and the config file's checks,
/// so a value means the same wherever it is written.
pub mod rule {
    use super::*;

    /// Parses `text` as a `T` within `range`, or says what is expected.
    fn number<T>(text: &str, range: RangeInclusive<T>, expected: &str) -> Result<T, String>
    where
        T: FromStr + PartialOrd + Display,
    {
        let value: T = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not {expected}"))?;
        within(value, range, expected)
    }

    /// Checks that `value` is within `range`, or says what is expected.
    pub fn within<T: PartialOrd + Display>(
        value: T,
        range: RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, String> {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(format!("{value} is not {expected}"))
        }
    }

    /// A host name for `allowed_hosts`: letters, digits, `-` and `.`.
    pub fn host_name(name: &str) -> Result<(), String> {
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

    /// An operator key: at least 16 printable ASCII characters, no spaces
    /// (it travels in an `Authorization` header).
    pub fn operator_key(key: &str) -> Result<(), String> {
        if key.len() >= 16 && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(())
        } else {
            Err("an operator key is 16 to 256 printable ASCII characters without spaces".into())
        }
    }

    pub const PORT: &str = "a port number from 0 to 65535";
    pub const DIFFICULTY: &str = "a number of hex digits from 0 to 64";
    pub const THREADS: &str = "a whole number of threads from 1 to 1024";
    pub const MINER_NICE: &str = "a nice level from 0 to 19";
    pub const MINER_NICE_RANGE: RangeInclusive<u8> = 0..=19;
    pub const TIMEOUT_MS: &str = "a whole number of milliseconds from 1 to 3600000";
    pub const SYNC_INTERVAL: &str = "a number of seconds from 0.05 to 86400";
    pub const MAX_RESPONSE_BYTES: &str = "a whole number of bytes, at least 1024";
    pub const BENCH_SECONDS: &str = "a number of seconds from 0.1 to 3600";
    pub const MAX_BLOCK_BYTES: &str = "a whole number of bytes from 1024 to 67108864";
    pub const BAN_SECONDS: &str = "a whole number of seconds from 1 to 31536000";

    pub const MAX_BLOCK_RANGE: RangeInclusive<u64> = 1024..=64 * 1024 * 1024;
    pub const MAX_ITEM_BYTES: &str = "a whole number of bytes from 1 to 1048576";
    pub const MAX_ITEM_RANGE: RangeInclusive<u64> = 1..=1024 * 1024;
    pub const POOL_MAX_ITEMS: &str = "a whole number of items from 1 to 10000000";
    pub const POOL_ITEMS_RANGE: RangeInclusive<u64> = 1..=10_000_000;
    pub const POOL_MAX_BYTES: &str = "a whole number of bytes from 1024 to 17179869184";
    pub const POOL_BYTES_RANGE: RangeInclusive<u64> = 1024..=16 * 1024 * 1024 * 1024;
    pub const BAN_RANGE: RangeInclusive<u64> = 1..=365 * 86_400;
    pub const OUTBOUND_PEERS: &str = "a whole number from 0 to 64";
    pub const OUTBOUND_RANGE: RangeInclusive<usize> = 0..=64;
    pub const MAX_INBOUND: &str = "a whole number from 0 to 1024";
    pub const INBOUND_RANGE: RangeInclusive<usize> = 0..=1024;
    pub const MAX_CONNECTIONS: &str = "a whole number from 16 to 8192";
    pub const CONNECTIONS_RANGE: RangeInclusive<usize> = 16..=8192;

    pub const TARGET_BLOCK_SECONDS: &str = "a whole number of seconds from 1 to 86400";
    pub const TARGET_BLOCK_RANGE: RangeInclusive<u64> = 1..=86_400;
    pub const RETARGET_WINDOW: &str = "a whole number of blocks from 2 to 100000";
    pub const RETARGET_RANGE: RangeInclusive<u64> = 2..=100_000;
    pub const MAX_FUTURE_SECONDS: &str = "a whole number of seconds from 0 to 2592000";
    pub const MAX_FUTURE_RANGE: RangeInclusive<u64> = 0..=30 * 86_400;
    pub const THREADS_RANGE: RangeInclusive<usize> = 1..=1024;
    pub const DIFFICULTY_RANGE: RangeInclusive<u32> = 0..=64;
    pub const TIMEOUT_RANGE: RangeInclusive<u64> = 1..=3_600_000;
    pub const SYNC_INTERVAL_RANGE: RangeInclusive<f64> = 0.05..=86_400.0;
    pub const MAX_RESPONSE_RANGE: RangeInclusive<u64> = 1024..=u64::MAX;

    pub fn port(text: &str) -> Result<u16, String> {
        number(text, 0..=u16::MAX, PORT)
    }
    pub fn difficulty(text: &str) -> Result<u32, String> {
        number(text, DIFFICULTY_RANGE, DIFFICULTY)
    }
    pub fn target_block_seconds(text: &str) -> Result<u64, String> {
        number(text, TARGET_BLOCK_RANGE, TARGET_BLOCK_SECONDS)
    }
    pub fn retarget_window(text: &str) -> Result<u64, String> {
        number(text, RETARGET_RANGE, RETARGET_WINDOW)
    }
    pub fn max_future_seconds(text: &str) -> Result<u64, String> {
        number(text, MAX_FUTURE_RANGE, MAX_FUTURE_SECONDS)
    }
    pub fn threads(text: &str) -> Result<usize, String> {
        number(text, THREADS_RANGE, THREADS)
    }
    pub fn miner_nice(text: &str) -> Result<u8, String> {
        number(text, MINER_NICE_RANGE, MINER_NICE)
    }
    pub fn timeout_ms(text: &str) -> Result<u64, String> {
        number(text, TIMEOUT_RANGE, TIMEOUT_MS)
    }
    pub fn sync_interval(text: &str) -> Result<f64, String> {
        number(text, SYNC_INTERVAL_RANGE, SYNC_INTERVAL)
    }
    pub fn max_response_bytes(text: &str) -> Result<u64, String> {
        number(text, MAX_RESPONSE_RANGE, MAX_RESPONSE_BYTES)
    }
    pub fn max_block_bytes(text: &str) -> Result<u64, String> {
        number(text, MAX_BLOCK_RANGE, MAX_BLOCK_BYTES)
    }
    pub fn max_item_bytes(text: &str) -> Result<u64, String> {
        number(text, MAX_ITEM_RANGE, MAX_ITEM_BYTES)
    }
    pub fn pool_max_items(text: &str) -> Result<u64, String> {
        number(text, POOL_ITEMS_RANGE, POOL_MAX_ITEMS)
    }
    pub fn pool_max_bytes(text: &str) -> Result<u64, String> {
        number(text, POOL_BYTES_RANGE, POOL_MAX_BYTES)
    }
    pub fn ban_seconds(text: &str) -> Result<u64, String> {
        number(text, BAN_RANGE, BAN_SECONDS)
    }
    pub fn outbound_peers(text: &str) -> Result<usize, String> {
        number(text, OUTBOUND_RANGE, OUTBOUND_PEERS)
    }
    pub fn max_inbound(text: &str) -> Result<usize, String> {
        number(text, INBOUND_RANGE, MAX_INBOUND)
    }
    pub fn max_connections(text: &str) -> Result<usize, String> {
        number(text, CONNECTIONS_RANGE, MAX_CONNECTIONS)
    }
    pub fn bench_seconds(text: &str) -> Result<f64, String> {
        number(text, 0.1..=3600.0, BENCH_SECONDS)
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
    /// Timeouts and limits for peer requests.
    pub peer: PeerSettings,
    /// Time between syncs with all peers, the safety net for lost
    /// announcements.
    pub sync_interval: Duration,
    /// How long a misbehaving peer stays banned.
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
        let invalid =
            |key: &'static str| move |reason: String| ConfigError::Invalid { key, reason };
        let host = settings.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = settings.port.unwrap_or(5001);
        let listen = SocketAddr::new(host, port);

        let difficulty = rule::within(
            settings.difficulty.unwrap_or(DEFAULT_DIFFICULTY),
            rule::DIFFICULTY_RANGE,
            rule::DIFFICULTY,
        )
        .map_err(invalid("difficulty"))?;
        let genesis = match &settings.genesis {
            Some(path) => read_genesis(path)?,
            None => Block::from_json(DEFAULT_GENESIS_JSON.as_bytes())
                .expect("the built-in genesis block parses"),
        };

        let kind = match (settings.target_block_seconds, settings.retarget_window) {
            (None, None) => Kind::Fixed,
            (Some(seconds), Some(window)) => Kind::Adaptive {
                target_block_seconds: rule::within(
                    seconds,
                    rule::TARGET_BLOCK_RANGE,
                    rule::TARGET_BLOCK_SECONDS,
                )
                .map_err(invalid("target_block_seconds"))?,
                retarget_window: rule::within(window, rule::RETARGET_RANGE, rule::RETARGET_WINDOW)
                    .map_err(invalid("retarget_window"))?,
            },
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "retarget_window",
                    reason: "an adaptive network needs both target_block_seconds and \
                             retarget_window (set neither for a fixed network)"
                        .into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "target_block_seconds",
                    reason: "an adaptive network needs both target_block_seconds and \
                             retarget_window (set neither for a fixed network)"
                        .into(),
                });
            }
        };
        if kind != Kind::Fixed && genesis.timestamp > i64::MAX as u128 {
            return Err(ConfigError::Invalid {
                key: "genesis",
                reason: format!(
                    "an adaptive network's blocks carry seconds since the epoch, and its genesis \
                     block's timestamp {} is not that",
                    genesis.timestamp
                ),
            });
        }
        let max_future_seconds = rule::within(
            settings
                .max_future_seconds
                .unwrap_or(DEFAULT_MAX_FUTURE_SECONDS),
            rule::MAX_FUTURE_RANGE,
            rule::MAX_FUTURE_SECONDS,
        )
        .map_err(invalid("max_future_seconds"))?;

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
        let max_block_bytes = rule::within(
            settings.max_block_bytes.unwrap_or(DEFAULT_MAX_BLOCK_BYTES),
            rule::MAX_BLOCK_RANGE,
            rule::MAX_BLOCK_BYTES,
        )
        .map_err(invalid("max_block_bytes"))?;
        if let Some(data) = &settings.data {
            // The largest block this node could mine with it.
            let bytes = Block::widest_json_len(u64::MAX, data) as u64;
            if bytes > max_block_bytes {
                return Err(ConfigError::Invalid {
                    key: "data",
                    reason: format!(
                        "a block carrying it would be {bytes} bytes of JSON, more than max_block_bytes ({max_block_bytes})"
                    ),
                });
            }
        }
        // Unset, the item limit shrinks to what a small block holds.
        let fitting = (max_block_bytes.saturating_sub(1024) / 12).max(1);
        let max_item_bytes = rule::within(
            settings
                .max_item_bytes
                .unwrap_or(DEFAULT_MAX_ITEM_BYTES.min(fitting)),
            rule::MAX_ITEM_RANGE,
            rule::MAX_ITEM_BYTES,
        )
        .map_err(invalid("max_item_bytes"))?;
        // An item must fit in a block even written twice escaped, as a
        // JSON string inside the JSON string of the block's data.
        if max_item_bytes * 12 + 1024 > max_block_bytes {
            return Err(ConfigError::Invalid {
                key: "max_item_bytes",
                reason: format!(
                    "{max_item_bytes} bytes could make an item that no block of {max_block_bytes} \
                     bytes holds (max_item_bytes × 12 + 1024 must be at most max_block_bytes)"
                ),
            });
        }
        let pool = PoolLimits {
            max_items: rule::within(
                settings.pool_max_items.unwrap_or(10_000),
                rule::POOL_ITEMS_RANGE,
                rule::POOL_MAX_ITEMS,
            )
            .map_err(invalid("pool_max_items"))? as usize,
            max_bytes: rule::within(
                settings.pool_max_bytes.unwrap_or(16 * 1024 * 1024),
                rule::POOL_BYTES_RANGE,
                rule::POOL_MAX_BYTES,
            )
            .map_err(invalid("pool_max_bytes"))? as usize,
            max_item_bytes: max_item_bytes as usize,
        };
        let ban_seconds = rule::within(
            settings.ban_seconds.unwrap_or(86_400),
            rule::BAN_RANGE,
            rule::BAN_SECONDS,
        )
        .map_err(invalid("ban_seconds"))?;
        let outbound_peers = rule::within(
            settings.outbound_peers.unwrap_or(8),
            rule::OUTBOUND_RANGE,
            rule::OUTBOUND_PEERS,
        )
        .map_err(invalid("outbound_peers"))?;
        let max_inbound = rule::within(
            settings.max_inbound.unwrap_or(64),
            rule::INBOUND_RANGE,
            rule::MAX_INBOUND,
        )
        .map_err(invalid("max_inbound"))?;
        let max_connections = settings
            .max_connections
            .map(|most| {
                rule::within(most, rule::CONNECTIONS_RANGE, rule::MAX_CONNECTIONS)
                    .map_err(invalid("max_connections"))
            })
            .transpose()?;
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
            .map(|name| match rule::host_name(&name) {
                Ok(()) => Ok(name),
                Err(reason) => Err(invalid("allowed_hosts")(reason)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let operator_key = settings
            .operator_key
            .map(|key| rule::operator_key(&key).map(|()| key))
            .transpose()
            .map_err(invalid("operator_key"))?;

        let threads = match settings.threads {
            Some(n) => {
                rule::within(n, rule::THREADS_RANGE, rule::THREADS).map_err(invalid("threads"))?
            }
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let miner_nice = rule::within(
            settings.miner_nice.unwrap_or(crate::miner::DEFAULT_NICE),
            rule::MINER_NICE_RANGE,
            rule::MINER_NICE,
        )
        .map_err(invalid("miner_nice"))?;
        let sync_interval = rule::within(
            settings.sync_interval.unwrap_or(5.0),
            rule::SYNC_INTERVAL_RANGE,
            rule::SYNC_INTERVAL,
        )
        .map_err(invalid("sync_interval"))?;
        let timeout = |key: &'static str, value: Option<u64>, default: u64| {
            rule::within(
                value.unwrap_or(default),
                rule::TIMEOUT_RANGE,
                rule::TIMEOUT_MS,
            )
            .map(Duration::from_millis)
            .map_err(invalid(key))
        };
        let max_response_bytes = rule::within(
            settings.max_response_bytes.unwrap_or(256 * 1024 * 1024),
            rule::MAX_RESPONSE_RANGE,
            rule::MAX_RESPONSE_BYTES,
        )
        .map_err(invalid("max_response_bytes"))?;

        Ok(Config {
            source: ConfigSource::DefaultMissing(PathBuf::from(DEFAULT_CONFIG_PATH)),
            listen,
            sync_interval: Duration::from_secs_f64(sync_interval),
            peers,
            network: Network {
                genesis,
                difficulty,
                kind,
                max_future_seconds,
                max_block_bytes,
                max_item_bytes,
            },
            ban_time: Duration::from_secs(ban_seconds),
            pool,
            outbound_peers,
            max_inbound,
            max_connections,
            advertise,
            allowed_hosts,
            operator_key,
            chaindata: settings
                .chaindata
                .unwrap_or_else(|| PathBuf::from("chaindata")),
            data: settings.data,
            mine: settings.mine.unwrap_or(false),
            threads,
            miner_nice,
            peer: PeerSettings {
                connect_timeout: timeout("connect_timeout_ms", settings.connect_timeout_ms, 2_000)?,
                request_timeout: timeout(
                    "request_timeout_ms",
                    settings.request_timeout_ms,
                    10_000,
                )?,
                max_response_bytes,
            },
        })
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
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
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
        assert_eq!(rule::miner_nice("0"), Ok(0));
        assert!(rule::miner_nice("-1").is_err());
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
            rule::bench_seconds("-1").unwrap_err(),
            "-1 is not a number of seconds from 0.1 to 3600"
        );
        assert_eq!(
            rule::difficulty("x").unwrap_err(),
            "\"x\" is not a number of hex digits from 0 to 64"
        );
        assert_eq!(rule::threads("3"), Ok(3));
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

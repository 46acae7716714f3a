//! Which settings a node has, each named once: the [`Settings`] a config
//! file or the command line gives, how the two merge, and the README's
//! table of them. Each setting's key, default, range and help are declared
//! beside the module that uses it ([`crate::setting::Setting`]); this list
//! only gathers them, and the compiler holds each field to its key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::setting::{Described, same};

/// Every declaration, by the name of its setting, for the command line's
/// own flags (`jbc bench --threads`, `jbc init --difficulty`).
pub mod declared {
    pub use crate::api::{ADVERTISE, ALLOWED_HOSTS, FRAME_ANCESTORS, HOST, MAX_CONNECTIONS, PORT};
    pub use crate::chain::{
        DIFFICULTY, GENESIS, MAX_BLOCK_BYTES, MAX_FUTURE_SECONDS, RETARGET_WINDOW,
        TARGET_BLOCK_SECONDS,
    };
    pub use crate::client::{CONNECT_TIMEOUT_MS, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT_MS};
    pub use crate::gossip::link::LINKS;
    pub use crate::item::MAX_ITEM_BYTES;
    pub use crate::miner::{BENCH_SECONDS, DATA, MINE, MINER_NICE, THREADS};
    pub use crate::operator::OPERATOR_KEY;
    pub use crate::peers::{BAN_SECONDS, MAX_INBOUND, OUTBOUND_PEERS, PEERS};
    pub use crate::pool::{POOL_MAX_BYTES, POOL_MAX_ITEMS};
    pub use crate::store::CHAINDATA;
    pub use crate::sync::SYNC_INTERVAL;
}
use declared::*;

/// Declares [`Settings`] from a list of `field: type = DECLARATION`: the
/// struct with its clap and serde attributes, [`Settings::overridden_by`],
/// [`rows`] for the README, and a compile-time check that each field is
/// named as its declaration's key.
macro_rules! settings {
    (
        flags { $( $(#[$attr:meta])* $field:ident: $ty:ty = $decl:ident, )* }
        file_only { $( $file_field:ident: $file_ty:ty = $file_decl:ident, )* }
    ) => {
        /// Settings as written in the config file or given as flags; every
        /// one is optional, and a flag overrides the file.
        #[derive(Debug, Default, Clone, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                #[arg(long, help = $decl.cli_help())]
                $(#[$attr])*
                pub $field: Option<$ty>,
            )*
            /// Do not mine, whatever the config file says
            #[arg(long, overrides_with = "mine")]
            #[serde(skip)]
            pub no_mine: bool,
            $(
                #[arg(skip)]
                pub $file_field: Option<$file_ty>,
            )*
        }

        impl Settings {
            /// These settings with every value `overrides` sets replacing
            /// ours; its `no_mine` turns mining off.
            pub fn overridden_by(self, overrides: Settings) -> Settings {
                let no_mine = overrides.no_mine;
                let merged = Settings {
                    $( $field: overrides.$field.or(self.$field), )*
                    $( $file_field: overrides.$file_field.or(self.$file_field), )*
                    no_mine: false,
                };
                if no_mine {
                    Settings { mine: Some(false), ..merged }
                } else {
                    merged
                }
            }
        }

        /// Every setting, in the order of `jbc --help`, and whether it has a
        /// flag.
        #[cfg(test)]
        pub fn rows() -> Vec<(&'static dyn Described, bool)> {
            vec![
                $( (&$decl as &dyn Described, true), )*
                $( (&$file_decl as &dyn Described, false), )*
            ]
        }

        const _: () = {
            $( assert!(same(stringify!($field), $decl.key), "a field is named as its key"); )*
            $( assert!(same(stringify!($file_field), $file_decl.key), "a field is named as its key"); )*
        };
    };
}

settings! {
    flags {
        host: IpAddr = HOST,
        #[arg(value_parser = PORT.parser())]
        port: u16 = PORT,
        #[arg(value_delimiter = ',')]
        peers: Vec<String> = PEERS,
        #[arg(value_parser = DIFFICULTY.parser())]
        difficulty: u32 = DIFFICULTY,
        #[arg(value_parser = TARGET_BLOCK_SECONDS.parser())]
        target_block_seconds: u64 = TARGET_BLOCK_SECONDS,
        #[arg(value_parser = RETARGET_WINDOW.parser())]
        retarget_window: u64 = RETARGET_WINDOW,
        #[arg(value_parser = MAX_FUTURE_SECONDS.parser())]
        max_future_seconds: u64 = MAX_FUTURE_SECONDS,
        genesis: PathBuf = GENESIS,
        chaindata: PathBuf = CHAINDATA,
        data: String = DATA,
        #[arg(
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            overrides_with = "no_mine"
        )]
        mine: bool = MINE,
        #[arg(value_parser = THREADS.parser())]
        threads: usize = THREADS,
        #[arg(value_parser = MINER_NICE.parser())]
        miner_nice: u8 = MINER_NICE,
        #[arg(value_parser = SYNC_INTERVAL.parser())]
        sync_interval: f64 = SYNC_INTERVAL,
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        links: bool = LINKS,
        #[arg(value_parser = CONNECT_TIMEOUT_MS.parser())]
        connect_timeout_ms: u64 = CONNECT_TIMEOUT_MS,
        #[arg(value_parser = REQUEST_TIMEOUT_MS.parser())]
        request_timeout_ms: u64 = REQUEST_TIMEOUT_MS,
        #[arg(value_parser = MAX_RESPONSE_BYTES.parser())]
        max_response_bytes: u64 = MAX_RESPONSE_BYTES,
        #[arg(value_parser = MAX_BLOCK_BYTES.parser())]
        max_block_bytes: u64 = MAX_BLOCK_BYTES,
        #[arg(value_parser = MAX_ITEM_BYTES.parser())]
        max_item_bytes: u64 = MAX_ITEM_BYTES,
        #[arg(value_parser = POOL_MAX_ITEMS.parser())]
        pool_max_items: u64 = POOL_MAX_ITEMS,
        #[arg(value_parser = POOL_MAX_BYTES.parser())]
        pool_max_bytes: u64 = POOL_MAX_BYTES,
        #[arg(value_parser = BAN_SECONDS.parser())]
        ban_seconds: u64 = BAN_SECONDS,
        #[arg(value_parser = OUTBOUND_PEERS.parser())]
        outbound_peers: usize = OUTBOUND_PEERS,
        #[arg(value_parser = MAX_INBOUND.parser())]
        max_inbound: usize = MAX_INBOUND,
        #[arg(value_parser = MAX_CONNECTIONS.parser())]
        max_connections: usize = MAX_CONNECTIONS,
        advertise: String = ADVERTISE,
        #[arg(value_delimiter = ',')]
        allowed_hosts: Vec<String> = ALLOWED_HOSTS,
        #[arg(value_delimiter = ',')]
        frame_ancestors: Vec<String> = FRAME_ANCESTORS,
    }
    file_only {
        operator_key: String = OPERATOR_KEY,
    }
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
}

#[cfg(test)]
/// The README's table of settings, from the declarations: key, flags
/// (as clap spells them), default, allowed values and meaning.
pub fn markdown_table() -> String {
    use clap::Args;
    let command = Settings::augment_args(clap::Command::new("jbc"));
    let mut table = String::from(
        "| key | flag | default | allowed | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for (setting, has_flag) in rows() {
        let key = setting.key();
        let flags: Vec<String> = command
            .get_arguments()
            .filter(|arg| arg.get_id() == key || arg.get_id() == format!("no_{key}").as_str())
            .filter_map(|arg| arg.get_long())
            .map(|long| format!("`--{long}`"))
            .collect();
        let flags = if has_flag {
            flags.join(", ")
        } else {
            "(config file only)".to_string()
        };
        table.push_str(&format!(
            "| `{key}` | {flags} | {} | {} | {} |\n",
            setting.default_text(),
            setting.allowed().unwrap_or_default(),
            setting.help(),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str =
        "<!-- settings table: from the declarations; `cargo test readme_settings` checks it -->\n";
    const END: &str = "<!-- end of settings table -->";

    #[test]
    fn readme_settings_table_is_the_declarations() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md reads");
        let table = readme
            .split_once(START)
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(table, _)| table)
            .expect("README.md has the settings table between its markers");
        let expected = markdown_table();
        assert!(
            table == expected,
            "README.md's settings table differs from the declarations; it should read:\n\n{expected}"
        );
    }

    #[test]
    fn every_setting_with_a_flag_has_one_and_the_file_only_none() {
        use clap::Args;
        let command = Settings::augment_args(clap::Command::new("jbc"));
        for (setting, has_flag) in rows() {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_id() == setting.key());
            assert_eq!(arg.is_some(), has_flag, "{}", setting.key());
        }
    }
}

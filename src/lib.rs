//! jbc: a node of the JackBlockChain, the blockchain of the blog series
//! *How to Build Your Own Blockchain*.
//!
//! A node keeps a chain of proof-of-work blocks in its own `chaindata/`
//! folder, adopts the valid chain with the most work its peers serve, mines
//! new blocks in the background and serves its chain over HTTP. Block files
//! and peers of the original Python node interoperate with it.
//!
//! # Layout
//!
//! The modules in layers, from the bottom up; each imports only modules of
//! the layers below it (no cycles; `farm-studio look` draws the same floors).
//!
//! 1. [`block`]: the block format, its hash and proof of work.
//!    [`clock`]: the time. [`fsio`]: writing a file so it survives a crash.
//!    [`stats`]: counters the node reports. [`human`]: figures in words.
//!    [`logline`]: how a log line reads (the message once).
//!    [`priority`]: a thread's nice level. [`netgroup`]: network groups,
//!    what the node shares out by. [`orders`]: blocks the operator asked
//!    to be mined now. [`setting`]: the shape of a setting's declaration
//!    (key, default, range, help).
//!    [`sha256x2`]: two SHA-256 compressions interleaved with SHA-NI (the
//!    only `unsafe` code).
//! 2. [`item`]: data items carried in blocks: ids, encoding, room taken.
//!    [`signed`]: signed items: the envelope, the message an author signs,
//!    the checks of a signature (alone or in a batch), key files.
//!    [`pow`]: targets, retargets and work: the numbers of proof of work.
//!    [`operator`]: the operator key and its cookie file.
//! 3. [`chain`]: validating a chain, its targets and work, the one rule for
//!    choosing between chains, and the template of the next block.
//!    [`pool`]: data items waiting for a block, and their journal.
//!    [`events`]: what happens on the node, as a stream (`GET /events`).
//!    [`protocol`]: what nodes say to each other: endpoints, headers, shapes.
//!    [`wire`]: the messages of a live peer link, and their parsing.
//!    [`tree`]: when and from where recent blocks were first seen, and the
//!    side branches the node knows (bounded): what the block tree shows.
//! 4. [`store`]: the chaindata folder; crash-safe writes, nothing deleted.
//!    [`miner`]: proof of work on OS threads, with a SHA-256 midstate.
//!    [`peers`]: peer URLs, the peer book (whom the node talks to, their
//!    health and their fading scores, the operator's bans) and the address
//!    manager (whom it could), their limits and their files.
//! 5. [`state`]: the chain in memory and the one path by which it changes.
//!    [`client`]: the HTTP client side: asking peers, announcing to them.
//!    [`init`]: `jbc init`, a new network with its own genesis block.
//! 6. [`handshake`]: what a URL must answer to become a peer. [`ask`]: the
//!    commands that ask a running node (`jbc status`, `blocks`, `data`, …).
//!    [`devnet`]: `jbc devnet`, nodes of this binary as child processes, a
//!    control page, its actions, generated activity, export and import.
//! 7. [`sync`]: catching up with one peer, and what it shows against it.
//! 8. [`gossip`]: who gets in, each peer's task (syncing, announcing), the
//!    live links with peers of this software (one `LinkPeer` each, the
//!    conversation on it, the messages a learner watches), the outbound
//!    peers the node chooses and the addresses it passes on, and the first
//!    round of syncs the miner waits for.
//! 9. [`crawl`]: the network as this node can see it, a bounded crawl of
//!    the peer graph for the explorer's Network view.
//!    [`metrics`]: figures for Prometheus.
//! 10. [`api`]: the HTTP router, its extractors and guards (the operator
//!     key, the Host check), handlers and their one error type; the
//!     connections it holds, by network group.
//! 11. [`config`]: settings from the config file and flags, gathered from
//!     the declarations of the modules below and checked into a `Config`.
//! 12. [`node`]: the daemon: wiring, the mining loop, tasks and shutdown.
//!
//! `main.rs` sits on top: it parses the command line and calls these.
//!
//! # What is public
//!
//! The block format, the chain's rules and the wire ([`block`], [`chain`],
//! [`item`], [`signed`], [`pow`], [`protocol`], [`wire`]) are public modules. The node's own parts
//! are private to the crate; the items `main.rs`, the tests and the
//! benchmarks need are re-exported below, so the compiler reports any other
//! code that nothing calls.

// `unsafe` lives in one module, whose every block says why it is sound;
// the compiler refuses it anywhere else.
#![deny(unsafe_code)]

// The block format, the chain's rules and the wire: what another program
// needs to read a node's files or talk to it.
pub mod block;
pub mod chain;
pub mod item;
pub mod pow;
pub mod protocol;
pub mod setting;
pub mod signed;
pub mod wire;

// Asking a running node, as `jbc status` and the other commands do.
pub mod ask;

// The node's own parts.
mod api;
mod client;
mod clock;
mod config;
mod crawl;
mod devnet;
mod events;
mod fsio;
mod gossip;
mod handshake;
mod human;
mod init;
mod logline;
mod metrics;
mod miner;
mod netgroup;
mod node;
mod operator;
mod orders;
mod peers;
mod pool;
mod priority;
#[allow(unsafe_code)]
mod sha256x2;
mod state;
mod stats;
mod store;
mod sync;
mod tree;

// The node as `main.rs` runs it: its settings, the daemon, `jbc init`,
// `jbc bench` and `jbc data`.
pub use client::PeerSettings;
pub use client::{data_request, http_client};
pub use config::{Config, DEFAULT_GENESIS_JSON, Settings, declared as settings};
pub use devnet::archive::export as export_devnet;
pub use devnet::{
    Layout as DevnetLayout, MAX_NODES as DEVNET_MAX_NODES, Options as DevnetOptions,
    run as run_devnet,
};
pub use human::{duration_in_words, rate_in_words};
pub use init::{NewNetwork, init};
pub use logline::MessageFirst;
pub use miner::bench;
pub use node::run;

// The chaindata folder, for tools and tests that write or read one.
pub use store::{Store, block_file_name};

// The parts a node is wired from, for the benchmarks that wire one by hand
// and the tests that check a part alone. Not a stable interface.
pub use api::{Access, AppState, ServerLimits, app, serve};
pub use client::PeerClient;
pub use fsio::write_all_atomic;
pub use gossip::{Gossip, GossipSettings};
pub use miner::{NonceHasher, state_meets_difficulty, state_to_hash};
pub use operator::{COOKIE_FILE, OperatorKey, read_cookie};
pub use peers::{AddrMan, PeerBook, PeerSlots, PeerUrl};
pub use state::{ChainState, Source};
pub use stats::Stats;
pub use sync::{Outcome, Told, catch_up};

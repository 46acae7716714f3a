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
//!    [`item`]: data items carried in blocks: ids, encoding, room taken.
//!    [`clock`]: the time. [`fsio`]: writing a file so it survives a crash.
//!    [`stats`]: counters the node reports. [`human`]: figures in words.
//! 2. [`pow`]: targets, retargets and work: the numbers of proof of work.
//!    [`pool`]: data items waiting for a block.
//!    [`events`]: what happens on the node, as a stream (`GET /events`).
//! 3. [`chain`]: validating a chain, its targets and work, the one rule for
//!    choosing between chains, and the template of the next block.
//!    [`peers`]: peer URLs, the peer book, its limits and its file.
//!    [`protocol`]: what nodes say to each other: endpoints, headers, shapes.
//! 4. [`store`]: the chaindata folder; crash-safe writes, nothing deleted.
//!    [`miner`]: proof of work on OS threads, with a SHA-256 midstate.
//!    [`config`]: settings from the config file and flags.
//! 5. [`state`]: the chain in memory and the one path by which it changes.
//!    [`client`]: the HTTP client side: asking peers, announcing to them.
//!    [`init`]: `jbc init`, a new network with its own genesis block.
//! 6. [`sync`]: catching up with one peer. [`handshake`]: what a URL must
//!    answer to become a peer. [`metrics`]: figures for Prometheus.
//! 7. [`gossip`]: who gets in, and each peer's task: syncing, announcing.
//! 8. [`api`]: the HTTP router, handlers and their one error type.
//! 9. [`node`]: the daemon: wiring, the mining loop, tasks and shutdown.
//!
//! `main.rs` sits on top: it parses the command line and calls these.

pub mod api;
pub mod block;
pub mod chain;
pub mod client;
pub mod clock;
pub mod config;
pub mod events;
pub mod fsio;
pub mod gossip;
pub mod handshake;
pub mod human;
pub mod init;
pub mod item;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod peers;
pub mod pool;
pub mod pow;
pub mod protocol;
pub mod state;
pub mod stats;
pub mod store;
pub mod sync;
